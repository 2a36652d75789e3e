package cluster_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
)

// syncBuffer is a bytes.Buffer safe for the node's concurrent loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// repeatedKey returns the first top-level key that appears twice in the JSON
// object line ("" if none).
func repeatedKey(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		return "", err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		key := tok.(string)
		if seen[key] {
			return key, nil
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", err
		}
	}
	return "", nil
}

// Test_Logs_NoRepeatedKeys: no JSON log line of a node repeats a key (issue 10,
// first hour item 10: storage lines said "component" and "node" twice, once
// from the node and once from the store, and log tools kept either).
func Test_Logs_NoRepeatedKeys(t *testing.T) {
	var buf syncBuffer
	n := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	n.Stop()
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines++
		key, err := repeatedKey(sc.Text())
		if err != nil {
			t.Fatalf("log line is not a JSON object: %v: %s", err, sc.Text())
		}
		if key != "" {
			t.Fatalf("log line repeats %q: %s", key, sc.Text())
		}
	}
	if lines < 10 {
		t.Fatalf("only %d log lines at debug level: the check saw too little", lines)
	}
}
