package storage

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkSegmentLog_Append appends one 3,000-byte entry per StoreLogs (one
// pwrite and one fdatasync), as a Raft leader serving one client does: into
// the zero-ahead, and growing the file (zero-ahead off, as before it).
// ns/op is an append's latency, the zero-ahead's own writes included. Run it
// where data dirs live (b.TempDir: TMPDIR), e.g.
//
//	go test -run '^$' -bench 'SegmentLog_Append' -benchtime 3000x -count 3 ./storage/
func BenchmarkSegmentLog_Append(b *testing.B) {
	for _, tc := range []struct {
		name  string
		ahead int64
	}{{"zero-ahead", zeroAhead}, {"growing", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			ls, err := openLogStore(filepath.Join(b.TempDir(), RaftFile), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			defer ls.Close()
			ls.log.wmu.Lock()
			ls.log.zeroAhead = tc.ahead
			ls.log.wmu.Unlock()
			data := make([]byte, 3000)
			if err := ls.StoreLog(&raft.Log{Index: 1, Term: 1, Data: data}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := ls.StoreLog(&raft.Log{Index: uint64(i) + 2, Term: 1, Data: data}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
