package edge

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// A client's rights over their data (psychology.md, "Sealed at rest, erasable
// everywhere"; GDPR Art. 15, 17, 20): erasure of the health data and export of
// everything held, both across every jurisdiction (each store does its own
// part; a node whose store holds nothing of the client does nothing and keeps
// nothing, not even an audit record naming the client). And the audit log.

// maxExportPages bounds the pages of a client's bookings one store exports.
const maxExportPages = 200

// erasureOut is the answer of DELETE /v1/clients/{client_id}/health-data.
type erasureOut struct {
	ClientID string `json:"client_id"`
	Status   string `json:"status"`
	// Jurisdictions lists the jurisdictions whose stores held health data of
	// the client and erased it (their keys are destroyed now; their data dirs
	// hold nothing that could unseal it once the shredding bound has passed).
	Jurisdictions []string `json:"jurisdictions"`
}

// eraseHealthData handles DELETE /v1/clients/{client_id}/health-data (the client,
// operators): 202, the keys are destroyed in every jurisdiction that held any;
// the shredding of their bytes from the data dirs completes within the
// storage's bound.
func (s *Server) eraseHealthData(w http.ResponseWriter, r *http.Request) error {
	clientID := r.PathValue("client_id")
	if err := checkID("client_id", clientID); err != nil {
		return err
	}
	out := erasureOut{ClientID: clientID, Status: "erased", Jurisdictions: []string{}}
	if !s.fansOut(r) {
		erased, err := s.localErase(r.Context(), clientID)
		if err != nil {
			return err
		}
		if erased {
			out.Jurisdictions = append(out.Jurisdictions, s.jurisdiction)
		}
		writeJSON(w, http.StatusAccepted, out)
		return nil
	}
	const label = "DELETE /v1/clients/{client_id}/health-data"
	pages, err := s.gather(r.Context(), func(ctx context.Context) (fanPage, error) {
		erased, err := s.localErase(ctx, clientID)
		if err != nil || !erased {
			return fanPage{}, err
		}
		return fanPage{items: []fanItem{{id: s.jurisdiction}}}, nil
	}, func(ctx context.Context, j string) (fanPage, error) {
		b, _, err := s.peerDo(ctx, label, http.MethodDelete, j, "/v1/clients/"+url.PathEscape(clientID)+"/health-data", url.Values{})
		if err != nil {
			return fanPage{}, err
		}
		var peer erasureOut
		if err := json.Unmarshal(b, &peer); err != nil {
			return fanPage{}, errJurisdiction(j, "undecodable answer")
		}
		var p fanPage
		for _, pj := range peer.Jurisdictions {
			p.items = append(p.items, fanItem{id: pj})
		}
		return p, nil
	})
	if err != nil {
		return err
	}
	for _, p := range pages {
		for _, it := range p.items {
			out.Jurisdictions = append(out.Jurisdictions, it.id)
		}
	}
	slices.Sort(out.Jurisdictions)
	out.Jurisdictions = slices.Compact(out.Jurisdictions)
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// localErase erases the client's health data in this node's store when it holds
// any (a data key, a consent for a health vertical's purpose, a booking of a
// health vertical) and it was not erased already; it reports whether the store
// held some. It proposes nothing, and so records nothing, otherwise.
func (s *Server) localErase(ctx context.Context, clientID string) (bool, error) {
	if err := s.cfg.Store.LinearizableRead(ctx); err != nil {
		return false, err
	}
	health := s.healthVerticals()
	if len(health) == 0 {
		return false, nil
	}
	_, keyErr := s.cfg.Store.ClientKey(ctx, clientID)
	hasKey := keyErr == nil
	if keyErr != nil && !errors.Is(keyErr, storage.ErrNotFound) {
		return false, keyErr
	}
	_, erErr := s.cfg.Store.Erasure(ctx, clientID)
	if erErr != nil && !errors.Is(erErr, storage.ErrNotFound) {
		return false, erErr
	}
	if erErr == nil && !hasKey {
		return true, nil // erased before, and no key since: nothing left to destroy
	}
	holds := hasKey
	if !holds {
		var err error
		if holds, err = s.holdsHealthData(ctx, clientID, health); err != nil {
			return false, err
		}
	}
	if !holds {
		return false, nil
	}
	res, err := s.cfg.Store.Propose(ctx, &bookingv1.Command{
		ProposedAtMs: s.cfg.Clock().UnixMilli(),
		Audit:        auditRecords(ctx, strictest(health...), "erasure", clientObject(clientID)),
		Op:           &bookingv1.Command_EraseHealthData{EraseHealthData: &bookingv1.EraseHealthData{ClientId: clientID}},
	})
	if err := resultError(res, err); err != nil {
		return false, err
	}
	return true, nil
}

// holdsHealthData reports whether this store holds a consent or a booking of the
// client for one of the health verticals.
func (s *Server) holdsHealthData(ctx context.Context, clientID string, health []topology.Vertical) (bool, error) {
	isHealth := func(name string) bool {
		return slices.ContainsFunc(health, func(v topology.Vertical) bool { return v.Name == name })
	}
	cs, err := s.cfg.Store.ClientConsents(ctx, clientID)
	if err != nil {
		return false, err
	}
	for _, c := range cs {
		for _, v := range s.purposeVerticals(c.GetPurpose()) {
			if isHealth(v.Name) {
				return true, nil
			}
		}
	}
	found := false
	err = s.eachClientBooking(ctx, clientID, func(b *bookingv1.Booking) bool {
		found = isHealth(b.GetVertical())
		return !found
	})
	return found, err
}

// eachClientBooking calls f with every booking of the client in this store,
// newest first, until f returns false.
func (s *Server) eachClientBooking(ctx context.Context, clientID string, f func(*bookingv1.Booking) bool) error {
	page := storage.Page{Limit: maxLimit}
	for range maxExportPages {
		items, next, err := s.cfg.Store.ClientBookings(ctx, clientID, page)
		if err != nil {
			return err
		}
		for _, b := range items {
			if !f(b) {
				return nil
			}
		}
		if next == "" {
			return nil
		}
		page.After = next
	}
	return errors.New("edge: a client's bookings span more pages than an export reads")
}

// exportOut is the answer of GET /v1/clients/{client_id}/export: everything the
// cluster holds about the client.
type exportOut struct {
	ClientID    string          `json:"client_id"`
	GeneratedAt string          `json:"generated_at"`
	Bookings    []bookingOut    `json:"bookings"`
	Consents    []consentOut    `json:"consents"`
	Notes       []exportNoteOut `json:"notes"`
	Erasures    []erasureRecOut `json:"erasures"`
}

// exportNoteOut is one session's notes in an export, unsealed.
type exportNoteOut struct {
	BookingID  string `json:"booking_id"`
	ProviderID string `json:"provider_id"`
	Text       string `json:"text"`
	UpdatedAt  string `json:"updated_at,omitempty"`
}

// erasureRecOut is the record of an erasure in an export.
type erasureRecOut struct {
	Jurisdiction string `json:"jurisdiction"`
	ErasedAt     string `json:"erased_at"`
}

// exportClient handles GET /v1/clients/{client_id}/export (the client alone).
func (s *Server) exportClient(w http.ResponseWriter, r *http.Request) error {
	clientID := r.PathValue("client_id")
	if err := checkID("client_id", clientID); err != nil {
		return err
	}
	out := exportOut{ClientID: clientID, GeneratedAt: s.cfg.Clock().UTC().Format(time.RFC3339)}
	if !s.fansOut(r) {
		part, err := s.localExport(r.Context(), clientID)
		if err != nil {
			return err
		}
		out.Bookings, out.Consents, out.Notes, out.Erasures = part.Bookings, part.Consents, part.Notes, part.Erasures
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	const label = "GET /v1/clients/{client_id}/export"
	parts := make(map[string]exportOut)
	var mu sync.Mutex
	_, err := s.gather(r.Context(), func(ctx context.Context) (fanPage, error) {
		part, err := s.localExport(ctx, clientID)
		if err == nil {
			mu.Lock()
			parts[s.jurisdiction] = part
			mu.Unlock()
		}
		return fanPage{}, err
	}, func(ctx context.Context, j string) (fanPage, error) {
		b, _, err := s.peerGet(ctx, label, j, "/v1/clients/"+url.PathEscape(clientID)+"/export", url.Values{})
		if err != nil {
			return fanPage{}, err
		}
		var part exportOut
		if err := json.Unmarshal(b, &part); err != nil {
			return fanPage{}, errJurisdiction(j, "undecodable answer")
		}
		mu.Lock()
		parts[j] = part
		mu.Unlock()
		return fanPage{}, nil
	})
	if err != nil {
		return err
	}
	out.Bookings, out.Consents, out.Notes, out.Erasures = []bookingOut{}, []consentOut{}, []exportNoteOut{}, []erasureRecOut{}
	for _, j := range slices.Sorted(maps.Keys(parts)) {
		p := parts[j]
		out.Bookings = append(out.Bookings, p.Bookings...)
		out.Consents = append(out.Consents, p.Consents...)
		out.Notes = append(out.Notes, p.Notes...)
		out.Erasures = append(out.Erasures, p.Erasures...)
	}
	slices.SortStableFunc(out.Bookings, func(a, b bookingOut) int { return instantCompare(b.Start, a.Start) })
	writeJSON(w, http.StatusOK, out)
	return nil
}

// instantCompare orders two RFC 3339 instants.
func instantCompare(a, b string) int {
	ta, errA := time.Parse(time.RFC3339, a)
	tb, errB := time.Parse(time.RFC3339, b)
	if errA != nil || errB != nil {
		return strings.Compare(a, b)
	}
	return ta.Compare(tb)
}

// localExport is this store's part of a client's export; the read is audited
// here when the store holds anything of the client.
func (s *Server) localExport(ctx context.Context, clientID string) (exportOut, error) {
	part := exportOut{Bookings: []bookingOut{}, Consents: []consentOut{}, Notes: []exportNoteOut{}, Erasures: []erasureRecOut{}}
	if err := s.cfg.Store.LinearizableRead(ctx); err != nil {
		return part, err
	}
	var vs []topology.Vertical
	zones := map[string]*time.Location{}
	sessions := false
	err := s.eachClientBooking(ctx, clientID, func(b *bookingv1.Booking) bool {
		loc, ok := zones[b.GetProviderId()]
		if !ok {
			loc = s.providerZone(ctx, b.GetProviderId())
			zones[b.GetProviderId()] = loc
		}
		part.Bookings = append(part.Bookings, formatBooking(b, loc))
		v := s.vertical(b.GetVertical())
		vs = append(vs, v)
		sessions = sessions || (v.Sessions && v.EncryptedAtRest)
		return true
	})
	if err != nil {
		return part, err
	}
	cs, err := s.cfg.Store.ClientConsents(ctx, clientID)
	if err != nil {
		return part, err
	}
	for _, c := range cs {
		part.Consents = append(part.Consents, s.formatConsent(c))
		vs = append(vs, s.purposeVerticals(c.GetPurpose())...)
	}
	er, err := s.cfg.Store.Erasure(ctx, clientID)
	switch {
	case err == nil:
		part.Erasures = append(part.Erasures, erasureRecOut{Jurisdiction: s.jurisdiction,
			ErasedAt: formatInstant(er.GetErasedAtMs(), time.UTC)})
		vs = append(vs, s.healthVerticals()...)
	case !errors.Is(err, storage.ErrNotFound):
		return part, err
	}
	if len(vs) == 0 {
		return part, nil // nothing of the client here: nothing read, nothing recorded
	}
	if err := s.appendAudit(ctx, strictest(vs...), auditRead, "export", clientObject(clientID), ""); err != nil {
		return part, err
	}
	if sessions {
		if s.cfg.Sessions == nil {
			return part, &apiError{http.StatusServiceUnavailable, CodeJurisdictionUnavailable, "session notes cannot be read on this node; retry", nil}
		}
		notes, err := s.cfg.Sessions.ClientNotes(ctx, clientID)
		if err != nil {
			return part, err
		}
		for _, n := range notes {
			b := n.GetBooking()
			o := exportNoteOut{BookingID: b.GetId(), ProviderID: b.GetProviderId(), Text: n.GetNotes()}
			if ms := n.GetNotesUpdatedAtMs(); ms != 0 {
				o.UpdatedAt = formatInstant(ms, s.providerZone(ctx, b.GetProviderId()))
			}
			part.Notes = append(part.Notes, o)
		}
	}
	return part, nil
}

// auditEntryOut is one audit entry in an answer; hashes in hex.
type auditEntryOut struct {
	Seq uint64 `json:"seq"`
	At  string `json:"at"`
	// AtMs is At in Unix milliseconds: the value the entry's hash covers.
	AtMs     int64  `json:"at_ms"`
	Subject  string `json:"subject"`
	Role     string `json:"role"`
	Action   string `json:"action"`
	Object   string `json:"object"`
	Node     string `json:"node"`
	Outcome  string `json:"outcome"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// auditList handles GET /v1/audit?object=&subject=&after=&limit=&jurisdiction=
// (operators): the entries of one jurisdiction's chain (default this node's;
// another is relayed there), in seq order; next_cursor is the after of the
// next page. The read is itself audited ("audit.read").
func (s *Server) auditList(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	if j := q.Get("jurisdiction"); j != "" {
		if _, ok := s.firstCity(j); !ok {
			return invalid("jurisdiction %q is not a jurisdiction of the topology", j)
		}
		if j != s.jurisdiction {
			return &apiError{http.StatusServiceUnavailable, CodeJurisdictionUnavailable,
				"this node serves jurisdiction " + s.jurisdiction + " and cannot reach " + j + " now; retry", nil}
		}
	}
	f := AuditFilter{Object: q.Get("object"), Subject: q.Get("subject")}
	for _, p := range []struct{ name, v string }{{"object", f.Object}, {"subject", f.Subject}} {
		if p.v != "" && len(p.v) > 2*maxIDBytes {
			return invalid("query parameter %s is too long", p.name)
		}
	}
	if v := q.Get("after"); v != "" || q.Has("after") {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return badRequest("query parameter after=%q must be a non-negative integer", v)
		}
		f.After = n
	}
	var err error
	if f.Limit, err = queryLimit(q); err != nil {
		return err
	}
	if err := s.cfg.Store.LinearizableRead(ctx); err != nil {
		return err
	}
	entries, next, err := s.cfg.Store.AuditEntries(ctx, f)
	if err != nil {
		return err
	}
	object, err := s.auditReadObject(ctx, f.Object)
	if err != nil {
		return err
	}
	if err := s.appendAudit(ctx, strictest(s.cfg.Topology.Verticals...), auditRead, "audit.read", object, ""); err != nil {
		return err
	}
	out := listOut[auditEntryOut]{Items: make([]auditEntryOut, 0, len(entries))}
	if next > 0 {
		out.NextCursor = strconv.FormatUint(next, 10)
	}
	for _, e := range entries {
		out.Items = append(out.Items, auditEntryOut{
			Seq: e.GetSeq(), At: formatInstant(e.GetAtMs(), time.UTC), AtMs: e.GetAtMs(), Subject: e.GetSubject(), Role: e.GetRole(),
			Action: e.GetAction(), Object: e.GetObject(), Node: e.GetNode(), Outcome: e.GetOutcome(),
			PrevHash: hex.EncodeToString(e.GetPrevHash()), Hash: hex.EncodeToString(e.GetHash()),
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// auditReadObject is the object of the "audit.read" record of a query for
// object: the object itself only when it is homed in this node's jurisdiction
// (an id whose city is of it, or "client:<id>" of a client this store holds
// something of); "audit" otherwise, so that no store records an id homed in
// another jurisdiction (residency) or a client it knows nothing of.
func (s *Server) auditReadObject(ctx context.Context, object string) (string, error) {
	const anonymous = "audit"
	if city, ok := ids.CityOf(object); ok {
		if j, ok := s.jurisdictionOf(city); ok && j == s.jurisdiction {
			return object, nil
		}
		return anonymous, nil
	}
	if clientID, ok := strings.CutPrefix(object, "client:"); ok && checkID("client_id", clientID) == nil {
		_, held, err := s.clientHeld(ctx, clientID)
		if err != nil || !held {
			return anonymous, err
		}
		return object, nil
	}
	return anonymous, nil
}

// clientHeld reports whether this store holds anything of the client (a
// booking, a consent, an erasure record) and the strictest audit level of the
// verticals of what it holds.
func (s *Server) clientHeld(ctx context.Context, clientID string) (topology.Audit, bool, error) {
	if err := s.cfg.Store.LinearizableRead(ctx); err != nil {
		return topology.AuditNone, false, err
	}
	var vs []topology.Vertical
	held := false
	err := s.eachClientBooking(ctx, clientID, func(b *bookingv1.Booking) bool {
		held = true
		vs = append(vs, s.vertical(b.GetVertical()))
		return true
	})
	if err != nil {
		return topology.AuditNone, false, err
	}
	cs, err := s.cfg.Store.ClientConsents(ctx, clientID)
	if err != nil {
		return topology.AuditNone, false, err
	}
	for _, c := range cs {
		held = true
		vs = append(vs, s.purposeVerticals(c.GetPurpose())...)
	}
	switch _, err := s.cfg.Store.Erasure(ctx, clientID); {
	case err == nil:
		held = true
		vs = append(vs, s.healthVerticals()...)
	case !errors.Is(err, storage.ErrNotFound):
		return topology.AuditNone, false, err
	}
	return strictest(vs...), held, nil
}

// auditRouteRefusal records a refusal the route wrapper decided from the role
// alone (403) on a client's route of action: in this node's store, and only
// when the store holds something of the client (a store never records a
// client it knows nothing of, nor an id homed elsewhere).
func (s *Server) auditRouteRefusal(ctx context.Context, action, clientID string) error {
	if checkID("client_id", clientID) != nil {
		return nil
	}
	level, held, err := s.clientHeld(ctx, clientID)
	if err != nil || !held {
		return err
	}
	return s.appendAudit(ctx, level, auditRefusal, action, clientObject(clientID), CodeForbidden)
}
