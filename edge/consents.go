package edge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// Consents (psychology.md, "Consent"). A consent lives in the store of the
// jurisdiction it names, and its id (cns_<city>_...) carries the first topology
// city of that jurisdiction, so every node routes it there.

// consentValidity is how long a consent lasts: 24 months.
const consentValidity = 730 * 24 * time.Hour

// maxTextVersionRunes bounds a consent's text_version.
const maxTextVersionRunes = 64

// Consent statuses as the API writes them.
const (
	consentActive    = "active"
	consentExpired   = "expired"
	consentWithdrawn = "withdrawn"
)

// consentStatus is c's status at nowMs: withdrawn, expired from expires_at on,
// else active.
func consentStatus(c *bookingv1.Consent, nowMs int64) string {
	switch {
	case c.GetWithdrawnAtMs() > 0:
		return consentWithdrawn
	case nowMs >= c.GetExpiresAtMs():
		return consentExpired
	default:
		return consentActive
	}
}

// grantConsentIn is the body of POST /v1/clients/{client_id}/consents.
type grantConsentIn struct {
	Purpose      string `json:"purpose"`
	Jurisdiction string `json:"jurisdiction"`
	TextVersion  string `json:"text_version"`
}

// consentOut is a consent in an answer.
type consentOut struct {
	ID           string `json:"id"`
	ClientID     string `json:"client_id"`
	Purpose      string `json:"purpose"`
	Jurisdiction string `json:"jurisdiction"`
	TextVersion  string `json:"text_version"`
	Status       string `json:"status"`
	GrantedAt    string `json:"granted_at"`
	ExpiresAt    string `json:"expires_at"`
	WithdrawnAt  string `json:"withdrawn_at,omitempty"`
	// CancelledBookings lists, in the answer to a withdrawal, the bookings it
	// cancelled (cancel_reason consent_withdrawn).
	CancelledBookings []string `json:"cancelled_bookings,omitempty"`
}

// formatConsent converts a stored consent, its instants in the zone of the
// first city of its jurisdiction.
func (s *Server) formatConsent(c *bookingv1.Consent) consentOut {
	loc := time.UTC
	if city, ok := s.firstCity(c.GetJurisdiction()); ok {
		if tc, err := s.cfg.Topology.City(city); err == nil && tc.Location() != nil {
			loc = tc.Location()
		}
	}
	out := consentOut{
		ID: c.GetId(), ClientID: c.GetClientId(), Purpose: c.GetPurpose(), Jurisdiction: c.GetJurisdiction(),
		TextVersion: c.GetTextVersion(), Status: consentStatus(c, s.cfg.Clock().UnixMilli()),
		GrantedAt: formatInstant(c.GetGrantedAtMs(), loc), ExpiresAt: formatInstant(c.GetExpiresAtMs(), loc),
	}
	if ms := c.GetWithdrawnAtMs(); ms > 0 {
		out.WithdrawnAt = formatInstant(ms, loc)
	}
	return out
}

