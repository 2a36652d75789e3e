package main

import (
	"bytes"
	"crypto/sha256"
	be "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/storage"
)

// handChain builds n entries by the documented canonical form, written out
// byte by byte here (not with auditEntryHash), so a drift of either shows.
func handChain(n int) []client.AuditEntry { return handChainWith(n, nil) }

// handChainWith is handChain with the subjects of some seqs replaced.
func handChainWith(n int, subjects map[int]string) []client.AuditEntry {
	prev := make([]byte, 32)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.FixedZone("ART", -3*3600))
	var out []client.AuditEntry
	for i := 1; i <= n; i++ {
		at := t0.Add(time.Duration(i)*time.Second + time.Duration(i*7)*time.Millisecond)
		e := client.AuditEntry{Seq: uint64(i), At: at.Format("2006-01-02T15:04:05.000Z07:00"), Subject: fmt.Sprintf("prv_buenos-aires_%d", i),
			Role: "provider", Action: "notes.write", Object: fmt.Sprintf("bkg_buenos-aires_%d", i), Node: "ba-1", Outcome: "ok"}
		if s, ok := subjects[i]; ok {
			e.Subject = s
		}
		var canon bytes.Buffer
		canon.Write([]byte{0, 0, 0, 0, 0, 0, 0, byte(i)})
		ms := at.UnixMilli()
		for s := 56; s >= 0; s -= 8 {
			canon.WriteByte(byte(ms >> s))
		}
		for _, f := range []string{e.Subject, e.Role, e.Action, e.Object, e.Node, e.Outcome} {
			canon.Write([]byte{0, 0, 0, byte(len(f))})
			canon.WriteString(f)
		}
		sum := sha256.Sum256(append(append([]byte(nil), prev...), canon.Bytes()...))
		e.PrevHash, e.Hash = hex.EncodeToString(prev), hex.EncodeToString(sum[:])
		prev = sum[:]
		out = append(out, e)
	}
	return out
}

// auditServer serves entries as GET /v1/audit pages of limit entries, cursor =
// the last seq of the page, to an operator token only.
func auditServer(t *testing.T, entries []client.AuditEntry) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/audit" || r.Header.Get("Authorization") != "Bearer ops-token" {
			w.WriteHeader(403)
			w.Write([]byte(`{"status":403,"code":"forbidden"}`))
			return
		}
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		page := client.List[client.AuditEntry]{Items: []client.AuditEntry{}}
		for i := after; i < len(entries) && len(page.Items) < limit; i++ {
			page.Items = append(page.Items, entries[i])
		}
		if end := after + len(page.Items); end < len(entries) {
			page.NextCursor = strconv.Itoa(end)
		}
		json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAuditVerifyAddr(t *testing.T) {
	good := handChain(7)
	tamper := func(f func([]client.AuditEntry)) []client.AuditEntry {
		c := append([]client.AuditEntry(nil), good...)
		f(c)
		return c
	}
	tests := []struct {
		name    string
		entries []client.AuditEntry
		want    string // "" = OK
	}{
		{"intact", good, ""},
		{"empty", nil, ""},
		{"a field changed", tamper(func(c []client.AuditEntry) { c[3].Outcome = "forbidden" }), "broken at seq 4: hash"},
		{"a time changed by a millisecond", tamper(func(c []client.AuditEntry) { c[5].At = strings.Replace(c[5].At, ".042", ".043", 1) }), "broken at seq 6: hash"},
		{"an entry deleted", append(append([]client.AuditEntry(nil), good[:2]...), good[3:]...), "broken at seq 3: entry has seq 4"},
		{"an entry rewritten with its hash recomputed", tamper(func(c []client.AuditEntry) {
			c[1].Subject = "someone-else"
			pe, _ := entryProto(c[1])
			c[1].Hash = hex.EncodeToString(storage.AuditHash(pe.PrevHash, pe))
		}), "broken at seq 3: prev_hash"},
		{"an entry listed twice", append(append([]client.AuditEntry(nil), good[:4]...), good[3:]...), "broken at seq 4: entry listed again"},
		{"at_ms given beside a second-precision at", tamper(func(c []client.AuditEntry) {
			for i := range c {
				t, _ := time.Parse(time.RFC3339Nano, c[i].At)
				c[i].At, c[i].AtMs = t.UTC().Format(time.RFC3339), t.UnixMilli()
			}
		}), ""},
		{"first entry's prev not zero", tamper(func(c []client.AuditEntry) { c[0].PrevHash = c[1].Hash }), "broken at seq 1: prev_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := auditServer(t, tt.entries)
			out, err := runCLI(t, "audit", "verify", "--addr", srv.URL, "--token", "ops-token", "--page-size", "3")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want OK, got %v", err)
				}
				want := "0 entries"
				if len(tt.entries) > 0 {
					want = fmt.Sprintf("%d entries, head %s", len(tt.entries), tt.entries[len(tt.entries)-1].Hash)
				}
				if !strings.Contains(out, want) {
					t.Fatalf("output %q does not say %q", out, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error with %q, got %v (output %q)", tt.want, err, out)
			}
			if exitCode(err) != 1 {
				t.Fatalf("exit %d, want 1", exitCode(err))
			}
		})
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	for _, args := range [][]string{
		{"audit", "verify"},
		{"audit", "verify", "--addr", "http://127.0.0.1:1", "--data-dir", "/tmp/x", "--token", "t"},
		{"audit", "verify", "--addr", "127.0.0.1:1", "--token", "t"},
		{"audit", "verify", "--addr", "http://127.0.0.1:1"},
	} {
		if _, err := runCLI(t, args...); exitCode(err) != 2 {
			t.Errorf("%q: %v, want exit 2", args, err)
		}
	}
}

