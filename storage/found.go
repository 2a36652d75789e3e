package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// keyClusterID is the meta key holding the group's cluster id, set once by the
// first FoundGroup entry the group applies.
var keyClusterID = []byte("cluster_id")

// ErrAlreadyFounded means Found was called on a node that already holds Raft
// state or FSM records: it belongs to a group (or did) and must not found another.
var ErrAlreadyFounded = errors.New("storage: this data dir already belongs to a group")

// NewID returns 16 random hex characters (64 bits from crypto/rand), the form of
// cluster ids and disk ids.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b[:])
}

// foundGroup applies FoundGroup: the first one sets the cluster id, later ones
// answer with the id already set. Deterministic on every replica.
func (a *applier) foundGroup(op *bookingv1.FoundGroup) *bookingv1.CommandResult {
	if op == nil {
		return invalid("found_group is empty")
	}
	if why := validID("cluster_id", op.ClusterId); why != "" {
		return invalid("%s", why)
	}
	m := a.tx.Bucket(bucketMeta)
	if v := m.Get(keyClusterID); len(v) > 0 {
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, ClusterId: string(v)}
	}
	a.putValue(bucketMeta, keyClusterID, []byte(op.ClusterId))
	return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, ClusterId: op.ClusterId}
}

// ClusterID returns the id of the group this replica belongs to, as its FSM
// holds it: "" until the replica has applied the group's FoundGroup entry (or
// received a snapshot that has it).
func (s *Store) ClusterID() string {
	var id string
	_ = s.fsm.peek(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get(keyClusterID))
		return nil
	})
	return id
}

// HasState reports whether this node holds a Raft configuration: it founded a
// group or was added to one (and has heard from its leader since).
func (s *Store) HasState() bool {
	return len(s.raft.GetConfiguration().Configuration().Servers) > 0
}

// Found founds a new group with this node as its only voter. It refuses
// (ErrAlreadyFounded) when the node holds Raft state or FSM records. Whether a
// group should be founded at all is the caller's decision (the cluster layer's
// founding rule); the group's first leader then gives it a cluster id.
func (s *Store) Found() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.HasState() || s.fsm.applied.Load() > 0 || s.ClusterID() != "" {
		return ErrAlreadyFounded
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(s.cfg.NodeID), Address: s.trans.LocalAddr()}}}
	if err := s.raft.BootstrapCluster(conf).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return ErrAlreadyFounded
		}
		return fmt.Errorf("storage: found group: %w", err)
	}
	s.logger.Info("founded a new raft group", "addr", s.trans.LocalAddr())
	return nil
}

// claimClusterID runs on a new leader: once the leader has applied what is
// committed, a group without a cluster id gets one (a FoundGroup entry with a
// fresh id; if an earlier one is still in the log, it wins and ours changes
// nothing). It gives up when leadership is lost or the store closes.
func (s *Store) claimClusterID() {
	backoff := 50 * time.Millisecond
	for !s.closed.Load() && s.IsLeader() {
		if s.ClusterID() != "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		res, err := s.ProposeLocal(ctx, &bookingv1.Command{Op: &bookingv1.Command_FoundGroup{FoundGroup: &bookingv1.FoundGroup{ClusterId: NewID()}}})
		cancel()
		if err == nil {
			s.logger.Info("group has its cluster id", "cluster_id", res.ClusterId)
			return
		}
		s.logger.Warn("claim cluster id", "err", err)
		select {
		case <-s.done:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
