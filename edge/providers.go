package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// createProviderIn is the body of POST /v1/providers.
type createProviderIn struct {
	Name             string         `json:"name"`
	Vertical         string         `json:"vertical"`
	City             string         `json:"city"`
	Timezone         string         `json:"timezone,omitempty"`
	Services         []serviceIn    `json:"services"`
	WeeklyHours      *weekIn        `json:"weekly_hours"`
	DateOverrides    []overrideJSON `json:"date_overrides,omitempty"`
	MinNoticeMinutes *int64         `json:"min_notice_minutes,omitempty"`
	HorizonDays      *int64         `json:"horizon_days,omitempty"`
	// License is required for verticals with license_required, refused for
	// the others.
	License *licenseJSON `json:"license,omitempty"`
}

// patchProviderIn is the body of PATCH /v1/providers/{id}. Every field is
// optional; at least one must be given.
type patchProviderIn struct {
	// WeeklyHours replaces the hours of the days it names; other days keep theirs.
	WeeklyHours *weekIn `json:"weekly_hours,omitempty"`
	// DateOverrides replaces the whole list of overrides ([] clears it).
	DateOverrides *[]overrideJSON `json:"date_overrides,omitempty"`
	// MinNoticeMinutes and HorizonDays replace the booking rules.
	MinNoticeMinutes *int64 `json:"min_notice_minutes,omitempty"`
	HorizonDays      *int64 `json:"horizon_days,omitempty"`
	// AddServices are appended to the provider's services with new ids.
	AddServices []serviceIn `json:"add_services,omitempty"`
}

// createProvider handles POST /v1/providers.
func (s *Server) createProvider(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in createProviderIn
	if _, err := s.decodeBody(w, r, &in, false); err != nil {
		return err
	}
	p, err := s.newProvider(&in)
	if err != nil {
		return err
	}
	if p.Id, err = s.newRoutedID(ids.Provider, p.GetCity()); err != nil {
		return err
	}
	idem, err := idempotencyOf(r, &in, p.Id)
	if err != nil {
		return err
	}
	if id, err := s.replayed(ctx, idem); err != nil {
		return err
	} else if id != "" {
		prev, err := s.readProvider(ctx, id)
		if err != nil {
			return err
		}
		if first := s.firstProvider(ctx, idem, id); first != nil {
			prev = first
		}
		markReplayed(w)
		w.Header().Set("Location", "/v1/providers/"+prev.GetId())
		return s.writeProvider(w, http.StatusCreated, prev)
	}
	for _, svc := range p.Services {
		svc.Id = s.cfg.NewID("svc")
	}
	now := s.cfg.Clock().UnixMilli()
	p.CreatedAtMs, p.UpdatedAtMs = now, now
	res, err := s.cfg.Store.Propose(ctx, &bookingv1.Command{
		IdempotencyKey: idem.key,
		RequestHash:    idem.hash,
		ProposedAtMs:   now,
		Op:             &bookingv1.Command_CreateProvider{CreateProvider: &bookingv1.CreateProvider{Provider: p}},
	})
	if err != nil {
		return err
	}
	if res.GetProvider() != nil {
		p = res.GetProvider() // the FSM's copy: a replayed command answers the first provider
	}
	w.Header().Set("Location", "/v1/providers/"+p.GetId())
	return s.writeProvider(w, http.StatusCreated, p)
}

// newRoutedID returns a new id of kind (ids.Provider, ids.Booking) that carries
// city, so that any node can route requests about it; see package edge/ids.
func (s *Server) newRoutedID(kind, city string) (string, error) {
	id := s.cfg.NewID(ids.Prefix(kind, city))
	if got, ok := ids.CityOf(id); !ok || got != city {
		return "", fmt.Errorf("edge: Config.NewID(%q) = %q, which does not carry city %q", ids.Prefix(kind, city), id, city)
	}
	return id, nil
}

