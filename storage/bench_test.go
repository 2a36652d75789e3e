package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// BenchmarkPropose measures CreateBooking throughput and latency through a
// single-node store on loopback TCP (raft log fdatasynced per batch, fsm.db in
// the background), with 1, 16 and 256
// concurrent proposers, each on its own provider or all on one hot provider
// (non-overlapping 30-minute slots, so every command succeeds).
//
//	go test -bench BenchmarkPropose -run '^$' ./storage/
func BenchmarkPropose(b *testing.B) {
	for _, hot := range []bool{false, true} {
		for _, procs := range []int{1, 16, 256} {
			mode := "own-provider"
			if hot {
				mode = "hot-provider"
			}
			b.Run(fmt.Sprintf("%s/proposers=%d", mode, procs), func(b *testing.B) {
				s := st.MustOpen(b, st.Config(b))
				benchPropose(b, s, s, procs, hot, false)
			})
		}
	}
}

// BenchmarkProposeFSMSync is BenchmarkPropose (own providers, one node) with
// fsm.db fsynced on every commit (FSMSyncInterval -1, the discipline before
// issue 11) and in the background (the default): the cost of the FSM's fsync.
//
//	go test -bench BenchmarkProposeFSMSync -run '^$' -count 6 ./storage/ | benchstat -col /fsm-sync -
func BenchmarkProposeFSMSync(b *testing.B) {
	for _, sync := range []string{"every-commit", "background"} {
		for _, procs := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("fsm-sync=%s/proposers=%d", sync, procs), func(b *testing.B) {
				cfg := st.Config(b)
				if sync == "every-commit" {
					cfg.FSMSyncInterval = -1
				}
				s := st.MustOpen(b, cfg)
				benchPropose(b, s, s, procs, false, false)
			})
		}
	}
}

// BenchmarkProposeThreeNodes is BenchmarkPropose (own providers) on a
// 3-voter group over real TCP on loopback (127.0.0.1, port 0; LocalConfig,
// fsync on), proposing on the leader, and on a follower whose proposals are
// forwarded in process (storagetest.Router) to the leader's ProposeLocal.
//
//	go test -bench BenchmarkProposeThreeNodes -run '^$' ./storage/
func BenchmarkProposeThreeNodes(b *testing.B) {
	for _, via := range []string{"leader", "follower"} {
		for _, procs := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("via=%s/proposers=%d", via, procs), func(b *testing.B) {
				cfg := storage.LocalConfig()
				cfg.Logger = st.Logger()
				stores := st.MustOpenTCPCluster(b, 3, cfg)
				st.NewRouter(stores...)
				target := stores[0]
				if via == "follower" {
					target = stores[1]
				}
				benchPropose(b, stores[0], target, procs, false, false)
			})
		}
	}
}

// BenchmarkProposeAudit is BenchmarkPropose (own providers, one node, fsync
// on) with and without an audit record on every booking: the cost of the
// psychology vertical's audit chain (the record is appended, hashed and
// indexed in the same bbolt transaction as the booking).
//
//	go test -bench BenchmarkProposeAudit -run '^$' -count 6 ./storage/ | benchstat -
func BenchmarkProposeAudit(b *testing.B) {
	for _, audit := range []bool{false, true} {
		for _, procs := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("audit=%v/proposers=%d", audit, procs), func(b *testing.B) {
				s := st.MustOpen(b, st.Config(b))
				benchPropose(b, s, s, procs, false, audit)
			})
		}
	}
}

// BenchmarkApplyAudit applies batches of 64 bookings to an FSM (no Raft, no
// fsync between batches beyond bbolt's commit) with and without an audit
// record each: the CPU and write cost of the chain alone.
//
//	go test -bench BenchmarkApplyAudit -run '^$' -count 6 ./storage/ | benchstat -
func BenchmarkApplyAudit(b *testing.B) {
	for _, audit := range []bool{false, true} {
		b.Run(fmt.Sprintf("audit=%v", audit), func(b *testing.B) {
			f, err := storage.OpenTestFSM(filepath.Join(b.TempDir(), "fsm.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			f.Apply(1, mustMarshal(b, st.CreateProvider(st.Provider("p"))))
			const batch = 64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cmds := make([]*bookingv1.Command, batch)
				for j := range cmds {
					n := i*batch + j
					off := time.Duration(n) * 30 * time.Minute
					cmds[j] = st.CreateBooking(st.Booking(fmt.Sprint("b", n), "p", off, off+25*time.Minute, off+30*time.Minute))
					if audit {
						cmds[j].Audit = auditRecord(cmds[j])
					}
				}
				f.Apply(uint64(i+2), mustMarshal(b, cmds...))
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "bookings/s")
		})
	}
}

// auditRecord is the record the edge puts on a psychology booking.
func auditRecord(cmd *bookingv1.Command) []*bookingv1.AuditRecord {
	id := cmd.GetCreateBooking().GetBooking().GetId()
	return []*bookingv1.AuditRecord{{Subject: "cli-ana", Role: "client", Action: "booking.create", Object: id, Node: "ba-1"}}
}

// benchPropose creates the providers through leader, then proposes b.N
// bookings through s, each with an audit record when audit is set.
func benchPropose(b *testing.B, leader, s *storage.Store, procs int, hot, audit bool) {
	ctx := context.Background()
	for p := range procs {
		if !hot || p == 0 {
			mustPropose(b, leader, st.CreateProvider(st.Provider(fmt.Sprint("p", p))))
		}
	}
	startIndex := leader.Stats().LastLogIndex
	var (
		next      atomic.Int64
		wg        sync.WaitGroup
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		failed    atomic.Value
	)
	b.ResetTimer()
	begin := time.Now()
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			provider := fmt.Sprint("p", p)
			if hot {
				provider = "p0"
			}
			local := make([]time.Duration, 0, b.N/procs+1)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					break
				}
				off := time.Duration(i) * 30 * time.Minute
				cmd := st.CreateBooking(st.Booking(fmt.Sprint("b", i), provider, off, off+25*time.Minute, off+30*time.Minute))
				if audit {
					cmd.Audit = auditRecord(cmd)
				}
				t0 := time.Now()
				if _, err := s.Propose(ctx, cmd); err != nil {
					failed.Store(err)
					break
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(latencies)
	pct := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds())
	}
	entries := leader.Stats().LastLogIndex - startIndex
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
	if entries > 0 {
		b.ReportMetric(float64(b.N)/float64(entries), "cmds/entry")
	}
}
