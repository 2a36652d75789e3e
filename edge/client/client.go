// Package client is a Go client of the BarberPro Edge HTTP API v1 (see
// ../shared/design/api.md and GET /openapi.json). The demo, the load tool, the
// simulations and the end-to-end tests speak to nodes through it, exactly as a client
// app would: JSON over HTTP, problem+json errors as *Problem values.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Money is an amount as the API writes it: a decimal string with two places.
type Money struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// HoursRange is a span of local wall time, "HH:MM".
type HoursRange struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// DateOverride replaces one local date's hours; no hours means closed.
type DateOverride struct {
	Date  string       `json:"date"`
	Hours []HoursRange `json:"hours"`
}

// Service is one thing a provider sells.
type Service struct {
	ID              string `json:"id,omitempty"`
	Name            string `json:"name"`
	DurationMinutes int    `json:"duration_minutes"`
	BufferMinutes   int    `json:"buffer_minutes,omitempty"`
	Price           Money  `json:"price"`
}

// Provider is a provider as created and as answered.
type Provider struct {
	ID               string                  `json:"id,omitempty"`
	Name             string                  `json:"name"`
	Vertical         string                  `json:"vertical"`
	City             string                  `json:"city"`
	Jurisdiction     string                  `json:"jurisdiction,omitempty"`
	Timezone         string                  `json:"timezone,omitempty"`
	Services         []Service               `json:"services"`
	WeeklyHours      map[string][]HoursRange `json:"weekly_hours"`
	DateOverrides    []DateOverride          `json:"date_overrides,omitempty"`
	MinNoticeMinutes *int                    `json:"min_notice_minutes,omitempty"`
	HorizonDays      *int                    `json:"horizon_days,omitempty"`
	// License is a psychology provider's licence (required for verticals whose
	// policy says license_required).
	License *License `json:"license,omitempty"`
	// Verified is true once an operator verified the licence (answers only).
	Verified bool `json:"verified,omitempty"`
}

// Slot is a start at which a booking would succeed, and the end of that booking.
type Slot struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Availability is the answer of the availability route.
type Availability struct {
	ProviderID string `json:"provider_id"`
	ServiceID  string `json:"service_id"`
	Timezone   string `json:"timezone"`
	Slots      []Slot `json:"slots"`
}

// BookingRequest asks for a booking.
type BookingRequest struct {
	ProviderID string `json:"provider_id"`
	ServiceID  string `json:"service_id"`
	ClientID   string `json:"client_id"`
	Start      string `json:"start"`
}

// Booking is a booking as answered.
type Booking struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	ProviderID string `json:"provider_id"`
	ServiceID  string `json:"service_id"`
	ClientID   string `json:"client_id"`
	Start      string `json:"start"`
	End        string `json:"end"`
	Price      Money  `json:"price"`
	// CancelReason says why a cancelled booking was cancelled by the system
	// (e.g. "consent_withdrawn"); empty otherwise.
	CancelReason string `json:"cancel_reason,omitempty"`
	// SeriesID is the series the booking is an occurrence of, if any.
	SeriesID string `json:"series_id,omitempty"`
	// SessionStatus is the session's status, for verticals whose bookings are
	// sessions (psychology): "scheduled", "checked_in", ...
	SessionStatus string `json:"session_status,omitempty"`
	// Erased is true once the client's health data was erased (the booking keeps
	// its dates and provider).
	Erased bool `json:"erased,omitempty"`
}

// Placement is where a provider's calendar actor is active.
type Placement struct {
	Node         string `json:"node"`
	City         string `json:"city"`
	Jurisdiction string `json:"jurisdiction"`
}