func TestDecodeHashForms(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	for _, s := range []string{hex.EncodeToString(sum[:]), "  " + hex.EncodeToString(sum[:])[:10]} {
		b, err := decodeHash(s)
		if (err == nil) != (len(s) == 64) || (err == nil && !bytes.Equal(b, sum[:])) {
			t.Errorf("decodeHash(%q) = %x, %v", s, b, err)
		}
	}
}

// exitCode is the exit status main gives err.
func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}

// TestAuditVerifyEnvDataDirYieldsToAddr: $BARBERPRO_DATA_DIR, set for node
// start, does not make `audit verify --addr` ambiguous.
func TestAuditVerifyEnvDataDirYieldsToAddr(t *testing.T) {
	srv := auditServer(t, handChain(2))
	t.Setenv("BARBERPRO_DATA_DIR", "/nonexistent")
	out, err := runCLI(t, "audit", "verify", "--addr", srv.URL, "--token", "ops-token")
	if err != nil || !strings.Contains(out, "2 entries") {
		t.Fatalf("%q %v", out, err)
	}
}

// writeAuditDir writes a data dir whose fsm.db holds entries in the store's
// audit bucket (be64 seq → AuditEntry), as a stopped node's would.
func writeAuditDir(t *testing.T, entries []client.AuditEntry) string {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, storage.FSMFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("audit"))
		if err != nil {
			return err
		}
		for _, e := range entries {
			pe, err := entryProto(e)
			if err != nil {
				return err
			}
			v, err := proto.Marshal(pe)
			if err != nil {
				return err
			}
			if err := b.Put(be.BigEndian.AppendUint64(nil, e.Seq), v); err != nil {
				return err
			}
			// The index keys the store keeps beside each entry (verify checks them).
			for _, idx := range []struct{ bucket, owner string }{{"audit_object", e.Object}, {"audit_subject", e.Subject}} {
				ib, err := tx.CreateBucketIfNotExists([]byte(idx.bucket))
				if err != nil {
					return err
				}
				if idx.owner == "" {
					continue
				}
				if err := ib.Put(be.BigEndian.AppendUint64(append([]byte(idx.owner), 0), e.Seq), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAuditVerifyDataDir(t *testing.T) {
	good := handChain(5)
	out, err := runCLI(t, "audit", "verify", "--data-dir", writeAuditDir(t, good))
	if err != nil || !strings.Contains(out, "5 entries, head "+good[4].Hash) {
		t.Fatalf("intact chain offline: %q %v", out, err)
	}
	bad := append([]client.AuditEntry(nil), good...)
	bad[2].Action = "notes.read"
	_, err = runCLI(t, "audit", "verify", "--data-dir", writeAuditDir(t, bad))
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "broken at seq 3") {
		t.Fatalf("changed entry offline: %v, want exit 1 naming seq 3", err)
	}
	if _, err := runCLI(t, "audit", "verify", "--data-dir", t.TempDir()); exitCode(err) != 1 {
		t.Fatalf("a dir without fsm.db: %v, want exit 1", err)
	}
}

// TestAuditVerifyHeadAnchor: verify prints the head as SEQ:HEX; a chain
// rewritten and rehashed (or cut short) verifies alone but fails against
// that anchor, offline and online (R2 #4).
func TestAuditVerifyHeadAnchor(t *testing.T) {
	good := handChain(5)
	dir := writeAuditDir(t, good)
	out, err := runCLI(t, "audit", "verify", "--data-dir", dir)
	head := "5:" + good[4].Hash
	if err != nil || !strings.Contains(out, "head "+head) {
		t.Fatalf("intact chain: %q %v, want the head %s", out, err, head)
	}
	if out, err := runCLI(t, "audit", "verify", "--data-dir", dir, "--head", head, "--head", "2:"+good[1].Hash); err != nil {
		t.Fatalf("intact chain against its anchors: %q %v", out, err)
	}
	// Entry 3 changed and every later hash recomputed: a whole chain of 5.
	forged := handChainWith(5, map[int]string{3: "prv_somebody_else"})
	fdir := writeAuditDir(t, forged)
	if _, err := runCLI(t, "audit", "verify", "--data-dir", fdir); err != nil {
		t.Fatalf("control: the rehashed chain verifies without an anchor: %v", err)
	}
	_, err = runCLI(t, "audit", "verify", "--data-dir", fdir, "--head", head)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "broken at seq 5") {
		t.Fatalf("rehashed chain against the kept head: %v, want exit 1 at seq 5", err)
	}
	srv := auditServer(t, forged)
	_, err = runCLI(t, "audit", "verify", "--addr", srv.URL, "--token", "ops-token", "--head", head)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "broken at seq 5") {
		t.Fatalf("online, rehashed chain against the kept head: %v, want exit 1 at seq 5", err)
	}
	// Cut to 4 entries: the anchor at seq 5 is past the end.
	_, err = runCLI(t, "audit", "verify", "--data-dir", writeAuditDir(t, good[:4]), "--head", head)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "cut off") {
		t.Fatalf("truncated chain against the kept head: %v, want exit 1 naming the cut", err)
	}
	if _, err := runCLI(t, "audit", "verify", "--data-dir", dir, "--head", "5:zz"); exitCode(err) != 2 {
		t.Fatalf("malformed --head: %v, want a usage error", err)
	}
}
