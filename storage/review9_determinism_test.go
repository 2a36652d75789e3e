package storage_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// randomPsychCommand draws one command of the psychology vertical (or a
// plain one) over a small id space so that commands collide, with audit
// records, idempotency keys and invalid inputs mixed in.
func randomPsychCommand(r *rand.Rand, i int) *bookingv1.Command {
	prov := []string{"p1", "p2"}[r.Intn(2)]
	client := []string{"c1", "c2", "c3"}[r.Intn(3)]
	at := time.Duration(i) * time.Minute
	var c *bookingv1.Command
	switch r.Intn(12) {
	case 0:
		c = st.CreateProvider(psyProvider(prov))
		c.ProposedAtMs = st.At(at)
	case 1:
		c = cmdAt(at, &bookingv1.VerifyProvider{ProviderId: prov, VerifiedBy: "op"})
	case 2:
		c = grant(at, consent(fmt.Sprintf("cns_ba_%d", r.Intn(4)), client, at-time.Hour))
	case 3:
		c = cmdAt(at, &bookingv1.WithdrawConsent{ConsentId: fmt.Sprintf("cns_ba_%d", r.Intn(4)), ClientId: client, Verticals: []string{psyVert}})
	case 4:
		b := session(fmt.Sprintf("b%d", r.Intn(20)), prov, client, time.Duration(r.Intn(48))*time.Hour)
		c = cmdAt(at-time.Hour, &bookingv1.CreateBooking{Booking: b, ConsentPurpose: psyPurpose, RequireVerified: r.Intn(2) == 0})
	case 5:
		start := time.Duration(r.Intn(48)) * time.Hour
		c = cmdAt(at, seriesOf(fmt.Sprintf("srs_%d", r.Intn(4)), prov, start, start+7*day, start+14*day))
		c.GetCreateSeries().Series.ClientId = client
		for _, b := range c.GetCreateSeries().Bookings {
			b.ClientId = client
		}
	case 6:
		c = cmdAt(at, &bookingv1.CancelSeries{SeriesId: fmt.Sprintf("srs_%d", r.Intn(4))})
	case 7:
		c = cmdAt(at, &bookingv1.SetSessionStatus{BookingId: fmt.Sprintf("b%d", r.Intn(20)),
			Status: bookingv1.SessionStatus(r.Intn(7))})
	case 8:
		c = cmdAt(at, &bookingv1.PutClientKey{Key: clientKey(client, fmt.Sprintf("key_%d", r.Intn(2)))})
	case 9:
		c = cmdAt(at, &bookingv1.PutNote{Note: note(fmt.Sprintf("b%d", r.Intn(20)), client, fmt.Sprintf("key_%d", r.Intn(2)), fmt.Sprintf("n%d", i))})
	case 10:
		c = cmdAt(at, &bookingv1.EraseHealthData{ClientId: client})
	default:
		c = cmdAt(at, &bookingv1.AppendAudit{})
	}
	if r.Intn(3) > 0 {
		c.Audit = append(c.Audit, &bookingv1.AuditRecord{Subject: client, Role: "client", Action: "notes.read",
			Object: fmt.Sprintf("b%d", r.Intn(20)), Node: "n1"})
	}
	if r.Intn(5) == 0 {
		c = st.WithKey(c, fmt.Sprintf("idem-%d", r.Intn(6)), fmt.Sprintf("h%d", r.Intn(2)))
	}
	if r.Intn(10) == 0 { // proposer clocks out of order
		c.ProposedAtMs -= int64(r.Intn(3600)) * 1000
	}
	return c
}

// TestFSM_Review9_DeterministicReplicas applies one random sequence of
// psychology commands to three replicas: one log per command, several logs
// per ApplyBatch with several commands per log, and one that restores a
// snapshot of the first half taken from another FSM. Their digests, audit
// chains and erasure counts must be equal.
func TestFSM_Review9_DeterministicReplicas(t *testing.T) {
	for seed := int64(1); seed <= 8; seed++ {
		r := rand.New(rand.NewSource(seed))
		var cmds []*bookingv1.Command
		for i := 0; i < 300; i++ {
			cmds = append(cmds, randomPsychCommand(r, i))
		}
		open := func(name string) (*storage.TestFSM, *erasedLog) {
			log := &erasedLog{}
			f, err := storage.OpenTestFSMWith(filepath.Join(t.TempDir(), name), "ar", log.record)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = f.Close() })
			return f, log
		}
		a, alog := open("a.db")
		b, _ := open("b.db")
		c, _ := open("c.db")

		// a: one command per log, one log per apply.
		for i, cmd := range cmds {
			a.Apply(uint64(i+1), mustMarshal(t, cmd))
		}
		// b: the same logs, several per ApplyBatch.
		var logs []*raft.Log
		for i, cmd := range cmds {
			logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand,
				Data: mustMarshal(t, cmd)})
		}
		for len(logs) > 0 {
			n := min(len(logs), 1+r.Intn(17))
			b.ApplyLogs(logs[:n])
			logs = logs[n:]
		}
		// c: first half through a, snapshot, restore into c, then the rest.
		half := len(cmds) / 2
		h, _ := open("h.db")
		for i, cmd := range cmds[:half] {
			h.Apply(uint64(i+1), mustMarshal(t, cmd))
		}
		snap, err := h.SnapshotBytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Fatal(err)
		}
		for i, cmd := range cmds[half:] {
			c.Apply(uint64(half+i+1), mustMarshal(t, cmd))
		}

		da, _ := a.Digest()
		db, _ := b.Digest()
		dc, _ := c.Digest()
		if !bytes.Equal(da, db) || !bytes.Equal(da, dc) {
			t.Fatalf("seed %d: digests differ: a=%x b=%x c=%x", seed, da, db, dc)
		}
		for name, f := range map[string]*storage.TestFSM{"a": a, "b": b, "c": c} {
			rep, err := f.VerifyAudit()
			if err != nil {
				t.Fatalf("seed %d: %s: audit chain: %v", seed, name, err)
			}
			if rep.Entries == 0 {
				t.Fatalf("seed %d: %s: no audit entries", seed, name)
			}
		}
		if a.Erasures() == 0 {
			t.Fatalf("seed %d: the sequence erased nothing", seed)
		}
		if a.Erasures() != b.Erasures() {
			t.Fatalf("seed %d: erasures a=%d b=%d (%v)", seed, a.Erasures(), b.Erasures(), alog.list())
		}
	}
}
