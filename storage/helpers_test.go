package storage_test

import (
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/seal"
)

// mustMarshal encodes cmd as a one-command CommandBatch log payload.
func mustMarshal(t testing.TB, cmds ...*bookingv1.Command) []byte {
	t.Helper()
	b, err := proto.Marshal(&bookingv1.CommandBatch{Commands: cmds})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compactLogNow has the leader keep only 2 log entries and take a snapshot, so
// a follower that missed entries can catch up only by installing it.
func compactLogNow(t testing.TB, leader *storage.Store) {
	t.Helper()
	rc := leader.Raft().ReloadableConfig()
	rc.TrailingLogs = 2
	if err := leader.Raft().ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
	if err := leader.Raft().Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
}

// newKEK makes a jurisdiction's key-encryption key file in a temp dir and
// loads it (which creates its erasure ledger beside it).
func newKEK(t testing.TB) (path string, kek *seal.KEK) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "ar.kek")
	if _, err := seal.InitKEK(path); err != nil {
		t.Fatal(err)
	}
	kek, err := seal.LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, kek
}
