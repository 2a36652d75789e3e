package procs

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/topology"
)

// Secrets is the key material of a local cluster, kept under one directory:
//
//	DIR/ca/           the cluster CA (ca.crt, ca.key)          — `barberpro ca init`
//	DIR/nodes/ID/     each node's ca.crt, node.crt, node.key   — `barberpro ca issue`
//	DIR/tokens/       the token signing key and keys.json      — `barberpro token init`
//	DIR/gossip.key    the gossip key, base64
//	DIR/kek/J.json    jurisdiction J's key-encryption key       — `barberpro keys init`
//	DIR/nodes/ID/kek.json  node ID's copy of it (its erasure ledger beside it)
//
// The demo, the end-to-end tests, the simulations and the benchmarks make their
// own; nothing of it is secret beyond the local run. Safe for concurrent use.
type Secrets struct {
	// Dir holds everything.
	Dir string
	// GossipKey is the 32-byte key every node encrypts gossip with.
	GossipKey []byte

	top      *topology.Topology
	tokens   *auth.TokenCache
	operator string
	kekMu    sync.Mutex
}

// TokenTTL is how long the tokens Secrets issues stay valid: longer than any
// local run.
const TokenTTL = 7 * 24 * time.Hour

// NewSecrets makes the material under dir (a CA, token keys and a gossip key),
// or loads what an earlier call made there. Node certificates are issued per
// node by NodeTLS. top names each city's jurisdiction (topology.Default() when
// nil).
func NewSecrets(dir string, top *topology.Topology) (*Secrets, error) {
	if top == nil {
		top = topology.Default()
	}
	s := &Secrets{Dir: dir, top: top}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("procs: secrets: %w", err)
	}
	if !exists(filepath.Join(s.CADir(), pki.CACertFile)) {
		if err := pki.InitCA(s.CADir()); err != nil {
			return nil, fmt.Errorf("procs: secrets: %w", err)
		}
	}
	if !exists(s.KeySet()) {
		if err := auth.Init(s.TokenDir()); err != nil {
			return nil, fmt.Errorf("procs: secrets: %w", err)
		}
	}
	signer, err := auth.LoadSigner(s.TokenDir())
	if err != nil {
		return nil, fmt.Errorf("procs: secrets: %w", err)
	}
	s.tokens = auth.NewTokenCache(signer, TokenTTL)
	if s.operator, err = s.Token(auth.RoleOperator, "ops"); err != nil {
		return nil, fmt.Errorf("procs: secrets: %w", err)
	}
	keyPath := filepath.Join(dir, "gossip.key")
	if b, err := os.ReadFile(keyPath); err == nil {
		if s.GossipKey, err = base64.StdEncoding.DecodeString(string(b)); err != nil {
			return nil, fmt.Errorf("procs: secrets: %s: %w", keyPath, err)
		}
	} else {
		s.GossipKey = make([]byte, 32)
		if _, err := rand.Read(s.GossipKey); err != nil {
			return nil, err
		}
		if err := os.WriteFile(keyPath, []byte(base64.StdEncoding.EncodeToString(s.GossipKey)), 0o600); err != nil {
			return nil, fmt.Errorf("procs: secrets: %w", err)
		}
	}
	return s, nil
}

// CADir is the CA's directory (`--dir` of `barberpro ca issue`).
func (s *Secrets) CADir() string { return filepath.Join(s.Dir, "ca") }

// TokenDir is the token keys' directory (`--dir` of `barberpro token issue`).
func (s *Secrets) TokenDir() string { return filepath.Join(s.Dir, "tokens") }

// KeySet is the public key set nodes verify tokens with (`--token-keys`).
func (s *Secrets) KeySet() string { return filepath.Join(s.TokenDir(), auth.KeySetFile) }

// NodeTLS returns the `--tls-dir` of node id in city on ip, issuing its
// certificate the first time.
func (s *Secrets) NodeTLS(id, city, ip string) (string, error) {
	dir := filepath.Join(s.Dir, "nodes", id)
	if exists(filepath.Join(dir, pki.NodeCertFile)) {
		return dir, nil
	}
	c, err := s.top.City(city)
	if err != nil {
		return "", fmt.Errorf("procs: secrets: %w", err)
	}
	addr := net.ParseIP(ip)
	if addr == nil {
		return "", fmt.Errorf("procs: secrets: %q is not an IP", ip)
	}
	if err := pki.Issue(s.CADir(), pki.Identity{Jurisdiction: c.Jurisdiction, City: city, NodeID: id}, []net.IP{addr}, dir); err != nil {
		return "", fmt.Errorf("procs: secrets: %w", err)
	}
	return dir, nil
}

// Token returns a bearer token for sub in role (signed once, then reused).
func (s *Secrets) Token(role auth.Role, sub string) (string, error) { return s.tokens.Token(role, sub) }

// Operator is the token of the run's operator (subject "ops").
func (s *Secrets) Operator() string { return s.operator }

// Client returns a client of the API at base that speaks as sub in role.
func (s *Secrets) Client(base string, role auth.Role, sub string) (*client.Client, error) {
	t, err := s.Token(role, sub)
	if err != nil {
		return nil, err
	}
	return client.New(base, nil).WithToken(t), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// KEKFile returns the key-encryption key file of jurisdiction j (`node start
// --kek-file`), made the first time: JSON {"id": "kek_<random>", "key": base64 of
// 32 random bytes}, mode 0600 — the format of storage/seal (`barberpro keys
// init`). Each jurisdiction has its own: a node of another holds no key to the
// health data of j.
func (s *Secrets) KEKFile(j string) (string, error) {
	s.kekMu.Lock()
	defer s.kekMu.Unlock()
	path := filepath.Join(s.Dir, "kek", j+".json")
	if exists(path) {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("procs: secrets: %w", err)
	}
	var id [8]byte
	key := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]string{"id": "kek_" + hex.EncodeToString(id[:]), "key": base64.StdEncoding.EncodeToString(key)})
	if err != nil {
		return "", err
	}
	if err := writeNew(path, b); err != nil {
		return "", fmt.Errorf("procs: secrets: %w", err)
	}
	return path, nil
}

// NodeKEKFile returns node id's copy of jurisdiction j's key-encryption key,
// made the first time: each node has its own file, as on separate machines,
// and so its own erasure ledger (kek.json.erasures) beside it, which outlives
// the node's data dir.
func (s *Secrets) NodeKEKFile(id, j string) (string, error) {
	master, err := s.KEKFile(j)
	if err != nil {
		return "", err
	}
	s.kekMu.Lock()
	defer s.kekMu.Unlock()
	path := filepath.Join(s.Dir, "nodes", id, "kek.json")
	if exists(path) {
		return path, nil
	}
	b, err := os.ReadFile(master)
	if err != nil {
		return "", fmt.Errorf("procs: secrets: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("procs: secrets: %w", err)
	}
	if err := writeNew(path, b); err != nil {
		return "", fmt.Errorf("procs: secrets: %w", err)
	}
	return path, nil
}

// writeNew writes b to a new file at path, mode 0600.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Jurisdiction is the jurisdiction of city in the secrets' topology.
func (s *Secrets) Jurisdiction(city string) (string, error) {
	c, err := s.top.City(city)
	if err != nil {
		return "", fmt.Errorf("procs: secrets: %w", err)
	}
	return c.Jurisdiction, nil
}
