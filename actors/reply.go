package actors

import (
	"errors"
	"fmt"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// sentinelOf maps a Reply error code to the package's sentinel.
func sentinelOf(code calendarv1.ErrorCode) error {
	switch code {
	case calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return nil
	case calendarv1.ErrorCode_ERROR_CODE_SLOT_TAKEN:
		return ErrSlotTaken
	case calendarv1.ErrorCode_ERROR_CODE_INVALID:
		return ErrInvalid
	case calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return ErrNotFound
	case calendarv1.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH:
		return ErrIdempotencyKeyReused
	case calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION:
		return ErrInvalidTransition
	case calendarv1.ErrorCode_ERROR_CODE_STORAGE_UNAVAILABLE:
		return ErrStorageUnavailable
	case calendarv1.ErrorCode_ERROR_CODE_CONSENT_REQUIRED:
		return ErrConsentRequired
	case calendarv1.ErrorCode_ERROR_CODE_PROVIDER_UNVERIFIED:
		return ErrProviderUnverified
	case calendarv1.ErrorCode_ERROR_CODE_ERASED:
		return ErrErased
	case calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN:
		return ErrForbidden
	default:
		return ErrUnavailable
	}
}

// replyError turns an error Reply into an error wrapping its sentinel and, when
// the reply was produced in this process, the store's own error (cause).
func replyError(r *calendarv1.Reply, cause error) error {
	if r == nil {
		return fmt.Errorf("%w: empty reply", ErrUnavailable)
	}
	s := sentinelOf(r.GetError())
	if s == nil {
		return nil
	}
	switch {
	case cause != nil && errors.Is(cause, s):
		return cause
	case cause != nil:
		return fmt.Errorf("%w: %w", s, cause)
	case r.GetDetail() != "":
		return fmt.Errorf("%w: %s", s, r.GetDetail())
	default:
		return s
	}
}

// resultCode maps the FSM's verdict to a Reply error code.
func resultCode(c bookingv1.ResultCode) calendarv1.ErrorCode {
	switch c {
	case bookingv1.ResultCode_RESULT_CODE_OK:
		return calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED
	case bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN:
		return calendarv1.ErrorCode_ERROR_CODE_SLOT_TAKEN
	case bookingv1.ResultCode_RESULT_CODE_NOT_FOUND:
		return calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND
	case bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH:
		return calendarv1.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH
	case bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION:
		return calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION
	case bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, bookingv1.ResultCode_RESULT_CODE_INVALID:
		return calendarv1.ErrorCode_ERROR_CODE_INVALID
	case bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED:
		return calendarv1.ErrorCode_ERROR_CODE_CONSENT_REQUIRED
	case bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED:
		return calendarv1.ErrorCode_ERROR_CODE_PROVIDER_UNVERIFIED
	case bookingv1.ResultCode_RESULT_CODE_ERASED:
		return calendarv1.ErrorCode_ERROR_CODE_ERASED
	default:
		return calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE
	}
}

// verdict reads Propose's answer: code UNSPECIFIED means OK. cause is the store's
// error, kept so errors.Is finds it in-process; a store that cannot write
// (storageDown) gets its own code, so the answer says so on any node.
func verdict(res *bookingv1.CommandResult, err error, storageDown func(error) bool) (code calendarv1.ErrorCode, detail string, cause error) {
	if res != nil && res.GetCode() != bookingv1.ResultCode_RESULT_CODE_UNSPECIFIED {
		code = resultCode(res.GetCode())
		if code == calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			return code, "", nil
		}
		detail = res.GetDetail()
		if detail == "" {
			detail = res.GetCode().String()
		}
		return code, detail, err
	}
	if err != nil && storageDown(err) {
		return calendarv1.ErrorCode_ERROR_CODE_STORAGE_UNAVAILABLE, "store: " + err.Error(), err
	}
	if err != nil {
		return calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: " + err.Error(), err
	}
	return calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store returned no result", nil
}

func errReply(code calendarv1.ErrorCode, format string, args ...any) *calendarv1.Reply {
	return &calendarv1.Reply{Error: code, Detail: fmt.Sprintf(format, args...)}
}
