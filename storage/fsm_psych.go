package storage

import (
	"bytes"
	"fmt"
	"slices"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Buckets of the psychology vertical's records (and the audit chain) in
// fsm.db. See DESIGN.md for the key layouts.
var (
	bucketConsents       = []byte("consents")        // consent id → Consent
	bucketClientConsents = []byte("client_consents") // clientID 0x00 consentID → empty
	bucketSeries         = []byte("series")          // series id → Series
	bucketClientKeys     = []byte("client_keys")     // clientID → ClientKey
	bucketNotes          = []byte("notes")           // bookingID → SealedNote
	bucketClientNotes    = []byte("client_notes")    // clientID 0x00 bookingID → empty
	bucketErasures       = []byte("erasures")        // clientID → Erasure (kept for good)
	bucketAudit          = []byte("audit")           // be64(seq) → AuditEntry
	bucketAuditObject    = []byte("audit_object")    // object 0x00 be64(seq) → empty
	bucketAuditSubject   = []byte("audit_subject")   // subject 0x00 be64(seq) → empty

	// psychBuckets are created (empty) by openDB when missing: files and
	// snapshots written before them hold none of their records.
	psychBuckets = [][]byte{bucketConsents, bucketClientConsents, bucketSeries, bucketClientKeys, bucketNotes,
		bucketClientNotes, bucketErasures, bucketAudit, bucketAuditObject, bucketAuditSubject}
)

// Limits of the psychology commands, checked by the FSM (RESULT_CODE_INVALID
// beyond them).
const (
	// MinSeriesOccurrences and MaxSeriesOccurrences bound a series' bookings.
	MinSeriesOccurrences = 2
	MaxSeriesOccurrences = 52
	// MaxSeriesEveryDays is the longest interval of a series.
	MaxSeriesEveryDays = 366
	// MaxNoteBytes is the largest sealed note (ciphertext) a PutNote carries.
	// It is the largest note text the API takes (64 KiB) plus the AES-GCM tag
	// sealing adds (16 bytes): a note the edge accepts is never refused here.
	MaxNoteBytes = 64<<10 + 16
	// MaxWrappedKeyBytes is the largest wrapped data key a PutClientKey carries.
	MaxWrappedKeyBytes = 1024
	maxNonceBytes      = 64
	// MaxWithdrawVerticals bounds WithdrawConsent.verticals.
	MaxWithdrawVerticals = 32
	// MaxTextField is the longest free text field (purpose, text_version,
	// jurisdiction, verified_by...) the FSM accepts, in bytes.
	MaxTextField = 256
)

// Cancel reasons the FSM writes on bookings it cancels by itself.
const (
	CancelReasonConsentWithdrawn = "consent_withdrawn"
	CancelReasonSeriesCancelled  = "series_cancelled"
)

// Consent statuses, as ConsentStatus computes them.
const (
	ConsentActive    = "active"
	ConsentExpired   = "expired"
	ConsentWithdrawn = "withdrawn"
)

// ConsentStatus is c's status at nowMs (Unix ms): withdrawn if it was
// withdrawn, expired from expires_at_ms on, active before. The FSM judges
// CreateBooking/CreateSeries with it at the command's entry time.
func ConsentStatus(c *bookingv1.Consent, nowMs int64) string {
	switch {
	case c.GetWithdrawnAtMs() > 0:
		return ConsentWithdrawn
	case nowMs >= c.GetExpiresAtMs():
		return ConsentExpired
	}
	return ConsentActive
}

// erasedAt is a client erased by the log at index (ApplyBatch notifies it
// once the transaction committed).
type erasedAt struct {
	index  uint64
	client string
	// keyIDs are every data key id the client's Erasure names (all its
	// erasures so far): what the KEK's ledger must refuse.
	keyIDs []string
}

// applyPsych applies the psychology vertical's commands (and CreateSeries,
// CancelSeries, which serve every vertical). resourceID is what an
// idempotency record of the command refers to; ok is false for an operation
// it does not know.
func (a *applier) applyPsych(cmd *bookingv1.Command, now int64) (r *bookingv1.CommandResult, resourceID string, ok bool) {
	switch op := cmd.Op.(type) {
	case *bookingv1.Command_GrantConsent:
		r = a.grantConsent(op.GrantConsent, now)
	case *bookingv1.Command_WithdrawConsent:
		r = a.withdrawConsent(op.WithdrawConsent, now)
	case *bookingv1.Command_VerifyProvider:
		r = a.verifyProvider(op.VerifyProvider, now)
	case *bookingv1.Command_CreateSeries:
		r = a.createSeries(op.CreateSeries, now)
	case *bookingv1.Command_CancelSeries:
		r = a.cancelSeries(op.CancelSeries, now)
	case *bookingv1.Command_SetSessionStatus:
		r = a.setSessionStatus(op.SetSessionStatus, now)
	case *bookingv1.Command_PutClientKey:
		r = a.putClientKey(op.PutClientKey, now)
	case *bookingv1.Command_PutNote:
		r = a.putNote(op.PutNote, now)
	case *bookingv1.Command_EraseHealthData:
		r = a.eraseHealthData(op.EraseHealthData, now)
		resourceID = op.EraseHealthData.GetClientId()
	case *bookingv1.Command_AppendAudit:
		if len(cmd.Audit) == 0 {
			r = invalid("append_audit without audit records")
		} else {
			r = &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK}
		}
	default:
		return nil, "", false
	}
	switch {
	case r.Series != nil:
		resourceID = r.Series.Id
	case r.Consent != nil:
		resourceID = r.Consent.Id
	case r.Note != nil:
		resourceID = r.Note.BookingId
	case r.Key != nil:
		resourceID = r.Key.ClientId
	}
	return r, resourceID, true
}

