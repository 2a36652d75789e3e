package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/history"
)

type fakeTokens struct{}

func (fakeTokens) Token(role auth.Role, sub string) (string, error) {
	return string(role) + ":" + sub, nil
}

// psyNode is an in-memory node of the psychology routes the workload uses. It
// refuses a client's booking without its consent (422 consent_required), and
// with corrupt set answers notes unlike what was written.
type psyNode struct {
	mu       sync.Mutex
	log      []string // "METHOD path token"
	consents map[string]bool
	notes    map[string]string
	n        int
	corrupt  bool
}

func (f *psyNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.log = append(f.log, r.Method+" "+r.URL.Path+" "+tok)
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	answer := func(status int, v any) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	f.n++
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == "POST" && len(parts) == 4 && parts[3] == "consents":
		if tok != "client:"+parts[2] {
			answer(403, map[string]any{"status": 403, "code": "forbidden"})
			return
		}
		f.consents[parts[2]] = true
		answer(201, client.Consent{ID: fmt.Sprintf("cns_buenos-aires_%d", f.n), ClientID: parts[2], Status: "active"})
	case r.Method == "POST" && (r.URL.Path == "/v1/bookings" || r.URL.Path == "/v1/bookings/series"):
		if !f.consents[body["client_id"].(string)] {
			answer(422, map[string]any{"status": 422, "code": "consent_required"})
			return
		}
		b := client.Booking{ID: fmt.Sprintf("bkg_buenos-aires_%d", f.n), Status: "confirmed", Start: body["start"].(string), End: body["start"].(string)}
		if r.URL.Path == "/v1/bookings" {
			answer(201, b)
			return
		}
		b2 := b
		b2.ID += "b"
		answer(201, client.Series{ID: fmt.Sprintf("srs_buenos-aires_%d", f.n), Items: []client.Booking{b, b2}})
	case len(parts) == 4 && parts[1] == "sessions" && r.Method == "POST":
		answer(200, client.Session{BookingID: parts[2], Status: "checked_in"})
	case len(parts) == 4 && parts[1] == "sessions" && parts[3] == "notes":
		if !strings.HasPrefix(tok, "provider:") {
			answer(403, map[string]any{"status": 403, "code": "forbidden"})
			return
		}
		if r.Method == "PUT" {
			f.notes[parts[2]] = body["text"].(string)
		}
		text := f.notes[parts[2]]
		if f.corrupt {
			text += "?"
		}
		answer(200, client.Notes{BookingID: parts[2], Text: text})
	default:
		answer(200, map[string]any{"items": []any{}})
	}
}

func TestPsychologyWorkload(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("corrupt=%v", corrupt), func(t *testing.T) {
			node := &psyNode{consents: map[string]bool{}, notes: map[string]string{}, corrupt: corrupt}
			srv := httptest.NewServer(node)
			defer srv.Close()
			loc, _ := time.LoadLocation("America/Argentina/Buenos_Aires")
			p := Provider{ID: "prv_buenos-aires_psy", ServiceID: "svc_1", Vertical: "psychology", City: "buenos-aires", Jurisdiction: "ar",
				Duration: 30 * time.Minute, Window: time.Now().Add(48 * time.Hour), Loc: loc}
			tr := New(Config{Targets: []Target{{Node: "ba-1", URL: srv.URL}}, Providers: []Provider{p}, Clients: 2,
				Mix: Mix{Book: 1, Series: 1, Session: 1, Notes: 2}, WindowSlots: 8, RequestTimeout: time.Second, Retries: 1, Seed: 7,
				Rand:     func(s uint64) *rand.Rand { return rand.New(rand.NewPCG(7, s)) },
				Recorder: history.New(), Tokens: fakeTokens{}})
			defer tr.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			deadline, _ := ctx.Deadline()
			tr.Run(ctx)
			cancel()

			rec := tr.Psychology()
			if len(rec.Consents) != 2 || len(rec.Series) == 0 || len(rec.Bookings) != 2*len(rec.Series) || rec.Notes == 0 {
				t.Fatalf("psychology records: %+v", rec)
			}
			if !strings.HasPrefix(rec.Marker, "SIMNOTE-7-") || rec.Marker != tr.Marker() {
				t.Fatalf("marker %q", rec.Marker)
			}
			node.mu.Lock()
			defer node.mu.Unlock()
			for c, text := range node.notes {
				if !strings.Contains(text, rec.Marker) {
					t.Errorf("note of %s without the marker: %q", c, text)
				}
			}
			// Every client granted its consent before it booked.
			granted := map[string]bool{}
			moves := 0
			for _, l := range node.log {
				f := strings.Fields(l)
				switch {
				case strings.HasSuffix(f[1], "/consents"):
					granted[strings.TrimPrefix(f[2], "client:")] = true
				case strings.HasPrefix(f[1], "/v1/bookings") && !granted[strings.TrimPrefix(f[2], "client:")]:
					t.Errorf("%s before its client's consent", l)
				case strings.HasPrefix(f[1], "/v1/sessions/") && f[0] == "POST":
					moves++
					if f[2] != "provider:"+p.ID {
						t.Errorf("session moved by %s, not the treating provider", f[2])
					}
				}
			}
			if moves == 0 {
				t.Error("no session was moved")
			}
			if got := tr.NotesMismatch.Load(); (got > 0) != corrupt {
				t.Errorf("notes mismatches %d with corrupt=%v", got, corrupt)
			}
			for _, s := range tr.Samples() {
				if s.Code == "timeout" && !s.Return.Before(deadline) {
					continue // cut off by the end of the run, not refused
				}
				if s.Outcome != history.OK && s.Code != "notes_mismatch" {
					t.Errorf("sample %+v failed", s)
				}
			}
		})
	}
}