// List is a page of items and the cursor of the next page ("" at the end).
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Problem is an RFC 9457 problem answer. Client methods return it as their error
// for any 4xx or 5xx answer.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	// Conflicts lists the colliding starts of a refused series (409
	// slot_unavailable), and only those.
	Conflicts []string `json:"conflicts,omitempty"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Detail)
}

// Code returns the problem code of err, or "" if err is not a *Problem.
func Code(err error) string {
	var p *Problem
	if errors.As(err, &p) {
		return p.Code
	}
	return ""
}

// Client talks to one node.
type Client struct {
	// Base is the node's URL, e.g. http://127.0.0.11:8080.
	Base string
	// HTTP is the client used; default http.DefaultClient.
	HTTP *http.Client
	// Token, when not empty, is sent as "Authorization: Bearer Token" with every
	// request (see `barberpro token issue`).
	Token string
}

// WithToken returns a copy of c that sends token as its bearer token.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.Token = token
	return &cc
}

// New returns a client of the node at base.
func New(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{Base: base, HTTP: hc}
}

// CreateProvider creates p. key, when not empty, is sent as Idempotency-Key.
func (c *Client) CreateProvider(ctx context.Context, p Provider, key string) (*Provider, error) {
	var out Provider
	return &out, c.do(ctx, http.MethodPost, "/v1/providers", key, p, &out)
}

// Provider fetches one provider.
func (c *Client) Provider(ctx context.Context, id string) (*Provider, error) {
	var out Provider
	return &out, c.do(ctx, http.MethodGet, "/v1/providers/"+url.PathEscape(id), "", nil, &out)
}

// Availability lists the free starts of a service over days local dates from from.
func (c *Client) Availability(ctx context.Context, providerID, serviceID, from string, days int) (*Availability, error) {
	var out Availability
	return &out, c.do(ctx, http.MethodGet, availabilityPath(providerID, serviceID, from, days), "", nil, &out)
}

// AvailabilityJSON is Availability's answer as the node sent it: checked to
// be framed as JSON (framedJSON), not decoded. A load generator reading
// slots it does not use spends its CPU on the node this way, not on
// decoding them.
func (c *Client) AvailabilityJSON(ctx context.Context, providerID, serviceID, from string, days int) (json.RawMessage, error) {
	return c.getJSON(ctx, availabilityPath(providerID, serviceID, from, days))
}

// getJSON is GET path's answer as the node sent it, checked to be framed as
// JSON (do refuses one that is not), not decoded.
func (c *Client) getJSON(ctx context.Context, path string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, path, "", nil, &out)
	return out, err
}

func availabilityPath(providerID, serviceID, from string, days int) string {
	q := url.Values{"service_id": {serviceID}, "from": {from}, "days": {strconv.Itoa(days)}}
	return "/v1/providers/" + url.PathEscape(providerID) + "/availability?" + q.Encode()
}

// Placement tells where a provider's calendar actor is active.
func (c *Client) Placement(ctx context.Context, providerID string) (*Placement, error) {
	var out Placement
	return &out, c.do(ctx, http.MethodGet, "/v1/providers/"+url.PathEscape(providerID)+"/placement", "", nil, &out)
}

// Book asks for a booking. key, when not empty, is sent as Idempotency-Key.
func (c *Client) Book(ctx context.Context, r BookingRequest, key string) (*Booking, error) {
	var out Booking
	return &out, c.do(ctx, http.MethodPost, "/v1/bookings", key, r, &out)
}

// BookJSON is Book with the answer as the node sent it: checked to be
// framed as JSON, not decoded (as AvailabilityJSON), for a caller that only
// needs to know that the booking was made. The closed loops of `barberpro
// bench` book this way: decoding each booking answer was ~15 % of the
// bench's CPU, on the cores of the nodes it measures.
func (c *Client) BookJSON(ctx context.Context, r BookingRequest, key string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodPost, "/v1/bookings", key, r, &out)
	return out, err
}

// Booking fetches one booking.
func (c *Client) Booking(ctx context.Context, id string) (*Booking, error) {
	var out Booking
	return &out, c.do(ctx, http.MethodGet, "/v1/bookings/"+url.PathEscape(id), "", nil, &out)
}

// Cancel cancels a booking.
func (c *Client) Cancel(ctx context.Context, id string) (*Booking, error) {
	var out Booking
	return &out, c.do(ctx, http.MethodPost, "/v1/bookings/"+url.PathEscape(id)+"/cancel", "", struct{}{}, &out)
}