// replayPsych answers a repeated keyed psychology command with the current
// state of what it created or changed; ok is false for other commands.
func (a *applier) replayPsych(cmd *bookingv1.Command, rec *bookingv1.IdempotencyRecord) (*bookingv1.CommandResult, bool) {
	gone := func() *bookingv1.CommandResult {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND,
			"idempotency key %q refers to %q, which no longer exists", rec.Key, rec.ResourceId)
	}
	switch cmd.Op.(type) {
	case *bookingv1.Command_GrantConsent, *bookingv1.Command_WithdrawConsent:
		if c := a.consent(rec.ResourceId); c != nil {
			return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Consent: c}, true
		}
		return gone(), true
	case *bookingv1.Command_CreateSeries, *bookingv1.Command_CancelSeries:
		sr := a.series(rec.ResourceId)
		if sr == nil {
			return gone(), true
		}
		res := &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Series: sr}
		if _, create := cmd.Op.(*bookingv1.Command_CreateSeries); create {
			for _, id := range sr.BookingIds {
				if b := a.booking(id); b != nil {
					res.Bookings = append(res.Bookings, b)
				}
			}
		}
		return res, true
	case *bookingv1.Command_PutClientKey:
		if k := a.clientKey(rec.ResourceId); k != nil {
			return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Key: k}, true
		}
		return gone(), true
	case *bookingv1.Command_PutNote:
		if n := a.note(rec.ResourceId); n != nil {
			return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Note: n}, true
		}
		return gone(), true
	case *bookingv1.Command_EraseHealthData, *bookingv1.Command_AppendAudit:
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK}, true
	}
	return nil, false
}

// validText reports why a free text field is not acceptable, or "".
func validText(what, s string, required bool) string {
	switch {
	case s == "" && required:
		return what + " is empty"
	case len(s) > MaxTextField:
		return fmt.Sprintf("%s is longer than %d bytes", what, MaxTextField)
	case !utf8.ValidString(s):
		return what + " is not valid UTF-8"
	}
	return ""
}

// checkBookable judges a booking of p for clientID before its slot: an
// active consent for purpose (when set) in the store's jurisdiction at now,
// then p's verification (when required). nil when both pass.
func (a *applier) checkBookable(p *bookingv1.Provider, clientID, purpose string, requireVerified bool, now int64) *bookingv1.CommandResult {
	// Verification first: an unverified provider, who may book nothing, must
	// not learn from the answer whether a client holds a consent.
	if requireVerified && p.VerifiedAtMs == 0 {
		return result(bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED, "provider %q is not verified", p.Id)
	}
	if purpose != "" && a.activeConsent(clientID, purpose, now, "") == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED,
			"no active consent of the client for %q", purpose)
	}
	return nil
}

