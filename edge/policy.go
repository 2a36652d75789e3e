package edge

import (
	"context"
	"net/http"
	"strconv"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/topology"
)

// The vertical policy of the topology, as the edge enforces it (every field of
// topology.Vertical drives something here or in the handlers):
//   - cache_ttl: the Cache-Control of GET answers about the vertical's data
//     (cacheFor); every other answer, errors included, is no-store.
//   - residency home: a record of the vertical is never held or served by a node
//     of another jurisdiction (checkResidency; the locators relay it home).
//   - encrypted_at_rest: session notes are taken only for such verticals.
//   - consent_required: bookings carry ConsentPurpose and are pre-checked.
//   - audit: which requests append audit records (auditWanted).
//   - license_required: providers need a licence; bookings require_verified.
//   - sessions: the session routes serve the vertical's bookings only.

// auditKind is what a request did to a vertical's data.
type auditKind int

const (
	auditRead auditKind = iota
	auditWrite
	auditRefusal
)

// auditWanted reports whether a request of kind k on data audited at level
// carries an audit record: writes → writes; all → reads, writes and refusals.
func auditWanted(level topology.Audit, k auditKind) bool {
	switch level {
	case topology.AuditAll:
		return true
	case topology.AuditWrites:
		return k == auditWrite
	}
	return false
}

// strictest is the strictest audit level of vs.
func strictest(vs ...topology.Vertical) topology.Audit {
	level := topology.AuditNone
	for _, v := range vs {
		switch {
		case v.Audit == topology.AuditAll:
			return topology.AuditAll
		case v.Audit == topology.AuditWrites:
			level = topology.AuditWrites
		}
	}
	return level
}

// vertical returns the policy of the named vertical. A name the topology does
// not know (a record of a vertical since removed) gets the strictest policy:
// audited, never cached, resident at home.
func (s *Server) vertical(name string) topology.Vertical {
	v, err := s.cfg.Topology.Vertical(name)
	if err != nil {
		return topology.Vertical{Name: name, Residency: topology.ResidencyHome, Audit: topology.AuditAll}
	}
	return v
}

// purposeVerticals lists the verticals whose consent purpose is purpose.
func (s *Server) purposeVerticals(purpose string) []topology.Vertical {
	var out []topology.Vertical
	for _, v := range s.cfg.Topology.Verticals {
		if purpose != "" && v.ConsentPurpose() == purpose {
			out = append(out, v)
		}
	}
	return out
}

// healthVerticals lists the verticals that hold health data (encrypted at rest).
func (s *Server) healthVerticals() []topology.Vertical {
	var out []topology.Vertical
	for _, v := range s.cfg.Topology.Verticals {
		if v.EncryptedAtRest {
			out = append(out, v)
		}
	}
	return out
}

// firstCity is the first topology city of jurisdiction j: the city a consent id
// of j carries, so that ids.CityOf routes it to j.
func (s *Server) firstCity(j string) (string, bool) {
	for _, c := range s.cfg.Topology.Cities {
		if c.Jurisdiction == j {
			return c.Name, true
		}
	}
	return "", false
}

// cacheFor sets the Cache-Control of a GET answer about data of the verticals
// named: max-age of the smallest cache_ttl, or no-store when any is 0 (or none
// is named). wrap sets no-store on every answer first.
func (s *Server) cacheFor(w http.ResponseWriter, verticals ...string) {
	ttl := time.Duration(-1)
	for _, name := range verticals {
		v := s.vertical(name)
		if ttl < 0 || v.CacheTTL < ttl {
			ttl = v.CacheTTL
		}
	}
	if secs := int64(ttl / time.Second); secs > 0 {
		w.Header().Set("Cache-Control", "max-age="+strconv.FormatInt(secs, 10))
		return
	}
	w.Header().Set("Cache-Control", noStore)
}

// noStore is the Cache-Control of every answer that may not be cached.
const noStore = "no-store"

// checkResidency refuses a record of vertical v homed in jurisdiction home on
// this node when v is resident at home and this node is of another
// jurisdiction (a single-jurisdiction node without a Router, or a store that
// holds what it must not).
func (s *Server) checkResidency(what string, v topology.Vertical, home string) error {
	if v.Residency == topology.ResidencyHome && home != "" && home != s.jurisdiction {
		return errResidency(what, home, s.jurisdiction)
	}
	return nil
}

// auditRecord is the audit record of the request whose context is ctx: its
// caller's subject and role, the node it entered by; outcome "" lets the FSM
// fill in the verdict of the command it rides on.
func auditRecord(ctx context.Context, action, object, outcome string) *bookingv1.AuditRecord {
	c, _ := callerOf(ctx)
	return &bookingv1.AuditRecord{Subject: c.p.Subject, Role: string(c.p.Role), Action: action,
		Object: object, Node: c.node, Outcome: outcome}
}

// auditRecords is the records a write of data audited at level carries
// (nil when the level wants none).
func auditRecords(ctx context.Context, level topology.Audit, action, object string) []*bookingv1.AuditRecord {
	if !auditWanted(level, auditWrite) {
		return nil
	}
	return []*bookingv1.AuditRecord{auditRecord(ctx, action, object, "")}
}

// appendAudit appends the record of a read or a refusal (kind) of data audited
// at level, as an AppendAudit command of this node's store; nothing when the
// level wants none. A read whose record cannot be appended is not answered.
func (s *Server) appendAudit(ctx context.Context, level topology.Audit, kind auditKind, action, object, outcome string) error {
	if !auditWanted(level, kind) {
		return nil
	}
	res, err := s.cfg.Store.Propose(ctx, &bookingv1.Command{
		ProposedAtMs: s.cfg.Clock().UnixMilli(),
		Audit:        []*bookingv1.AuditRecord{auditRecord(ctx, action, object, outcome)},
		Op:           &bookingv1.Command_AppendAudit{AppendAudit: &bookingv1.AppendAudit{}},
	})
	return resultError(res, err)
}

// refuse appends the audit record of a refusal (outcome "forbidden") of data
// audited at level and returns refusal, the answer.
func (s *Server) refuse(ctx context.Context, level topology.Audit, action, object string, refusal error) error {
	if err := s.appendAudit(ctx, level, auditRefusal, action, object, CodeForbidden); err != nil {
		return err
	}
	return refusal
}

// clientObject is the audit object of a request about a client as a whole.
func clientObject(clientID string) string { return "client:" + clientID }