// Reschedule moves a booking to a new start. key, when not empty, is sent as
// Idempotency-Key.
func (c *Client) Reschedule(ctx context.Context, id, start, key string) (*Booking, error) {
	var out Booking
	body := struct {
		Start string `json:"start"`
	}{start}
	return &out, c.do(ctx, http.MethodPost, "/v1/bookings/"+url.PathEscape(id)+"/reschedule", key, body, &out)
}

// ClientBookings lists a client's bookings, newest first.
func (c *Client) ClientBookings(ctx context.Context, clientID, cursor string, limit int) (*List[Booking], error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out List[Booking]
	return &out, c.do(ctx, http.MethodGet, "/v1/clients/"+url.PathEscape(clientID)+"/bookings?"+q.Encode(), "", nil, &out)
}

// Member is one node of the cluster, as GET /v1/cluster/members answers it.
type Member struct {
	ID           string `json:"id"`
	City         string `json:"city"`
	Jurisdiction string `json:"jurisdiction"`
	Status       string `json:"status"`
	Raft         struct {
		Group string `json:"group"`
		Role  string `json:"role"`
	} `json:"raft"`
	// Addresses maps an endpoint name ("http", "raft", ...) to its host:port.
	Addresses map[string]string `json:"addresses"`
}

// ClusterStatus is the answer of GET /v1/cluster/status.
type ClusterStatus struct {
	Node   string        `json:"node"`
	Groups []GroupStatus `json:"groups"`
}

// GroupStatus is one Raft group (a jurisdiction's store).
type GroupStatus struct {
	Group  string `json:"group"`
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	// ClusterID is the group's id as the answering node's replica holds it
	// (its own group), or as the group's leader reports it; "" if unknown.
	ClusterID string        `json:"cluster_id"`
	Members   []GroupMember `json:"members"`
	// Events are recent group-keeping actions and refusals reported by the
	// group's live members (automatic removals, replaced disks, promotions,
	// nodes of another history refused), each prefixed with its UTC time.
	Events []string `json:"events"`
}

// GroupMember is one server of a Raft group.
type GroupMember struct {
	ID string `json:"id"`
	// Role is "leader", "follower", "candidate", "nonvoter", "unreachable" (in
	// the Raft configuration but not alive in gossip), "joining", "leaving"
	// (cluster leave under way), "shutdown" or "unknown".
	Role string `json:"role"`
	// AppliedIndex is the last log index the member has applied.
	AppliedIndex uint64 `json:"applied_index"`
	// Lag is how many log entries the member is behind the leader; 0 for a
	// member that does not follow the leader's log (joining, leaving,
	// unreachable, unknown).
	Lag uint64 `json:"lag"`
	// Term is the member's current Raft term (0 if it did not answer).
	Term uint64 `json:"term"`
	// ClusterID is the id of the group the member's replica belongs to, ""
	// until it applied the group's founding entry. Members of one group with
	// different cluster ids are two histories (a fork).
	ClusterID string `json:"cluster_id"`
	// Disk is the identity of the member's data dir; a wiped disk is a new one.
	Disk string `json:"disk"`
	// StorageFault says why the member cannot write now (a full disk, an I/O
	// error: it answers 503 storage_unavailable and reports unready); empty
	// when its store is healthy.
	StorageFault string `json:"storage_fault,omitempty"`
}

// LeaveResult is the answer of POST /v1/cluster/leave.
type LeaveResult struct {
	Node   string `json:"node"`
	Status string `json:"status"`
}

// RemoveResult is the answer of POST /v1/cluster/members/{id}/remove.
type RemoveResult struct {
	Node   string `json:"node"`
	Member string `json:"member"`
	Status string `json:"status"`
}

// Members lists the nodes of the cluster as the node sees them.
func (c *Client) Members(ctx context.Context) (*List[Member], error) {
	var out List[Member]
	return &out, c.do(ctx, http.MethodGet, "/v1/cluster/members", "", nil, &out)
}

// Status reports the node's Raft groups: leaders, terms, members and their lag.
func (c *Client) Status(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/cluster/status", "", nil, &out)
}