// activeConsent returns an active consent of clientID for purpose at now in
// the store's jurisdiction (any, when unset), other than exclude, or nil.
func (a *applier) activeConsent(clientID, purpose string, now int64, exclude string) *bookingv1.Consent {
	var found *bookingv1.Consent
	scanIndex(a.tx, bucketClientConsents, clientID, func(id string) bool {
		if id == exclude {
			return true
		}
		c := a.consent(id)
		if c != nil && c.ClientId == clientID && c.Purpose == purpose && ConsentStatus(c, now) == ConsentActive &&
			(a.jurisdiction == "" || c.Jurisdiction == a.jurisdiction) {
			found = c
			return false
		}
		return true
	})
	return found
}

// scanIndex calls fn with the suffix of every key of bucket (an index keyed
// owner 0x00 suffix) that belongs to owner, in key order, until fn returns
// false.
func scanIndex(tx *bolt.Tx, bucket []byte, owner string, fn func(suffix string) bool) {
	prefix := append([]byte(owner), 0)
	c := tx.Bucket(bucket).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if !fn(string(k[len(prefix):])) {
			return
		}
	}
}

// indexKey is owner 0x00 suffix: the key layout of client_consents and
// client_notes.
func indexKey(owner, suffix string) []byte {
	k := make([]byte, 0, len(owner)+1+len(suffix))
	k = append(k, owner...)
	k = append(k, 0)
	return append(k, suffix...)
}

func (a *applier) grantConsent(op *bookingv1.GrantConsent, now int64) *bookingv1.CommandResult {
	c := op.GetConsent()
	if c == nil {
		return invalid("grant_consent without consent")
	}
	if why := validIDs("consent id", c.Id, "client_id", c.ClientId); why != "" {
		return invalid("%s", why)
	}
	for _, f := range []struct{ what, s string }{{"purpose", c.Purpose}, {"jurisdiction", c.Jurisdiction}, {"text_version", c.TextVersion}} {
		if why := validText(f.what, f.s, true); why != "" {
			return invalid("%s", why)
		}
	}
	if a.jurisdiction != "" && c.Jurisdiction != a.jurisdiction {
		return invalid("consent names jurisdiction %q, this group holds %q", c.Jurisdiction, a.jurisdiction)
	}
	nc := proto.Clone(c).(*bookingv1.Consent)
	if nc.GrantedAtMs == 0 {
		nc.GrantedAtMs = now
	}
	switch {
	case nc.GrantedAtMs < 0:
		return invalid("granted_at_ms must be positive")
	case nc.ExpiresAtMs <= nc.GrantedAtMs:
		return invalid("expires_at_ms must be after granted_at_ms")
	case nc.WithdrawnAtMs != 0:
		return invalid("a new consent is not withdrawn")
	}
	if a.consent(c.Id) != nil {
		return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "consent %q already exists", c.Id)
	}
	if !a.put(bucketConsents, []byte(nc.Id), nc) {
		return invalid("consent %q cannot be encoded", c.Id)
	}
	a.putKey(bucketClientConsents, indexKey(nc.ClientId, nc.Id))
	return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Consent: nc}
}

// withdrawConsent withdraws the consent at now and cancels the client's
// confirmed bookings of op.verticals that start after now (cancel_reason
// consent_withdrawn) — unless another consent of the client for the same
// purpose is still active in the store's jurisdiction, which keeps them
// consented.
func (a *applier) withdrawConsent(op *bookingv1.WithdrawConsent, now int64) *bookingv1.CommandResult {
	if why := validIDs("consent_id", op.ConsentId, "client_id", op.ClientId); why != "" {
		return invalid("%s", why)
	}
	if len(op.Verticals) > MaxWithdrawVerticals {
		return invalid("more than %d verticals", MaxWithdrawVerticals)
	}
	verticals := map[string]bool{}
	for _, v := range op.Verticals {
		if why := validText("vertical", v, true); why != "" {
			return invalid("%s", why)
		}
		verticals[v] = true
	}
	cur := a.consent(op.ConsentId)
	if cur == nil || cur.ClientId != op.ClientId {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "consent %q of the client not found", op.ConsentId)
	}
	if cur.WithdrawnAtMs > 0 {
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Consent: cur}
	}
	nc := proto.Clone(cur).(*bookingv1.Consent)
	nc.WithdrawnAtMs = max(now, 1)
	a.put(bucketConsents, []byte(nc.Id), nc)
	res := &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Consent: nc}
	if len(verticals) == 0 || a.activeConsent(nc.ClientId, nc.Purpose, now, nc.Id) != nil {
		return res
	}
	var due []*bookingv1.Booking
	a.clientBookings(nc.ClientId, func(b *bookingv1.Booking) {
		if b.Status == bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED && verticals[b.Vertical] &&
			b.StartMs > now && !sessionStarted(b) {
			due = append(due, b)
		}
	})
	for _, b := range due {
		res.Bookings = append(res.Bookings, a.cancel(b, now, CancelReasonConsentWithdrawn))
	}
	return res
}

