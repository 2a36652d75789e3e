package storage_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestFailoverTime_TCP measures, over real TCP on loopback with
// DefaultConfig's timeouts, the time from killing the leader of a 3-node
// group (Close without handover: its connections drop, as with kill -9) to
// the next acknowledged write proposed on a survivor. Opt-in:
//
//	STORAGE_FAILOVER_TRIALS=20 go test -run TestFailoverTime_TCP -v ./storage/
func TestFailoverTime_TCP(t *testing.T) {
	trials, _ := strconv.Atoi(os.Getenv("STORAGE_FAILOVER_TRIALS"))
	if trials <= 0 {
		t.Skip("set STORAGE_FAILOVER_TRIALS to run")
	}
	var took []time.Duration
	for i := range trials {
		cfg := storage.DefaultConfig()
		cfg.CloseTransferTimeout = -1
		cfg.Logger = st.Logger()
		stores := st.MustOpenTCPCluster(t, 3, cfg)
		st.NewRouter(stores...)
		mustPropose(t, stores[0], st.CreateProvider(st.Provider("p")))
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		if err := stores[0].Close(); err != nil {
			t.Fatal(err)
		}
		cmd := st.WithKey(st.CreateBooking(st.Booking("b", "p", 0, min30, min30)), fmt.Sprint("k", i), "h")
		if _, err := stores[1].Propose(context.Background(), cmd); err != nil {
			t.Fatalf("trial %d: %v after %s", i, err, time.Since(start))
		}
		took = append(took, time.Since(start))
		t.Logf("trial %d: write acknowledged %s after leader kill", i, took[i])
	}
	slices.Sort(took)
	t.Logf("failover to next write, %d trials: min %s median %s max %s", trials, took[0], took[len(took)/2], took[len(took)-1])
}
