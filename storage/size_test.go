package storage_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestStoreSize_SteadyLoad measures the store's files under a steady booking
// load, with compaction (short TTL and retention) and without. It runs only
// when STORAGE_SIZE_DURATION is set (e.g. 2m: each run lasts that long):
//
//	STORAGE_SIZE_DURATION=2m go test -run TestStoreSize_SteadyLoad -v -timeout 20m ./storage/
//
// Load: STORAGE_SIZE_RATE bookings/s (default 200), each one a keyed
// CreateBooking (an "auto:" key, as the edge sends) followed by an unkeyed
// CancelBooking, on one node with LocalConfig's snapshot settings (or
// DefaultConfig's with STORAGE_SIZE_PRESET=default). With compaction:
// IdempotencyTTL and CancelledRetention 20s, CompactInterval 5s. It logs
// fsm.db, raft.db, raft-log/ and snapshots/ sizes and the record counts every 10s.
func TestStoreSize_SteadyLoad(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("STORAGE_SIZE_DURATION"))
	if err != nil {
		t.Skip("set STORAGE_SIZE_DURATION (e.g. 2m) to measure the store's size under a steady load")
	}
	rate := 200
	if v := os.Getenv("STORAGE_SIZE_RATE"); v != "" {
		if _, err := fmt.Sscan(v, &rate); err != nil || rate <= 0 {
			t.Fatalf("STORAGE_SIZE_RATE=%q", v)
		}
	}
	for _, mode := range []string{"compaction", "no-compaction"} {
		t.Run(mode, func(t *testing.T) {
			cfg := st.Config(t)
			if os.Getenv("STORAGE_SIZE_PRESET") == "default" {
				d := storage.DefaultConfig()
				cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = d.SnapshotThreshold, d.SnapshotInterval, d.TrailingLogs
			}
			if mode == "compaction" {
				cfg.IdempotencyTTL, cfg.CancelledRetention, cfg.CompactInterval = 20*time.Second, 20*time.Second, 5*time.Second
			} else {
				cfg.CompactInterval = -1
			}
			s := st.MustOpen(t, cfg)
			measureSteadyLoad(t, s, cfg.DataDir, dur, rate)
		})
	}
}

func measureSteadyLoad(t *testing.T, s *storage.Store, dir string, dur time.Duration, rate int) {
	ctx := context.Background()
	const providers = 50
	for i := range providers {
		if _, err := s.Propose(ctx, st.CreateProvider(st.Provider(fmt.Sprintf("p%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	var made, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	work := make(chan int, rate)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := fmt.Sprintf("p%d", i%providers)
				start := time.Duration(i/providers) * time.Hour
				b := st.Booking(fmt.Sprintf("bkg_%08d", i), p, start, start+30*time.Minute, start+40*time.Minute)
				b.ClientId = fmt.Sprintf("client%d", i%1000)
				create := st.WithKey(st.CreateBooking(b), "auto:"+b.Id, "sha256-of-the-request-body-0123456789")
				create.ProposedAtMs = 0
				if _, err := s.Propose(ctx, create); err != nil {
					failed.Add(1)
					continue
				}
				cancel := st.CancelBooking(b.Id)
				cancel.ProposedAtMs = 0
				if _, err := s.Propose(ctx, cancel); err != nil {
					failed.Add(1)
					continue
				}
				made.Add(1)
			}
		}()
	}
	go func() {
		defer close(work)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			select {
			case work <- i:
			case <-stop:
				return
			}
		}
	}()
	begin := time.Now()
	report := func() {
		c, err := storage.BucketCounts(s)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("t=%4.0fs booked+cancelled=%6d failed=%d  fsm.db=%6.2f MiB raft.db=%6.2f MiB raft-log=%6.2f MiB snapshots=%6.2f MiB  bookings=%6d idempotency=%6d client_bookings=%6d",
			time.Since(begin).Seconds(), made.Load(), failed.Load(),
			mib(fileSize(filepath.Join(dir, storage.FSMFile))), mib(fileSize(filepath.Join(dir, storage.RaftFile))),
			mib(dirSize(filepath.Join(dir, storage.RaftLogDir))),
			mib(dirSize(filepath.Join(dir, storage.SnapshotsDir))),
			c["bookings"], c["idempotency"], c["client_bookings"])
	}
	every := time.NewTicker(10 * time.Second)
	defer every.Stop()
	end := time.After(dur)
loop:
	for {
		select {
		case <-every.C:
			report()
		case <-end:
			break loop
		}
	}
	close(stop)
	wg.Wait()
	report()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