// grantConsent handles POST /v1/clients/{client_id}/consents (the client).
func (s *Server) grantConsent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	clientID := r.PathValue("client_id")
	var in grantConsentIn
	if _, err := s.decodeBody(w, r, &in, false); err != nil {
		return err
	}
	vs := s.purposeVerticals(in.Purpose)
	if len(vs) == 0 {
		var purposes []string
		for _, v := range s.cfg.Topology.Verticals {
			if p := v.ConsentPurpose(); p != "" {
				purposes = append(purposes, p)
			}
		}
		return invalid("purpose %q is not one of %v", in.Purpose, purposes)
	}
	city, ok := s.firstCity(in.Jurisdiction)
	if !ok {
		return invalid("jurisdiction %q is not a jurisdiction of the topology", in.Jurisdiction)
	}
	if err := checkName("text_version", in.TextVersion); err != nil {
		return err
	}
	if utf8.RuneCountInString(in.TextVersion) > maxTextVersionRunes {
		return invalid("text_version must have at most %d characters", maxTextVersionRunes)
	}
	// The consent lives where it names; only a node of that jurisdiction keeps it.
	if in.Jurisdiction != s.jurisdiction {
		return errResidency("a consent of jurisdiction "+in.Jurisdiction, in.Jurisdiction, s.jurisdiction)
	}
	id, err := s.newRoutedID(ids.Consent, city)
	if err != nil {
		return err
	}
	idem, err := idempotencyOf(r, &in, id)
	if err != nil {
		return err
	}
	if rec, err := s.replayedRecord(ctx, idem); err != nil {
		return err
	} else if rec != nil {
		prev, err := s.readConsent(ctx, rec.GetResourceId())
		if err != nil {
			return err
		}
		// The first answer (a consent withdrawn since replays as granted).
		if first := firstAnswer(rec).GetConsent(); first.GetId() == prev.GetId() {
			prev = first
		}
		// The replay answers the consent: a read of it, audited as one.
		if err := s.appendAudit(ctx, strictest(vs...), auditRead, "consent.read", prev.GetId(), ""); err != nil {
			return err
		}
		markReplayed(w)
		w.Header().Set("Location", "/v1/clients/"+url.PathEscape(clientID)+"/consents")
		writeJSON(w, http.StatusCreated, s.formatConsent(prev))
		return nil
	}
	now := s.cfg.Clock()
	c := &bookingv1.Consent{
		Id: id, ClientId: clientID, Purpose: in.Purpose, Jurisdiction: in.Jurisdiction, TextVersion: in.TextVersion,
		GrantedAtMs: now.UnixMilli(), ExpiresAtMs: now.Add(consentValidity).UnixMilli(),
	}
	res, err := s.cfg.Store.Propose(ctx, &bookingv1.Command{
		IdempotencyKey: idem.key,
		RequestHash:    idem.hash,
		ProposedAtMs:   now.UnixMilli(),
		Audit:          auditRecords(ctx, strictest(vs...), "consent.grant", id),
		Op:             &bookingv1.Command_GrantConsent{GrantConsent: &bookingv1.GrantConsent{Consent: c}},
	})
	if err := resultError(res, err); err != nil {
		return err
	}
	if res.GetConsent() != nil {
		c = res.GetConsent() // a replayed command answers the first consent
	}
	w.Header().Set("Location", "/v1/clients/"+url.PathEscape(clientID)+"/consents")
	writeJSON(w, http.StatusCreated, s.formatConsent(c))
	return nil
}

// readConsent reads a consent from the local replica, catching up and reading
// again when it is not there.
func (s *Server) readConsent(ctx context.Context, id string) (*bookingv1.Consent, error) {
	if checkID("id", id) != nil {
		return nil, notFound("consent %q does not exist", id)
	}
	c, err := s.cfg.Store.Consent(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		if lerr := s.cfg.Store.LinearizableRead(ctx); lerr != nil {
			return nil, lerr
		}
		c, err = s.cfg.Store.Consent(ctx, id)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("consent %q does not exist", id)
	}
	return c, err
}

