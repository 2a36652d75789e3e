package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/barberpro/edge/actors"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
)

// Problem codes: the stable machine words of api.md carried in a problem's "code".
const (
	CodeValidationFailed        = "validation_failed"
	CodeNotFound                = "not_found"
	CodeSlotUnavailable         = "slot_unavailable"
	CodeIdempotencyKeyReused    = "idempotency_key_reused"
	CodeConsentRequired         = "consent_required"
	CodeResidencyViolation      = "residency_violation"
	CodeJurisdictionUnavailable = "jurisdiction_unavailable"
	CodeUnauthorized            = "unauthorized"
	CodeForbidden               = "forbidden"
	CodeRateLimited             = "rate_limited"
	CodePayloadTooLarge         = "payload_too_large"
	CodeUnsupportedMediaType    = "unsupported_media_type"
	CodeStorageUnavailable      = "storage_unavailable"
	CodeProviderUnverified      = "provider_unverified"
	CodeErased                  = "erased"
	// CodeMemberAlive is added to api.md's list: cluster remove of a member gossip
	// shows alive, without force (409).
	CodeMemberAlive = "member_alive"
	// CodeLastVoter is added to api.md's list: cluster remove or leave of the
	// only voter of its jurisdiction's Raft group, which cannot be left without
	// one (409).
	CodeLastVoter = "last_voter"
	// CodeInternalError is the one code added to api.md's list: the answer to a bug
	// (an unmapped error or a recovered panic). It never answers bad input.
	CodeInternalError = "internal_error"
)

// ProblemTypePrefix prefixes a problem's code to form its RFC 9457 "type" URI.
const ProblemTypePrefix = "urn:barberpro:problem:"

// problemContentType is the media type of every error answer.
const problemContentType = "application/problem+json"

// titles gives each code its fixed human-readable "title".
var titles = map[string]string{
	CodeValidationFailed:        "Validation failed",
	CodeNotFound:                "Not found",
	CodeSlotUnavailable:         "Slot unavailable",
	CodeIdempotencyKeyReused:    "Idempotency key reused",
	CodeConsentRequired:         "Consent required",
	CodeResidencyViolation:      "Residency violation",
	CodeJurisdictionUnavailable: "Jurisdiction unavailable",
	CodeUnauthorized:            "Unauthorized",
	CodeForbidden:               "Forbidden",
	CodeRateLimited:             "Rate limited",
	CodePayloadTooLarge:         "Payload too large",
	CodeUnsupportedMediaType:    "Unsupported media type",
	CodeStorageUnavailable:      "Storage unavailable",
	CodeProviderUnverified:      "Provider unverified",
	CodeErased:                  "Erased",
	CodeMemberAlive:             "Member alive",
	CodeLastVoter:               "Last voter",
	CodeInternalError:           "Internal error",
}

// problemBody is the RFC 9457 body of every error answer.
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	// Instance names the request answered ("urn:barberpro:request:<id>",
	// reqid.go), for the caller to quote and operators to find in the logs.
	Instance string `json:"instance,omitempty"`
	// Conflicts is set on the 409 of a series only: the starts of the
	// occurrences that collide (never which booking they collide with).
	Conflicts []string `json:"conflicts,omitempty"`
	// Errors is set on a validation_failed that found more than one thing
	// wrong (fieldErrors): each field and what is
	// wrong with it; detail joins them.
	Errors []fieldError `json:"errors,omitempty"`
}

// fieldError is one item of a problem's errors: a field (a JSON path such as
// services[0].price.amount, or a header name; "" for the body as a whole) and
// what is wrong with it.
type fieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// apiError is an error a handler answers with as it is: its status, code and
// detail, and the headers it needs (WWW-Authenticate, Retry-After).
type apiError struct {
	status int
	code   string
	detail string
	header http.Header
}

// invalidFields is the 422 validation_failed of fieldErrors: the apiError
// (detail joining every failure) and the failures one by one.
type invalidFields struct {
	ae   *apiError
	errs []fieldError
}

func (e *invalidFields) Error() string { return e.ae.Error() }
func (e *invalidFields) Unwrap() error { return e.ae }

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.detail) }

// badRequest is a 400 validation_failed: the body or query could not be decoded.
func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, CodeValidationFailed, fmt.Sprintf(format, args...), nil}
}

// invalid is a 422 validation_failed: the request decoded but a value is wrong.
func invalid(format string, args ...any) *apiError {
	return &apiError{http.StatusUnprocessableEntity, CodeValidationFailed, fmt.Sprintf(format, args...), nil}
}

// notFound is a 404 not_found.
func notFound(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, CodeNotFound, fmt.Sprintf(format, args...), nil}
}

// fieldErrors collects the validation failures of a request's independent
// fields, so that one answer names every field that is missing or wrong, not
// only the first.
type fieldErrors struct{ list []fieldError }

