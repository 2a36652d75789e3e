package cluster_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/barberpro/edge/cluster"
)

// TestConfig_Review9_KEKFileInsideDataDir: the KEK's erasure ledger
// (FILE.erasures) is what keeps a backup taken before an erasure from
// unsealing the client's notes, because it lives with the KEK, outside the
// data dir. A --kek-file inside --data-dir puts the ledger (and the KEK) in
// every data dir backup: restoring one rolls the ledger back, and a copy of the
// data dir carries the key that unwraps it. Validate should refuse it.
func TestConfig_Review9_KEKFileInsideDataDir(t *testing.T) {
	c := cluster.LocalConfig()
	c.ID, c.City = "n1", "buenos-aires"
	c.DataDir = t.TempDir()
	c.TokenKeys, c.TLSDir = "keys.json", t.TempDir()
	c.GossipKey = bytes.Repeat([]byte{1}, 32)
	if err := c.Validate(); err != nil {
		t.Fatalf("control: the base config does not validate: %v", err)
	}
	c.KEKFile = filepath.Join(c.DataDir, "secrets", "ar.kek")
	if err := c.Validate(); err == nil {
		t.Fatal("Validate accepts a key-encryption key file (and so its erasure ledger) inside the data dir")
	}
}
