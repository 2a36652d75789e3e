// Package seal seals health data at rest (crypto-shredding). A jurisdiction has one
// key-encryption key (KEK), kept in a file outside every data dir. Each client gets a
// random data key (DEK) that is stored only wrapped (AES-256-GCM) by the KEK, and a
// session's notes are sealed (AES-256-GCM) under the client's DEK before any command
// carrying them is proposed, so no plain text reaches a Raft log, snapshot or bbolt
// page.
//
// Erasing a client's health data destroys its wrapped DEK in the store and records
// the destroyed key, as the pair (client, key id), in the KEK's erasure ledger (the
// file "<kek-file>.erasures", next to the KEK): a KEK refuses to unwrap a DEK whose
// (client, key id) is in its ledger (ErrErased), so a backup or snapshot taken
// before the erasure cannot unseal those notes either. An erasure covers the health
// data that existed when it was applied, not the client forever: a client who
// comes back gets a new data key (a new key id), which the ledger does not name.
// The ledger holds one HMAC-SHA256(ledger key, "erased|"+client_id+"|"+key_id) per
// line, in hex: it names no client to whoever reads it without the KEK. (A key id
// never holds "|", so the pair is read back from the string in one way only.)
//
// The KEK file's key is never used directly: HKDF-SHA256 derives two subkeys from
// it, one that wraps DEKs and one that keys the ledger's HMAC.
//
// Additional data binds every ciphertext to its place: a wrapped DEK to its client
// and key id ("barberpro-dek|" + client_id + "|" + key_id), a sealed note to its
// booking, client and key id ("barberpro-note|" + booking_id + "|" + client_id +
// "|" + key_id). A wrapped key or note copied onto another record does not open.
//
// The package is a leaf: it imports the standard library and the booking protos
// only. Errors never carry client ids, key bytes or note text.
package seal

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/barberpro/edge/storage/durable"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrErased: the client's health data was erased; its key is never unwrapped again.
	ErrErased = errors.New("seal: client's health data erased")
	// ErrWrongKEK: the data key was wrapped by another key-encryption key.
	ErrWrongKEK = errors.New("seal: data key wrapped by another key-encryption key")
	// ErrUnwrap: the wrapped data key does not open under this KEK (tampered, or
	// moved onto another client or key id).
	ErrUnwrap = errors.New("seal: cannot unwrap data key")
	// ErrOpen: a sealed note does not open under this data key (tampered, moved onto
	// another booking or client, or sealed under another key).
	ErrOpen = errors.New("seal: cannot open sealed note")
	// ErrKEKExists: InitKEK would overwrite an existing file.
	ErrKEKExists = errors.New("seal: key-encryption key file exists")
	// ErrBadKEKFile: the KEK file or its erasure ledger is malformed.
	ErrBadKEKFile = errors.New("seal: bad key-encryption key file")
	// ErrInvalid: an argument is missing or inconsistent (an empty id, a note of
	// another client than the data key's).
	ErrInvalid = errors.New("seal: invalid argument")
)

// Sizes and prefixes.
const (
	// KeySize is the size of a KEK and of a DEK: AES-256.
	KeySize = 32
	// LedgerSuffix is appended to the KEK file's path to name its erasure ledger.
	LedgerSuffix = ".erasures"
	// KEKPrefix starts every KEK id.
	KEKPrefix = "kek_"
	// KeyPrefix starts every data key id.
	KeyPrefix = "key_"

	dekAAD   = "barberpro-dek|"
	noteAAD  = "barberpro-note|"
	eraseMAC = "erased|"
	// HKDF info strings of the KEK's two subkeys.
	hkdfWrap   = "barberpro-kek|wrap-dek|v1"
	hkdfLedger = "barberpro-kek|erasure-ledger|v1"
	// macHexLen is the length of one ledger line without its newline.
	macHexLen = 2 * sha256.Size
	// maxKEKFile bounds what LoadKEK reads of a KEK file.
	maxKEKFile = 4096
)

// kekFile is the JSON form of a KEK file.
type kekFile struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// KEK is a loaded key-encryption key with its erasure ledger. It is safe for
// concurrent use.
type KEK struct {
	id     string
	aead   cipher.AEAD
	macKey []byte
	ledger string

	mu     sync.Mutex
	erased map[[sha256.Size]byte]struct{}
}

// DataKey is a client's unwrapped data key. Wipe it when done.
type DataKey struct {
	clientID string
	keyID    string
	key      []byte
}

