package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// AvailabilityJSON hands back the answer's bytes unparsed but refuses one
// that is not framed as JSON, or empty, and asks the same path Availability
// does.
func TestAvailabilityJSON(t *testing.T) {
	body := `{"provider_id":"p 1","service_id":"s","timezone":"America/Argentina/Buenos_Aires","slots":[]}`
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.RequestURI())
		switch r.URL.Query().Get("from") {
		case "bad":
			_, _ = w.Write([]byte("{not json"))
			return
		case "empty": // 200 with no body: no answer to hand back
			return
		case "chunked": // no Content-Length: read to the end
			_, _ = w.Write([]byte(body[:10]))
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte(body[10:]))
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c := New(srv.URL, srv.Client())
	ctx := context.Background()
	got, err := c.AvailabilityJSON(ctx, "p 1", "s", "2026-12-01", 1)
	if err != nil || string(got) != body {
		t.Fatalf("AvailabilityJSON = %s, %v", got, err)
	}
	if _, err := c.Availability(ctx, "p 1", "s", "2026-12-01", 1); err != nil {
		t.Fatal(err)
	}
	if paths[0] != paths[1] || paths[0] != "/v1/providers/p%201/availability?days=1&from=2026-12-01&service_id=s" {
		t.Fatalf("paths %q", paths)
	}
	if got, err := c.AvailabilityJSON(ctx, "p 1", "s", "chunked", 1); err != nil || string(got) != body {
		t.Fatalf("chunked: AvailabilityJSON = %s, %v", got, err)
	}
	if _, err := c.AvailabilityJSON(ctx, "p 1", "s", "bad", 1); err == nil {
		t.Fatal("a body that is not JSON was accepted")
	}
	if got, err := c.AvailabilityJSON(ctx, "p 1", "s", "empty", 1); err == nil {
		t.Fatalf("an empty 200 answer was accepted: %q", got)
	}
}

// ProvidersJSON hands back the page's bytes unparsed, refuses one that is not
// JSON or a problem, and asks the same path Providers does.
func TestProvidersJSON(t *testing.T) {
	body := `{"items":[{"id":"prv_1","name":"A","vertical":"barber","city":"cordoba","services":[],"weekly_hours":{}}],"next_cursor":""}`
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.RequestURI())
		switch r.URL.Query().Get("city") {
		case "bad":
			_, _ = w.Write([]byte(`{"items":[`))
			return
		case "gone":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"code":"jurisdiction_unavailable"}`))
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c := New(srv.URL, srv.Client())
	ctx := context.Background()
	q := ProvidersQuery{City: "cordoba", Vertical: "barber", Cursor: "c 1", Limit: 7}
	got, err := c.ProvidersJSON(ctx, q)
	if err != nil || string(got) != body {
		t.Fatalf("ProvidersJSON = %s, %v", got, err)
	}
	page, err := c.Providers(ctx, q)
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != "prv_1" {
		t.Fatalf("Providers = %+v, %v", page, err)
	}
	if paths[0] != paths[1] || paths[0] != "/v1/providers?city=cordoba&cursor=c+1&limit=7&vertical=barber" {
		t.Fatalf("paths %q", paths)
	}
	if _, err := c.ProvidersJSON(ctx, ProvidersQuery{}); err != nil || paths[2] != "/v1/providers" {
		t.Fatalf("no query: %v, paths %q", err, paths)
	}
	if _, err := c.ProvidersJSON(ctx, ProvidersQuery{City: "bad"}); err == nil {
		t.Fatal("a body that is not JSON was accepted")
	}
	var p *Problem
	if _, err := c.ProvidersJSON(ctx, ProvidersQuery{City: "gone"}); !errors.As(err, &p) || p.Code != "jurisdiction_unavailable" {
		t.Fatalf("a problem answer: %v", err)
	}
}

// TestBookJSON: BookJSON posts what Book posts (same path, body and
// Idempotency-Key) and answers the node's bytes; an answer that is not JSON,
// or a problem, is an error.
func TestBookJSON(t *testing.T) {
	answer := `{"id":"bkg_1","provider_id":"prv_1","status":"confirmed"}`
	type seen struct{ path, key, body string }
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, seen{r.Method + " " + r.URL.RequestURI(), r.Header.Get("Idempotency-Key"), string(b)})
		switch r.Header.Get("Idempotency-Key") {
		case "bad":
			_, _ = w.Write([]byte(`{"id":`))
			return
		case "taken":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"status":409,"code":"slot_unavailable"}`))
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	c := New(srv.URL, srv.Client())
	ctx := context.Background()
	req := BookingRequest{ProviderID: "prv_1", ServiceID: "svc_1", ClientID: "cli_1", Start: "2026-12-01T10:00:00Z"}
	raw, err := c.BookJSON(ctx, req, "k1")
	if err != nil || string(raw) != answer {
		t.Fatalf("BookJSON = %s, %v", raw, err)
	}
	if _, err := c.Book(ctx, req, "k1"); err != nil {
		t.Fatal(err)
	}
	if got[0] != got[1] || got[0].path != "POST /v1/bookings" || got[0].key != "k1" {
		t.Fatalf("BookJSON sent %+v, Book %+v", got[0], got[1])
	}
	if _, err := c.BookJSON(ctx, req, "bad"); err == nil {
		t.Fatal("an answer that is not JSON was accepted")
	}
	var p *Problem
	if _, err := c.BookJSON(ctx, req, "taken"); !errors.As(err, &p) || p.Code != "slot_unavailable" {
		t.Fatalf("a problem answer: %v", err)
	}
}

// TestFramedJSON: an answer framed as one object or array passes, whatever
// white space is around it; a cut one, an empty one, a scalar or an HTML page
// does not.
func TestFramedJSON(t *testing.T) {
	for b, want := range map[string]bool{
		`{}`: true, `[]`: true, " \n{\"a\":[1]}\n": true, `[{"a":1}]`: true,
		``: false, ` `: false, `{`: false, `}`: false, `{"a":`: false, `[{}`: false,
		`{]`: false, `[}`: false, `"x"`: false, `42`: false, `null`: false,
		"<html>gateway</html>": false,
	} {
		if got := framedJSON([]byte(b)); got != want {
			t.Errorf("framedJSON(%q) = %v, want %v", b, got, want)
		}
	}
}

// TestUnparsedAnswer_CloseDelimitedCutIsScanned: an answer without a
// Content-Length and not chunked ends where the connection closes, so a cut
// one can pass the frame check (it ends on an inner }): such an answer is
// scanned, and refused when cut; a whole one passes.
func TestUnparsedAnswer_CloseDelimitedCutIsScanned(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	bodies := []string{`{"items":[{"id":"p1"},{"id":"p2"}`, `{"items":[{"id":"p1"},{"id":"p2"}]}`}
	go func() {
		for _, body := range bodies {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil { // read whole: no reset at close
				_ = conn.Close()
				return
			}
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"+body)
			_ = conn.Close()
		}
	}()
	c := New("http://"+ln.Addr().String(), &http.Client{})
	if !framedJSON([]byte(bodies[0])) {
		t.Fatal("the cut answer fails the frame check: the test shows nothing")
	}
	if got, err := c.ProvidersJSON(context.Background(), ProvidersQuery{}); err == nil {
		t.Fatalf("a close-delimited answer cut after an inner } was accepted: %s", got)
	}
	if got, err := c.ProvidersJSON(context.Background(), ProvidersQuery{}); err != nil || string(got) != bodies[1] {
		t.Fatalf("a whole close-delimited answer: %s, %v", got, err)
	}
}
