package storage_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/seal"
	st "github.com/barberpro/edge/storage/storagetest"
)

// clientKeyInSnapshot reads the client's ClientKey out of the newest snapshot
// of dir, as someone holding a copy of that snapshot (a backup) would.
func clientKeyInSnapshot(t *testing.T, dir, clientID string) *bookingv1.ClientKey {
	t.Helper()
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(dir, storage.SnapshotsDir), 5, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		t.Fatalf("no snapshot in %s: %v", dir, err)
	}
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(t.TempDir(), "restored.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ck bookingv1.ClientKey
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("client_keys"))
		if b == nil {
			return errors.New("no client_keys bucket in the snapshot")
		}
		v := b.Get([]byte(clientID))
		if v == nil {
			return errors.New("no key of the client in the snapshot")
		}
		return proto.Unmarshal(v, &ck)
	})
	if err != nil {
		t.Fatal(err)
	}
	return &ck
}

// TestErasure_CryptoShreddingHoldsInAReplicatedLog is issue 9's erasure test at
// the store: a 3-node group holds a psychology client's wrapped data key and a
// note sealed under it; a snapshot is taken (what a backup copies). After
// EraseHealthData, within the shred bound (ShredWithin + a shred), no file of
// any node's data dir — fsm.db, raft.db, snapshots — holds the wrapped key or
// the sealed note, plain or base64 (they did before: the control); and the key
// read out of the snapshot taken before the erasure cannot be unwrapped with
// the jurisdiction's KEK, whose erasure ledger every node appended to.
func TestErasure_CryptoShreddingHoldsInAReplicatedLog(t *testing.T) {
	kekPath, kek := newKEK(t)
	cfg := storage.LocalConfig()
	cfg.CompactInterval = -1
	cfg.ShredWithin = 500 * time.Millisecond
	cfg.Jurisdiction = "ar"
	cfg.OnErase = func(clientID string, keyIDs []string) {
		if err := kek.RecordErasure(clientID, keyIDs...); err != nil {
			t.Errorf("record erasure: %v", err)
		}
	}
	stores, _ := st.MustOpenInmemClusterWith(t, 3, cfg)
	leader := stores[0]
	const client = "cli-erased"
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	b := st.Booking("b1", "p", time.Hour, 2*time.Hour, 2*time.Hour)
	b.ClientId, b.Vertical, b.SessionStatus = client, "psychology", bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED
	mustPropose(t, leader, st.CreateBooking(b))

	dek, ck, err := kek.NewDataKey(client)
	if err != nil {
		t.Fatal(err)
	}
	ck.CreatedAtMs = st.At(-time.Hour)
	res := mustPropose(t, leader, &bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Op: &bookingv1.Command_PutClientKey{PutClientKey: &bookingv1.PutClientKey{Key: ck}}})
	if res.GetKey().GetKeyId() != ck.KeyId {
		t.Fatalf("the store kept another key: %v", res.GetKey())
	}
	note, err := dek.SealNote("b1", client, []byte("marker: the client spoke of their mother"))
	if err != nil {
		t.Fatal(err)
	}
	dek.Wipe()
	mustPropose(t, leader, &bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Op: &bookingv1.Command_PutNote{PutNote: &bookingv1.PutNote{Note: note}}})
	waitSameDigest(t, stores)
	for _, s := range stores {
		if err := s.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	}
	// The backup: a copy of node 1's snapshots taken before the erasure.
	backup := t.TempDir()
	if err := os.CopyFS(backup, os.DirFS(storage.DataDir(stores[1]))); err != nil {
		t.Fatal(err)
	}
	old := clientKeyInSnapshot(t, backup, client)
	if k, err := kek.Unwrap(old); err != nil { // control: before the erasure it unwraps
		t.Fatalf("control: the key in the backup does not unwrap before the erasure: %v", err)
	} else {
		k.Wipe()
	}

	secrets := append(needles(string(ck.Wrapped)), needles(string(note.Ciphertext))...)
	for i, s := range stores {
		if hits := filesHolding(t, storage.DataDir(s), secrets); len(hits) == 0 {
			t.Fatalf("node %d: no file holds the wrapped key or the sealed note before the erasure: the test could not fail", i)
		}
	}

	erasedAt := time.Now()
	mustPropose(t, leader, &bookingv1.Command{ProposedAtMs: time.Now().UnixMilli(), Op: &bookingv1.Command_EraseHealthData{EraseHealthData: &bookingv1.EraseHealthData{ClientId: client}}})
	bound := cfg.ShredWithin + 10*time.Second // the shred itself on a loaded 2-core machine
	for i, s := range stores {
		for {
			hits := filesHolding(t, storage.DataDir(s), secrets)
			if len(hits) == 0 {
				break
			}
			if time.Since(erasedAt) > bound {
				t.Fatalf("node %d: %s after the erasure the wrapped key or the note is still in %v", i, time.Since(erasedAt), hits)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := s.Note(context.Background(), "b1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("node %d: the note is still readable: %v", i, err)
		}
	}
	t.Logf("every data dir clean %s after the erasure", time.Since(erasedAt).Round(time.Millisecond))

	// The backup still holds the wrapped key; the KEK will not unwrap it.
	if _, err := kek.Unwrap(old); !errors.Is(err, seal.ErrErased) {
		t.Fatalf("unwrapping the erased client's key from a backup taken before the erasure: %v, want ErrErased", err)
	}
	fresh, err := seal.LoadKEK(kekPath) // a fresh node, loading the same KEK file and its ledger
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Unwrap(old); !errors.Is(err, seal.ErrErased) {
		t.Fatalf("a freshly loaded KEK unwraps the erased client's key: %v", err)
	}
}