// InitKEK writes a new random KEK to path (mode 0600) and returns its id. It
// refuses to overwrite an existing file (ErrKEKExists). The ledger is created by
// LoadKEK.
func InitKEK(path string) (id string, err error) {
	if path == "" {
		return "", fmt.Errorf("%w: empty path", ErrInvalid)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("seal: random key: %w", err)
	}
	id, err = randomID(KEKPrefix)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(kekFile{ID: id, Key: base64.StdEncoding.EncodeToString(key)})
	clear(key)
	if err != nil {
		return "", fmt.Errorf("seal: encode key file: %w", err)
	}
	data = append(data, '\n')
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%w: %s", ErrKEKExists, path)
		}
		return "", fmt.Errorf("seal: create key file: %w", err)
	}
	_, werr := f.Write(data)
	clear(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("seal: write key file: %w", werr)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	return id, nil
}

// LoadKEK reads the KEK file at path and its erasure ledger path+".erasures",
// creating the ledger (mode 0600) when it is missing. A KEK file that group or
// others may read (mode & 0o077) is refused (ErrBadKEKFile): chmod 600 it. A malformed KEK file or
// ledger line is ErrBadKEKFile (naming the ledger's line number). A ledger whose
// last line was torn by a crash mid-append (an incomplete line of hex digits with
// no newline) is repaired: the fragment is cut off.
func LoadKEK(path string) (*KEK, error) {
	// The KEK turns every backup's wrapped keys back into data keys: a copy
	// that others on the host can read (cp, a config-management tool) is
	// refused, not loaded quietly.
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s: mode %04o lets group or others read the key-encryption key: chmod 600 it", ErrBadKEKFile, path, info.Mode().Perm())
	}
	raw, err := readBounded(path, maxKEKFile)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	id, key, err := parseKEK(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKEKFile, path, err)
	}
	defer clear(key)
	wrapKey, err := hkdf.Key(sha256.New, key, nil, hkdfWrap, KeySize)
	if err != nil {
		return nil, fmt.Errorf("seal: derive wrapping key: %w", err)
	}
	defer clear(wrapKey)
	macKey, err := hkdf.Key(sha256.New, key, nil, hkdfLedger, KeySize)
	if err != nil {
		return nil, fmt.Errorf("seal: derive ledger key: %w", err)
	}
	block, err := aes.NewCipher(wrapKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKEKFile, path, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: gcm: %w", err)
	}
	k := &KEK{
		id:     id,
		aead:   aead,
		macKey: macKey,
		ledger: path + LedgerSuffix,
		erased: make(map[[sha256.Size]byte]struct{}),
	}
	if err := k.loadLedger(); err != nil {
		return nil, err
	}
	return k, nil
}

// parseKEK decodes a KEK file: {"id":"kek_...","key":"<base64 of 32 bytes>"}.
func parseKEK(raw []byte) (id string, key []byte, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var kf kekFile
	if err := dec.Decode(&kf); err != nil {
		return "", nil, errors.New("not a key file (JSON with id and key)")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("trailing data after the key")
	}
	if !validID(kf.ID, KEKPrefix) {
		return "", nil, errors.New(`id must be "kek_" and letters or digits`)
	}
	key, err = base64.StdEncoding.DecodeString(kf.Key)
	if err != nil || len(key) != KeySize {
		clear(key)
		return "", nil, fmt.Errorf("key must be base64 of %d bytes", KeySize)
	}
	return kf.ID, key, nil
}

// loadLedger reads the erasure ledger, creating it if missing.
func (k *KEK) loadLedger() error {
	f, err := os.OpenFile(k.ledger, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("seal: open erasure ledger: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("seal: erasure ledger: %w", err)
	}
	if info.Size() == 0 {
		// Possibly just created: make its directory entry durable.
		if err := durable.SyncDir(filepath.Dir(k.ledger)); err != nil {
			return err
		}
	}
	erased, good, err := parseLedger(f)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadKEKFile, k.ledger, err)
	}
	if good != info.Size() {
		// A torn final append: cut it off, or end the whole MAC it left with its
		// newline, so the next append starts a line.
		if err := f.Truncate(good); err != nil {
			return fmt.Errorf("seal: repair erasure ledger: %w", err)
		}
		if good > info.Size() {
			if _, err := f.WriteAt([]byte{'\n'}, info.Size()); err != nil {
				return fmt.Errorf("seal: repair erasure ledger: %w", err)
			}
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("seal: repair erasure ledger: %w", err)
		}
	}
	k.erased = erased
	return nil
}

