package session

import (
	"context"
	"errors"
	"fmt"
	"slices"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage/seal"
)

// ExportedNote is one session's notes, unsealed, in a client's GDPR export.
type ExportedNote struct {
	BookingID   string `json:"booking_id"`
	ProviderID  string `json:"provider_id"`
	Text        string `json:"text"`
	UpdatedAtMs int64  `json:"updated_at_ms"`
}

// ClientNotes unseals the notes of one client for the client's own export (GET
// /v1/clients/{id}/export, GDPR Art. 15 and 20: "everything held about them",
// note text included). notes are the client's sealed notes as the store lists
// them (storage.Store.ClientNotes); every one must be the client's. The answer
// keeps their order.
//
// It runs here, not in a session actor: it writes nothing and needs only this
// node's KEK, so the caller must call it on a node of the client's home
// jurisdiction. It appends no audit record: the caller's "export" record
// (object "client:<id>") covers it, and the caller checks that the requester is
// the client.
//
// Errors: ErrInvalid (no client id, a note of another client), ErrErased (notes
// sealed under a data key an erasure destroyed: the store's Erasure record or the
// KEK's ledger names it; export "erased" instead of notes; a client who came
// back after an erasure has the notes sealed under their new key exported), ErrUnavailable (no KEK on this
// node, the store cannot answer, a key or note that does not open). No client id
// or text is in an error.
func (s *Sessions) ClientNotes(ctx context.Context, clientID string, notes []*bookingv1.SealedNote) ([]ExportedNote, error) {
	if clientID == "" {
		return nil, fmt.Errorf("%w: client id is required", ErrInvalid)
	}
	for _, n := range notes {
		if n.GetClientId() != clientID {
			return nil, fmt.Errorf("%w: the notes of session %s are another client's", ErrInvalid, n.GetBookingId())
		}
	}
	kek := s.cfg.KEK
	if kek == nil {
		return nil, fmt.Errorf("%w: this node holds no key-encryption key", ErrUnavailable)
	}
	if l, ok := s.cfg.Store.(linearizer); ok {
		if err := l.LinearizableRead(ctx); err != nil {
			return nil, fmt.Errorf("%w: the store cannot catch up with its leader: %w", ErrUnavailable, err)
		}
	}
	e, err := s.cfg.Store.Erasure(ctx, clientID)
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("%w: the erasure record cannot be read now", ErrUnavailable)
	}
	// An erasure covers the data that existed when it was applied: notes
	// sealed under a key it destroyed are erased; notes of a client who came
	// back, under a new key, are exported.
	for _, n := range notes {
		if slices.Contains(e.GetKeyIds(), n.GetKeyId()) || kek.Erased(clientID, n.GetKeyId()) {
			return nil, ErrErased
		}
	}
	if len(notes) == 0 {
		return nil, nil
	}
	ck, err := s.cfg.Store.ClientKey(ctx, clientID)
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("%w: the data key cannot be read now", ErrUnavailable)
	}
	if err != nil || ck == nil {
		return nil, fmt.Errorf("%w: notes stored without their data key", ErrUnavailable)
	}
	dk, err := kek.Unwrap(ck)
	if errors.Is(err, seal.ErrErased) {
		return nil, ErrErased
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the data key cannot be unwrapped on this node", ErrUnavailable)
	}
	defer dk.Wipe()
	out := make([]ExportedNote, 0, len(notes))
	for _, n := range notes {
		plain, err := dk.OpenNote(n)
		if err != nil {
			return nil, fmt.Errorf("%w: the notes of session %s do not open", ErrUnavailable, n.GetBookingId())
		}
		out = append(out, ExportedNote{
			BookingID:   n.GetBookingId(),
			ProviderID:  n.GetProviderId(),
			Text:        string(plain),
			UpdatedAtMs: n.GetUpdatedAtMs(),
		})
		clear(plain)
	}
	return out, nil
}
