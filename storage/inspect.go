package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// State is what a stopped node's FSM file holds, as Inspect reads it.
type State struct {
	// Digest is what Store.Digest would answer on that node: a SHA-256 over every
	// record of the FSM (not the applied index).
	Digest []byte
	// AppliedIndex is the last Raft log index reflected in the file.
	AppliedIndex uint64
	// Bookings and Providers are every record of their buckets, in key order.
	Bookings  []*bookingv1.Booking
	Providers []*bookingv1.Provider
}

// ErrNoFSM is returned by Inspect when the data dir holds no fsm.db.
var ErrNoFSM = errors.New("storage: no fsm.db in data dir")

// Inspect reads the FSM file of a node's data dir (<dataDir>/fsm.db) read-only
// and returns its records and digest. The node must be stopped: bbolt locks the
// file, and Inspect gives up after a second if a live node holds it. It never
// writes to the file. An fsm.db a power loss may have torn (the node died
// committing without fsync and the machine restarted since) is not read:
// ErrFSMUntrusted.
func Inspect(dataDir string) (State, error) {
	path := filepath.Join(dataDir, FSMFile)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return State{}, fmt.Errorf("%w: %s", ErrNoFSM, dataDir)
		}
		return State{}, err
	}
	if err := checkFSMTrusted(path); err != nil {
		return State{}, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return State{}, fmt.Errorf("storage: inspect %s: %w", path, err)
	}
	defer db.Close()
	var st State
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("storage: inspect %s: bucket %q missing", path, name)
			}
		}
		st.AppliedIndex, _ = readApplied(tx)
		var err error
		if st.Digest, err = digestTx(tx); err != nil {
			return err
		}
		if err := tx.Bucket(bucketBookings).ForEach(func(k, v []byte) error {
			b := new(bookingv1.Booking)
			if err := proto.Unmarshal(v, b); err != nil {
				return fmt.Errorf("booking %q: %w", k, err)
			}
			st.Bookings = append(st.Bookings, b)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketProviders).ForEach(func(k, v []byte) error {
			p := new(bookingv1.Provider)
			if err := proto.Unmarshal(v, p); err != nil {
				return fmt.Errorf("provider %q: %w", k, err)
			}
			st.Providers = append(st.Providers, p)
			return nil
		})
	})
	if err != nil {
		return State{}, fmt.Errorf("storage: inspect %s: %w", path, err)
	}
	return st, nil
}
