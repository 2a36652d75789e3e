package storage

import "context"

// ReadAfterWait is what a LinearizableRead on a follower does once the leader
// handed it read index idx: Store.waitApplied(idx), then a local read
// (Booking: get, which peeks).
func (t *TestFSM) ReadAfterWait(ctx context.Context, idx uint64, id string) (waitErr, readErr error) {
	s := &Store{fsm: t.f}
	if err := s.waitApplied(ctx, idx); err != nil {
		return err, nil
	}
	_, err := s.Booking(ctx, id)
	return nil, err
}