// add records err when it is a 422 validation_failed and reports whether it
// did; any other error (a 403, a 5xx) is for the caller to return at once.
// A nil err is recorded as nothing (true).
func (fe *fieldErrors) add(err error) bool {
	if err == nil {
		return true
	}
	var inv *invalidFields
	if errors.As(err, &inv) {
		fe.list = append(fe.list, inv.errs...)
		return true
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusUnprocessableEntity || ae.code != CodeValidationFailed {
		return false
	}
	fe.list = append(fe.list, fieldError{Field: fieldOf(ae.detail), Detail: ae.detail})
	return true
}

// err is the 422 that names every failure collected, or nil: its detail joins
// theirs, its errors list them.
func (fe *fieldErrors) err() error {
	if len(fe.list) == 0 {
		return nil
	}
	details := make([]string, len(fe.list))
	for i, f := range fe.list {
		details[i] = f.Detail
	}
	return &invalidFields{errs: fe.list, ae: &apiError{status: http.StatusUnprocessableEntity,
		code: CodeValidationFailed, detail: strings.Join(details, "; ")}}
}

// fieldOf is the field a validation detail starts with ("services[0].price is
// required" → "services[0].price"), or "".
func fieldOf(detail string) string {
	f, _, _ := strings.Cut(detail, " ")
	f = strings.TrimSuffix(f, ":")
	for _, c := range f {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '[' || c == ']' || c == '-') {
			if f == IdempotencyHeader {
				return f
			}
			return ""
		}
	}
	return f
}

// errorMapping is one row of errorTable.
type errorMapping struct {
	err    error
	status int
	code   string
	// detail, when set, replaces the error's text in the answer: for errors
	// whose text could name another person's record.
	detail string
}

// errorTable is THE map from the sentinel errors of the packages below the edge to
// problems. The first row whose error matches (errors.Is) wins; an error that
// matches no row is a bug and answers 500 internal_error.
//
// Decisions where api.md is silent: a slot taken answers a fixed detail (the
// layers below may name the booking it collided with; the answer must not); an
// invalid state transition (rescheduling a
// cancelled booking) is 422 validation_failed, the request can never succeed as
// asked; an id collision on create is 409 validation_failed; every "cannot answer
// now" error (no leader, timeout, store closed, actor unreachable, request deadline)
// is 503 jurisdiction_unavailable with Retry-After, except that a node whose disk
// cannot take writes (full, I/O errors: storage.ErrStorageUnavailable, also when
// an actor passes it on) answers 503 storage_unavailable, as api.md says.
var errorTable = []errorMapping{
	{actors.ErrSlotTaken, http.StatusConflict, CodeSlotUnavailable, slotTakenDetail},
	{storage.ErrSlotTaken, http.StatusConflict, CodeSlotUnavailable, slotTakenDetail},
	{actors.ErrIdempotencyKeyReused, http.StatusUnprocessableEntity, CodeIdempotencyKeyReused, ""},
	{storage.ErrIdempotencyKeyReused, http.StatusUnprocessableEntity, CodeIdempotencyKeyReused, ""},
	{actors.ErrNotFound, http.StatusNotFound, CodeNotFound, ""},
	{storage.ErrNotFound, http.StatusNotFound, CodeNotFound, ""},
	{actors.ErrInvalid, http.StatusUnprocessableEntity, CodeValidationFailed, ""},
	{storage.ErrInvalid, http.StatusUnprocessableEntity, CodeValidationFailed, ""},
	{actors.ErrInvalidTransition, http.StatusUnprocessableEntity, CodeValidationFailed, ""},
	{storage.ErrInvalidTransition, http.StatusUnprocessableEntity, CodeValidationFailed, ""},
	{storage.ErrAlreadyExists, http.StatusConflict, CodeValidationFailed, ""},
	{ErrUnknownMember, http.StatusNotFound, CodeNotFound, ""},
	{ErrMemberAlive, http.StatusConflict, CodeMemberAlive, ""},
	{storage.ErrLastVoter, http.StatusConflict, CodeLastVoter, lastVoterDetail},
	{storage.ErrStorageUnavailable, http.StatusServiceUnavailable, CodeStorageUnavailable, ""},
	{ErrNoPeer, http.StatusServiceUnavailable, CodeJurisdictionUnavailable, ""},
	{actors.ErrStorageUnavailable, http.StatusServiceUnavailable, CodeStorageUnavailable, ""},
	{actors.ErrUnavailable, http.StatusServiceUnavailable, CodeJurisdictionUnavailable, ""},
	{storage.ErrNotLeader, http.StatusServiceUnavailable, CodeJurisdictionUnavailable, ""},
	{storage.ErrTimeout, http.StatusServiceUnavailable, CodeJurisdictionUnavailable, ""},
	{storage.ErrClosed, http.StatusServiceUnavailable, CodeJurisdictionUnavailable, ""},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, CodeJurisdictionUnavailable, ""},
	{context.Canceled, http.StatusServiceUnavailable, CodeJurisdictionUnavailable, ""},
}

