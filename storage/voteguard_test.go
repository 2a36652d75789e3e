package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestWipedVoterDoesNotVote is finding 3 of the "one history" issue: voters A B
// C; C is cut off while W commits on A and B; B's disk is wiped and B comes
// back empty at the same address; A crashes; C (without W) asks B for its vote.
// raft grants any vote from an empty configuration, so C used to win and W was
// lost. Behind the vote guard the wiped B does not vote: C cannot win, and once
// A is back the group elects a leader that has W.
func TestWipedVoterDoesNotVote(t *testing.T) {
	stores, trans := st.MustOpenInmemCluster(t, 3)
	a, b, c := stores[0], stores[1], stores[2] // a leads
	ta, tb, tc := trans[0], trans[1], trans[2]
	ctx := context.Background()
	mustPropose(t, a, st.CreateProvider(st.Provider("p")))

	// C is cut off; W commits on A and B.
	cut(ta, tc)
	cut(tb, tc)
	w := mustPropose(t, a, st.CreateBooking(st.Booking("w", "p", 0, time.Hour, time.Hour)))
	if w.Code.String() != "RESULT_CODE_OK" {
		t.Fatalf("W: %v", w)
	}

	// B's disk is wiped: a new, empty store with the same id at the same address.
	bAddr, bID := tb.LocalAddr(), b.ID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, tb2 := raft.NewInmemTransport(bAddr)
	cfg := storage.LocalConfig()
	cfg.NodeID, cfg.Transport, cfg.Logger = string(bID), tb2, st.Logger()
	st.MustOpen(t, cfg)

	// A crashes (cut off from everyone, for good); C and the wiped B meet.
	cut(ta, tc)
	cut(ta, tb2)
	link(tb2, tc)

	// C must not become leader: it lacks W and the only vote it could get is
	// the wiped B's. Several election timeouts pass.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if c.IsLeader() {
			_, err := c.Booking(ctx, "w")
			t.Fatalf("C became leader with the vote of a wiped server (W on C: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A comes back: a leader with W is elected, and W is readable through it.
	link(ta, tc)
	link(ta, tb2)
	leader := st.WaitLeader(t, a, c)
	if err := leader.LinearizableRead(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Booking(ctx, "w"); err != nil {
		t.Fatalf("acknowledged W lost: %v", err)
	}
}

func cut(x, y *raft.InmemTransport) {
	x.Disconnect(y.LocalAddr())
	y.Disconnect(x.LocalAddr())
}

func link(x, y *raft.InmemTransport) {
	x.Connect(y.LocalAddr(), y)
	y.Connect(x.LocalAddr(), x)
}
