package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"google.golang.org/protobuf/proto"
)

// IdempotencyHeader is the request header that makes a POST take effect once.
const IdempotencyHeader = "Idempotency-Key"

// ReplayedHeader is set to "true" on an answer replayed for a repeated
// Idempotency-Key.
const ReplayedHeader = "Idempotent-Replayed"

// maxIdempotencyKeyBytes bounds the Idempotency-Key header: with the scope and
// route pattern it stays within storage.MaxIDLength. The spec says the same
// (maxLength 200, printable ASCII, so characters are bytes).
const maxIdempotencyKeyBytes = 200

// printableASCII reports whether v is made of bytes 0x20-0x7E only.
func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotency is how one request is made to take effect at most once.
type idempotency struct {
	// key goes down in the command: the client's key scoped by subject, method
	// and route pattern ("s:SCOPE POST /v1/bookings KEY", subjectScope; storage
	// allows no NUL in keys), or "auto:" + the new resource's id when the client
	// sent none (so internal retries stay idempotent).
	key string
	// hash is sha256(method + " " + path + "\x00" + canonical body).
	hash []byte
	// fromClient is true when the client sent the header: only then can an
	// earlier request be replayed.
	fromClient bool
}

// idempotencyOf computes the key and hash of r. canonical is the decoded request
// (re-encoded as JSON, so spacing and field order do not matter); autoID names
// the resource the request creates, for the key when the client sent none.
func idempotencyOf(r *http.Request, canonical any, autoID string) (idempotency, error) {
	body, err := json.Marshal(canonical)
	if err != nil {
		return idempotency{}, err
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path))
	h.Write([]byte{0})
	h.Write(body)
	id := idempotency{hash: h.Sum(nil)}
	vs, sent := r.Header[IdempotencyHeader]
	if !sent {
		id.key = "auto:" + autoID
		return id, nil
	}
	v := vs[0]
	switch {
	case v == "":
		// Sent but empty is not "none": the spec says minLength 1, and a
		// client whose key generator broke must learn it before it retries.
		return idempotency{}, badRequest("%s must not be empty (leave the header out to send none)", IdempotencyHeader)
	case len(vs) > 1:
		return idempotency{}, badRequest("%s must be sent once", IdempotencyHeader)
	case !printableASCII(v):
		return idempotency{}, invalid("%s must be printable ASCII (a UUID, say)", IdempotencyHeader)
	case len(v) > maxIdempotencyKeyBytes:
		return idempotency{}, invalid("%s must have at most %d characters", IdempotencyHeader, maxIdempotencyKeyBytes)
	}
	id.key = subjectScope(r.Context()) + " " + r.Pattern + " " + v
	id.fromClient = true
	return id, nil
}

// subjectScope names the caller in an idempotency key without spelling its
// subject (a client id must not be stored as a key): "s:" + the first 96 bits
// of sha256(role NUL subject), base64url. Two subjects never share a scope, so
// they never see each other's replay. A plain hash, not an HMAC under a cluster
// secret: it hides nothing from a store reader that the booking the record
// names does not show in clear, and changing it would make retries in flight
// across an upgrade miss their records (docs/SECURITY.md).
func subjectScope(ctx context.Context) string {
	c, ok := callerOf(ctx)
	if !ok {
		return "s:anonymous"
	}
	sum := sha256.Sum256([]byte(string(c.p.Role) + "\x00" + c.p.Subject))
	return "s:" + base64.RawURLEncoding.EncodeToString(sum[:12])
}

// replayed looks for an earlier request with the same client key. It returns the
// id of the resource to answer with when the hash matches, "" when there was
// none (go ahead: the FSM still judges), and idempotency_key_reused when the key
// came with another request.
func (s *Server) replayed(ctx context.Context, id idempotency) (string, error) {
	rec, err := s.replayedRecord(ctx, id)
	return rec.GetResourceId(), err
}

// replayedRecord is replayed with the whole record (nil when there was none).
func (s *Server) replayedRecord(ctx context.Context, id idempotency) (*bookingv1.IdempotencyRecord, error) {
	if !id.fromClient {
		return nil, nil
	}
	rec, err := s.cfg.Store.Idempotency(ctx, id.key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !bytes.Equal(rec.GetRequestHash(), id.hash):
		return nil, &apiError{http.StatusUnprocessableEntity, CodeIdempotencyKeyReused, "this " + IdempotencyHeader + " was used before with another request", nil}
	default:
		return rec, nil
	}
}

// firstAnswer is the result the record's request answered when it took effect
// (IdempotencyRecord.first_result), or nil when the record does not keep it
// (written before it did, or too big): the replay then answers the current
// state.
func firstAnswer(rec *bookingv1.IdempotencyRecord) *bookingv1.CommandResult {
	if len(rec.GetFirstResult()) == 0 {
		return nil
	}
	r := new(bookingv1.CommandResult)
	if proto.Unmarshal(rec.GetFirstResult(), r) != nil {
		return nil
	}
	return r
}

// markReplayed sets the replay header on w.
func markReplayed(w http.ResponseWriter) { w.Header().Set(ReplayedHeader, "true") }

// firstProvider is the provider the first request with idem's key answered,
// when its record keeps it and it is provider id; else nil.
func (s *Server) firstProvider(ctx context.Context, idem idempotency, id string) *bookingv1.Provider {
	rec, err := s.replayedRecord(ctx, idem)
	if err != nil || rec == nil {
		return nil
	}
	if p := firstAnswer(rec).GetProvider(); p.GetId() == id {
		return p
	}
	return nil
}
