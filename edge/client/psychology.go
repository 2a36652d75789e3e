package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// This file holds the routes of the psychology vertical (../shared/design/psychology.md):
// consents, provider verification, series, sessions and their notes, erasure of
// health data, the client's export, and the audit log.

// ConsentPurposePsychology is the purpose of a consent to psychological care.
const ConsentPurposePsychology = "psychology-care"

// ConsentRequest grants a consent.
type ConsentRequest struct {
	Purpose      string `json:"purpose"`
	Jurisdiction string `json:"jurisdiction"`
	TextVersion  string `json:"text_version"`
}

// Consent is a client's consent as answered. Status is "active", "expired" or
// "withdrawn"; instants are RFC 3339.
type Consent struct {
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

// License is a psychology provider's professional licence.
type License struct {
	Number string `json:"number"`
	Issuer string `json:"issuer"`
}

// SeriesRequest asks for a recurring booking: count occurrences (2..52) from
// start, every "1w" or "2w".
type SeriesRequest struct {
	ProviderID string `json:"provider_id"`
	ServiceID  string `json:"service_id"`
	ClientID   string `json:"client_id"`
	Start      string `json:"start"`
	Every      string `json:"every"`
	Count      int    `json:"count"`
}

// Series is a recurring booking as answered: its id and every occurrence.
type Series struct {
	ID         string    `json:"id"`
	ProviderID string    `json:"provider_id,omitempty"`
	ServiceID  string    `json:"service_id,omitempty"`
	ClientID   string    `json:"client_id,omitempty"`
	Every      string    `json:"every,omitempty"`
	Items      []Booking `json:"items"`
}

// Session is a psychology booking seen as a session. Status is "scheduled",
// "checked_in", "completed", "no_show" or "cancelled".
type Session struct {
	BookingID  string `json:"booking_id"`
	Status     string `json:"status"`
	ProviderID string `json:"provider_id,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	ServiceID  string `json:"service_id,omitempty"`
	Start      string `json:"start,omitempty"`
	End        string `json:"end,omitempty"`
	Erased     bool   `json:"erased,omitempty"`
}

// Notes are a session's notes as answered (text only to the treating provider).
type Notes struct {
	BookingID string `json:"booking_id,omitempty"`
	Text      string `json:"text"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

// Erasure is the answer of DELETE /v1/clients/{client_id}/health-data:
// Jurisdictions lists those whose stores held health data of the client and
// destroyed its keys.
type Erasure struct {
	ClientID      string   `json:"client_id,omitempty"`
	Status        string   `json:"status,omitempty"`
	Jurisdictions []string `json:"jurisdictions,omitempty"`
}

// ExportNote is one session's notes in a client's export.
type ExportNote struct {
	BookingID  string `json:"booking_id"`
	ProviderID string `json:"provider_id,omitempty"`
	Text       string `json:"text,omitempty"`
	UpdatedAt  string `json:"updated_at,omitempty"`
}

// ExportErasure is an erasure of the client's health data in one jurisdiction.
type ExportErasure struct {
	Jurisdiction string `json:"jurisdiction"`
	ErasedAt     string `json:"erased_at"`
}

// Export is everything a node holds about a client (GDPR Art. 15 and 20). Raw is
// the whole answer as received, fields this type does not name included.
type Export struct {
	ClientID    string          `json:"client_id"`
	GeneratedAt string          `json:"generated_at,omitempty"`
	Bookings    []Booking       `json:"bookings"`
	Consents    []Consent       `json:"consents"`
	Notes       []ExportNote    `json:"notes"`
	Erasures    []ExportErasure `json:"erasures,omitempty"`
	Raw         json.RawMessage `json:"-"`
}

// AuditEntry is one link of a jurisdiction's hash-chained audit log. At is
// RFC 3339 with milliseconds; AtMs, when the node sends it, is the same instant
// in Unix milliseconds. PrevHash and Hash are hex (or base64) SHA-256 digests.
type AuditEntry struct {
	Seq      uint64 `json:"seq"`
	At       string `json:"at"`
	AtMs     int64  `json:"at_ms,omitempty"`
	Subject  string `json:"subject"`
	Role     string `json:"role"`
	Action   string `json:"action"`
	Object   string `json:"object"`
	Node     string `json:"node"`
	Outcome  string `json:"outcome"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// AuditQuery filters GET /v1/audit; empty fields are not sent.
type AuditQuery struct {
	Object, Subject string
	// Jurisdiction names whose chain to read (default: the node's own).
	Jurisdiction string
	// After is the seq after which the page starts: a page's NextCursor.
	After string
	Limit int
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"object": q.Object, "subject": q.Subject, "jurisdiction": q.Jurisdiction, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func clientPath(clientID string) string { return "/v1/clients/" + url.PathEscape(clientID) }

func sessionPath(bookingID string) string { return "/v1/sessions/" + url.PathEscape(bookingID) }

// GrantConsent grants a consent of clientID (the client's own token). key, when
// not empty, is sent as Idempotency-Key.
func (c *Client) GrantConsent(ctx context.Context, clientID string, r ConsentRequest, key string) (*Consent, error) {
	var out Consent
	return &out, c.do(ctx, http.MethodPost, clientPath(clientID)+"/consents", key, r, &out)
}

// Consents lists a client's consents.
func (c *Client) Consents(ctx context.Context, clientID string) (*List[Consent], error) {
	var out List[Consent]
	return &out, c.do(ctx, http.MethodGet, clientPath(clientID)+"/consents", "", nil, &out)
}

// WithdrawConsent withdraws one of a client's consents; the client's future
// bookings that needed it are cancelled.
func (c *Client) WithdrawConsent(ctx context.Context, clientID, consentID string) (*Consent, error) {
	var out Consent
	return &out, c.do(ctx, http.MethodPost, clientPath(clientID)+"/consents/"+url.PathEscape(consentID)+"/withdraw", "", struct{}{}, &out)
}

// VerifyProvider marks a licensed provider as verified (operator): it takes
// bookings from then on.
func (c *Client) VerifyProvider(ctx context.Context, id string) (*Provider, error) {
	var out Provider
	return &out, c.do(ctx, http.MethodPost, "/v1/providers/"+url.PathEscape(id)+"/verify", "", struct{}{}, &out)
}

// BookSeries books every occurrence of a series, or none: a refusal because
// some starts are taken is a *Problem (409 slot_unavailable) whose Conflicts
// lists them. key, when not empty, is sent as Idempotency-Key.
func (c *Client) BookSeries(ctx context.Context, r SeriesRequest, key string) (*Series, error) {
	var out Series
	return &out, c.do(ctx, http.MethodPost, "/v1/bookings/series", key, r, &out)
}

// CancelSeries cancels the occurrences of a series from from (an RFC 3339
// instant; "" for every future one).
func (c *Client) CancelSeries(ctx context.Context, id, from string) (*Series, error) {
	var out Series
	body := struct {
		From string `json:"from,omitempty"`
	}{from}
	return &out, c.do(ctx, http.MethodPost, "/v1/bookings/series/"+url.PathEscape(id)+"/cancel", "", body, &out)
}

// Session reads a session (its booking's status as a session).
func (c *Client) Session(ctx context.Context, bookingID string) (*Session, error) {
	var out Session
	return &out, c.do(ctx, http.MethodGet, sessionPath(bookingID), "", nil, &out)
}

// CheckIn moves a session from scheduled to checked_in (the treating provider).
func (c *Client) CheckIn(ctx context.Context, bookingID string) (*Session, error) {
	return c.moveSession(ctx, bookingID, "check-in")
}

// Complete moves a session from checked_in to completed (the treating provider).
func (c *Client) Complete(ctx context.Context, bookingID string) (*Session, error) {
	return c.moveSession(ctx, bookingID, "complete")
}

// NoShow moves a session from scheduled to no_show (the treating provider).
func (c *Client) NoShow(ctx context.Context, bookingID string) (*Session, error) {
	return c.moveSession(ctx, bookingID, "no-show")
}

func (c *Client) moveSession(ctx context.Context, bookingID, move string) (*Session, error) {
	var out Session
	return &out, c.do(ctx, http.MethodPost, sessionPath(bookingID)+"/"+move, "", struct{}{}, &out)
}

// PutNotes replaces a session's notes (the treating provider only).
func (c *Client) PutNotes(ctx context.Context, bookingID, text string) (*Notes, error) {
	var out Notes
	body := struct {
		Text string `json:"text"`
	}{text}
	return &out, c.do(ctx, http.MethodPut, sessionPath(bookingID)+"/notes", "", body, &out)
}

// Notes reads a session's notes (the treating provider only); after the
// client's health data was erased, a *Problem 410 erased.
func (c *Client) Notes(ctx context.Context, bookingID string) (*Notes, error) {
	var out Notes
	return &out, c.do(ctx, http.MethodGet, sessionPath(bookingID)+"/notes", "", nil, &out)
}

// EraseHealthData destroys a client's data keys everywhere (the client or an
// operator): their notes read 410 erased from then on.
func (c *Client) EraseHealthData(ctx context.Context, clientID string) (*Erasure, error) {
	var out Erasure
	return &out, c.do(ctx, http.MethodDelete, clientPath(clientID)+"/health-data", "", nil, &out)
}

// Export fetches everything held about a client (the client's own token).
func (c *Client) Export(ctx context.Context, clientID string) (*Export, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, clientPath(clientID)+"/export", "", nil, &raw); err != nil {
		return nil, err
	}
	out := Export{Raw: raw}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, decodeError(http.MethodGet, clientPath(clientID)+"/export", err)
	}
	return &out, nil
}

// Audit lists a page of audit entries (operator), oldest first; NextCursor is ""
// on the last page.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (*List[AuditEntry], error) {
	var out List[AuditEntry]
	path := "/v1/audit"
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	return &out, c.do(ctx, http.MethodGet, path, "", nil, &out)
}

// AuditAll walks every page of GET /v1/audit matching q from q.After on,
// calling f with each page's entries in order, until the last page, an error,
// or f's error.
func (c *Client) AuditAll(ctx context.Context, q AuditQuery, f func([]AuditEntry) error) error {
	for {
		page, err := c.Audit(ctx, q)
		if err != nil {
			return err
		}
		if err := f(page.Items); err != nil {
			return err
		}
		if page.NextCursor == "" || page.NextCursor == q.After {
			return nil
		}
		q.After = page.NextCursor
	}
}

// ProvidersQuery filters GET /v1/providers; empty fields are not sent.
type ProvidersQuery struct {
	City, Vertical, Cursor string
	Limit                  int
}

// Providers lists a page of providers.
func (c *Client) Providers(ctx context.Context, q ProvidersQuery) (*List[Provider], error) {
	var out List[Provider]
	return &out, c.do(ctx, http.MethodGet, q.path(), "", nil, &out)
}

// ProvidersJSON is Providers' answer as the node sent it: checked to be
// framed as JSON, not decoded (as AvailabilityJSON). Decoding pages of 50
// providers with their weekly hours was 46 % of the CPU of `barberpro bench
// --mode city`, taken from the nodes it shares the cores with
// (docs/PERFORMANCE.md, session 22).
func (c *Client) ProvidersJSON(ctx context.Context, q ProvidersQuery) (json.RawMessage, error) {
	return c.getJSON(ctx, q.path())
}

// path is the query's GET /v1/providers path.
func (q ProvidersQuery) path() string {
	v := url.Values{}
	for k, s := range map[string]string{"city": q.City, "vertical": q.Vertical, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/providers"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	return path
}
