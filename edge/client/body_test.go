package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestReadBody_AnnouncedLengthIsNotTrusted: an answer that announces 16 MiB
// (maxAnswer) and ends after a few bytes is an error, and the client did not
// allocate the announced 16 MiB for it: a peer must send bytes, not just a
// header, to make the client hold them. A long answer that keeps its word is
// read whole.
func TestReadBody_AnnouncedLengthIsNotTrusted(t *testing.T) {
	long := `{"s":"` + strings.Repeat("x", 3<<20) + `"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("from") == "long" {
			w.Header().Set("Content-Length", strconv.Itoa(len(long)))
			_, _ = w.Write([]byte(long))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(maxAnswer))
		_, _ = w.Write([]byte(`{"slots":[]}`))
	}))
	defer srv.Close()
	c := New(srv.URL, srv.Client())
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := c.AvailabilityJSON(ctx, "p", "s", "short", 1)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("an answer shorter than its Content-Length was accepted")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20+1<<18 {
		t.Errorf("a 12-byte answer announcing %d bytes made the client allocate %d bytes", maxAnswer, got)
	}
	if got, err := c.AvailabilityJSON(ctx, "p", "s", "long", 1); err != nil || string(got) != long {
		t.Fatalf("a %d-byte answer: %d bytes, %v", len(long), len(got), err)
	}
}

// An answer longer than maxAnswer is ErrAnswerTooLong, not its first 16 MiB
// (`{}` and endless blanks would otherwise be valid JSON), with or without a
// Content-Length.
func TestReadBody_OverLongAnswerIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := "{}" + strings.Repeat(" ", maxAnswer)
		if r.URL.Query().Get("city") == "sized" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c := New(srv.URL, srv.Client())
	for _, city := range []string{"sized", "chunked"} {
		if _, err := c.ProvidersJSON(context.Background(), ProvidersQuery{City: city}); !errors.Is(err, ErrAnswerTooLong) {
			t.Fatalf("%s: a %d-byte answer: %v, want ErrAnswerTooLong", city, maxAnswer+2, err)
		}
	}
}
