//go:build !race

// Two nodes (protoactor remotes) in one process: built without -race, like the
// other multi-remote tests (see attack_multinode_test.go).

package cluster_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/barberpro/edge/actors/session"
	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/placement"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// Test_Sessions_KindActivatesOnlyInItsJurisdiction: an ar node and a us node
// each gossip their own jurisdiction's session kind only (session-ar,
// session-us), so a session of an ar booking activates on the ar node, where
// it is served, and the us node's sessions never reach ar records.
func Test_Sessions_KindActivatesOnlyInItsJurisdiction(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.111" })
	u := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join = "us-1", "us-east", "127.0.0.112", []string{a.GossipAddr()}
	})

	// An observer (gossip key only) reads the kinds each node hosts.
	oc := membership.LocalConfig()
	oc.Meta = membership.Meta{NodeID: "obs", BootID: membership.NewBootID(), City: "us-east", Jurisdiction: "us"}
	oc.BindAddr, oc.BindPort, oc.Join, oc.SecretKey = "127.0.0.113", 0, []string{a.GossipAddr()}, clustertest.GossipKey(t)
	oc.Logger = clustertest.Logger()
	obs, err := membership.New(oc)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obs.Shutdown() })
	kinds := map[string][]string{}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && (len(kinds["ba-1"]) == 0 || len(kinds["us-1"]) == 0); time.Sleep(100 * time.Millisecond) {
		for _, m := range obs.Members() {
			kinds[m.NodeID] = m.Kinds
		}
	}
	want := map[string][]string{
		"ba-1": {cluster.CalendarKind("ar"), cluster.SessionKind("ar")},
		"us-1": {cluster.CalendarKind("us"), cluster.SessionKind("us")},
	}
	for node, w := range want {
		// Jurisdiction-bound kinds only (protoactor adds its own "prototopic").
		got := slices.DeleteFunc(slices.Clone(kinds[node]), func(k string) bool { return placement.KindJurisdiction(k) == "" })
		slices.Sort(got)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Fatalf("%s hosts kinds %v, want %v", node, got, w)
		}
	}

	b := psychSession(t, a, "prv_buenos-aires_psy3", "bkg_buenos-aires_psy3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	get := func() *calendarv1.SessionRequest {
		return &calendarv1.SessionRequest{BookingId: b.GetId(), Subject: b.GetClientId(), Role: "client",
			Op: &calendarv1.SessionRequest_Get{Get: &calendarv1.GetSession{}}}
	}
	rep, err := a.Sessions().Do(ctx, get())
	if err != nil || rep.GetBooking().GetSessionStatus() != bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED {
		t.Fatalf("the ar node's session of an ar booking: %v %v", rep, err)
	}
	if _, err := u.Sessions().Do(ctx, get()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the us node's sessions reached an ar booking: %v, want ErrNotFound", err)
	}
}