// parseLedger reads ledger lines: each is 64 lower- or upper-case hex digits and a
// newline. It returns the MACs and the length the ledger should have: a last line
// with no newline that is a prefix of a MAC (a torn append) is left out of both; a
// whole MAC with no newline counts, and the length includes the missing newline.
// Anything else malformed is an error naming its line (1-based).
func parseLedger(r io.Reader) (map[[sha256.Size]byte]struct{}, int64, error) {
	erased := make(map[[sha256.Size]byte]struct{})
	br := bufio.NewReaderSize(r, 4096)
	var good int64
	for line := 1; ; line++ {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, 0, fmt.Errorf("line %d: not %d hex digits", line, macHexLen)
		}
		if err != nil && err != io.EOF {
			return nil, 0, fmt.Errorf("read: %v", err)
		}
		text := string(raw)
		if text == "" {
			return erased, good, nil
		}
		complete := strings.HasSuffix(text, "\n")
		body := strings.TrimSuffix(text, "\n")
		if !complete && len(body) < macHexLen && isHex(body) {
			return erased, good, nil // torn append
		}
		var mac [sha256.Size]byte
		if len(body) != macHexLen || !isHex(body) {
			return nil, 0, fmt.Errorf("line %d: not %d hex digits", line, macHexLen)
		}
		if _, err := hex.Decode(mac[:], []byte(body)); err != nil {
			return nil, 0, fmt.Errorf("line %d: not %d hex digits", line, macHexLen)
		}
		erased[mac] = struct{}{}
		good += int64(len(body)) + 1
		if !complete || err == io.EOF {
			return erased, good, nil
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// ID returns the KEK's id ("kek_..."); it is not secret.
func (k *KEK) ID() string { return k.id }

// NewDataKey makes a random data key for clientID and returns it with its wrapped
// form: ClientKey{client_id, key_id, wrapped, kek_id}; created_at_ms is left 0 for
// the proposer to set. A client whose earlier keys were erased gets a new key as
// any other: the ledger names erased keys, not clients.
func (k *KEK) NewDataKey(clientID string) (*DataKey, *bookingv1.ClientKey, error) {
	if clientID == "" {
		return nil, nil, fmt.Errorf("%w: empty client id", ErrInvalid)
	}
	keyID, err := randomID(KeyPrefix)
	if err != nil {
		return nil, nil, err
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, fmt.Errorf("seal: random key: %w", err)
	}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+KeySize+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		clear(key)
		return nil, nil, fmt.Errorf("seal: random nonce: %w", err)
	}
	wrapped := k.aead.Seal(nonce, nonce, key, dekAD(clientID, keyID))
	ck := &bookingv1.ClientKey{ClientId: clientID, KeyId: keyID, Wrapped: wrapped, KekId: k.id}
	return &DataKey{clientID: clientID, keyID: keyID, key: key}, ck, nil
}

// Unwrap opens a client's wrapped data key. It is ErrErased when its (client, key
// id) is in the ledger, ErrWrongKEK when another KEK wrapped it, ErrUnwrap when it does not
// open (tampered, or moved onto another client or key id).
func (k *KEK) Unwrap(ck *bookingv1.ClientKey) (*DataKey, error) {
	// A key id is always "key_" and letters or digits (NewDataKey): with no
	// "|" in it, the additional data names exactly one (client, key id) pair.
	if ck == nil || ck.GetClientId() == "" || !validID(ck.GetKeyId(), KeyPrefix) {
		return nil, fmt.Errorf("%w: client key without client or with a malformed key id", ErrUnwrap)
	}
	if k.Erased(ck.GetClientId(), ck.GetKeyId()) {
		return nil, ErrErased
	}
	if ck.GetKekId() != k.id {
		return nil, ErrWrongKEK
	}
	w := ck.GetWrapped()
	ns := k.aead.NonceSize()
	if len(w) != ns+KeySize+k.aead.Overhead() {
		return nil, ErrUnwrap
	}
	key, err := k.aead.Open(nil, w[:ns], w[ns:], dekAD(ck.GetClientId(), ck.GetKeyId()))
	if err != nil || len(key) != KeySize {
		clear(key)
		return nil, ErrUnwrap
	}
	return &DataKey{clientID: ck.GetClientId(), keyID: ck.GetKeyId(), key: key}, nil
}

// RecordErasure adds the client's destroyed data keys, (clientID, keyID) for each
// of keyIDs, to the erasure ledger (one append, fsync) unless they are there
// already. From then on Unwrap refuses those keys, through this KEK and through
// any KEK later loaded from the same file; the client's other (later) keys are
// not affected. No key ids records nothing (a client erased before any key).
func (k *KEK) RecordErasure(clientID string, keyIDs ...string) error {
	if clientID == "" {
		return fmt.Errorf("%w: empty client id", ErrInvalid)
	}
	for _, id := range keyIDs {
		if !validID(id, KeyPrefix) {
			return fmt.Errorf("%w: malformed key id", ErrInvalid)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var lines []byte
	var add [][sha256.Size]byte
	for _, id := range keyIDs {
		mac := k.mac(clientID, id)
		if _, ok := k.erased[mac]; ok || slices.Contains(add, mac) {
			continue
		}
		add = append(add, mac)
		lines = hex.AppendEncode(lines, mac[:])
		lines = append(lines, '\n')
	}
	if len(add) == 0 {
		return nil
	}
	f, err := os.OpenFile(k.ledger, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("seal: open erasure ledger: %w", err)
	}
	_, err = f.Write(lines)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seal: append to erasure ledger: %w", err)
	}
	for _, mac := range add {
		k.erased[mac] = struct{}{}
	}
	return nil
}

// Erased reports whether the client's data key keyID is in the erasure ledger.
func (k *KEK) Erased(clientID, keyID string) bool {
	mac := k.mac(clientID, keyID)
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.erased[mac]
	return ok
}

func (k *KEK) mac(clientID, keyID string) [sha256.Size]byte {
	m := hmac.New(sha256.New, k.macKey)
	m.Write([]byte(eraseMAC))
	m.Write([]byte(clientID))
	m.Write([]byte("|"))
	m.Write([]byte(keyID))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// KeyID returns the data key's id ("key_...").
func (d *DataKey) KeyID() string { return d.keyID }

// SealNote seals text as the notes of bookingID under the data key: the result has
// booking_id, client_id, key_id, a fresh random nonce and the ciphertext set
// (provider_id and updated_at_ms are the proposer's). clientID must be the data
// key's client (ErrInvalid otherwise).
func (d *DataKey) SealNote(bookingID, clientID string, text []byte) (*bookingv1.SealedNote, error) {
	if bookingID == "" || clientID == "" {
		return nil, fmt.Errorf("%w: empty booking or client id", ErrInvalid)
	}
	if clientID != d.clientID {
		return nil, fmt.Errorf("%w: data key of another client", ErrInvalid)
	}
	aead, err := d.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: random nonce: %w", err)
	}
	ct := aead.Seal(nil, nonce, text, noteAD(bookingID, clientID, d.keyID))
	return &bookingv1.SealedNote{BookingId: bookingID, ClientId: clientID, KeyId: d.keyID, Nonce: nonce, Ciphertext: ct}, nil
}

// OpenNote returns the text of a note sealed under this data key. It is ErrOpen
// when the note was sealed under another key, for another client, or does not
// open (tampered, or moved onto another booking).
func (d *DataKey) OpenNote(n *bookingv1.SealedNote) ([]byte, error) {
	if n == nil || n.GetKeyId() != d.keyID || n.GetClientId() != d.clientID {
		return nil, ErrOpen
	}
	aead, err := d.aead()
	if err != nil {
		return nil, err
	}
	if len(n.GetNonce()) != aead.NonceSize() {
		return nil, ErrOpen
	}
	text, err := aead.Open(nil, n.GetNonce(), n.GetCiphertext(), noteAD(n.GetBookingId(), n.GetClientId(), n.GetKeyId()))
	if err != nil {
		return nil, ErrOpen
	}
	if text == nil {
		text = []byte{}
	}
	return text, nil
}

// Wipe zeroes the key bytes; the data key is unusable afterwards (ErrOpen).
func (d *DataKey) Wipe() {
	clear(d.key)
	d.key = nil
}

func (d *DataKey) aead() (cipher.AEAD, error) {
	if len(d.key) != KeySize {
		return nil, fmt.Errorf("%w: data key wiped", ErrOpen)
	}
	block, err := aes.NewCipher(d.key)
	if err != nil {
		return nil, fmt.Errorf("seal: cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

func dekAD(clientID, keyID string) []byte {
	return []byte(dekAAD + clientID + "|" + keyID)
}

func noteAD(bookingID, clientID, keyID string) []byte {
	return []byte(noteAAD + bookingID + "|" + clientID + "|" + keyID)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomID returns prefix + 16 random lower-case base32 characters (80 bits).
func randomID(prefix string) (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("seal: random id: %w", err)
	}
	return prefix + idEncoding.EncodeToString(b[:]), nil
}

// validID reports whether id is prefix followed by 1..64 ASCII letters or digits.
func validID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest == "" || len(rest) > 64 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// readBounded reads at most limit bytes of path; a longer file is ErrBadKEKFile.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: open key file: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("seal: read key file: %w", err)
	}
	if int64(len(raw)) > limit {
		clear(raw)
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrBadKEKFile, path, limit)
	}
	return raw, nil
}
