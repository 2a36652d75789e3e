package edge

import (
	"net/http"
	"sync"

	"github.com/barberpro/edge/storage"
)

// Provider list pages kept encoded (GET /v1/providers answered from this
// node's store). A page is a function of the filter and of the provider
// records the store holds; the store names each state of those records
// (Store.ProvidersVersion), so a kept page is served while the version it was
// read at is the store's: never a page the store would not give now. The
// city traffic of `barberpro bench` lists a city's providers for a quarter of
// its requests, and reading, formatting and encoding 50 providers was a third
// of a node's CPU.

// maxListMemo bounds the pages kept (filters are the client's: city,
// vertical, cursor, limit); past it the memo is emptied and refilled.
const maxListMemo = 256

// listKey is a provider list's filter.
type listKey struct {
	city, vertical, after string
	limit                 int
}

// listPage is an encoded page, its Cache-Control and the store version it
// was read at.
type listPage struct {
	version      uint64
	body         []byte
	cacheControl string
}

// listMemo holds encoded provider list pages.
type listMemo struct {
	mu    sync.Mutex
	pages map[listKey]listPage
}

// get returns the page kept for k if it was read at version.
func (m *listMemo) get(k listKey, version uint64) (listPage, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pages[k]
	return p, ok && p.version == version
}

// put keeps p for k (bodies over maxPooledBody are not kept).
func (m *listMemo) put(k listKey, p listPage) {
	if len(p.body) > maxPooledBody || len(k.after) > storage.MaxIDLength {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pages == nil || len(m.pages) >= maxListMemo {
		m.pages = make(map[listKey]listPage, maxListMemo)
	}
	m.pages[k] = p
}

// writeListPage answers a kept page.
func writeListPage(w http.ResponseWriter, p listPage) {
	w.Header().Set("Cache-Control", p.cacheControl)
	writeBody(w, http.StatusOK, "application/json", p.body)
}
