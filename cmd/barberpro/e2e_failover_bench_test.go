package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/load"
)

// Test_Cluster_FailoverTimes measures, over BARBERPRO_FAILOVER_TRIALS fresh
// 5-process clusters (skipped when unset), the time from kill -9 of the ar Raft
// leader, and of the node hosting a hot calendar, to the first successful booking
// sent after the kill, and logs the medians. It is a measurement, not a pass/fail
// timing assertion (the machine is shared and noisy):
//
//	BARBERPRO_FAILOVER_TRIALS=5 go test -run Cluster_FailoverTimes -v ./cmd/barberpro/
func Test_Cluster_FailoverTimes(t *testing.T) {
	trials, _ := strconv.Atoi(os.Getenv("BARBERPRO_FAILOVER_TRIALS"))
	if trials <= 0 {
		t.Skip("set BARBERPRO_FAILOVER_TRIALS to measure failover times")
	}
	var leaderKill, hostKill []time.Duration
	ipBase := 186 // each trial takes five fresh loopback IPs (186..235)
	for range trials {
		for _, what := range []string{"leader", "host"} {
			d := failoverTrial(t, ipBase, what)
			ipBase += 5
			if what == "leader" {
				leaderKill = append(leaderKill, d)
			} else {
				hostKill = append(hostKill, d)
			}
		}
	}
	slices.Sort(leaderKill)
	slices.Sort(hostKill)
	t.Logf("kill -9 of the ar leader → next booking: median %v, all %v", leaderKill[len(leaderKill)/2], leaderKill)
	t.Logf("kill -9 of the calendar's host → next booking: median %v, all %v", hostKill[len(hostKill)/2], hostKill)
}

// failoverTrial starts a cluster, books a Córdoba provider's calendar (hosted on
// cba-1, which is not the leader) through ros-1 and us-1, kills either the ar
// leader (ba-1, which bootstrapped) or cba-1, and returns the time to the next
// booking sent after the kill.
func failoverTrial(t *testing.T, ipBase int, what string) time.Duration {
	t.Helper()
	c, _ := startFiveCities(t, ipBase)
	defer c.KillAll()
	waitVoters(t, c, "ar", 4) // a kill before the promotions would measure a lost quorum
	ctx := context.Background()
	prov, err := cli(c.Procs[2]).CreateProvider(ctx, load.LoadProvider("cordoba", 0), "")
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation(prov.Timezone)
	now := time.Now().In(loc)
	b := &booker{acked: map[string]string{}, prov: *prov, base: time.Date(now.Year(), now.Month(), now.Day()+2, 0, 0, 0, 0, loc)}
	b.targets = []*client.Client{cli(c.ByID("ros-1")), cli(c.ByID("us-1"))}
	runCtx, stop := context.WithCancel(ctx)
	wg := b.run(runCtx, 4)
	defer func() { stop(); wg.Wait() }()
	time.Sleep(time.Second)
	victim := "ba-1"
	if what == "host" {
		victim = "cba-1"
	}
	if pl, err := cli(c.ByID("us-1")).Placement(ctx, prov.ID); err != nil || pl.Node != "cba-1" {
		t.Fatalf("the Córdoba calendar is placed on %+v (%v), want cba-1", pl, err)
	}
	if st, err := cli(c.ByID("us-1")).Status(ctx); err != nil || leaderOf(st, "ar") != "ba-1" {
		t.Fatalf("ar leader %q (%v), want ba-1", leaderOf(st, "ar"), err)
	}
	t0 := time.Now()
	c.ByID(victim).Kill()
	return b.waitBookingAfter(t, t0, 30*time.Second)
}
