package edge

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
)

// listCounter counts the store's ListProviders calls.
type listCounter struct {
	Store
	n atomic.Int64
}

func (c *listCounter) ListProviders(ctx context.Context, f storage.ProviderFilter) ([]*bookingv1.Provider, string, error) {
	c.n.Add(1)
	return c.Store.ListProviders(ctx, f)
}

// TestListProviders_PagesKeptPerProviderVersion: a provider list page is read
// from the store once and then answered from the memo, byte for byte, while
// the store's provider version stays; a provider write (here a new provider)
// moves the version, and the next list reads the store again and shows it.
// Another filter is another page.
func TestListProviders_PagesKeptPerProviderVersion(t *testing.T) {
	var lc *listCounter
	h := newHarnessWith(t, func(cfg *Config) {
		lc = &listCounter{Store: cfg.Store}
		cfg.Store = lc
	})
	first := h.create(providerBody("buenos-aires", "barber"))
	list := call{method: "GET", path: "/v1/providers?city=buenos-aires", valid: true}

	rec := h.do(list)
	wantStatus(t, rec, http.StatusOK)
	body, cc := rec.Body.String(), rec.Header().Get("Cache-Control")
	if lc.n.Load() != 1 || !strings.Contains(body, first.ID) {
		t.Fatalf("first list: %d store reads, body %s", lc.n.Load(), body)
	}
	for range 3 {
		rec = h.do(list)
		wantStatus(t, rec, http.StatusOK)
		if rec.Body.String() != body || rec.Header().Get("Cache-Control") != cc {
			t.Fatalf("kept page differs: %s (Cache-Control %q), want %s (%q)", rec.Body.String(), rec.Header().Get("Cache-Control"), body, cc)
		}
	}
	if lc.n.Load() != 1 {
		t.Fatalf("%d store reads for 4 lists of one version, want 1", lc.n.Load())
	}

	second := h.create(providerBody("buenos-aires", "barber"))
	rec = h.do(list)
	wantStatus(t, rec, http.StatusOK)
	if lc.n.Load() != 2 || !strings.Contains(rec.Body.String(), second.ID) {
		t.Fatalf("list after a provider write: %d store reads, body lacks %s: %s", lc.n.Load(), second.ID, rec.Body.String())
	}
	rec = h.do(call{method: "GET", path: "/v1/providers?city=buenos-aires&limit=1", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if lc.n.Load() != 3 || strings.Contains(rec.Body.String(), second.ID) && strings.Contains(rec.Body.String(), first.ID) {
		t.Fatalf("another filter answered from the first's page: %d store reads, %s", lc.n.Load(), rec.Body.String())
	}
}

// TestListMemo_Bounded: the memo never holds more than maxListMemo pages
// (the filters, cursors included, are the client's).
func TestListMemo_Bounded(t *testing.T) {
	var m listMemo
	for i := range 3 * maxListMemo {
		m.put(listKey{after: strings.Repeat("x", i%200) + string(rune('a'+i%26)), limit: i}, listPage{body: []byte("{}")})
		if len(m.pages) > maxListMemo {
			t.Fatalf("%d pages kept after %d puts, bound %d", len(m.pages), i+1, maxListMemo)
		}
	}
	m.put(listKey{after: strings.Repeat("y", storage.MaxIDLength+1)}, listPage{body: []byte("{}")})
	if _, ok := m.get(listKey{after: strings.Repeat("y", storage.MaxIDLength+1)}, 0); ok {
		t.Fatal("a page kept for a cursor longer than any id")
	}
}

// TestListProviders_MemoSeesDoublePutProvider: the edgetest double's
// PutProvider is a provider write too; a list after it shows the provider.
func TestListProviders_MemoSeesDoublePutProvider(t *testing.T) {
	h := newHarness(t)
	list := call{method: "GET", path: "/v1/providers?city=buenos-aires", valid: true}
	wantStatus(t, h.do(list), http.StatusOK)
	h.store.PutProvider(&bookingv1.Provider{Id: "prv_put", Name: "Put", Vertical: "barber", City: "buenos-aires", Jurisdiction: "ar", Timezone: "America/Argentina/Buenos_Aires"})
	rec := h.do(list)
	wantStatus(t, rec, http.StatusOK)
	if !strings.Contains(rec.Body.String(), "prv_put") {
		t.Fatalf("list after PutProvider lacks it (kept page of the version before): %s", rec.Body.String())
	}
}