// clientBookings calls fn with every booking of clientID, oldest created
// first (a copy of the list is taken first, so fn may write).
func (a *applier) clientBookings(clientID string, fn func(b *bookingv1.Booking)) {
	prefix := append([]byte(clientID), 0)
	var ids []string
	c := a.tx.Bucket(bucketClientBookings).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) >= len(prefix)+8 {
			ids = append(ids, string(k[len(prefix)+8:]))
		}
	}
	for _, id := range ids {
		if b := a.booking(id); b != nil && b.ClientId == clientID {
			fn(b)
		}
	}
}

func (a *applier) verifyProvider(op *bookingv1.VerifyProvider, now int64) *bookingv1.CommandResult {
	if why := validID("provider_id", op.ProviderId); why != "" {
		return invalid("%s", why)
	}
	if why := validText("verified_by", op.VerifiedBy, true); why != "" {
		return invalid("%s", why)
	}
	cur := a.provider(op.ProviderId)
	if cur == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "provider %q not found", op.ProviderId)
	}
	if cur.License.GetNumber() == "" {
		return invalid("provider %q has no licence to verify", op.ProviderId)
	}
	if cur.VerifiedAtMs > 0 {
		return okProvider(cur)
	}
	np := proto.Clone(cur).(*bookingv1.Provider)
	np.VerifiedAtMs = max(now, 1)
	np.VerifiedBy = op.VerifiedBy
	np.Version++
	np.UpdatedAtMs = now
	a.put(bucketProviders, []byte(np.Id), np)
	return okProvider(np)
}

// createSeries judges every occurrence as createBooking would, then the
// overlaps with stored bookings and between occurrences; any refusal
// refuses all. A slot conflict lists, in occurrence order, the start of
// every occurrence that collides (each start once).
func (a *applier) createSeries(op *bookingv1.CreateSeries, now int64) *bookingv1.CommandResult {
	sr := op.GetSeries()
	if sr == nil {
		return invalid("create_series without series")
	}
	if why := validIDs("series id", sr.Id, "provider_id", sr.ProviderId, "client_id", sr.ClientId); why != "" {
		return invalid("%s", why)
	}
	switch n := len(op.Bookings); {
	case n < MinSeriesOccurrences || n > MaxSeriesOccurrences:
		return invalid("a series has %d..%d occurrences, not %d", MinSeriesOccurrences, MaxSeriesOccurrences, n)
	case sr.EveryDays < 1 || sr.EveryDays > MaxSeriesEveryDays:
		return invalid("every_days must be within 1..%d", MaxSeriesEveryDays)
	case len(sr.BookingIds) != 0:
		return invalid("create_series lists its bookings in bookings, not booking_ids")
	}
	seen := map[string]bool{}
	for i, b := range op.Bookings {
		if b == nil {
			return invalid("occurrence %d is empty", i)
		}
		if why := checkNewBooking(b); why != "" {
			return invalid("occurrence %d: %s", i, why)
		}
		switch {
		case b.ProviderId != sr.ProviderId || b.ClientId != sr.ClientId:
			return invalid("occurrence %d is not of the series' provider and client", i)
		case sr.ServiceId != "" && b.ServiceId != sr.ServiceId:
			return invalid("occurrence %d is not of the series' service", i)
		case b.SeriesId != "" && b.SeriesId != sr.Id:
			return invalid("occurrence %d names another series", i)
		case seen[b.Id]:
			return invalid("occurrence %d repeats booking id %q", i, b.Id)
		}
		if _, err := marshalOpts.Marshal(b); err != nil {
			return invalid("occurrence %d cannot be encoded", i) // checked before any write
		}
		seen[b.Id] = true
	}
	p := a.providerView(sr.ProviderId) // read only
	if p == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "provider %q not found", sr.ProviderId)
	}
	if a.series(sr.Id) != nil {
		return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "series %q already exists", sr.Id)
	}
	for _, b := range op.Bookings {
		if a.booking(b.Id) != nil {
			return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "booking %q already exists", b.Id)
		}
	}
	if r := a.checkBookable(p, sr.ClientId, op.ConsentPurpose, op.RequireVerified, now); r != nil {
		return r
	}
	var conflicts []int64
	listed := map[int64]bool{}
	for i, b := range op.Bookings {
		collides := a.overlap(b.ProviderId, b.StartMs, b.BlockedUntilMs, "") != ""
		for j, o := range op.Bookings {
			if collides {
				break
			}
			collides = j != i && o.BlockedUntilMs > b.StartMs && o.StartMs < b.BlockedUntilMs
		}
		if collides && !listed[b.StartMs] {
			listed[b.StartMs] = true
			conflicts = append(conflicts, b.StartMs)
		}
	}
	if len(conflicts) > 0 {
		r := result(bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN, "%d of %d occurrences collide", len(conflicts), len(op.Bookings))
		r.Conflicts = conflicts
		return r
	}
	ns := proto.Clone(sr).(*bookingv1.Series)
	ns.CreatedAtMs = now
	if _, err := marshalOpts.Marshal(ns); err != nil {
		return invalid("series %q cannot be encoded", sr.Id)
	}
	for _, b := range op.Bookings {
		ns.BookingIds = append(ns.BookingIds, b.Id)
	}
	a.put(bucketSeries, []byte(ns.Id), ns)
	res := &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Series: ns}
	for _, b := range op.Bookings {
		ob := proto.Clone(b).(*bookingv1.Booking)
		ob.SeriesId = ns.Id
		// Every occurrence encoded above; the FSM adds only valid fields.
		if nb := a.insertBooking(ob, p, now, op.ConsentPurpose); nb != nil {
			res.Bookings = append(res.Bookings, nb)
		}
	}
	return res
}