// withdrawConsent handles POST /v1/clients/{client_id}/consents/{id}/withdraw:
// the consent is withdrawn and, in the same command, the client's future
// bookings of the verticals that needed it are cancelled (consent_withdrawn);
// then their providers' calendar actors reload. Withdrawing a withdrawn consent
// answers it as it is. The body is optional and, when present, must be {}.
func (s *Server) withdrawConsent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	clientID := r.PathValue("client_id")
	var in struct{}
	if _, err := s.decodeBody(w, r, &in, true); err != nil {
		return err
	}
	id := r.PathValue("id")
	c, err := s.readConsent(ctx, id)
	if err != nil {
		return err
	}
	if c.GetClientId() != clientID {
		return s.refuse(ctx, s.consentAudit([]*bookingv1.Consent{c}), "consent.withdraw", id, notFound("consent %q does not exist", id))
	}
	if c.GetWithdrawnAtMs() > 0 {
		writeJSON(w, http.StatusOK, s.formatConsent(c))
		return nil
	}
	vs := s.purposeVerticals(c.GetPurpose())
	names := make([]string, 0, len(vs))
	for _, v := range vs {
		names = append(names, v.Name)
	}
	res, err := s.cfg.Store.Propose(ctx, &bookingv1.Command{
		ProposedAtMs: s.cfg.Clock().UnixMilli(),
		Audit:        auditRecords(ctx, strictest(vs...), "consent.withdraw", id),
		Op: &bookingv1.Command_WithdrawConsent{WithdrawConsent: &bookingv1.WithdrawConsent{
			ClientId: clientID, ConsentId: id, Verticals: names,
		}},
	})
	if err := resultError(res, err); err != nil {
		return err
	}
	if res.GetConsent() != nil {
		c = res.GetConsent()
	} else if c, err = s.readConsent(ctx, id); err != nil {
		return err
	}
	out := s.formatConsent(c)
	// The actors of the cancelled bookings' providers did not order the
	// cancellation: they reload, so their calendars free those slots.
	var providers []string
	for _, b := range res.GetBookings() {
		out.CancelledBookings = append(out.CancelledBookings, b.GetId())
		providers = append(providers, b.GetProviderId())
	}
	slices.Sort(providers)
	for _, p := range slices.Compact(providers) {
		if err := s.cfg.Calendars.Refresh(ctx, p); err != nil {
			s.log.WarnContext(ctx, "edge: calendar refresh after a consent withdrawal failed", "reason", errorKind(err))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listConsents handles GET /v1/clients/{client_id}/consents: every consent of
// the client, from every jurisdiction (each store answers its own), newest
// first.
func (s *Server) listConsents(w http.ResponseWriter, r *http.Request) error {
	clientID := r.PathValue("client_id")
	if err := checkID("client_id", clientID); err != nil {
		return err
	}
	local := func(ctx context.Context) ([]json.RawMessage, error) {
		items, err := s.localConsents(ctx, clientID)
		if err != nil {
			return nil, err
		}
		raws := make([]json.RawMessage, 0, len(items))
		for _, c := range items {
			raw, err := json.Marshal(s.formatConsent(c))
			if err != nil {
				return nil, err
			}
			raws = append(raws, raw)
		}
		return raws, nil
	}
	raws, err := s.gatherAll(r, "GET /v1/clients/{client_id}/consents", "/v1/clients/"+url.PathEscape(clientID)+"/consents", local)
	if err != nil {
		return err
	}
	// Newest granted first, ties by id descending.
	type keyed struct {
		grantedAt time.Time
		id        string
		raw       json.RawMessage
	}
	ks := make([]keyed, 0, len(raws))
	for _, raw := range raws {
		var c consentOut
		if err := json.Unmarshal(raw, &c); err != nil {
			return errJurisdiction("?", "undecodable answer")
		}
		t, _ := time.Parse(time.RFC3339, c.GrantedAt)
		ks = append(ks, keyed{t, c.ID, raw})
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := b.grantedAt.Compare(a.grantedAt); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	out := listOut[json.RawMessage]{Items: make([]json.RawMessage, 0, len(ks))}
	for _, k := range ks {
		out.Items = append(out.Items, k.raw)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// localConsents reads the client's consents of this node's store (after a
// linearizable read) and audits the read when the store holds any.
func (s *Server) localConsents(ctx context.Context, clientID string) ([]*bookingv1.Consent, error) {
	if err := s.cfg.Store.LinearizableRead(ctx); err != nil {
		return nil, err
	}
	items, err := s.cfg.Store.ClientConsents(ctx, clientID)
	if err != nil {
		return nil, err
	}
	level := s.consentAudit(items)
	if err := s.appendAudit(ctx, level, auditRead, "consent.read", clientObject(clientID), ""); err != nil {
		return nil, err
	}
	slices.SortFunc(items, func(a, b *bookingv1.Consent) int {
		return cmp.Or(cmp.Compare(b.GetGrantedAtMs(), a.GetGrantedAtMs()), strings.Compare(b.GetId(), a.GetId()))
	})
	return items, nil
}

// consentAudit is the audit level of reading consents: the strictest of the
// verticals their purposes serve.
func (s *Server) consentAudit(cs []*bookingv1.Consent) topology.Audit {
	var vs []topology.Vertical
	for _, c := range cs {
		vs = append(vs, s.purposeVerticals(c.GetPurpose())...)
	}
	return strictest(vs...)
}

// gatherAll collects an unpaginated list from every jurisdiction: this node's
// through local, the others' by a relayed GET of path (each answers its own
// store only). Without a Router, or for a relayed request, the local list alone.
func (s *Server) gatherAll(r *http.Request, label, path string, local func(context.Context) ([]json.RawMessage, error)) ([]json.RawMessage, error) {
	if !s.fansOut(r) {
		return local(r.Context())
	}
	pages, err := s.gather(r.Context(), func(ctx context.Context) (fanPage, error) {
		raws, err := local(ctx)
		if err != nil {
			return fanPage{}, err
		}
		var p fanPage
		for _, raw := range raws {
			p.items = append(p.items, fanItem{raw: raw})
		}
		return p, nil
	}, func(ctx context.Context, j string) (fanPage, error) {
		b, _, err := s.peerGet(ctx, label, j, path, url.Values{})
		if err != nil {
			return fanPage{}, err
		}
		var pl peerList
		if err := json.Unmarshal(b, &pl); err != nil {
			return fanPage{}, errJurisdiction(j, "undecodable answer")
		}
		var p fanPage
		for _, raw := range pl.Items {
			p.items = append(p.items, fanItem{raw: raw})
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	var all []json.RawMessage
	for _, p := range pages {
		for _, it := range p.items {
			all = append(all, it.raw)
		}
	}
	return all, nil
}
