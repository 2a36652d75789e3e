package cluster

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/barberpro/edge/storage/durable"

	"github.com/barberpro/edge/cluster/membership"
)

// peersFile, in the data dir, remembers the gossip addresses of the members this
// node last saw, so a restarted node finds its cluster again without --join (the
// first node of a cluster is started without one). It holds addresses only.
const peersFile = "peers.json"

// rejoinInterval is how often a node retries the peers it remembers while gossip
// does not show them.
const rejoinInterval = 2 * time.Second

// savedPeers reads the remembered gossip addresses; none if the file is missing.
func (n *Node) savedPeers() []string {
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, peersFile))
	if err != nil {
		return nil
	}
	var addrs []string
	if json.Unmarshal(b, &addrs) != nil {
		n.log.Warn("ignoring an unreadable peers file", "file", peersFile)
		return nil
	}
	return addrs
}

// savePeers writes the gossip addresses of the live members other than this one,
// atomically (temp file and rename), when they changed. Only keepPeers calls it.
func (n *Node) savePeers(members []membership.Member) {
	self := n.members.GossipAddr()
	var addrs []string
	for _, m := range members {
		if m.Addr != "" && m.Addr != self {
			addrs = append(addrs, m.Addr)
		}
	}
	if len(addrs) == 0 {
		return // alone: keep what we knew, it is our way back
	}
	slices.Sort(addrs)
	b, _ := json.Marshal(addrs)
	if string(b) == n.savedPeersJSON {
		return // gossip events are frequent (every meta change): write only changes
	}
	path := filepath.Join(n.cfg.DataDir, peersFile)
	// Durably: a peers file renamed into place before its bytes reached the
	// disk is empty after a power cut (the power-loss simulation found it), and
	// a founder restarted without --join then has no way back to its group.
	if err := durable.WriteBytes(path, 0o640, b); err != nil {
		n.log.Warn("save peers", "err", err)
		return
	}
	n.savedPeersJSON = string(b)
}

// keepPeers saves the membership on every change and keeps trying to join the
// remembered peers and the members gossip declared dead, until they answer.
func (n *Node) keepPeers(ctx context.Context, remembered []string) {
	events, unsub := n.members.Subscribe()
	defer unsub()
	tick := time.NewTicker(rejoinInterval)
	defer tick.Stop()
	n.savePeers(n.members.Members())
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
			n.savePeers(n.members.Members())
		case <-tick.C:
			live := map[string]bool{}
			for _, m := range n.members.Members() {
				live[m.Addr] = true
			}
			// Members gossip declared dead may only have been cut off (a
			// partition): memberlist stops probing them after a while, so two
			// halves of a healed split would stay apart. Knock on their door,
			// and on the remembered peers', until they answer.
			var missing []string
			for _, a := range remembered {
				if !live[a] {
					missing = append(missing, a)
				}
			}
			for _, m := range n.members.AllMembers() {
				if m.State == membership.StateDead && m.Addr != "" && !live[m.Addr] && !slices.Contains(missing, m.Addr) {
					missing = append(missing, m.Addr)
				}
			}
			if len(missing) > 0 {
				if k, _ := n.members.Join(missing); k > 0 {
					n.log.Info("rejoined gossip with members it had lost", "answered", k)
				}
			}
		}
	}
}
