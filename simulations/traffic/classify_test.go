package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/history"
)

func TestClassify_OutcomeOfEachAnswer(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	cases := []struct {
		name string
		err  error
		want history.Outcome
		code string
	}{
		{"ok", nil, history.OK, ""},
		{"409", &client.Problem{Status: 409, Code: "slot_unavailable"}, history.Fail, "slot_unavailable"},
		{"503", &client.Problem{Status: 503, Code: "jurisdiction_unavailable"}, history.Unknown, "jurisdiction_unavailable"},
		{"never connected", fmt.Errorf("post: %w", dial), history.Fail, "unreachable"},
		{"reset after sending", fmt.Errorf("post: %w", read), history.Unknown, "transport"},
		{"timeout", fmt.Errorf("post: %w", context.DeadlineExceeded), history.Unknown, "timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, _, code := Classify(c.err)
			if o != c.want || code != c.code {
				t.Fatalf("Classify(%v) = %s %q, want %s %q", c.err, o, code, c.want, c.code)
			}
		})
	}
}
