package storage

import (
	"context"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// maxClientList bounds ClientConsents and ClientNotes (a client has a
// handful of consents and one note per session).
const maxClientList = 10000

// Consent returns the consent with id from the local replica; ErrNotFound.
// Its status at a given time is ConsentStatus.
func (s *Store) Consent(ctx context.Context, id string) (*bookingv1.Consent, error) {
	c := new(bookingv1.Consent)
	if err := s.get(ctx, bucketConsents, id, c); err != nil {
		return nil, err
	}
	return c, nil
}

// ClientConsents returns every consent of the client (withdrawn and expired
// ones included), ordered by id, from the local replica (at most 10000).
func (s *Store) ClientConsents(ctx context.Context, clientID string) ([]*bookingv1.Consent, error) {
	var out []*bookingv1.Consent
	err := s.clientList(ctx, bucketClientConsents, bucketConsents, clientID, func() proto.Message {
		c := new(bookingv1.Consent)
		out = append(out, c)
		return c
	}, func() { out = out[:len(out)-1] })
	return out, err
}

// Series returns the series with id from the local replica; ErrNotFound.
func (s *Store) Series(ctx context.Context, id string) (*bookingv1.Series, error) {
	sr := new(bookingv1.Series)
	if err := s.get(ctx, bucketSeries, id, sr); err != nil {
		return nil, err
	}
	return sr, nil
}

// ClientKey returns the client's wrapped data key from the local replica;
// ErrNotFound when the client has none (never had one, or was erased).
func (s *Store) ClientKey(ctx context.Context, clientID string) (*bookingv1.ClientKey, error) {
	k := new(bookingv1.ClientKey)
	if err := s.get(ctx, bucketClientKeys, clientID, k); err != nil {
		return nil, err
	}
	return k, nil
}

// Note returns the sealed notes of the session (booking) from the local
// replica; ErrNotFound when it has none (or they were erased).
func (s *Store) Note(ctx context.Context, bookingID string) (*bookingv1.SealedNote, error) {
	n := new(bookingv1.SealedNote)
	if err := s.get(ctx, bucketNotes, bookingID, n); err != nil {
		return nil, err
	}
	return n, nil
}

// ClientNotes returns every sealed note of the client, ordered by booking
// id, from the local replica (at most 10000).
func (s *Store) ClientNotes(ctx context.Context, clientID string) ([]*bookingv1.SealedNote, error) {
	var out []*bookingv1.SealedNote
	err := s.clientList(ctx, bucketClientNotes, bucketNotes, clientID, func() proto.Message {
		n := new(bookingv1.SealedNote)
		out = append(out, n)
		return n
	}, func() { out = out[:len(out)-1] })
	return out, err
}

// Erasure returns the record of the client's erasure from the local
// replica; ErrNotFound when the client's health data was never erased.
func (s *Store) Erasure(ctx context.Context, clientID string) (*bookingv1.Erasure, error) {
	e := new(bookingv1.Erasure)
	if err := s.get(ctx, bucketErasures, clientID, e); err != nil {
		return nil, err
	}
	return e, nil
}

// ErasuresApplied is how many EraseHealthData commands that erased something
// this process has applied (snapshots restored with new erasures included).
// It only grows; a shredder watches it.
func (s *Store) ErasuresApplied() uint64 { return s.fsm.erasures.Load() }

// clientList reads the records of bucket named by the index entries of
// owner (clientID 0x00 id) in index order: next returns a fresh message
// (already kept by the caller), drop forgets the last one (its record is
// missing).
func (s *Store) clientList(ctx context.Context, index, bucket []byte, owner string, next func() proto.Message, drop func()) error {
	if err := s.readable(ctx); err != nil {
		return err
	}
	if owner == "" {
		return nil
	}
	return s.fsm.view(func(tx *bolt.Tx) error {
		n := 0
		scanIndex(tx, index, owner, func(id string) bool {
			if n == maxClientList {
				return false
			}
			if !getProto(tx, bucket, id, next()) {
				drop()
				return true
			}
			n++
			return true
		})
		return nil
	})
}

// AuditFilter selects audit entries. Object and Subject, when set, must
// match exactly (both: entries matching both). After is a cursor: entries
// with seq > After. Limit <= 0 means 50; it is capped at 1000.
type AuditFilter struct {
	Object, Subject string
	After           uint64
	Limit           int
}

// AuditEntries returns the audit entries matching f in seq order, from the
// local replica, and the After of the next page (0 when there is none).
func (s *Store) AuditEntries(ctx context.Context, f AuditFilter) ([]*bookingv1.AuditEntry, uint64, error) {
	if err := s.readable(ctx); err != nil {
		return nil, 0, err
	}
	if f.After == math.MaxUint64 {
		return nil, 0, nil
	}
	limit := pageLimit(f.Limit)
	var out []*bookingv1.AuditEntry
	var next uint64
	err := s.fsm.view(func(tx *bolt.Tx) error {
		add := func(v []byte) (more bool, err error) {
			if len(out) == limit {
				next = out[len(out)-1].Seq
				return false, nil
			}
			e := new(bookingv1.AuditEntry)
			if err := proto.Unmarshal(v, e); err != nil {
				return false, fmt.Errorf("storage: audit entry: %w", err)
			}
			if f.Subject != "" && e.Subject != f.Subject || f.Object != "" && e.Object != f.Object {
				return true, nil
			}
			out = append(out, e)
			return true, nil
		}
		entries := tx.Bucket(bucketAudit)
		var index []byte
		owner := f.Object
		switch {
		case f.Object != "":
			index = bucketAuditObject
		case f.Subject != "":
			index, owner = bucketAuditSubject, f.Subject
		}
		if index == nil {
			c := entries.Cursor()
			for k, v := c.Seek(u64(f.After + 1)); k != nil; k, v = c.Next() {
				if more, err := add(v); !more || err != nil {
					return err
				}
			}
			return nil
		}
		prefix := append([]byte(owner), 0)
		c := tx.Bucket(index).Cursor()
		for k, _ := c.Seek(auditIndexKey(owner, f.After+1)); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			v := entries.Get(k[len(prefix):])
			if v == nil {
				continue
			}
			if more, err := add(v); !more || err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, next, nil
}
