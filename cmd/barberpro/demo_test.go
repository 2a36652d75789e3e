package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/procs"
)

// TestDemoPsychologyLines: the demo grants Ana's consent with her own token and
// prints curl lines for a consent, a psychology booking and its notes, the
// notes with the psychologist's token.
func TestDemoPsychologyLines(t *testing.T) {
	sec, err := procs.NewSecrets(filepath.Join(t.TempDir(), "secrets"), nil)
	if err != nil {
		t.Fatal(err)
	}
	anaTok, _ := sec.Token("client", "cli-ana")
	var granted bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/clients/cli-ana/consents":
			var c client.ConsentRequest
			json.NewDecoder(r.Body).Decode(&c)
			if r.Header.Get("Authorization") != "Bearer "+anaTok || c.Purpose != "psychology-care" || c.Jurisdiction != "ar" {
				w.WriteHeader(403)
				return
			}
			granted = true
			w.WriteHeader(201)
			json.NewEncoder(w).Encode(client.Consent{ID: "cns_buenos-aires_1", Status: "active"})
		case strings.HasSuffix(r.URL.Path, "/availability"):
			json.NewEncoder(w).Encode(client.Availability{Slots: []client.Slot{{Start: "2026-12-01T09:00:00-03:00"}}})
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	psy := client.Provider{ID: "prv_buenos-aires_psy", Name: "Lic. M", Timezone: "America/Argentina/Buenos_Aires", Services: []client.Service{{ID: "svc_1"}}}
	files := map[string]string{"ana": "/s/ana.token", "bruno": "/s/bruno.token", "psychologist": "/s/psychologist.token", "operator": "/s/operator.token"}
	bearer := func(n string) string { return `-H "Authorization: Bearer $(cat ` + files[n] + `)"` }
	lines, err := psychologyDemo(context.Background(), srv.URL, "http://us", sec, psy, files, bearer)
	if err != nil || !granted {
		t.Fatalf("psychologyDemo: %v (consent granted: %v)", err, granted)
	}
	var all strings.Builder
	for _, l := range lines {
		all.WriteString(l.cmd + "\n")
	}
	for _, want := range []string{
		"/v1/clients/cli-ana/consents " + bearer("ana"),
		"-X POST http://us/v1/bookings " + bearer("ana"),
		`"provider_id":"prv_buenos-aires_psy","service_id":"svc_1","client_id":"cli-ana","start":"2026-12-01T09:00:00-03:00"`,
		"-X PUT " + srv.URL + "/v1/sessions/$SESSION/notes " + bearer("psychologist"),
		srv.URL + "/v1/sessions/$SESSION/notes " + bearer("psychologist"),
		"-X DELETE " + srv.URL + "/v1/clients/cli-ana/health-data " + bearer("ana"),
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no line with %q in:\n%s", want, all.String())
		}
	}
}

// TestDemo_BookingLinesShowTheSlotsDay: the availability line asks for the day
// of the slot Ana then books, not for tomorrow (a Sunday the barber does not
// work printed an empty list), and Ana's and Bruno's lines book that slot.
func TestDemo_BookingLinesShowTheSlotsDay(t *testing.T) {
	barber := client.Provider{ID: "prv_buenos-aires_b", Name: "B", Timezone: "America/Argentina/Buenos_Aires"}
	svc := client.Service{ID: "svc_1", Name: "Corte"}
	bearer := func(n string) string { return `-H "Authorization: Bearer $(cat /s/` + n + `.token)"` }
	// 23:30 in Buenos Aires is the next day in UTC: the day is the provider's.
	const slot = "2030-12-04T23:30:00-03:00"
	lines, err := bookingLines("http://ba", "http://cba", "http://us", barber, svc, slot, bearer)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, l := range lines {
		all.WriteString(l.cmd + "\n")
	}
	for _, want := range []string{
		"curl -s 'http://ba/v1/providers/prv_buenos-aires_b/availability?service_id=svc_1&from=2030-12-04&days=1'",
		`-X POST http://ba/v1/bookings ` + bearer("ana") + ` -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' -d '{"provider_id":"prv_buenos-aires_b","service_id":"svc_1","client_id":"cli-ana","start":"` + slot + `"}'`,
		`-X POST http://cba/v1/bookings ` + bearer("bruno") + ` -H 'Content-Type: application/json' -d '{"provider_id":"prv_buenos-aires_b","service_id":"svc_1","client_id":"cli-bruno","start":"` + slot + `"}'`,
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no line with\n%s\nin:\n%s", want, all.String())
		}
	}
	if _, err := bookingLines("http://ba", "http://cba", "http://us", barber, svc, "tomorrow 9am", bearer); err == nil {
		t.Error("a slot that is no RFC 3339 time was taken")
	}
}

// TestDemo_EnvIsTheNodesFlags: what demo --pprof and --no-rate-limits add to
// a node's environment are the variables its own flags read (--pprof-addr
// with the node's own IP: five nodes on one port, each of its own address;
// --rate-limit, --ip-rate-limit), and nothing without them.
func TestDemo_EnvIsTheNodesFlags(t *testing.T) {
	start, _, err := newRootCmd().Find([]string{"node", "start"})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, kv := range []string{"rate-limit=inf", "ip-rate-limit=inf", "pprof-addr=127.0.0.11:6060"} {
		flag, value, _ := strings.Cut(kv, "=")
		if start.Flags().Lookup(flag) == nil {
			t.Fatalf("node start has no --%s", flag)
		}
		want = append(want, envNameFor(start, flag)+"="+value)
	}
	for _, c := range []struct {
		unlimited, pprof bool
		want             []string
	}{{false, false, nil}, {true, false, want[:2]}, {false, true, want[2:]}, {true, true, want}} {
		if got := demoEnv("127.0.0.11", c.unlimited, c.pprof); !slices.Equal(got, c.want) {
			t.Errorf("demoEnv(unlimited %v, pprof %v) = %q, want %q", c.unlimited, c.pprof, got, c.want)
		}
	}
}