// newProvider validates a creation request and builds the provider without ids.
func (s *Server) newProvider(in *createProviderIn) (*bookingv1.Provider, error) {
	// Every missing or invalid field is reported at once (fieldErrors); the
	// checks that need a valid vertical or city run only when it is.
	var fe fieldErrors
	fe.add(checkName("name", in.Name))
	v, verr := s.cfg.Topology.Vertical(in.Vertical)
	if verr != nil {
		fe.add(invalid("vertical %q is not one of %v", in.Vertical, s.cfg.Topology.VerticalNames()))
	}
	city, cerr := s.cfg.Topology.City(in.City)
	if cerr != nil {
		fe.add(invalid("city %q is not one of %v", in.City, s.cfg.Topology.CityNames()))
	}
	if verr == nil && cerr == nil {
		if err := s.checkResidency("a "+v.Name+" provider of "+in.City, v, city.Jurisdiction); err != nil {
			return nil, err
		}
	}
	var license *bookingv1.License
	if verr == nil {
		var err error
		license, err = parseLicense(v, in.License)
		if !fe.add(err) {
			return nil, err
		}
	}
	tz := city.Timezone
	if in.Timezone != "" {
		if _, err := loadZone(in.Timezone); err != nil {
			fe.add(invalid("timezone %q is not an IANA time zone", in.Timezone))
		}
		tz = in.Timezone
	}
	p := &bookingv1.Provider{
		Name:             in.Name,
		Vertical:         in.Vertical,
		City:             in.City,
		Jurisdiction:     city.Jurisdiction,
		Timezone:         tz,
		WeeklyHours:      make([]*bookingv1.DayHours, 7),
		MinNoticeMinutes: defaultNotice,
		HorizonDays:      defaultHorizonDays,
		SlotStepMinutes:  slotStepMinutes,
		License:          license, // unverified until an operator verifies it
	}
	var err error
	switch {
	case len(in.Services) == 0:
		fe.add(invalid("services must list at least one service"))
	case cerr == nil:
		p.Services, err = parseServices("services", in.Services, 0, city)
		if !fe.add(err) {
			return nil, err
		}
	}
	for d := range p.WeeklyHours {
		p.WeeklyHours[d] = &bookingv1.DayHours{}
	}
	if in.WeeklyHours != nil {
		if err := applyWeek(p, in.WeeklyHours); !fe.add(err) {
			return nil, err
		}
	}
	p.DateOverrides, err = parseOverrides(in.DateOverrides)
	if !fe.add(err) {
		return nil, err
	}
	if err := applyRules(p, in.MinNoticeMinutes, in.HorizonDays); !fe.add(err) {
		return nil, err
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// maxLicenseRunes bounds a licence's number and issuer.
const maxLicenseRunes = 100

// parseLicense validates the licence of a new provider of vertical v: required
// when v has license_required (422 without), refused otherwise (nothing would
// read it).
func parseLicense(v topology.Vertical, in *licenseJSON) (*bookingv1.License, error) {
	switch {
	case in == nil && v.LicenseRequired:
		return nil, invalid("license {number, issuer} is required for a %s provider", v.Name)
	case in == nil:
		return nil, nil
	case !v.LicenseRequired:
		return nil, invalid("license is taken only for verticals that require one; %s does not", v.Name)
	}
	for _, f := range []struct{ name, v string }{{"license.number", in.Number}, {"license.issuer", in.Issuer}} {
		if err := checkName(f.name, f.v); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(f.v) > maxLicenseRunes {
			return nil, invalid("%s must have at most %d characters", f.name, maxLicenseRunes)
		}
	}
	return &bookingv1.License{Number: in.Number, Issuer: in.Issuer}, nil
}

// parseServices validates services; have is how many the provider already has.
func parseServices(field string, in []serviceIn, have int, city topology.City) ([]*bookingv1.Service, error) {
	if have+len(in) > maxServices {
		return nil, invalid("a provider has at most %d services", maxServices)
	}
	var fe fieldErrors
	out := make([]*bookingv1.Service, 0, len(in))
	for i, sv := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		fe.add(checkName(f+".name", sv.Name))
		if sv.DurationMinutes < minDurationMinutes || sv.DurationMinutes > maxDurationMinutes {
			fe.add(invalid("%s.duration_minutes %d must be between %d and %d", f, sv.DurationMinutes, minDurationMinutes, maxDurationMinutes))
		}
		if sv.BufferMinutes < 0 || sv.BufferMinutes > maxBufferMinutes {
			fe.add(invalid("%s.buffer_minutes %d must be between 0 and %d", f, sv.BufferMinutes, maxBufferMinutes))
		}
		price, err := parseMoney(f+".price", sv.Price, city.Currency)
		fe.add(err)
		out = append(out, &bookingv1.Service{
			Name:            sv.Name,
			DurationMinutes: int32(sv.DurationMinutes),
			BufferMinutes:   int32(sv.BufferMinutes),
			Price:           price,
		})
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// applyWeek replaces the hours of the days week names.
func applyWeek(p *bookingv1.Provider, week *weekIn) error {
	for d, day := range week.days() {
		if day == nil {
			continue
		}
		ranges, err := parseRanges("weekly_hours."+dayNames[d], *day)
		if err != nil {
			return err
		}
		p.WeeklyHours[d] = &bookingv1.DayHours{Ranges: ranges}
	}
	return nil
}

// applyRules sets the notice and horizon that are given.
func applyRules(p *bookingv1.Provider, notice, horizon *int64) error {
	if notice != nil {
		if *notice < 0 || *notice > maxNoticeMinutes {
			return invalid("min_notice_minutes %d must be between 0 and %d", *notice, maxNoticeMinutes)
		}
		p.MinNoticeMinutes = int32(*notice)
	}
	if horizon != nil {
		if *horizon < 1 || *horizon > maxHorizonDays {
			return invalid("horizon_days %d must be between 1 and %d", *horizon, maxHorizonDays)
		}
		p.HorizonDays = int32(*horizon)
	}
	return nil
}

// patchProvider handles PATCH /v1/providers/{id}.
func (s *Server) patchProvider(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("id")
	var in patchProviderIn
	if _, err := s.decodeBody(w, r, &in, false); err != nil {
		return err
	}
	if in.WeeklyHours == nil && in.DateOverrides == nil && in.MinNoticeMinutes == nil &&
		in.HorizonDays == nil && len(in.AddServices) == 0 {
		return invalid("nothing to change: give weekly_hours, date_overrides, min_notice_minutes, horizon_days or add_services")
	}
	cur, err := s.readProvider(ctx, id)
	if err != nil {
		return err
	}
	idem, err := idempotencyOf(r, &in, s.cfg.NewID("upd"))
	if err != nil {
		return err
	}
	if rid, err := s.replayed(ctx, idem); err != nil {
		return err
	} else if rid != "" {
		prev, err := s.readProvider(ctx, rid)
		if err != nil {
			return err
		}
		if first := s.firstProvider(ctx, idem, rid); first != nil {
			prev = first
		}
		markReplayed(w)
		return s.writeProvider(w, http.StatusOK, prev)
	}
	// The store applies an update only to the version it was computed from; if
	// another change landed in between, read the provider again and re-apply.
	var updated *bookingv1.Provider
	for attempt := 0; ; attempt++ {
		updated, err = s.applyPatch(ctx, cur, &in, idem)
		if err == nil || attempt == maxPatchAttempts-1 ||
			!(errors.Is(err, actors.ErrInvalidTransition) || errors.Is(err, storage.ErrInvalidTransition)) {
			break
		}
		if err = s.cfg.Store.LinearizableRead(ctx); err != nil {
			return err
		}
		if cur, err = s.cfg.Store.Provider(ctx, id); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	return s.writeProvider(w, http.StatusOK, updated)
}

// getProvider handles GET /v1/providers/{id}.
func (s *Server) getProvider(w http.ResponseWriter, r *http.Request) error {
	p, err := s.readProvider(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.checkResidency("provider "+p.GetId(), s.vertical(p.GetVertical()), p.GetJurisdiction()); err != nil {
		return err
	}
	s.cacheFor(w, p.GetVertical())
	return s.writeProvider(w, http.StatusOK, p)
}

// listProviders handles GET /v1/providers?city=&vertical=&limit=&cursor=.
func (s *Server) listProviders(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := storage.ProviderFilter{City: q.Get("city"), Vertical: q.Get("vertical"), After: q.Get("cursor")}
	if f.City != "" {
		if _, err := s.cfg.Topology.City(f.City); err != nil {
			return invalid("city %q is not one of %v", f.City, s.cfg.Topology.CityNames())
		}
	}
	if f.Vertical != "" {
		if _, err := s.cfg.Topology.Vertical(f.Vertical); err != nil {
			return invalid("vertical %q is not one of %v", f.Vertical, s.cfg.Topology.VerticalNames())
		}
	}
	var err error
	if f.Limit, err = queryLimit(q); err != nil {
		return err
	}
	if f.City == "" && s.fansOut(r) {
		return s.listProvidersEverywhere(w, r, f)
	}
	// A page read at the store's current provider version is kept (listmemo.go).
	key := listKey{city: f.City, vertical: f.Vertical, after: f.After, limit: f.Limit}
	version, err := s.cfg.Store.ProvidersVersion()
	if err != nil {
		return err
	}
	if page, ok := s.listMemo.get(key, version); ok {
		writeListPage(w, page)
		return nil
	}
	items, next, err := s.cfg.Store.ListProviders(r.Context(), f)
	if err != nil {
		return err
	}
	out := listOut[providerOut]{Items: make([]providerOut, 0, len(items)), NextCursor: next}
	for _, p := range items {
		out.Items = append(out.Items, formatProvider(p, s.zone(p.GetTimezone())))
	}
	s.cacheFor(w, listVerticals(f.Vertical, s.cfg.Topology.VerticalNames(), items)...)
	status, contentType, body := jsonAnswer(http.StatusOK, "application/json", out)
	if now, err := s.cfg.Store.ProvidersVersion(); err == nil && now == version && status == http.StatusOK { // no provider write while it was read
		s.listMemo.put(key, listPage{version: version, body: body, cacheControl: w.Header().Get("Cache-Control")})
	}
	writeBody(w, status, contentType, body)
	return nil
}

// listVerticals are the verticals whose cache_ttl bounds a provider list's:
// the filter's, else those of its items, else (an empty list) every vertical.
func listVerticals(filter string, all []string, items []*bookingv1.Provider) []string {
	if filter != "" {
		return []string{filter}
	}
	if len(items) == 0 {
		return all
	}
	vs := make([]string, 0, len(items))
	for _, p := range items {
		vs = append(vs, p.GetVertical())
	}
	return vs
}

// availabilityOut is the answer of GET /v1/providers/{id}/availability, as
// appendAvailability writes it (encode.go).
type availabilityOut struct {
	ProviderID string     `json:"provider_id"`
	ServiceID  string     `json:"service_id"`
	Timezone   string     `json:"timezone"`
	Slots      []slotJSON `json:"slots"`
}

// Bounds of ?days= of the availability route.
const (
	defaultAvailabilityDays = 7
	maxAvailabilityDays     = 31
)

// availability handles GET /v1/providers/{id}/availability.
func (s *Server) availability(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	id := r.PathValue("id")
	serviceID := q.Get("service_id")
	if err := checkID("query parameter service_id", serviceID); err != nil {
		return err
	}
	from := q.Get("from")
	if from == "" {
		return invalid("query parameter from (YYYY-MM-DD) is required")
	}
	if _, err := parseDate("query parameter from", from); err != nil {
		return err
	}
	days, err := queryInt(q, "days", defaultAvailabilityDays, 1, maxAvailabilityDays)
	if err != nil {
		return err
	}
	reply, err := s.cfg.Calendars.Availability(r.Context(), &calendarv1.AvailabilityRequest{
		ProviderId: id, ServiceId: serviceID, FromDate: from, Days: int32(days),
	})
	if err != nil {
		return err
	}
	p, err := s.providerFacts(r.Context(), id, "") // its zone and vertical
	if err != nil {
		return err
	}
	tz := reply.GetTimezone()
	if tz == "" {
		tz = p.GetTimezone()
	}
	s.cacheFor(w, p.GetVertical())
	s.writeAvailability(w, id, serviceID, tz, p.GetVertical(), reply)
	return nil
}

// placementOut is the answer of GET /v1/providers/{id}/placement.
type placementOut struct {
	Node         string `json:"node"`
	City         string `json:"city"`
	Jurisdiction string `json:"jurisdiction"`
}

// placement handles GET /v1/providers/{id}/placement.
func (s *Server) placement(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := s.readProvider(r.Context(), id); err != nil {
		return err
	}
	pl, err := s.cfg.Placement(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, placementOut{Node: pl.Node, City: pl.City, Jurisdiction: pl.Jurisdiction})
	return nil
}

// readProvider reads a provider from the local replica; when it is not there, it
// waits for the replica to catch up (LinearizableRead) and reads again, so a
// provider created through another node is found.
func (s *Server) readProvider(ctx context.Context, id string) (*bookingv1.Provider, error) {
	if checkID("id", id) != nil {
		return nil, notFound("provider %q does not exist", id)
	}
	p, err := s.cfg.Store.Provider(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		// As readBooking: a replica cut off from its leader must not answer
		// 404 for a provider it has not received.
		if lerr := s.cfg.Store.LinearizableRead(ctx); lerr != nil {
			return nil, lerr
		}
		p, err = s.cfg.Store.Provider(ctx, id)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("provider %q does not exist", id)
	}
	return p, err
}

// writeProvider answers p in its own time zone.
func (s *Server) writeProvider(w http.ResponseWriter, status int, p *bookingv1.Provider) error {
	writeJSON(w, status, formatProvider(p, s.zone(p.GetTimezone())))
	return nil
}

// zone returns the named time zone (cached), or UTC if it cannot be loaded.
func (s *Server) zone(name string) *time.Location {
	if loc, ok := s.zones.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := loadZone(name)
	if err != nil {
		s.log.Warn("edge: unknown time zone, using UTC", "timezone", name, "err", err)
		return time.UTC
	}
	s.zones.Store(name, loc)
	return loc
}

// loadZone loads an IANA zone; "" and "Local" are not zones.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("edge: %q is not an IANA time zone", name)
	}
	return time.LoadLocation(name)
}

// maxPatchAttempts bounds how often a PATCH is re-applied to a provider that
// changed under it.
const maxPatchAttempts = 16

// applyPatch applies in to cur and proposes the result, expecting cur's version.
func (s *Server) applyPatch(ctx context.Context, cur *bookingv1.Provider, in *patchProviderIn, idem idempotency) (*bookingv1.Provider, error) {
	id := cur.GetId()
	city, err := s.cfg.Topology.City(cur.GetCity())
	if err != nil {
		return nil, fmt.Errorf("edge: provider %s: %w", id, err) // the topology lost a city: 500
	}
	p := proto.CloneOf(cur)
	for len(p.WeeklyHours) < 7 {
		p.WeeklyHours = append(p.WeeklyHours, &bookingv1.DayHours{})
	}
	if in.WeeklyHours != nil {
		if err := applyWeek(p, in.WeeklyHours); err != nil {
			return nil, err
		}
	}
	if in.DateOverrides != nil {
		if p.DateOverrides, err = parseOverrides(*in.DateOverrides); err != nil {
			return nil, err
		}
	}
	if err := applyRules(p, in.MinNoticeMinutes, in.HorizonDays); err != nil {
		return nil, err
	}
	if len(in.AddServices) > 0 {
		added, err := parseServices("add_services", in.AddServices, len(p.Services), city)
		if err != nil {
			return nil, err
		}
		for _, svc := range added {
			svc.Id = s.cfg.NewID("svc")
		}
		p.Services = append(p.Services, added...)
	}
	p.UpdatedAtMs = s.cfg.Clock().UnixMilli()
	updated, err := s.cfg.Calendars.UpdateProvider(ctx, &calendarv1.UpdateProviderRequest{
		Provider:       p,
		IdempotencyKey: idem.key,
		RequestHash:    idem.hash,
	})
	if err != nil {
		return nil, err
	}
	if updated == nil {
		updated = p
	}
	return updated, nil
}

// verifyProvider handles POST /v1/providers/{id}/verify (operators): the
// provider's licence is verified, and from then on it takes bookings. Verifying
// a verified provider answers it as it is. Its body is optional and, when
// present, must be {}.
func (s *Server) verifyProvider(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in struct{}
	if _, err := s.decodeBody(w, r, &in, true); err != nil {
		return err
	}
	p, err := s.readProvider(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := s.vertical(p.GetVertical())
	if !v.LicenseRequired {
		return invalid("%s providers have no licence to verify", v.Name)
	}
	if err := s.checkResidency("provider "+p.GetId(), v, p.GetJurisdiction()); err != nil {
		return err
	}
	if p.GetVerifiedAtMs() != 0 {
		return s.writeProvider(w, http.StatusOK, p)
	}
	c, _ := callerOf(ctx)
	res, err := s.cfg.Store.Propose(ctx, &bookingv1.Command{
		ProposedAtMs: s.cfg.Clock().UnixMilli(),
		Audit:        auditRecords(ctx, v.Audit, "provider.verify", p.GetId()),
		Op: &bookingv1.Command_VerifyProvider{VerifyProvider: &bookingv1.VerifyProvider{
			ProviderId: p.GetId(), VerifiedBy: c.p.Subject,
		}},
	})
	if err := resultError(res, err); err != nil {
		return err
	}
	if res.GetProvider() != nil {
		p = res.GetProvider()
	} else if p, err = s.readProvider(ctx, p.GetId()); err != nil {
		return err
	}
	// The calendar actor keeps a copy of the provider: let it read the new one.
	if err := s.cfg.Calendars.Refresh(ctx, p.GetId()); err != nil {
		s.log.WarnContext(ctx, "edge: calendar refresh after a verification failed", "reason", errorKind(err))
	}
	return s.writeProvider(w, http.StatusOK, p)
}
