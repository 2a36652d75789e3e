package edge

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/barberpro/edge/storage"
)

// statusOut is the answer of /healthz and /readyz.
type statusOut struct {
	Status string `json:"status"`
	Node   string `json:"node"`
}

// healthz handles GET /healthz: 200 while the process serves.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, statusOut{Status: "ok", Node: s.cfg.NodeID})
	return nil
}

// readyz handles GET /readyz: 200 once Config.Ready says so, else 503 with the
// reason (code storage_unavailable when the node cannot write to its disk).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Ready(); err != nil {
		code := CodeJurisdictionUnavailable
		if errors.Is(err, storage.ErrStorageUnavailable) {
			code = CodeStorageUnavailable
		}
		writeProblem(w, http.StatusServiceUnavailable, code, "not ready: "+err.Error())
		return nil
	}
	writeJSON(w, http.StatusOK, statusOut{Status: "ready", Node: s.cfg.NodeID})
	return nil
}

// members handles GET /v1/cluster/members.
func (s *Server) members(w http.ResponseWriter, r *http.Request) error {
	ms := s.cfg.Members()
	out := listOut[Member]{Items: make([]Member, 0, len(ms))}
	for _, m := range ms {
		if m.Addresses == nil {
			m.Addresses = map[string]string{}
		}
		out.Items = append(out.Items, m)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// openAPI handles GET /openapi.json.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(s.openapi)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.openapi)
	return nil
}
