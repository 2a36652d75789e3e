package storage

import (
	"bytes"
	"io"
)

// SnapshotBytes persists an FSM snapshot into memory (review 9 helper).
func (t *TestFSM) SnapshotBytes() ([]byte, error) {
	s, err := t.f.Snapshot()
	if err != nil {
		return nil, err
	}
	defer s.Release()
	sink := &memSink{}
	if err := s.Persist(sink); err != nil {
		return nil, err
	}
	return sink.Bytes(), nil
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

var _ io.Writer = (*memSink)(nil)
