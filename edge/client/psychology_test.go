package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// route is what the fake node answers to one method and path.
type route struct {
	status int
	body   string
}

// fakeNode answers the routes given, records each request's method, URI, body and
// bearer token, and answers 404 problem to anything else.
func fakeNode(t *testing.T, routes map[string]route) (*Client, *[]string) {
	t.Helper()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+string(b)+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Idempotency-Key"))
		rt, ok := routes[r.Method+" "+r.URL.RequestURI()]
		if !ok {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(404)
			io.WriteString(w, `{"type":"about:blank","title":"Not Found","status":404,"detail":"no route","code":"not_found"}`)
			return
		}
		if rt.body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(rt.status)
		io.WriteString(w, rt.body)
	}))
	t.Cleanup(srv.Close)
	return New(srv.URL, nil).WithToken("tok"), &seen
}

func TestPsychologyRoutes(t *testing.T) {
	const consent = `{"id":"cns_buenos-aires_1","client_id":"cli-ana","purpose":"psychology-care","jurisdiction":"ar","text_version":"2026-01","status":"active","granted_at":"2026-11-27T10:00:00-03:00","expires_at":"2028-11-27T10:00:00-03:00"}`
	const withdrawn = `{"id":"cns_buenos-aires_1","client_id":"cli-ana","purpose":"psychology-care","jurisdiction":"ar","text_version":"2026-01","status":"withdrawn","granted_at":"2026-11-27T10:00:00-03:00","expires_at":"2028-11-27T10:00:00-03:00","withdrawn_at":"2026-11-28T10:00:00-03:00"}`
	const booking = `{"id":"bkg_buenos-aires_1","status":"confirmed","provider_id":"prv_buenos-aires_p","service_id":"svc_1","client_id":"cli-ana","start":"2026-12-01T09:00:00-03:00","end":"2026-12-01T09:50:00-03:00","price":{"amount":"35000.00","currency":"ARS"},"series_id":"srs_buenos-aires_s"}`
	const session = `{"booking_id":"bkg_buenos-aires_1","status":"checked_in","provider_id":"prv_buenos-aires_p","client_id":"cli-ana","start":"2026-12-01T09:00:00-03:00","end":"2026-12-01T09:50:00-03:00"}`
	c, seen := fakeNode(t, map[string]route{
		"POST /v1/clients/cli-ana/consents":                             {201, consent},
		"GET /v1/clients/cli-ana/consents":                              {200, `{"items":[` + consent + `]}`},
		"POST /v1/clients/cli-ana/consents/cns_buenos-aires_1/withdraw": {200, withdrawn},
		"POST /v1/providers/prv_buenos-aires_p/verify":                  {200, `{"id":"prv_buenos-aires_p","name":"Lic. M","vertical":"psychology","city":"buenos-aires","services":[],"weekly_hours":{},"license":{"number":"MN 1234","issuer":"Colegio"},"verified":true}`},
		"POST /v1/bookings/series":                                      {201, `{"id":"srs_buenos-aires_s","items":[` + booking + `,` + booking + `]}`},
		"POST /v1/bookings/series/srs_buenos-aires_s/cancel":            {200, `{"id":"srs_buenos-aires_s","items":[]}`},
		"GET /v1/sessions/bkg_buenos-aires_1":                           {200, session},
		"POST /v1/sessions/bkg_buenos-aires_1/check-in":                 {200, session},
		"POST /v1/sessions/bkg_buenos-aires_1/complete":                 {200, strings.Replace(session, "checked_in", "completed", 1)},
		"POST /v1/sessions/bkg_buenos-aires_1/no-show":                  {200, strings.Replace(session, "checked_in", "no_show", 1)},
		"PUT /v1/sessions/bkg_buenos-aires_1/notes":                     {200, `{"booking_id":"bkg_buenos-aires_1","text":"hello","updated_at":"2026-12-01T10:00:00-03:00"}`},
		"GET /v1/sessions/bkg_buenos-aires_1/notes":                     {200, `{"booking_id":"bkg_buenos-aires_1","text":"hello","updated_at":"2026-12-01T10:00:00-03:00"}`},
		"DELETE /v1/clients/cli-ana/health-data":                        {204, ""},
		"GET /v1/clients/cli-ana/export":                                {200, `{"client_id":"cli-ana","bookings":[` + booking + `],"consents":[` + consent + `],"notes":[{"booking_id":"bkg_buenos-aires_1","text":"hello"}],"series":[{"id":"srs_buenos-aires_s"}]}`},
		"GET /v1/audit?object=bkg_buenos-aires_1":                       {200, `{"items":[{"seq":1,"at":"2026-12-01T10:00:00.123-03:00","subject":"prv_buenos-aires_p","role":"provider","action":"notes.write","object":"bkg_buenos-aires_1","node":"ba-1","outcome":"ok","prev_hash":"00","hash":"ab"}]}`},
		"GET /v1/providers?vertical=psychology":                         {200, `{"items":[{"id":"prv_buenos-aires_p","name":"Lic. M","vertical":"psychology","city":"buenos-aires","jurisdiction":"ar","services":[],"weekly_hours":{}}]}`},
	})
	ctx := context.Background()

	got, err := c.GrantConsent(ctx, "cli-ana", ConsentRequest{Purpose: ConsentPurposePsychology, Jurisdiction: "ar", TextVersion: "2026-01"}, "k1")
	if err != nil || got.ID != "cns_buenos-aires_1" || got.Status != "active" || got.ExpiresAt == "" {
		t.Fatalf("GrantConsent: %+v %v", got, err)
	}
	if want := `POST /v1/clients/cli-ana/consents {"purpose":"psychology-care","jurisdiction":"ar","text_version":"2026-01"} Bearer tok k1`; (*seen)[0] != want {
		t.Errorf("GrantConsent sent %q, want %q", (*seen)[0], want)
	}
	if l, err := c.Consents(ctx, "cli-ana"); err != nil || len(l.Items) != 1 || l.Items[0].Jurisdiction != "ar" {
		t.Fatalf("Consents: %+v %v", l, err)
	}
	if w, err := c.WithdrawConsent(ctx, "cli-ana", "cns_buenos-aires_1"); err != nil || w.Status != "withdrawn" || w.WithdrawnAt == "" {
		t.Fatalf("WithdrawConsent: %+v %v", w, err)
	}
	if p, err := c.VerifyProvider(ctx, "prv_buenos-aires_p"); err != nil || !p.Verified || p.License == nil || p.License.Number != "MN 1234" {
		t.Fatalf("VerifyProvider: %+v %v", p, err)
	}
	s, err := c.BookSeries(ctx, SeriesRequest{ProviderID: "prv_buenos-aires_p", ServiceID: "svc_1", ClientID: "cli-ana", Start: "2026-12-01T09:00:00-03:00", Every: "1w", Count: 2}, "k2")
	if err != nil || s.ID != "srs_buenos-aires_s" || len(s.Items) != 2 || s.Items[0].SeriesID != s.ID {
		t.Fatalf("BookSeries: %+v %v", s, err)
	}
	if !strings.Contains((*seen)[4], `"every":"1w","count":2`) {
		t.Errorf("BookSeries sent %q", (*seen)[4])
	}
	if _, err := c.CancelSeries(ctx, "srs_buenos-aires_s", ""); err != nil {
		t.Fatalf("CancelSeries: %v", err)
	}
	if !strings.HasPrefix((*seen)[5], "POST /v1/bookings/series/srs_buenos-aires_s/cancel {} ") {
		t.Errorf("CancelSeries without from sent %q", (*seen)[5])
	}
	for name, f := range map[string]func(context.Context, string) (*Session, error){
		"checked_in": c.CheckIn, "completed": c.Complete, "no_show": c.NoShow, "checked_in ": c.Session,
	} {
		if ss, err := f(ctx, "bkg_buenos-aires_1"); err != nil || ss.Status != strings.TrimSpace(name) || ss.BookingID != "bkg_buenos-aires_1" {
			t.Errorf("session move to %s: %+v %v", name, ss, err)
		}
	}
	if n, err := c.PutNotes(ctx, "bkg_buenos-aires_1", "hello"); err != nil || n.UpdatedAt == "" {
		t.Fatalf("PutNotes: %+v %v", n, err)
	}
	if n, err := c.Notes(ctx, "bkg_buenos-aires_1"); err != nil || n.Text != "hello" {
		t.Fatalf("Notes: %+v %v", n, err)
	}
	if e, err := c.EraseHealthData(ctx, "cli-ana"); err != nil || e == nil {
		t.Fatalf("EraseHealthData (204, no body): %+v %v", e, err)
	}
	ex, err := c.Export(ctx, "cli-ana")
	if err != nil || len(ex.Bookings) != 1 || len(ex.Consents) != 1 || len(ex.Notes) != 1 || !strings.Contains(string(ex.Raw), `"series"`) {
		t.Fatalf("Export: %+v %v", ex, err)
	}
	a, err := c.Audit(ctx, AuditQuery{Object: "bkg_buenos-aires_1"})
	if err != nil || len(a.Items) != 1 || a.Items[0].Action != "notes.write" || a.Items[0].Seq != 1 {
		t.Fatalf("Audit: %+v %v", a, err)
	}
	ps, err := c.Providers(ctx, ProvidersQuery{Vertical: "psychology"})
	if err != nil || len(ps.Items) != 1 || ps.Items[0].Jurisdiction != "ar" {
		t.Fatalf("Providers: %+v %v", ps, err)
	}
}

