//go:build !race

// Two nodes (protoactor remotes) in one process: built without -race, like the
// other multi-remote tests (see attack_multinode_test.go).

package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/reqtrace"
	"github.com/barberpro/edge/simulations/load"
)

// logLines parses the JSON lines of buf (skipping any that are not).
func logLines(buf *syncBuffer) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Test_RequestTrace_RelayedUSToAR: a booking of an Argentine provider asked at
// the us node is relayed over mutual TLS to the ar node, whose calendar actor
// books it. The answer, the us node's lines, the ar node's lines (the relayed
// request's and the calendar actor's) all carry one request id and one trace
// id; each hop logs under its own span. A request without ids gets made ones,
// the same on both nodes.
func Test_RequestTrace_RelayedUSToAR(t *testing.T) {
	var arLogs, usLogs syncBuffer
	jsonLog := func(b *syncBuffer) *slog.Logger {
		return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind, c.Logger = "127.0.0.121", jsonLog(&arLogs) })
	us := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.Logger = "us-1", "us-east", "127.0.0.122", []string{a.GossipAddr()}, jsonLog(&usLogs)
	})
	ops := "Bearer " + clustertest.Token(t, us, auth.RoleOperator, "ops")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An ar provider created at the us node (retried until us-1 has verified
	// an ar node to relay to).
	pb, err := json.Marshal(load.LoadProvider("buenos-aires", 1))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		ID       string `json:"id"`
		Services []struct {
			ID string `json:"id"`
		} `json:"services"`
	}
	for {
		ans := send(t, us, "POST", "/v1/providers", string(pb), ops)
		if ans.status == http.StatusCreated {
			if err := json.Unmarshal(ans.body, &prov); err != nil {
				t.Fatal(err)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create an ar provider at the us node: %d %s", ans.status, ans.body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	const id, tp, traceID = "trace-us-ar-1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "0af7651916cd43dd8448eb211c80319c"
	client := "cli-trace-1"
	body := fmt.Sprintf(`{"provider_id":%q,"service_id":%q,"client_id":%q,"start":%q}`, prov.ID, prov.Services[0].ID, client, tomorrowAt(10, 0))
	ans := send(t, us, "POST", "/v1/bookings", body, "Bearer "+clustertest.Token(t, us, auth.RoleClient, client),
		reqtrace.RequestIDHeader, id, reqtrace.TraceparentHeader, tp)
	if ans.status != http.StatusCreated {
		t.Fatalf("book at the us node: %d %s", ans.status, ans.body)
	}
	if got := ans.header.Values(reqtrace.RequestIDHeader); len(got) != 1 || got[0] != id {
		t.Errorf("answer X-Request-Id %q, want [%s]", got, id)
	}
	if got := ans.header.Values(reqtrace.TraceparentHeader); len(got) != 1 || !strings.HasPrefix(got[0], "00-"+traceID+"-") || !strings.HasSuffix(got[0], "-01") {
		t.Errorf("answer traceparent %q, want trace %s, flags 01", got, traceID)
	}

	// Every line of the request, on either node, names the one trace; the us
	// node's access line, the ar node's access line of the relayed request and
	// the ar calendar actor's line are there.
	spans := map[string]string{}
	check := func(node string, buf *syncBuffer, want map[string]func(map[string]any) bool) {
		t.Helper()
		found := map[string]bool{}
		for _, l := range logLines(buf) {
			if l[reqtrace.KeyRequestID] != id {
				if l[reqtrace.KeyTraceID] == traceID {
					t.Errorf("%s: a line of the trace under request id %v: %v", node, l[reqtrace.KeyRequestID], l)
				}
				continue
			}
			if l[reqtrace.KeyTraceID] != traceID {
				t.Errorf("%s: a line of the request with trace %v: %v", node, l[reqtrace.KeyTraceID], l)
			}
			for what, match := range want {
				if match(l) {
					found[what] = true
					spans[node+" "+what], _ = l[reqtrace.KeySpanID].(string)
				}
			}
		}
		for what := range want {
			if !found[what] {
				t.Errorf("%s: no %s line with request id %s and trace %s", node, what, id, traceID)
			}
		}
		if strings.Contains(buf.String(), client) {
			t.Errorf("%s: a client id in the logs", node)
		}
	}
	access := func(relayed bool) func(map[string]any) bool {
		return func(l map[string]any) bool {
			return l["msg"] == "edge: request" && l["route"] == "POST /v1/bookings" && l["relayed"] == relayed && l["status"] == float64(201)
		}
	}
	check("us", &usLogs, map[string]func(map[string]any) bool{"access": access(false)})
	check("ar", &arLogs, map[string]func(map[string]any) bool{
		"access": access(true),
		"calendar actor": func(l map[string]any) bool {
			return l["msg"] == "calendar request" && l["kind"] == "BookRequest"
		},
	})
	if s := spans["us access"]; s == "" || s == spans["ar access"] || s == spans["ar calendar actor"] || spans["ar access"] == spans["ar calendar actor"] {
		t.Errorf("spans %v: each hop needs its own", spans)
	}

	// Without ids: made at the us node, kept by the ar node.
	ans = send(t, us, "GET", "/v1/providers/"+prov.ID, "", "")
	made := ans.header.Get(reqtrace.RequestIDHeader)
	if ans.status != http.StatusOK || len(made) != 32 {
		t.Fatalf("get at the us node: %d, X-Request-Id %q", ans.status, made)
	}
	var arSaw bool
	for _, l := range logLines(&arLogs) {
		if l[reqtrace.KeyRequestID] == made && l["msg"] == "edge: request" && l["relayed"] == true {
			arSaw = true
		}
	}
	if !arSaw {
		t.Errorf("the ar node logged no relayed request with the made id %s", made)
	}
}