// slotTakenDetail is the detail of every 409 slot_unavailable: it says the slot
// is taken, never by which booking or whom (security.md).
const slotTakenDetail = "the requested time overlaps another booking of this provider"

// lastVoterDetail is the detail of every 409 last_voter.
const lastVoterDetail = "the node is the only voter of its jurisdiction's Raft group, which cannot be left without one: " +
	"start another node of the jurisdiction and let it join first"

// classify returns the status, code and detail that answer err, and the
// headers the answer needs.
func classify(err error) (status int, code, detail string, header http.Header) {
	var sc *seriesConflict
	if errors.As(err, &sc) {
		return http.StatusConflict, CodeSlotUnavailable, seriesTakenDetail, nil
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.code, ae.detail, ae.header
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			detail = clientDetail(err, m.err)
			if m.detail != "" {
				detail = m.detail
			}
			return m.status, m.code, detail, nil
		}
	}
	return http.StatusInternalServerError, CodeInternalError, "internal error", nil
}

// internalWords are the segments of an error chain that name a layer below
// the edge ("actors: ", "calendar: ", "storage: "): a client has no use for them.
var internalWords = map[string]bool{
	"actors": true, "actor": true, "calendar": true, "calendars": true, "session": true, "sessions": true,
	"storage": true, "store": true, "cluster": true, "edge": true, "raft": true, "membership": true,
	"placement": true, "fsm": true, "activation": true,
}

// sentinelWords are the texts of the sentinels below the edge without their
// package prefix ("invalid request", "invalid command", "not found"): in a
// chain they say which kind of error it is, which the problem's code already
// says.
var sentinelWords = func() map[string]bool {
	words := map[string]bool{}
	for _, m := range errorTable {
		text := m.err.Error()
		if _, rest, ok := strings.Cut(text, ": "); ok && internalWords[text[:strings.Index(text, ":")]] {
			text = rest
		}
		words[text] = true
	}
	return words
}()

// clientDetail is the detail of an error of the layers below: what is wrong in
// the client's terms, the useful last part of the chain without its package
// prefixes and wrapped sentinels ("actors: invalid request: calendar: storage:
// invalid command: start is in the past" → "start is in the past"). With
// nothing left, the sentinel's own words ("not found").
func clientDetail(err, sentinel error) string {
	words := sentinel.Error()
	if _, rest, ok := strings.Cut(words, ": "); ok {
		words = rest
	}
	return cleanDetail(err.Error(), words)
}

// cleanDetail is clientDetail of an error's text msg; words say what kind of
// error it is when nothing else is left.
func cleanDetail(msg, words string) string {
	if i := strings.IndexByte(msg, '\n'); i >= 0 { // errors.Join: the first
		msg = msg[:i]
	}
	var kept []string
	for _, part := range strings.Split(msg, ": ") {
		switch p := strings.TrimSpace(part); {
		case p == "" || internalWords[p]:
		case sentinelWords[p]:
			words = p
		default:
			kept = append(kept, p)
		}
	}
	out := strings.Join(kept, ": ")
	switch {
	case out == "":
		return words
	case !strings.Contains(out, " "):
		// A bare name or id says nothing by itself: "not found: \"b1\"".
		return words + ": " + out
	}
	return out
}

// writeError answers err as a problem and logs it when it is a server fault:
// with the route pattern (label), never the path, which may hold ids.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, label string, err error) {
	status, code, detail, header := classify(err)
	switch {
	case status == http.StatusInternalServerError:
		// A bug: its error is needed to fix it (the edge's own errors name no person).
		s.log.ErrorContext(r.Context(), "edge: request failed",
			"route", label, "status", status, "code", code, "err", err)
	case status >= 500:
		// The layers below may name records in their errors: the code only.
		s.log.WarnContext(r.Context(), "edge: request failed",
			"route", label, "status", status, "code", code)
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	var sc *seriesConflict
	if errors.As(err, &sc) {
		writeProblemBody(w, status, problemBody{Type: ProblemTypePrefix + code, Title: titles[code],
			Status: status, Detail: detail, Code: code, Conflicts: sc.starts})
		return
	}
	var inv *invalidFields
	if errors.As(err, &inv) {
		writeProblemBody(w, status, problemBody{Type: ProblemTypePrefix + code, Title: titles[code],
			Status: status, Detail: detail, Code: code, Errors: inv.errs})
		return
	}
	writeProblem(w, status, code, detail)
}

