package main

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/load"
)

// Test_Cluster_WipedFounderRejoinsAsANewServer is finding 1 of the "one
// history" issue, with real processes: ba-1 founded ar with `--bootstrap` and no
// --join, as the README starts it. It is killed -9, its data dir wiped, and the
// same command run again. It must rejoin ar — one cluster id, one leader —
// as a new server (a new disk id; its old entry removed), promoted to voter
// once caught up, and serve every booking acknowledged before, never found a
// group of its own.
func Test_Cluster_WipedFounderRejoinsAsANewServer(t *testing.T) {
	c, _ := startFiveCities(t, 141)
	ctx := context.Background()
	ba, cba := c.ByID("ba-1"), c.ByID("cba-1")
	prov, err := cli(cba).CreateProvider(ctx, load.LoadProvider("buenos-aires", 0), "")
	if err != nil {
		t.Fatal(err)
	}
	slots := firstSlots(t, cli(cba), *prov, 6)
	acked := map[string]string{}
	for _, s := range slots[:4] {
		b, err := cli(cba).Book(ctx, client.BookingRequest{ProviderID: prov.ID, ServiceID: prov.Services[0].ID, ClientID: "c-" + s[:10], Start: s}, "")
		if err != nil {
			t.Fatal(err)
		}
		acked[b.ID] = s
	}
	var cid, oldDisk string
	if !waitFor(20*time.Second, func() bool {
		st, err := cli(cba).Status(ctx)
		g := groupOf(st, "ar")
		cid, oldDisk = g.ClusterID, diskOf(g, "ba-1")
		return err == nil && cid != "" && oldDisk != "" && len(clusterIDs(g)) == 1
	}) {
		st, _ := cli(cba).Status(ctx)
		t.Fatalf("ar has no single cluster id before the fault: %+v", groupOf(st, "ar"))
	}

	// Every ar node a voter first: killing the founder while two of four are
	// still non-voters leaves one voter of two, a group without quorum for
	// good (a fast run got there 0.6 s after the joins).
	waitVoters(t, c, "ar", 4)

	// kill -9, wipe, same command.
	ba.Kill()
	if err := os.RemoveAll(ba.Spec.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := ba.Start(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := ba.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}

	// Ready means caught up with ar: every acknowledged booking is there through
	// ba-1 at once (a founder of its own group would answer 404).
	for id, s := range acked {
		got, err := cli(ba).Booking(ctx, id)
		if err != nil || got.Start != s {
			t.Fatalf("acknowledged %s via the wiped founder: %+v %v", id, got, err)
		}
	}

	// One history: ba-1 is in ar under a new disk, its old entry gone, promoted.
	var last client.GroupStatus
	if !waitFor(30*time.Second, func() bool {
		st, err := cli(cba).Status(ctx)
		if err != nil {
			return false
		}
		last = groupOf(st, "ar")
		disk := diskOf(last, "ba-1")
		ids := clusterIDs(last)
		// The events come from each member's own view: a status whose view
		// of the leader timed out (the group in flux) has none of the
		// leader's, so they are waited for like the rest.
		return disk != "" && disk != oldDisk && len(ids) == 1 && ids[0] == cid &&
			roleOf(last, "ba-1") != "nonvoter" && roleOf(last, "ba-1") != "joining" && !hasDisk(last, "ba-1", oldDisk) &&
			hasEvent(last, "its disk is new") && hasEvent(last, "promoted ba-1@")
	}) {
		t.Fatalf("30 s after the wiped founder came back, ar is %+v (cluster id before %s, old disk %s; the events must say the disk was replaced and the new server promoted)", last, cid, oldDisk)
	}
	own, err := cli(ba).Status(ctx)
	if err != nil || groupOf(own, "ar").ClusterID != cid {
		t.Fatalf("ba-1's own view: %+v %v, want cluster id %s", groupOf(own, "ar"), err, cid)
	}

	// The slots of acknowledged bookings stay taken; new bookings through ba-1
	// work.
	_, err = cli(ba).Book(ctx, client.BookingRequest{ProviderID: prov.ID, ServiceID: prov.Services[0].ID, ClientID: "intruder", Start: slots[0]}, "")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 409 {
		t.Fatalf("booking a taken slot via the wiped founder: %v, want 409", err)
	}
	if _, err := cli(ba).Book(ctx, client.BookingRequest{ProviderID: prov.ID, ServiceID: prov.Services[0].ID, ClientID: "after", Start: slots[5]}, ""); err != nil {
		t.Fatalf("booking a free slot via the wiped founder: %v", err)
	}
}

// Test_Cluster_DeadVoterIsRemovedAndRejoins: a voter dead past the dead-server
// timeout is removed by the leader — logged and listed in status events — and,
// when it comes back on its own disk, is added again as a non-voter and promoted
// once caught up; it then serves bookings.
func Test_Cluster_DeadVoterIsRemovedAndRejoins(t *testing.T) {
	c, _ := startFiveCities(t, 146, "BARBERPRO_DEAD_SERVER_TIMEOUT=4s")
	ctx := context.Background()
	lp, cba := c.ByID("lp-1"), c.ByID("cba-1")
	var last client.GroupStatus
	status := func() client.GroupStatus {
		st, _ := cli(cba).Status(ctx)
		last = groupOf(st, "ar")
		return last
	}
	if !waitFor(20*time.Second, func() bool { r := roleOf(status(), "lp-1"); return r == "follower" || r == "leader" }) {
		t.Fatalf("lp-1 never became a voter: %+v", last)
	}
	lp.Kill()
	if !waitFor(30*time.Second, func() bool { return hasEvent(status(), "removed voter lp-1@") && !hasMember(last, "lp-1") }) {
		t.Fatalf("30 s after lp-1 died (dead-server timeout 4 s), ar is %+v", last)
	}
	if err := lp.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool {
		g := status()
		r := roleOf(g, "lp-1")
		return (r == "follower" || r == "leader") && hasEvent(g, "added lp-1 as a non-voter") && hasEvent(g, "promoted lp-1@")
	}) {
		t.Fatalf("30 s after the removed lp-1 came back, ar is %+v", last)
	}
	prov, err := cli(lp).CreateProvider(ctx, load.LoadProvider("la-plata", 0), "")
	if err != nil {
		t.Fatal(err)
	}
	slot := firstSlots(t, cli(lp), *prov, 1)[0]
	if _, err := cli(lp).Book(ctx, client.BookingRequest{ProviderID: prov.ID, ServiceID: prov.Services[0].ID, ClientID: "back", Start: slot}, ""); err != nil {
		t.Fatalf("booking through the node that rejoined: %v", err)
	}
}

func hasMember(g client.GroupStatus, id string) bool {
	for _, m := range g.Members {
		if m.ID == id {
			return true
		}
	}
	return false
}

func diskOf(g client.GroupStatus, id string) string {
	for _, m := range g.Members {
		if m.ID == id && m.Role != "unreachable" {
			return m.Disk
		}
	}
	return ""
}

func hasDisk(g client.GroupStatus, id, disk string) bool {
	for _, m := range g.Members {
		if m.ID == id && m.Disk == disk {
			return true
		}
	}
	return false
}

func roleOf(g client.GroupStatus, id string) string {
	for _, m := range g.Members {
		if m.ID == id && m.Role != "unreachable" {
			return m.Role
		}
	}
	return ""
}

// clusterIDs lists the distinct non-empty cluster ids a group's members report.
func clusterIDs(g client.GroupStatus) []string {
	var out []string
	for _, m := range g.Members {
		if m.ClusterID != "" && !slices.Contains(out, m.ClusterID) {
			out = append(out, m.ClusterID)
		}
	}
	return out
}

func hasEvent(g client.GroupStatus, sub string) bool {
	for _, e := range g.Events {
		if strings.Contains(e, sub) {
			return true
		}
	}
	return false
}
