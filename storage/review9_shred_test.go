package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
	"github.com/hashicorp/raft"
)

// sealedClientGroup opens a 3-node group whose OnErase appends to one KEK's
// ledger, and stores a psychology booking, the client's wrapped key and a
// sealed note; every node then snapshots (each holds them in a snapshot, its
// log and fsm.db). It returns the needles of the wrapped key and the note.
func sealedClientGroup(t *testing.T, client string, shredWithin time.Duration) ([]*storage.Store, []*raft.InmemTransport, [][]byte) {
	t.Helper()
	_, kek := newKEK(t)
	cfg := storage.LocalConfig()
	cfg.CompactInterval = -1
	cfg.ShredWithin = shredWithin
	cfg.Jurisdiction = "ar"
	cfg.OnErase = func(c string, keyIDs []string) {
		_ = kek.RecordErasure(c, keyIDs...)
	}
	stores, trans := st.MustOpenInmemClusterWith(t, 3, cfg)
	leader := stores[0]
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	b := st.Booking("b1", "p", time.Hour, 2*time.Hour, 2*time.Hour)
	b.ClientId, b.Vertical, b.SessionStatus = client, "psychology", bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED
	mustPropose(t, leader, st.CreateBooking(b))
	dek, ck, err := kek.NewDataKey(client)
	if err != nil {
		t.Fatal(err)
	}
	mustPropose(t, leader, &bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Op: &bookingv1.Command_PutClientKey{PutClientKey: &bookingv1.PutClientKey{Key: ck}}})
	n, err := dek.SealNote("b1", client, []byte("review9 note"))
	if err != nil {
		t.Fatal(err)
	}
	dek.Wipe()
	mustPropose(t, leader, &bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Op: &bookingv1.Command_PutNote{PutNote: &bookingv1.PutNote{Note: n}}})
	waitSameDigest(t, stores)
	for _, s := range stores {
		if err := s.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	}
	secrets := append(needles(string(ck.Wrapped)), needles(string(n.Ciphertext))...)
	for i, s := range stores {
		if hits := filesHolding(t, storage.DataDir(s), secrets); len(hits) == 0 {
			t.Fatalf("node %d: control: no file holds the key or note before the erasure", i)
		}
	}
	return stores, trans, secrets
}

