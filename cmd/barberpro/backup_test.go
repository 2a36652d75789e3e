package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/seal"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestRestore_CLI: `barberpro restore` refuses (exit 1, saying why) a file
// that is not a backup, a city of another jurisdiction, a non-empty data dir
// and a backup holding wrapped client keys without --kek-file (or with a
// ledger older than the backup, unless --allow-old-ledger); it seeds an empty
// one (restored.json written); bad usage exits 2.
func TestRestore_CLI(t *testing.T) {
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s := st.MustOpen(t, cfg)
	file := filepath.Join(t.TempDir(), "ar.bpbackup")
	if _, err := s.BackupToFile(context.Background(), file); err != nil {
		t.Fatal(err)
	}
	// A second backup, holding a client's wrapped key.
	kekPath := filepath.Join(t.TempDir(), "ar.kek")
	if _, err := seal.InitKEK(kekPath); err != nil {
		t.Fatal(err)
	}
	kek, err := seal.LoadKEK(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	dek, ck, err := kek.NewDataKey("client1")
	if err != nil {
		t.Fatal(err)
	}
	dek.Wipe()
	if _, err := s.Propose(context.Background(), &bookingv1.Command{ProposedAtMs: st.At(0), Op: &bookingv1.Command_PutClientKey{PutClientKey: &bookingv1.PutClientKey{Key: ck}}}); err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(t.TempDir(), "sealed.bpbackup")
	if _, err := s.BackupToFile(context.Background(), sealed); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(kekPath+seal.LedgerSuffix, old, old); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not a backup at all"), 0o600)
	used := t.TempDir()
	os.WriteFile(filepath.Join(used, "fsm.db"), []byte("x"), 0o600)

	run := func(args ...string) (int, string) {
		out, err := exec.Command(binary, append([]string{"restore"}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	for _, c := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"no flags", nil, 2, "required"},
		{"garbage", []string{"--from", garbage, "--data-dir", filepath.Join(t.TempDir(), "d"), "--id", "ba-1", "--city", "buenos-aires"}, 1, "not a valid backup"},
		{"another jurisdiction", []string{"--from", file, "--data-dir", filepath.Join(t.TempDir(), "d"), "--id", "us-1", "--city", "us-east"}, 1, "jurisdiction"},
		{"used data dir", []string{"--from", file, "--data-dir", used, "--id", "ba-1", "--city", "buenos-aires"}, 1, "not empty"},
		{"keys without --kek-file", []string{"--from", sealed, "--data-dir", filepath.Join(t.TempDir(), "d"), "--id", "ba-1", "--city", "buenos-aires"}, 1, "--kek-file"},
		{"old ledger", []string{"--from", sealed, "--data-dir", filepath.Join(t.TempDir(), "d"), "--id", "ba-1", "--city", "buenos-aires", "--kek-file", kekPath}, 1, "--allow-old-ledger"},
		{"old ledger allowed", []string{"--from", sealed, "--data-dir", filepath.Join(t.TempDir(), "d"), "--id", "ba-1", "--city", "buenos-aires", "--kek-file", kekPath, "--allow-old-ledger"}, 0, "1 wrapped client keys"},
	} {
		code, out := run(c.args...)
		if code != c.code || !strings.Contains(out, c.contains) {
			t.Errorf("%s: exit %d %q, want %d and %q", c.name, code, out, c.code, c.contains)
		}
	}
	dir := filepath.Join(t.TempDir(), "ba-1")
	if code, out := run("--from", file, "--data-dir", dir, "--id", "ba-1", "--city", "buenos-aires"); code != 0 {
		t.Fatalf("restore: exit %d %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, storage.RestoredMarker)); err != nil {
		t.Fatal(err)
	}
}

// TestBackup_CLIRefusesABadStream: `barberpro backup` from a node that sends
// a corrupted (or cut) stream exits 1 and leaves no file at --out; a problem
// answer is printed with its code.
func TestBackup_CLIRefusesABadStream(t *testing.T) {
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s := st.MustOpen(t, cfg)
	var good bytes.Buffer
	if _, err := s.Backup(context.Background(), &good); err != nil {
		t.Fatal(err)
	}
	var mode atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := append([]byte(nil), good.Bytes()...)
		switch mode.Load() {
		case "flip":
			b[len(b)/2] ^= 1
		case "cut":
			b = b[:len(b)-100]
		case "problem":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"type":"about:blank","title":"Forbidden","status":403,"code":"residency_violation","detail":"no"}`)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	for _, m := range []string{"flip", "cut", "problem", "good"} {
		mode.Store(m)
		out := filepath.Join(t.TempDir(), "ar.bpbackup")
		msg, err := exec.Command(binary, "backup", "--addr", srv.URL, "--jurisdiction", "ar", "--out", out, "--token", "t").CombinedOutput()
		_, statErr := os.Stat(out)
		if m == "good" {
			if err != nil || statErr != nil {
				t.Fatalf("a good stream: %v %s %v", err, msg, statErr)
			}
			continue
		}
		if err == nil || statErr == nil {
			t.Errorf("%s: exit %v, file %v: %s", m, err, statErr, msg)
		}
		if m == "problem" && !strings.Contains(string(msg), "residency_violation") {
			t.Errorf("problem not shown: %s", msg)
		}
		if left, _ := filepath.Glob(out + ".tmp-*"); len(left) > 0 {
			t.Errorf("%s: temporary files left: %v", m, left)
		}
	}
}

// TestBackup_CLIOverHTTPS: `barberpro backup --ca FILE` fetches from a node
// serving its API over HTTPS (--api-tls) with a certificate FILE vouches for;
// without --ca the certificate is not trusted (exit 1), and a --ca file that
// holds no certificate is bad usage (exit 2).
func TestBackup_CLIOverHTTPS(t *testing.T) {
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s := st.MustOpen(t, cfg)
	var good bytes.Buffer
	if _, err := s.Backup(context.Background(), &good); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(good.Bytes()) }))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	notCA := filepath.Join(t.TempDir(), "not.crt")
	os.WriteFile(notCA, []byte("no certificate here"), 0o600)
	run := func(extra ...string) (int, string, string) {
		out := filepath.Join(t.TempDir(), "ar.bpbackup")
		msg, err := exec.Command(binary, append([]string{"backup", "--addr", srv.URL, "--jurisdiction", "ar", "--out", out, "--token", "t"}, extra...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(msg), out
		}
		return 0, string(msg), out
	}
	if code, msg, out := run("--ca", ca); code != 0 {
		t.Fatalf("with --ca: exit %d %s", code, msg)
	} else if _, err := storage.VerifyBackupFile(out); err != nil {
		t.Fatalf("with --ca: %v", err)
	}
	if code, msg, _ := run(); code != 1 || !strings.Contains(msg, "certificate") {
		t.Errorf("without --ca: exit %d %s", code, msg)
	}
	if code, msg, _ := run("--ca", notCA); code != 2 || !strings.Contains(msg, "no PEM certificate") {
		t.Errorf("a --ca without a certificate: exit %d %s", code, msg)
	}
}

// TestRestore_CLIReadsTheFileOnce: `barberpro restore` reads the backup in one
// pass, so it restores from a pipe (a backup streamed from object storage, say)
// — it read the file twice (verify, then copy), and a pipe's second read
// never ended.
func TestRestore_CLIReadsTheFileOnce(t *testing.T) {
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s := st.MustOpen(t, cfg)
	var good bytes.Buffer
	if _, err := s.Backup(context.Background(), &good); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "ar.bpbackup")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no fifo here: %v", err)
	}
	writer := make(chan error, 1)
	go func() { // one stream, as a pipe gives: a second open would wait for a writer forever
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.Write(good.Bytes())
			f.Close()
		}
		writer <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "ba-1")
	out, err := exec.CommandContext(ctx, binary, "restore", "--from", fifo, "--data-dir", dir, "--id", "ba-1", "--city", "buenos-aires").CombinedOutput()
	if err != nil {
		t.Fatalf("restore from a pipe: %v %s", err, out)
	}
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, storage.RestoredMarker)); err != nil {
		t.Fatal(err)
	}
}
