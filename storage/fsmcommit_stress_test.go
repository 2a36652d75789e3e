package storage

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// slowSink is a raft.SnapshotSink that holds Persist's read transaction
// open for a while (a snapshot written to a slow disk).
type slowSink struct{ bytes.Buffer }

func (s *slowSink) Write(p []byte) (int, error) {
	time.Sleep(50 * time.Microsecond)
	return s.Buffer.Write(p)
}
func (s *slowSink) ID() string    { return "slow" }
func (s *slowSink) Cancel() error { return nil }
func (s *slowSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*slowSink)(nil)

// TestFSM_DeferredCommitsUnderConcurrency: the apply path (raft's FSM
// goroutine: batches, and now and then a snapshot whose Persist streams
// slowly in another goroutine, as raft's does) runs with point reads
// (peek), pages of a list read in the open transaction (peek), scans (view),
// the sync loop and shred's rewrite at once (and snapshots installed now and
// then), while fsm.db grows (bbolt remaps its file at
// commits, which waits for every read transaction). Every read made after
// a batch was answered sees it, nothing deadlocks, and the final state is a
// reference FSM's. Run with -race.
func TestFSM_DeferredCommitsUnderConcurrency(t *testing.T) {
	withBootID(t, "boot-1")
	const n = 1500
	entries := providerEntries(t, 1, n)
	f := openLazyFSM(t, t.TempDir(), 2*time.Millisecond)
	defer f.close()

	var answered atomic.Uint64
	stop := make(chan struct{})
	errc := make(chan error, 16)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	has := func(tx *bolt.Tx, i uint64) bool {
		return tx.Bucket(bucketProviders).Get([]byte(fmt.Sprint("p", i))) != nil
	}
	reader := func(name string, read func(i uint64) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := answered.Load()
				if i == 0 {
					runtime.Gosched()
					continue
				}
				if err := read(i); err != nil {
					report(fmt.Errorf("%s after entry %d was answered: %w", name, i, err))
					return
				}
			}
		}()
	}
	missing := fmt.Errorf("provider missing")
	reader("peek", func(i uint64) error {
		var ok bool
		if err := f.peek(func(tx *bolt.Tx) error { ok = has(tx, i); return nil }); err != nil {
			return err
		}
		if !ok {
			return missing
		}
		return nil
	})
	reader("view", func(i uint64) error {
		var ok bool
		if err := f.view(func(tx *bolt.Tx) error { ok = has(tx, i) && has(tx, 1); return nil }); err != nil {
			return err
		}
		if !ok {
			return missing
		}
		return nil
	})
	reader("peek page", func(i uint64) error { // a page of a list in the open transaction
		want := fmt.Sprint("p", i)
		var first string
		err := f.peek(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketProviders).Cursor()
			n := 0
			for k, _ := c.Seek([]byte(want)); k != nil && n < 8; k, _ = c.Next() {
				if n == 0 {
					first = string(k)
				}
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if first != want { // a missing p<i> would seek to the next key
			return missing
		}
		return nil
	})
	wg.Add(1)
	go func() { // shred's rewrite, now and then
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := f.rewrite(); err != nil {
				report(fmt.Errorf("rewrite: %w", err))
				return
			}
		}
	}()

	applied := make(chan error, 1)
	go func() { // raft's FSM goroutine
		var persists sync.WaitGroup
		defer persists.Wait()
		for i, e := range entries {
			f.ApplyBatch([]*raft.Log{e})
			answered.Store(e.Index)
			if i%500 == 499 { // an installed snapshot of the same state
				snap, err := f.Snapshot()
				if err != nil {
					applied <- err
					return
				}
				var sink slowSink
				if err := snap.Persist(&sink); err != nil {
					applied <- err
					return
				}
				if err := f.Restore(io.NopCloser(&sink.Buffer)); err != nil {
					applied <- err
					return
				}
			}
			if i%250 == 249 {
				snap, err := f.Snapshot()
				if err != nil {
					applied <- err
					return
				}
				persists.Add(1)
				go func() {
					defer persists.Done()
					if err := snap.Persist(&slowSink{}); err != nil {
						report(err)
					}
				}()
			}
		}
		applied <- nil
	}()
	select {
	case err := <-applied:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-errc:
		close(stop)
		t.Fatal(err)
	case <-time.After(90 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("apply path stuck at entry %d:\n%s", answered.Load(), buf[:runtime.Stack(buf, true)])
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}

	ref, err := openFSM(t.TempDir()+"/"+FSMFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.close()
	ref.ApplyBatch(entries)
	want, _ := ref.digest()
	if got, err := f.digest(); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("final state differs from the reference (err %v)", err)
	}
}