func (a *applier) cancelSeries(op *bookingv1.CancelSeries, now int64) *bookingv1.CommandResult {
	if why := validID("series_id", op.SeriesId); why != "" {
		return invalid("%s", why)
	}
	if op.FromMs < 0 {
		return invalid("from_ms must not be negative")
	}
	sr := a.series(op.SeriesId)
	if sr == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "series %q not found", op.SeriesId)
	}
	from := op.FromMs
	if from == 0 {
		from = now
	}
	res := &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Series: sr}
	for _, id := range sr.BookingIds {
		b := a.booking(id)
		if b == nil || b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED || b.StartMs < from || sessionStarted(b) {
			continue
		}
		res.Bookings = append(res.Bookings, a.cancel(b, now, CancelReasonSeriesCancelled))
	}
	return res
}

// setSessionStatus moves a session: scheduled → checked_in | no_show |
// cancelled (the booking is cancelled with it), checked_in → completed.
func (a *applier) setSessionStatus(op *bookingv1.SetSessionStatus, now int64) *bookingv1.CommandResult {
	if why := validID("booking_id", op.BookingId); why != "" {
		return invalid("%s", why)
	}
	switch op.Status {
	case bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN, bookingv1.SessionStatus_SESSION_STATUS_COMPLETED,
		bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW, bookingv1.SessionStatus_SESSION_STATUS_CANCELLED:
	default:
		return invalid("a session cannot be moved to %s", op.Status)
	}
	cur := a.booking(op.BookingId)
	if cur == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "booking %q not found", op.BookingId)
	}
	from, to := cur.SessionStatus, op.Status
	legal := false
	switch from {
	case bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED:
		return result(bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION, "booking %q is not a session", cur.Id)
	case bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED:
		legal = to != bookingv1.SessionStatus_SESSION_STATUS_COMPLETED
	case bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN:
		legal = to == bookingv1.SessionStatus_SESSION_STATUS_COMPLETED
	}
	if !legal || cur.Status != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
		return result(bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION, "session %q cannot move from %s to %s", cur.Id, from, to)
	}
	if to == bookingv1.SessionStatus_SESSION_STATUS_CANCELLED {
		return okBooking(a.cancel(cur, now, ""))
	}
	nb := proto.Clone(cur).(*bookingv1.Booking)
	nb.SessionStatus = to
	nb.Version++
	nb.UpdatedAtMs = now
	a.put(bucketBookings, []byte(nb.Id), nb)
	return okBooking(nb)
}

