package cluster

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/barberpro/edge/cluster/membership"
)

// TestMetaDiff_EveryFieldCounts: a member is verified only while gossip agrees
// with what it says of itself in every field (review 8, finding 2: DiskID,
// ClusterID, Leaving, Kinds and ports were taken from gossip), and the
// verification cache key changes with each of them.
func TestMetaDiff_EveryFieldCounts(t *testing.T) {
	base := membership.Meta{NodeID: "cba-1", BootID: "b", City: "cordoba", Jurisdiction: "ar",
		RaftAddr: "127.0.0.92:7000", ActorAddr: "127.0.0.92:8090", HTTPAddr: "127.0.0.92:8080", PeerAddr: "127.0.0.92:8081",
		Kinds: []string{"calendar-ar"}, ClusterID: "c1", DiskID: "d1", Founded: true}
	if d := metaDiff(base, base); len(d) != 0 {
		t.Fatalf("equal metas differ in %v", d)
	}
	for field, change := range map[string]func(*membership.Meta){
		"NodeID": func(m *membership.Meta) { m.NodeID = "cba-2" }, "BootID": func(m *membership.Meta) { m.BootID = "b2" },
		"City": func(m *membership.Meta) { m.City = "rosario" }, "Jurisdiction": func(m *membership.Meta) { m.Jurisdiction = "us" },
		"RaftAddr":  func(m *membership.Meta) { m.RaftAddr = "127.0.0.92:7001" },
		"ActorAddr": func(m *membership.Meta) { m.ActorAddr = "127.0.0.92:8091" },
		"HTTPAddr":  func(m *membership.Meta) { m.HTTPAddr = "127.0.0.92:8082" },
		"PeerAddr":  func(m *membership.Meta) { m.PeerAddr = "127.0.0.92:8083" },
		"Kinds":     func(m *membership.Meta) { m.Kinds = nil }, "Leaving": func(m *membership.Meta) { m.Leaving = true },
		"Founded": func(m *membership.Meta) { m.Founded = false }, "ClusterID": func(m *membership.Meta) { m.ClusterID = "c2" },
		"DiskID": func(m *membership.Meta) { m.DiskID = "evil" },
	} {
		forged := base
		forged.Kinds = slices.Clone(base.Kinds)
		change(&forged)
		if d := metaDiff(forged, base); !slices.Equal(d, []string{field}) {
			t.Errorf("a forged %s: differs in %v", field, d)
		}
		if incarnation(membership.Member{Meta: forged}) == incarnation(membership.Member{Meta: base}) {
			t.Errorf("a forged %s keeps the verification cache key", field)
		}
	}
}

// TestPeerMux_AnswersOwnMetaThenEdge: the peer listener answers the node's own
// current Meta at /_peer/meta (GET only), and hands everything else to the
// edge's peer handler once set (503 before).
func TestPeerMux_AnswersOwnMetaThenEdge(t *testing.T) {
	meta := membership.Meta{NodeID: "ba-1", DiskID: "d1", Kinds: []string{"calendar-ar"}}
	p := &peerMux{meta: func() membership.Meta { return meta }}
	do := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w
	}
	w := do(http.MethodGet, peerMetaPath)
	var got membership.Meta
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK || len(metaDiff(got, meta)) > 0 {
		t.Fatalf("meta: %d %s (%v)", w.Code, w.Body, err)
	}
	if w := do(http.MethodPost, peerMetaPath); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST meta: %d", w.Code)
	}
	if w := do(http.MethodGet, "/v1/providers"); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("before the API is up: %d", w.Code)
	}
	var edge http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	p.edge.Store(&edge)
	if w := do(http.MethodGet, "/v1/providers"); w.Code != http.StatusTeapot {
		t.Fatalf("after: %d", w.Code)
	}
}
