// Package history records what a simulation's clients did and saw: every
// operation with the time it was invoked and the time its answer came back, so the
// checkers can judge the run afterwards. An operation whose answer never came
// (timeout, connection lost) is recorded as indeterminate: it may or may not have
// taken effect, and its return time is "never" — never dropped.
package history

import (
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"
)

// Kind is what an operation asked for.
type Kind string

// Operation kinds.
const (
	Book       Kind = "book"
	Cancel     Kind = "cancel"
	Reschedule Kind = "reschedule"
	Get        Kind = "get" // GET /v1/bookings/{id}
)

// Outcome is how an operation ended, from the client's side.
type Outcome string

// Outcomes.
const (
	// OK: a 2xx answer; the operation took effect.
	OK Outcome = "ok"
	// Fail: a definite refusal (4xx, or a 503 the server guarantees had no
	// effect is still Unknown: see Unknown); the operation took no effect.
	Fail Outcome = "fail"
	// Unknown: no answer, a timeout, or a 5xx: it may or may not have taken effect.
	Unknown Outcome = "unknown"
)

// Op is one client operation against one provider's calendar.
type Op struct {
	// ID numbers operations in invocation order.
	ID     int    `json:"id"`
	Client int    `json:"client"`
	Node   string `json:"node"` // node the request was sent to
	Kind   Kind   `json:"kind"`

	ProviderID string `json:"provider_id"`
	Vertical   string `json:"vertical,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	// BookingID: for Cancel, Reschedule and Get, the booking acted on; for Book,
	// the id the server answered (empty unless OK).
	BookingID string `json:"booking_id,omitempty"`
	// Start and End of the requested interval (Book, Reschedule), as blocked:
	// End includes the service's buffer.
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// IdempotencyKey the request carried (retries reuse it).
	IdempotencyKey string `json:"idempotency_key,omitempty"`

	Call    time.Time `json:"call"`
	Return  time.Time `json:"return,omitzero"` // zero when Outcome is Unknown
	Outcome Outcome   `json:"outcome"`
	// Status and Code are the HTTP status and problem code, when there was an answer.
	Status int    `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
	// Observed, for a Get answered OK: the booking's status ("confirmed",
	// "cancelled") and its start and end as read (End includes the buffer).
	ObservedStatus string    `json:"observed_status,omitempty"`
	ObservedStart  time.Time `json:"observed_start,omitzero"`
	ObservedEnd    time.Time `json:"observed_end,omitzero"`
}

// Recorder collects operations from concurrent clients. The zero value is not
// usable; use New.
type Recorder struct {
	mu  sync.Mutex
	ops []Op
}

// New returns an empty recorder.
func New() *Recorder { return &Recorder{} }

// Invoke records the start of op (its Call time is set now if zero) and returns
// its id, to pass to Complete.
func (r *Recorder) Invoke(op Op) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.ID = len(r.ops)
	if op.Call.IsZero() {
		op.Call = time.Now()
	}
	op.Outcome = Unknown
	r.ops = append(r.ops, op)
	return op.ID
}

// Complete records how operation id ended; fill changes the recorded op (set
// Outcome, Status, Code, BookingID, Observed*). An Unknown outcome keeps a zero
// Return time. Complete is never called for an operation whose client vanished:
// it stays Unknown.
func (r *Recorder) Complete(id int, fill func(*Op)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op := &r.ops[id]
	fill(op)
	if op.Outcome != Unknown && op.Return.IsZero() {
		op.Return = time.Now()
	}
	if op.Outcome == Unknown {
		op.Return = time.Time{}
	}
}

// Ops returns a copy of every operation recorded so far, in invocation order.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Write saves ops as JSON lines.
func Write(w io.Writer, ops []Op) error {
	enc := json.NewEncoder(w)
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile saves ops as JSON lines to path.
func WriteFile(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, ops); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Load reads JSON lines written by Write.
func Load(r io.Reader) ([]Op, error) {
	var ops []Op
	dec := json.NewDecoder(r)
	for dec.More() {
		var op Op
		if err := dec.Decode(&op); err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}