// putClientKey stores the client's wrapped data key unless the client has
// one (the answer carries the key the client has: first wins). An erasure
// covers the data that existed when it was applied: a client erased before
// (whose key is gone) may get a new key, but never an erased one back
// (ERASED: the KEK's ledger would refuse to unwrap it anyway).
func (a *applier) putClientKey(op *bookingv1.PutClientKey, now int64) *bookingv1.CommandResult {
	k := op.GetKey()
	if k == nil {
		return invalid("put_client_key without key")
	}
	if why := validIDs("client_id", k.ClientId, "key_id", k.KeyId, "kek_id", k.KekId); why != "" {
		return invalid("%s", why)
	}
	if len(k.Wrapped) == 0 || len(k.Wrapped) > MaxWrappedKeyBytes {
		return invalid("wrapped key must be 1..%d bytes", MaxWrappedKeyBytes)
	}
	if keyErased(a.erasure(k.ClientId), k.KeyId) {
		return result(bookingv1.ResultCode_RESULT_CODE_ERASED, "the client's health data was erased")
	}
	if cur := a.clientKey(k.ClientId); cur != nil {
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Key: cur}
	}
	nk := proto.Clone(k).(*bookingv1.ClientKey)
	if nk.CreatedAtMs == 0 {
		nk.CreatedAtMs = now
	}
	a.put(bucketClientKeys, []byte(nk.ClientId), nk)
	return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Key: nk}
}

// putNote replaces a session's sealed notes, sealed under the client's
// current key: ERASED for a session whose health data was erased (booked
// before an erasure) or a note sealed under a key an erasure destroyed
// (sealed before the erasure, proposed after), INVALID for another key that
// is not the current one.
func (a *applier) putNote(op *bookingv1.PutNote, now int64) *bookingv1.CommandResult {
	n := op.GetNote()
	if n == nil {
		return invalid("put_note without note")
	}
	if why := validIDs("booking_id", n.BookingId, "client_id", n.ClientId, "key_id", n.KeyId); why != "" {
		return invalid("%s", why)
	}
	switch {
	case len(n.Ciphertext) == 0 || len(n.Ciphertext) > MaxNoteBytes:
		return invalid("ciphertext must be 1..%d bytes", MaxNoteBytes)
	case len(n.Nonce) == 0 || len(n.Nonce) > maxNonceBytes:
		return invalid("nonce must be 1..%d bytes", maxNonceBytes)
	}
	b := a.booking(n.BookingId)
	if b == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "booking %q not found", n.BookingId)
	}
	if b.ClientId != n.ClientId || (n.ProviderId != "" && n.ProviderId != b.ProviderId) {
		return invalid("note is not of the booking's client and provider")
	}
	if b.Erased || keyErased(a.erasure(n.ClientId), n.KeyId) {
		return result(bookingv1.ResultCode_RESULT_CODE_ERASED, "the client's health data was erased")
	}
	k := a.clientKey(n.ClientId)
	if k == nil || k.KeyId != n.KeyId {
		return invalid("note is not sealed under the client's current key")
	}
	var stored uint64
	if old := a.note(n.BookingId); old != nil {
		stored = old.Version
	}
	if stored != op.ExpectedVersion {
		return result(bookingv1.ResultCode_RESULT_CODE_STALE, "the notes changed since they were read (version %d, not %d)", stored, op.ExpectedVersion)
	}
	nn := proto.Clone(n).(*bookingv1.SealedNote)
	nn.ProviderId = b.ProviderId
	nn.UpdatedAtMs = now
	nn.Version = stored + 1
	a.put(bucketNotes, []byte(nn.BookingId), nn)
	a.putKey(bucketClientNotes, indexKey(nn.ClientId, nn.BookingId))
	return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Note: nn}
}