// seriesConflict is the 409 of a series some of whose occurrences collide:
// starts are those occurrences' starts (RFC 3339, the provider's zone).
type seriesConflict struct{ starts []string }

func (e *seriesConflict) Error() string { return seriesTakenDetail }

// seriesTakenDetail is the detail of a series' 409: which starts, never with
// what.
const seriesTakenDetail = "some occurrences of the series overlap other bookings of this provider (conflicts lists their starts); nothing was booked"

// The refusals of the psychology vertical's rules (psychology.md).

// errConsentRequired is the 422 of a booking without an active consent.
func errConsentRequired(purpose, jurisdiction string) *apiError {
	return &apiError{http.StatusUnprocessableEntity, CodeConsentRequired,
		fmt.Sprintf("the client has no active consent for %q in jurisdiction %s", purpose, jurisdiction), nil}
}

// errProviderUnverified is the 422 of a booking with a provider whose licence
// no operator verified yet.
func errProviderUnverified() *apiError {
	return &apiError{http.StatusUnprocessableEntity, CodeProviderUnverified,
		"the provider's licence has not been verified by an operator yet", nil}
}

// errErased is the 410 of health data that was erased.
func errErased() *apiError {
	return &apiError{http.StatusGone, CodeErased, "the client's health data was erased", nil}
}

// errResidency is the 409 of a request that would keep a home-resident
// vertical's record on a node of another jurisdiction.
func errResidency(what, home, here string) *apiError {
	return &apiError{http.StatusConflict, CodeResidencyViolation,
		fmt.Sprintf("%s belongs to jurisdiction %s and may not be held or served by a node of %s", what, home, here), nil}
}

// resultError maps the FSM's verdicts the storage sentinels do not tell apart
// (consent, verification, erasure) to their problems; any other error is
// returned as it is, for the error table.
func resultError(res *bookingv1.CommandResult, err error) error {
	if err == nil {
		return nil
	}
	switch res.GetCode() {
	case bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED:
		return &apiError{http.StatusUnprocessableEntity, CodeConsentRequired, "the client has no active consent for this booking", nil}
	case bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED:
		return errProviderUnverified()
	case bookingv1.ResultCode_RESULT_CODE_ERASED:
		return errErased()
	}
	return err
}

// replyError maps an actor's error code, when the reply carries one, to its
// problem. Only a validation failure answers the actor's detail (which rule the
// request broke, as the calendar's ErrInvalid does); every other code answers a
// fixed text, so nothing of the layers below reaches the client.
func replyError(code calendarv1.ErrorCode, detail string) error {
	if detail == "" {
		detail = "refused"
	}
	switch code {
	case calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return nil
	case calendarv1.ErrorCode_ERROR_CODE_SLOT_TAKEN:
		return &apiError{http.StatusConflict, CodeSlotUnavailable, slotTakenDetail, nil}
	case calendarv1.ErrorCode_ERROR_CODE_INVALID:
		return invalid("%s", cleanDetail(detail, "invalid request"))
	case calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION:
		return invalid("the record's current state does not allow this change")
	case calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return notFound("no such record")
	case calendarv1.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH:
		return &apiError{http.StatusUnprocessableEntity, CodeIdempotencyKeyReused, "this " + IdempotencyHeader + " was used before with another request", nil}
	case calendarv1.ErrorCode_ERROR_CODE_STORAGE_UNAVAILABLE:
		return &apiError{http.StatusServiceUnavailable, CodeStorageUnavailable, "the store cannot write now; retry", nil}
	case calendarv1.ErrorCode_ERROR_CODE_CONSENT_REQUIRED:
		return &apiError{http.StatusUnprocessableEntity, CodeConsentRequired, "the client has no active consent for this booking", nil}
	case calendarv1.ErrorCode_ERROR_CODE_PROVIDER_UNVERIFIED:
		return errProviderUnverified()
	case calendarv1.ErrorCode_ERROR_CODE_ERASED:
		return errErased()
	case calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN:
		return errForbidden("only the treating provider may do this")
	default:
		return &apiError{http.StatusServiceUnavailable, CodeJurisdictionUnavailable, "the session or calendar could not answer now; retry", nil}
	}
}

// errorKind is the problem code of err: what logs say about an error whose text
// may name a record.
func errorKind(err error) string {
	_, code, _, _ := classify(err)
	return code
}

// writeProblem writes an RFC 9457 problem.
func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	writeProblemBody(w, status, problemBody{
		Type:   ProblemTypePrefix + code,
		Title:  titles[code],
		Status: status,
		Detail: detail,
		Code:   code,
	})
}

// writeProblemBody writes the RFC 9457 problem p.
func writeProblemBody(w http.ResponseWriter, status int, p problemBody) {
	if p.Instance == "" {
		p.Instance = instanceOf(w)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSONAs(w, status, problemContentType, p)
}