func TestProblemCodes(t *testing.T) {
	c, _ := fakeNode(t, map[string]route{
		"POST /v1/bookings/series":         {409, `{"type":"about:blank","title":"Conflict","status":409,"detail":"2 of 4 starts are taken","code":"slot_unavailable","conflicts":["2026-12-08T09:00:00-03:00","2026-12-22T09:00:00-03:00"]}`},
		"GET /v1/sessions/bkg_x/notes":     {410, `{"type":"about:blank","title":"Gone","status":410,"detail":"erased","code":"erased"}`},
		"POST /v1/bookings":                {422, `{"type":"about:blank","title":"Unprocessable","status":422,"detail":"no consent","code":"consent_required"}`},
		"POST /v1/sessions/bkg_x/complete": {422, `{"type":"about:blank","title":"Unprocessable","status":422,"detail":"scheduled to completed","code":"validation_failed"}`},
	})
	ctx := context.Background()
	_, err := c.BookSeries(ctx, SeriesRequest{}, "")
	var p *Problem
	if !errors.As(err, &p) || p.Status != 409 || p.Code != "slot_unavailable" ||
		!reflect.DeepEqual(p.Conflicts, []string{"2026-12-08T09:00:00-03:00", "2026-12-22T09:00:00-03:00"}) {
		t.Fatalf("series conflict: %#v", err)
	}
	if _, err := c.Notes(ctx, "bkg_x"); Code(err) != "erased" {
		t.Errorf("notes after erasure: %v, want erased", err)
	}
	if _, err := c.Book(ctx, BookingRequest{}, ""); Code(err) != "consent_required" {
		t.Errorf("book without consent: %v", err)
	}
	if _, err := c.Complete(ctx, "bkg_x"); !errors.As(err, &p) || p.Status != 422 {
		t.Errorf("illegal move: %v", err)
	}
}

func TestAuditAllWalksPages(t *testing.T) {
	page := func(seqs ...int) string {
		var items []map[string]any
		for _, s := range seqs {
			items = append(items, map[string]any{"seq": s, "action": "booking.read"})
		}
		b, _ := json.Marshal(items)
		return string(b)
	}
	c, seen := fakeNode(t, map[string]route{
		"GET /v1/audit?limit=2":         {200, `{"items":` + page(1, 2) + `,"next_cursor":"2"}`},
		"GET /v1/audit?after=2&limit=2": {200, `{"items":` + page(3, 4) + `,"next_cursor":"4"}`},
		"GET /v1/audit?after=4&limit=2": {200, `{"items":` + page(5) + `}`},
	})
	var got []uint64
	err := c.AuditAll(context.Background(), AuditQuery{Limit: 2}, func(es []AuditEntry) error {
		for _, e := range es {
			got = append(got, e.Seq)
		}
		return nil
	})
	if err != nil || !reflect.DeepEqual(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("AuditAll: %v %v (requests %q)", got, err, *seen)
	}
	stop := errors.New("stop")
	if err := c.AuditAll(context.Background(), AuditQuery{Limit: 2}, func([]AuditEntry) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("AuditAll did not pass f's error on: %v", err)
	}
}