// eraseHealthData deletes the client's data key and sealed notes, marks
// their bookings erased and keeps an Erasure for good, one per client: its
// key_ids name every data key erased. Erasing a client again (one who came
// back and got a new key) erases what exists then: the new key's id is
// appended to key_ids, erased_at_ms stays the first erasure's, bookings made
// since are marked. The bookings it marked come back in the result.
func (a *applier) eraseHealthData(op *bookingv1.EraseHealthData, now int64) *bookingv1.CommandResult {
	if why := validID("client_id", op.ClientId); why != "" {
		return invalid("%s", why)
	}
	client := op.ClientId
	er := a.erasure(client)
	first, destroyed := er == nil, false
	if first {
		er = &bookingv1.Erasure{ClientId: client, ErasedAtMs: max(now, 1)}
	}
	if k := a.clientKey(client); k != nil {
		er.KeyIds = append(er.KeyIds, k.KeyId)
		a.deleteKey(bucketClientKeys, []byte(client))
		destroyed = true
	}
	var notes []string
	scanIndex(a.tx, bucketClientNotes, client, func(id string) bool {
		notes = append(notes, id)
		return true
	})
	for _, id := range notes {
		if n := a.note(id); n != nil && n.ClientId == client {
			a.deleteKey(bucketNotes, []byte(id))
		}
		a.deleteKey(bucketClientNotes, indexKey(client, id))
		destroyed = true
	}
	a.put(bucketErasures, []byte(client), er)
	res := &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK}
	a.clientBookings(client, func(b *bookingv1.Booking) {
		if b.Erased {
			return
		}
		nb := proto.Clone(b).(*bookingv1.Booking)
		nb.Erased = true
		nb.Version++
		// A cancelled booking keeps updated_at, its cancellation time:
		// cancelled_time and its retention are keyed by it.
		if b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
			nb.UpdatedAtMs = now
		}
		a.put(bucketBookings, []byte(nb.Id), nb)
		res.Bookings = append(res.Bookings, nb)
	})
	if first || destroyed {
		a.erased = append(a.erased, erasedAt{index: a.index, client: client, keyIDs: slices.Clone(er.KeyIds)})
	}
	return res
}

func (a *applier) consent(id string) *bookingv1.Consent {
	c := new(bookingv1.Consent)
	if !getProto(a.tx, bucketConsents, id, c) {
		return nil
	}
	return c
}

func (a *applier) series(id string) *bookingv1.Series {
	s := new(bookingv1.Series)
	if !getProto(a.tx, bucketSeries, id, s) {
		return nil
	}
	return s
}

func (a *applier) clientKey(clientID string) *bookingv1.ClientKey {
	k := new(bookingv1.ClientKey)
	if !getProto(a.tx, bucketClientKeys, clientID, k) {
		return nil
	}
	return k
}

func (a *applier) note(bookingID string) *bookingv1.SealedNote {
	n := new(bookingv1.SealedNote)
	if !getProto(a.tx, bucketNotes, bookingID, n) {
		return nil
	}
	return n
}

// keyErased reports whether the Erasure e (nil: none) destroyed key keyID.
func keyErased(e *bookingv1.Erasure, keyID string) bool {
	return e != nil && slices.Contains(e.KeyIds, keyID)
}

func (a *applier) erasure(clientID string) *bookingv1.Erasure {
	e := new(bookingv1.Erasure)
	if !getProto(a.tx, bucketErasures, clientID, e) {
		return nil
	}
	return e
}

// notifyErased counts the erasures of a committed batch and calls onErase
// for each (outside any lock of the FSM).
func (f *fsm) notifyErased(erased []erasedAt) {
	for _, e := range erased {
		f.erasures.Add(1)
		if f.onErase != nil {
			f.onErase(e.client, e.keyIDs)
		}
	}
}

// erasedClients returns the clients with an Erasure in the current db, each
// with the key ids it names (nil if the db cannot be read).
func (f *fsm) erasedClients() map[string][]string {
	out := map[string][]string{}
	err := f.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketErasures)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			e := new(bookingv1.Erasure)
			_ = proto.Unmarshal(v, e) // unreadable: the client, without key ids
			out[string(k)] = e.KeyIds
			return nil
		})
	})
	if err != nil {
		return nil
	}
	return out
}

// noticeRestoredErasures treats the erasures a restored snapshot brought
// (clients not in before, or with key ids before did not have) as applied:
// counted, and onErase called, so a replica that missed the EraseHealthData
// entry records it all the same.
func (f *fsm) noticeRestoredErasures(before map[string][]string) {
	var erased []erasedAt
	for c, keys := range f.erasedClients() {
		old, seen := before[c]
		if !seen || slices.ContainsFunc(keys, func(k string) bool { return !slices.Contains(old, k) }) {
			erased = append(erased, erasedAt{client: c, keyIDs: keys})
		}
	}
	f.notifyErased(erased)
}

// replayErasures calls onErase for every recorded erasure (Open does, so
// a crash between an erasure's commit and its notification loses nothing).
func (f *fsm) replayErasures() {
	if f.onErase == nil {
		return
	}
	for c, keys := range f.erasedClients() {
		f.onErase(c, keys)
	}
}
