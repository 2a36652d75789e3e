package edge

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// The unfiltered lists (GET /v1/providers without city, GET
// /v1/clients/{id}/bookings) gather from every jurisdiction of
// Router.Jurisdictions(): this node's store directly, every other through a
// relayed GET (ForwardedByHeader) to one of its nodes, which answers from its own
// store only. Each source is asked for `limit` items after the cursor; the merge
// keeps the first `limit`. Since every source is asked from the same position,
// the page is exact, and its cursor (the position of its last item) is valid for
// every store. A source that cannot answer fails the whole list with 503
// jurisdiction_unavailable: never a silently partial list.

// fanItem is one item of a gathered list: its sort key and its JSON answer.
type fanItem struct {
	createdMs int64 // client bookings only
	id        string
	raw       json.RawMessage
}

// fanPage is one source's page; more is true when the source has items past it.
type fanPage struct {
	items []fanItem
	more  bool
}

// jurisdictions lists the jurisdictions to gather from: the Router's and this
// node's, sorted, without repeats.
func (s *Server) jurisdictions() []string {
	js := append(slices.Clone(s.cfg.Router.Jurisdictions()), s.jurisdiction)
	slices.Sort(js)
	return slices.Compact(js)
}

// gather asks every jurisdiction for a page at once: local for this node's,
// remote for the others. The first failure cancels the rest and is returned.
func (s *Server) gather(ctx context.Context, local func(context.Context) (fanPage, error),
	remote func(ctx context.Context, j string) (fanPage, error)) ([]fanPage, error) {
	js := s.jurisdictions()
	pages := make([]fanPage, len(js))
	errs := make([]error, len(js))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, j := range js {
		wg.Go(func() {
			if j == s.jurisdiction {
				pages[i], errs[i] = local(ctx)
			} else {
				pages[i], errs[i] = remote(ctx, j)
			}
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	// Prefer the error that made gather cancel the others.
	for _, cause := range []bool{true, false} {
		for _, err := range errs {
			if err != nil && (!cause || !errors.Is(err, context.Canceled)) {
				return nil, err
			}
		}
	}
	return pages, nil
}

// merge sorts the items of every page with less, keeps the first limit and tells
// whether there is more past them.
func merge(pages []fanPage, limit int, cmpItems func(a, b fanItem) int) ([]fanItem, bool) {
	var all []fanItem
	more := false
	for _, p := range pages {
		all = append(all, p.items...)
		more = more || p.more
	}
	slices.SortStableFunc(all, cmpItems)
	all = slices.CompactFunc(all, func(a, b fanItem) bool { return a.id == b.id })
	if len(all) > limit {
		all, more = all[:limit], true
	}
	return all, more
}

// writeMerged answers items as a list page with next as its cursor.
func writeMerged(w http.ResponseWriter, items []fanItem, next string) {
	out := listOut[json.RawMessage]{Items: make([]json.RawMessage, 0, len(items)), NextCursor: next}
	for _, it := range items {
		out.Items = append(out.Items, it.raw)
	}
	writeJSON(w, http.StatusOK, out)
}

// peerList is the shape of a list answered by a peer.
type peerList struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

// listProvidersEverywhere answers GET /v1/providers without city, by id across
// every jurisdiction; the cursor is the last id.
func (s *Server) listProvidersEverywhere(w http.ResponseWriter, r *http.Request, f storage.ProviderFilter) error {
	const label = "GET /v1/providers"
	local := func(ctx context.Context) (fanPage, error) {
		items, next, err := s.cfg.Store.ListProviders(ctx, f)
		if err != nil {
			return fanPage{}, err
		}
		page := fanPage{more: next != ""}
		for _, p := range items {
			raw, err := json.Marshal(formatProvider(p, s.zone(p.GetTimezone())))
			if err != nil {
				return fanPage{}, err
			}
			page.items = append(page.items, fanItem{id: p.GetId(), raw: raw})
		}
		return page, nil
	}
	remote := func(ctx context.Context, j string) (fanPage, error) {
		q := url.Values{"limit": {strconv.Itoa(f.Limit)}}
		if f.Vertical != "" {
			q.Set("vertical", f.Vertical)
		}
		if f.After != "" {
			q.Set("cursor", f.After)
		}
		b, _, err := s.peerGet(ctx, label, j, "/v1/providers", q)
		if err != nil {
			return fanPage{}, err
		}
		var pl peerList
		if err := json.Unmarshal(b, &pl); err != nil {
			return fanPage{}, errJurisdiction(j, "undecodable answer")
		}
		page := fanPage{more: pl.NextCursor != ""}
		for _, raw := range pl.Items {
			var id struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(raw, &id) != nil || id.ID == "" {
				return fanPage{}, errJurisdiction(j, "undecodable answer")
			}
			page.items = append(page.items, fanItem{id: id.ID, raw: raw})
		}
		return page, nil
	}
	pages, err := s.gather(r.Context(), local, remote)
	if err != nil {
		return err
	}
	items, more := merge(pages, f.Limit, func(a, b fanItem) int { return strings.Compare(a.id, b.id) })
	next := ""
	if more && len(items) > 0 {
		next = items[len(items)-1].id
	}
	s.cacheFor(w, listVerticals(f.Vertical, s.cfg.Topology.VerticalNames(), nil)...)
	writeMerged(w, items, next)
	return nil
}

// Client bookings are ordered newest created first, ties by id descending — the
// order of storage's client index (client 0x00 be64(created_at_ms) id, scanned
// backwards) — and the cursor is storage's: base64url(be64(created_ms) ‖ id),
// meaning "strictly older than this position". A position is the same in every
// store, so one cursor pages all of them at once.

// clientCursor encodes a position of the client bookings order as storage does
// (storage/store.go clientCursor; negative instants count as 0).
func clientCursor(createdMs int64, id string) string {
	raw := binary.BigEndian.AppendUint64(nil, uint64(max(createdMs, 0)))
	return base64.RawURLEncoding.EncodeToString(append(raw, id...))
}

// checkClientCursor rejects what storage would reject as a cursor.
func checkClientCursor(c string) error {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(raw) < 8 {
		return invalid("cursor %q is not a cursor of this list", c)
	}
	return nil
}

// newerFirst orders client bookings as storage does.
func newerFirst(a, b fanItem) int {
	if c := cmp.Compare(max(b.createdMs, 0), max(a.createdMs, 0)); c != 0 {
		return c
	}
	return strings.Compare(b.id, a.id)
}

// localClientBookings reads a page of the client's bookings from this node's
// store (after a linearizable read) and formats them in their providers' zones.
func (s *Server) localClientBookings(ctx context.Context, clientID string, p storage.Page) ([]*bookingv1.Booking, []bookingOut, string, error) {
	if err := s.cfg.Store.LinearizableRead(ctx); err != nil {
		return nil, nil, "", err
	}
	items, next, err := s.cfg.Store.ClientBookings(ctx, clientID, p)
	if err != nil {
		return nil, nil, "", err
	}
	// Reading a client's bookings of an audited vertical is recorded here, in
	// the store that holds them (nothing is recorded where the client has none).
	var vs []topology.Vertical
	for _, b := range items {
		vs = append(vs, s.vertical(b.GetVertical()))
	}
	if err := s.appendAudit(ctx, strictest(vs...), auditRead, "booking.read", clientObject(clientID), ""); err != nil {
		return nil, nil, "", err
	}
	out := make([]bookingOut, 0, len(items))
	zones := map[string]*time.Location{}
	for _, b := range items {
		loc, ok := zones[b.GetProviderId()]
		if !ok {
			loc = s.providerZone(ctx, b.GetProviderId())
			zones[b.GetProviderId()] = loc
		}
		out = append(out, formatBooking(b, loc))
	}
	return items, out, next, nil
}

// clientBookingsEverywhere answers GET /v1/clients/{id}/bookings across every
// jurisdiction.
func (s *Server) clientBookingsEverywhere(w http.ResponseWriter, r *http.Request, clientID string, p storage.Page) error {
	const label = "GET /v1/clients/{client_id}/bookings"
	if p.After != "" {
		if err := checkClientCursor(p.After); err != nil {
			return err
		}
	}
	local := func(ctx context.Context) (fanPage, error) {
		items, out, next, err := s.localClientBookings(ctx, clientID, p)
		if err != nil {
			return fanPage{}, err
		}
		page := fanPage{more: next != ""}
		for i, b := range items {
			raw, err := json.Marshal(out[i])
			if err != nil {
				return fanPage{}, err
			}
			page.items = append(page.items, fanItem{createdMs: b.GetCreatedAtMs(), id: b.GetId(), raw: raw})
		}
		return page, nil
	}
	remote := func(ctx context.Context, j string) (fanPage, error) {
		q := url.Values{"limit": {strconv.Itoa(p.Limit)}}
		if p.After != "" {
			q.Set("cursor", p.After)
		}
		b, hdr, err := s.peerGet(ctx, label, j, "/v1/clients/"+url.PathEscape(clientID)+"/bookings", q)
		if err != nil {
			return fanPage{}, err
		}
		var pl peerList
		if err := json.Unmarshal(b, &pl); err != nil {
			return fanPage{}, errJurisdiction(j, "undecodable answer")
		}
		created, err := parseCreatedMs(hdr.Get(CreatedMsHeader), len(pl.Items))
		if err != nil {
			return fanPage{}, errJurisdiction(j, err.Error())
		}
		page := fanPage{more: pl.NextCursor != ""}
		for i, raw := range pl.Items {
			var id struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(raw, &id) != nil || id.ID == "" {
				return fanPage{}, errJurisdiction(j, "undecodable answer")
			}
			page.items = append(page.items, fanItem{createdMs: created[i], id: id.ID, raw: raw})
		}
		return page, nil
	}
	pages, err := s.gather(r.Context(), local, remote)
	if err != nil {
		return err
	}
	items, more := merge(pages, p.Limit, newerFirst)
	next := ""
	if more && len(items) > 0 {
		last := items[len(items)-1]
		next = clientCursor(last.createdMs, last.id)
	}
	writeMerged(w, items, next)
	return nil
}

// formatCreatedMs is the CreatedMsHeader value of a page of bookings.
func formatCreatedMs(items []*bookingv1.Booking) string {
	parts := make([]string, len(items))
	for i, b := range items {
		parts[i] = strconv.FormatInt(b.GetCreatedAtMs(), 10)
	}
	return strings.Join(parts, ",")
}

// parseCreatedMs reads a CreatedMsHeader value that must hold n instants.
func parseCreatedMs(v string, n int) ([]int64, error) {
	if n == 0 {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("answer without %s for its %d items", CreatedMsHeader, n)
	}
	out := make([]int64, n)
	for i, p := range parts {
		ms, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad %s", CreatedMsHeader)
		}
		out[i] = ms
	}
	return out, nil
}
