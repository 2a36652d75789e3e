package check

import (
	"time"

	"github.com/barberpro/edge/simulations/history"
)

// t0 is when the test histories start; day is the calendar day they book.
var (
	t0  = time.Date(2030, 1, 7, 12, 0, 0, 0, time.UTC)
	day = time.Date(2030, 2, 1, 10, 0, 0, 0, time.UTC)
)

// at is t0 plus ms milliseconds: an operation's call or return time.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// m is day plus min minutes: a calendar time.
func m(min int) time.Time { return day.Add(time.Duration(min) * time.Minute) }

const prov = "prov-1"

// hist numbers ops in the order given (their invocation order) and gives each its
// own client unless one was set.
func hist(ops ...history.Op) []history.Op {
	out := make([]history.Op, len(ops))
	for i, op := range ops {
		op.ID = i
		if op.Client == 0 {
			op.Client = i
		}
		if op.ProviderID == "" {
			op.ProviderID = prov
		}
		out[i] = op
	}
	return out
}

func book(start, end int, key string) history.Op {
	return history.Op{Kind: history.Book, Start: m(start), End: m(end), IdempotencyKey: key}
}

func cancelOf(id string) history.Op { return history.Op{Kind: history.Cancel, BookingID: id} }

func reschedule(id string, start, end int) history.Op {
	return history.Op{Kind: history.Reschedule, BookingID: id, Start: m(start), End: m(end)}
}

func get(id string) history.Op { return history.Op{Kind: history.Get, BookingID: id} }

// ok answers op 2xx between call and ret; for a Book, id is the booking's id.
func ok(op history.Op, call, ret int, id string) history.Op {
	op.Call, op.Return, op.Outcome, op.Status = at(call), at(ret), history.OK, 200
	if op.Kind == history.Book {
		op.BookingID, op.Status = id, 201
	}
	return op
}

// fail refuses op.
func fail(op history.Op, call, ret, status int, code string) history.Op {
	op.Call, op.Return, op.Outcome, op.Status, op.Code = at(call), at(ret), history.Fail, status, code
	return op
}

// conflict refuses op with 409 slot_unavailable.
func conflict(op history.Op, call, ret int) history.Op {
	return fail(op, call, ret, 409, codeSlotUnavailable)
}

// lost is op with no answer.
func lost(op history.Op, call int) history.Op {
	op.Call, op.Outcome = at(call), history.Unknown
	return op
}

// seen is a Get answered with the booking's status and interval.
func seen(op history.Op, call, ret int, status string, start, end int) history.Op {
	op = ok(op, call, ret, "")
	op.ObservedStatus, op.ObservedStart, op.ObservedEnd = status, m(start), m(end)
	return op
}

func client(op history.Op, c int) history.Op {
	op.Client = c
	return op
}