// Leave asks the node to leave the cluster gracefully; it answers (202) before
// it goes.
func (c *Client) Leave(ctx context.Context) (*LeaveResult, error) {
	var out LeaveResult
	return &out, c.do(ctx, http.MethodPost, "/v1/cluster/leave", "", struct{}{}, &out)
}

// Remove asks the node to drop member id (a dead node) from the cluster. An
// unknown id is a *Problem with code not_found; a member gossip shows alive is
// one with code member_alive unless force.
func (c *Client) Remove(ctx context.Context, id string, force bool) (*RemoveResult, error) {
	var out RemoveResult
	path := "/v1/cluster/members/" + url.PathEscape(id) + "/remove"
	if force {
		path += "?force=true"
	}
	return &out, c.do(ctx, http.MethodPost, path, "", struct{}{}, &out)
}

// Ready reports nil when the node answers /readyz with 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", "", nil, nil)
}

// WaitReady polls /readyz until it answers 200 or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		err := c.Ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("client: %s not ready: %w (last: %v)", c.Base, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Client) do(ctx context.Context, method, path, key string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := readBody(resp)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		p := &Problem{Status: resp.StatusCode}
		if json.Unmarshal(b, p) != nil || p.Code == "" {
			p.Detail = string(b)
		}
		p.Status = resp.StatusCode
		return p
	}
	raw, isRaw := out.(*json.RawMessage)
	if out == nil || !isRaw && len(bytes.TrimSpace(b)) == 0 {
		return nil // no body (204): out keeps its zero value
	}
	if isRaw {
		// Kept as sent, checked for its frame only (framedJSON), not scanned:
		// an empty answer fails it too (the *JSON methods' calls answer a
		// body). An answer whose end only the connection's close marks (no
		// Content-Length, not chunked) could be cut anywhere: scanned.
		delimited := resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0
		if !framedJSON(b) || !delimited && !json.Valid(b) {
			return decodeError(method, path, errNotJSON)
		}
		*raw = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return decodeError(method, path, err)
	}
	return nil
}

// errNotJSON is the decode error of an answer that is not JSON.
var errNotJSON = errors.New("not JSON")

// framedJSON tells whether b is framed as one JSON object or array: its first
// and last bytes other than white space are { and } or [ and ]. It is the
// check of the answers the *JSON methods hand back unparsed: an empty answer
// fails it, as does one of another kind (an HTML error page), and it costs
// nothing per byte; a wrong byte inside a good frame passes, and so does an
// answer cut just after an inner } or ]. A cut is the transport's to find:
// the node sends a Content-Length (readBody refuses fewer bytes), chunked
// answers end with their last chunk, and do scans an answer that has
// neither. Scanning each answer with json.Valid was a quarter of the CPU
// of `barberpro bench --mode city`, on the cores of the nodes it measures
// (docs/PERFORMANCE.md, session 28); what the node's answers hold is
// checked by the tests and simulations, not by a load generator.
func framedJSON(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) < 2 {
		return false
	}
	first, last := b[0], b[len(b)-1]
	return first == '{' && last == '}' || first == '[' && last == ']'
}

// maxAnswer bounds the answer the client reads: a longer one is
// ErrAnswerTooLong, not its first maxAnswer bytes (which may be valid JSON).
const maxAnswer = 16 << 20

// ErrAnswerTooLong is an answer over maxAnswer (16 MiB).
var ErrAnswerTooLong = errors.New("client: answer over 16 MiB")

// maxPrealloc bounds the buffer readBody allocates on the word of a
// Content-Length alone: a peer that announces 16 MiB and sends a few bytes
// does not make the client hold 16 MiB; a longer answer grows as it arrives.
const maxPrealloc = 1 << 20

// readBody reads resp's body, at most maxAnswer bytes (more is
// ErrAnswerTooLong), into one buffer of the announced length when the answer
// has one of at most maxPrealloc.
func readBody(resp *http.Response) ([]byte, error) {
	r := io.LimitReader(resp.Body, maxAnswer+1)
	if n := resp.ContentLength; n > 0 && n <= maxPrealloc {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(r)
	if err == nil && len(b) > maxAnswer {
		return nil, ErrAnswerTooLong
	}
	return b, err
}

func decodeError(method, path string, err error) error {
	return fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
}
