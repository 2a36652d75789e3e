package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/simulations/check"
	"github.com/barberpro/edge/simulations/load"
	"github.com/barberpro/edge/simulations/procs"
	"github.com/barberpro/edge/storage"
)

// Test_Psychology_NotesSealedAndErasedEverywhere is psychology.md's "sealed at
// rest, erasable everywhere" with real processes (local profile: ShredWithin
// 3 s). A treating provider writes a session note holding a marker; it reads
// it back through every node, while no file of any node's data dir (nor log)
// holds the marker, plain or base64, and the US node holds not even the
// ciphertext. The client erases their health data: the notes read 410 erased
// through every node, the booking says erased, and within the bound no data
// dir holds the wrapped data key or the ciphertext (Raft log, snapshots, bbolt
// free pages included), in any form. On the way, `audit verify` (online and on
// a stopped replica's data dir) and `residency check` pass against the cluster.
func Test_Psychology_NotesSealedAndErasedEverywhere(t *testing.T) {
	c, _ := startFiveCities(t, 236)
	ctx := context.Background()
	ba, cba, lp, us := c.ByID("ba-1"), c.ByID("cba-1"), c.ByID("lp-1"), c.ByID("us-1")
	sec := c.Secrets

	// A licensed, verified psychologist of Buenos Aires.
	spec := load.LoadProvider("buenos-aires", 0)
	spec.Vertical, spec.Name = "psychology", "Lic. E2E (psicología)"
	spec.License = &client.License{Number: "MN 4242", Issuer: "Colegio de Psicólogos de Buenos Aires"}
	prov, err := cli(cba).CreateProvider(ctx, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli(cba).VerifyProvider(ctx, prov.ID); err != nil {
		t.Fatalf("verify %s: %v", prov.ID, err)
	}
	clientID := "e2e-psy-" + randHex(4)
	as := func(p *procs.Proc, role auth.Role, sub string) *client.Client {
		cl, err := sec.Client(p.Spec.URL(), role, sub)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	if _, err := as(ba, auth.RoleClient, clientID).GrantConsent(ctx, clientID,
		client.ConsentRequest{Purpose: client.ConsentPurposePsychology, Jurisdiction: "ar", TextVersion: "2026-01"}, "e2e-consent"); err != nil {
		t.Fatalf("consent: %v", err)
	}
	slot := firstSlots(t, cli(ba), *prov, 1)[0]
	b, err := as(us, auth.RoleClient, clientID).Book(ctx, client.BookingRequest{ProviderID: prov.ID, ServiceID: prov.Services[0].ID, ClientID: clientID, Start: slot}, "e2e-psy-book")
	if err != nil {
		t.Fatalf("psychology booking through us-1: %v", err)
	}

	// The note, written by the treating provider, read back through every node.
	marker := "E2E-NOTE-MARKER-" + randHex(8)
	text := "Primera sesión. " + marker + " Refiere insomnio."
	if _, err := as(cba, auth.RoleProvider, prov.ID).PutNotes(ctx, b.ID, text); err != nil {
		t.Fatalf("put notes: %v", err)
	}
	for _, p := range c.Procs {
		var got *client.Notes
		if !waitFor(10*time.Second, func() bool {
			got, err = as(p, auth.RoleProvider, prov.ID).Notes(ctx, b.ID)
			return err == nil && got.Text == text
		}) {
			t.Fatalf("notes via %s: %+v %v, want the text written", p.Spec.ID, got, err)
		}
	}
	for _, who := range []*client.Client{cli(ba), as(ba, auth.RoleClient, clientID), as(ba, auth.RoleProvider, "prv_buenos-aires_other")} {
		if _, err := who.Notes(ctx, b.ID); client.Code(err) != "forbidden" {
			t.Errorf("notes read by someone else than the treating provider: %v, want 403 forbidden", err)
		}
	}

	// Control: the sealed note and the wrapped key reach every ar replica's
	// fsm.db (which shows the scan below can find bytes of them).
	var wrapped, sealed []byte
	for _, p := range c.Procs[:4] {
		if !waitFor(15*time.Second, func() bool {
			w, s := sealedRecords(t, p.Spec.DataDir, clientID, b.ID)
			if len(w) > 0 && len(s) > 0 {
				wrapped, sealed = w, s
				return true
			}
			return false
		}) {
			t.Fatalf("control: no sealed note and wrapped key of the client in %s's fsm.db", p.Spec.ID)
		}
	}
	secrets := []check.Needle{
		{Value: string(wrapped), What: "the client's wrapped data key", Base64: true, Secret: true},
		{Value: string(sealed), What: "the note's ciphertext", Base64: true, Secret: true},
	}
	markerNeedle := []check.Needle{{Value: marker, What: "the note's marker", Base64: true, Secret: true}}
	var everything []string
	for _, p := range c.Procs {
		everything = append(everything, p.Spec.DataDir, p.LogPath)
	}
	if found, files, _, errs := check.Scan(everything, markerNeedle); len(found) > 0 || len(errs) > 0 || files == 0 {
		t.Fatalf("the note's text is on disk unsealed: %v (files %d, errors %v)", found, files, errs)
	}
	if found, _, _, _ := check.Scan([]string{us.Spec.DataDir, us.LogPath}, secrets); len(found) > 0 {
		t.Fatalf("the US node holds Argentine health data, sealed or not: %v", found)
	}

	// The operator's tools agree, against the running cluster: the ar audit
	// chain verifies, and nothing of it is on the US node's disk or log (ba-1's
	// data dir is the control).
	ops := operatorToken(ba)
	if out, err := runCLI(t, "audit", "verify", "--addr", ba.Spec.URL(), "--token", ops); err != nil || !strings.Contains(out, "audit chain OK") || strings.Contains(out, " 0 entries") {
		t.Fatalf("audit verify --addr: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "residency", "check", "--addr", us.Spec.URL(), "--token", ops, "--marker", marker,
		"--scan", "us-1="+us.Spec.DataDir, "--scan", "us-1="+us.LogPath, "--scan", "ba-1="+ba.Spec.DataDir); err != nil {
		t.Fatalf("residency check: %v\n%s", err, out)
	}

	// Erasure, by the client, through a node that is not the one that wrote.
	erased := time.Now()
	if _, err := as(lp, auth.RoleClient, clientID).EraseHealthData(ctx, clientID); err != nil {
		t.Fatalf("erase: %v", err)
	}
	for _, p := range c.Procs {
		if !waitFor(10*time.Second, func() bool {
			_, err = as(p, auth.RoleProvider, prov.ID).Notes(ctx, b.ID)
			return client.Code(err) == "erased"
		}) {
			t.Fatalf("notes via %s after the erasure: %v, want 410 erased", p.Spec.ID, err)
		}
		var pr *client.Problem
		if errors.As(err, &pr) && pr.Status != 410 {
			t.Errorf("notes via %s after the erasure: status %d, want 410", p.Spec.ID, pr.Status)
		}
	}
	if got, err := cli(ba).Booking(ctx, b.ID); err != nil || !got.Erased || got.Start != b.Start || got.ProviderID != prov.ID {
		t.Errorf("the booking after the erasure: %+v %v, want its dates and provider, erased true", got, err)
	}

	// Within the bound (ShredWithin 3 s + a snapshot + compaction), no data dir
	// holds anything that could unseal the note.
	var left []check.Finding
	var dirs []string
	for _, p := range c.Procs {
		dirs = append(dirs, p.Spec.DataDir)
	}
	if !waitFor(45*time.Second, func() bool {
		left, _, _, _ = check.Scan(dirs, secrets)
		return len(left) == 0
	}) {
		t.Fatalf("%v after the erasure, still on disk: %v", time.Since(erased).Round(time.Second), left)
	}
	t.Logf("no wrapped key or ciphertext on any data dir %v after the erasure", time.Since(erased).Round(100*time.Millisecond))
	if found, _, _, _ := check.Scan(everything, markerNeedle); len(found) > 0 {
		t.Fatalf("the note's text is on disk unsealed: %v", found)
	}

	// Offline, on a stopped replica: the chain (the erasure's entries
	// included) still verifies.
	if err := ba.Stop(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "audit", "verify", "--data-dir", ba.Spec.DataDir); err != nil || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify --data-dir: %v\n%s", err, out)
	}
}

// sealedRecords reads a copy of dataDir's fsm.db (the node keeps it locked) and
// returns the wrapped data key of clientID and the ciphertext of bookingID's
// note, whichever buckets hold them; nil for what is not there (yet).
func sealedRecords(t *testing.T, dataDir, clientID, bookingID string) (wrapped, ciphertext []byte) {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "fsm.db")
	if err := copyFile(filepath.Join(dataDir, storage.FSMFile), cp); err != nil {
		return nil, nil
	}
	db, err := bolt.Open(cp, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, nil // a copy taken mid-write: try again
	}
	defer db.Close()
	var walk func(b *bolt.Bucket) error
	match := func(v []byte) {
		var ck bookingv1.ClientKey
		if proto.Unmarshal(v, &ck) == nil && ck.ClientId == clientID && strings.HasPrefix(ck.KeyId, "key_") && len(ck.Wrapped) >= 32 {
			wrapped = append([]byte(nil), ck.Wrapped...)
		}
		var n bookingv1.SealedNote
		if proto.Unmarshal(v, &n) == nil && n.BookingId == bookingID && n.ClientId == clientID && strings.HasPrefix(n.KeyId, "key_") &&
			len(n.Nonce) > 0 && len(n.Ciphertext) > 0 {
			ciphertext = append([]byte(nil), n.Ciphertext...)
		}
	}
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return walk(nb)
				}
				return nil
			}
			match(v)
			return nil
		})
	}
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
	})
	return wrapped, ciphertext
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