// TestShred_Review9_FollowerDownDuringErasure: a follower is cut off while
// the group erases a client and the other two shred (their logs are then
// truncated past the erasure, so the follower can only catch up by an
// InstallSnapshot). It comes back, installs the snapshot (it now holds the
// Erasure), and the group stays quiet (no new writes, as on a night with no
// bookings). Within the bound (ShredWithin + a shred, generously 10s) its
// data dir must not hold the wrapped key or the note any more.
func TestShred_Review9_FollowerDownDuringErasure(t *testing.T) {
	const client = "cli-review9"
	within := 500 * time.Millisecond
	stores, trans, secrets := sealedClientGroup(t, client, within)
	ctx := context.Background()
	cut := func(on bool) {
		for i := 0; i < 2; i++ {
			if on {
				trans[i].Disconnect(trans[2].LocalAddr())
				trans[2].Disconnect(trans[i].LocalAddr())
			} else {
				trans[i].Connect(trans[2].LocalAddr(), trans[2])
				trans[2].Connect(trans[i].LocalAddr(), trans[i])
			}
		}
	}
	cut(true)
	mustPropose(t, stores[0], &bookingv1.Command{ProposedAtMs: time.Now().UnixMilli(),
		Op: &bookingv1.Command_EraseHealthData{EraseHealthData: &bookingv1.EraseHealthData{ClientId: client}}})
	for _, s := range stores[:2] {
		// The follower among them applies the erasure after the leader
		// answered: a shred before that has nothing to drop.
		for wait := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := s.Erasure(ctx, client); err == nil {
				break
			} else if time.Now().After(wait) {
				t.Fatalf("%s never applied the erasure: %v", s.ID(), err)
			}
		}
		if err := s.ShredNow(ctx); err != nil {
			t.Fatalf("shred on %s: %v", s.ID(), err)
		}
		if hits := filesHolding(t, storage.DataDir(s), secrets); len(hits) > 0 {
			t.Fatalf("%s: control: still holds the secrets after its shred: %v", s.ID(), hits)
		}
	}
	cut(false)
	back := stores[2]
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := back.Erasure(ctx, client); err == nil {
			break
		} else if !errors.Is(err, storage.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("the follower never learnt of the erasure: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	caughtUp := time.Now()
	bound := within + 10*time.Second
	for {
		hits := filesHolding(t, storage.DataDir(back), secrets)
		if len(hits) == 0 {
			return
		}
		if time.Since(caughtUp) > bound {
			t.Fatalf("%s after the returning follower applied the erasure (snapshot installed), its data dir still holds the erased client's wrapped key or note in %v", time.Since(caughtUp).Round(time.Millisecond), hits)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestShred_Review9_RestoredSnapshotWithResidueIsShredded: a snapshot is a
// copy of the whole bbolt file, free pages included (DESIGN.md), so one taken
// after an erasure but before that node's shred still carries the erased
// key's bytes in free pages. A node that already shredded and then restores
// such a snapshot (an InstallSnapshot from a leader that had not shredded yet,
// or an operator's restore) gets the bytes back into fsm.db and snapshots/.
// Its shred loop only shreds after a restore when the FSM holds more Erasure
// records than shred.done says; here it holds the same number, so nothing
// removes them.
func TestShred_Review9_RestoredSnapshotWithResidueIsShredded(t *testing.T) {
	ctx := context.Background()
	_, kek := newKEK(t)
	cfg := st.Config(t)
	cfg.CompactInterval = -1
	cfg.ShredWithin = 4 * time.Second
	cfg.Jurisdiction = "ar"
	cfg.OnErase = func(c string, keyIDs []string) { _ = kek.RecordErasure(c, keyIDs...) }
	s := st.MustOpen(t, cfg)
	const client = "cli-review9-residue"
	mustPropose(t, s, st.CreateProvider(st.Provider("p")))
	b := st.Booking("b1", "p", time.Hour, 2*time.Hour, 2*time.Hour)
	b.ClientId, b.Vertical, b.SessionStatus = client, "psychology", bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED
	mustPropose(t, s, st.CreateBooking(b))
	dek, ck, err := kek.NewDataKey(client)
	if err != nil {
		t.Fatal(err)
	}
	mustPropose(t, s, &bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Op: &bookingv1.Command_PutClientKey{PutClientKey: &bookingv1.PutClientKey{Key: ck}}})
	n, err := dek.SealNote("b1", client, []byte("review9 residue"))
	if err != nil {
		t.Fatal(err)
	}
	dek.Wipe()
	mustPropose(t, s, &bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Op: &bookingv1.Command_PutNote{PutNote: &bookingv1.PutNote{Note: n}}})
	secrets := append(needles(string(ck.Wrapped)), needles(string(n.Ciphertext))...)

	mustPropose(t, s, &bookingv1.Command{ProposedAtMs: time.Now().UnixMilli(),
		Op: &bookingv1.Command_EraseHealthData{EraseHealthData: &bookingv1.EraseHealthData{ClientId: client}}})
	// A snapshot after the erasure, before the shred (the loop waits
	// ShredWithin/2): what a leader that has not shredded yet would send.
	fut := s.Raft().Snapshot()
	if err := fut.Error(); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := fut.Open()
	if err != nil {
		t.Fatal(err)
	}
	dirty, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	held := false
	for _, nd := range secrets {
		held = held || bytes.Contains(dirty, nd)
	}
	if !held {
		t.Skip("control: this snapshot holds no residue of the erased key or note (pages were reused); nothing to prove")
	}
	// The node shreds.
	deadline := time.Now().Add(cfg.ShredWithin + 10*time.Second)
	for len(filesHolding(t, cfg.DataDir, secrets)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("control: the node never shredded after the erasure")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// It restores the snapshot with the residue.
	if err := s.Raft().Restore(meta, bytes.NewReader(dirty), 10*time.Second); err != nil {
		t.Fatalf("restore: %v", err)
	}
	restoredAt := time.Now()
	if _, err := s.Erasure(ctx, client); err != nil {
		t.Fatalf("the restored state lost the erasure: %v", err)
	}
	for {
		hits := filesHolding(t, cfg.DataDir, secrets)
		if len(hits) == 0 {
			return
		}
		if time.Since(restoredAt) > cfg.ShredWithin+10*time.Second {
			t.Fatalf("%s after restoring a post-erasure snapshot with residue, the data dir still holds the erased client's wrapped key or note in %v",
				time.Since(restoredAt).Round(time.Millisecond), hits)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
