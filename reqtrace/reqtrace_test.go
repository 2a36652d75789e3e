package reqtrace

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParseTraceparent(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{validTP, true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", true}, // flags kept
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", true},
		{"", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", false}, // 00 is exactly 55
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", false},
		{"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", false},
		{" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
	} {
		tp, ok := ParseTraceparent(c.in)
		if ok != c.ok {
			t.Errorf("ParseTraceparent(%q) ok = %v, want %v", c.in, ok, c.ok)
			continue
		}
		if ok && FormatTraceparent(tp)[3:] != c.in[3:55] {
			t.Errorf("FormatTraceparent(ParseTraceparent(%q)) = %q", c.in, FormatTraceparent(tp))
		}
	}
}

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc":                          true,
		"A.b_c-9":                      true,
		strings.Repeat("a", 128):       true,
		strings.Repeat("a", 129):       false,
		"":                             false,
		"a b":                          false,
		"a@b":                          false,
		"ñ":                            false,
		"a\nb":                         false,
		"{\"x\":1}":                    false,
		"e4c6a0c1-96e4-4f0e-9a43-bc3d": true,
	} {
		if got := ValidRequestID(id); got != want {
			t.Errorf("ValidRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestBegin(t *testing.T) {
	i := Begin("req-1", validTP)
	if i.RequestID != "req-1" || i.TraceIDHex() != "4bf92f3577b34da6a3ce929d0e0e4736" || i.Flags != 1 {
		t.Fatalf("Begin kept %+v", i)
	}
	if i.SpanIDHex() == "00f067aa0ba902b7" || i.ParentID != [8]byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7} {
		t.Fatalf("the hop must get its own span, its parent the sender's: %+v", i)
	}
	if tp := i.Traceparent(); !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(tp, "-01") || strings.Contains(tp, "00f067aa0ba902b7") {
		t.Fatalf("Traceparent() = %q", tp)
	}
	n := Begin("bad id!", "garbage")
	if !ValidRequestID(n.RequestID) || len(n.RequestID) != 32 || n.RequestID == "bad id!" {
		t.Fatalf("an invalid id must be replaced by a made one: %q", n.RequestID)
	}
	if n.TraceIDHex() == "4bf92f3577b34da6a3ce929d0e0e4736" || !n.Valid() || n.ParentID != [8]byte{} || n.Flags != 0 {
		t.Fatalf("an invalid traceparent must start a new trace: %+v", n)
	}
	if _, ok := ParseTraceparent(n.Traceparent()); !ok {
		t.Fatalf("made traceparent %q does not parse", n.Traceparent())
	}
	if Begin("", "").RequestID == Begin("", "").RequestID {
		t.Fatal("made ids repeat")
	}
	h := http.Header{}
	h.Add(TraceparentHeader, validTP)
	h.Add(TraceparentHeader, validTP)
	if FromHeader(h).TraceIDHex() == "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatal("a repeated traceparent must be taken as absent")
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(slog.New(slog.NewJSONHandler(&buf, nil))).With("component", "x")
	if Logger(log) != log {
		t.Fatal("Logger wraps twice")
	}
	i := Begin("req-7", validTP)
	log.InfoContext(WithInfo(context.Background(), i), "hello")
	log.Info("no request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first[KeyRequestID] != "req-7" || first[KeyTraceID] != i.TraceIDHex() || first[KeySpanID] != i.SpanIDHex() || first["component"] != "x" {
		t.Fatalf("line %s", lines[0])
	}
	if _, ok := second[KeyRequestID]; ok {
		t.Fatalf("line without a request: %s", lines[1])
	}
}

func TestChild(t *testing.T) {
	i := Begin("r", validTP)
	c, ok := Child(WithInfo(context.Background(), i))
	if !ok || c.RequestID != "r" || c.TraceID != i.TraceID || c.ParentID != i.SpanID || c.SpanID == i.SpanID {
		t.Fatalf("Child = %+v of %+v", c, i)
	}
	if _, ok := Child(context.Background()); ok {
		t.Fatal("Child of nothing")
	}
}

// FuzzParseTraceparent checks the parser never panics, accepts only what the
// spec's grammar allows, and that what it accepts formats back to the same
// trace, parent and flags.
func FuzzParseTraceparent(f *testing.F) {
	for _, s := range []string{validTP, "", "00-", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
		"00-00000000000000000000000000000000-0000000000000000-00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, ok := ParseTraceparent(s)
		if !ok {
			return
		}
		if len(s) < 55 || (s[:2] == "00" && len(s) != 55) || (len(s) > 55 && s[55] != '-') || s[:2] == "ff" {
			t.Fatalf("accepted %q", s)
		}
		for _, c := range s[:55] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
				t.Fatalf("accepted %q with %q", s, c)
			}
		}
		out := FormatTraceparent(tp)
		if out[2:] != s[2:55] {
			t.Fatalf("%q formats back as %q", s, out)
		}
		back, ok := ParseTraceparent(out)
		if !ok || back.TraceID != tp.TraceID || back.ParentID != tp.ParentID || back.Flags != tp.Flags {
			t.Fatalf("%q: round trip %q lost it", s, out)
		}
	})
}

// FuzzBegin checks that whatever arrives, the hop has a sane request id and a
// valid traceparent to send on.
func FuzzBegin(f *testing.F) {
	f.Add("req-1", validTP)
	f.Add("a b", "00-")
	f.Fuzz(func(t *testing.T, id, tp string) {
		i := Begin(id, tp)
		if !ValidRequestID(i.RequestID) || !i.Valid() {
			t.Fatalf("Begin(%q, %q) = %+v", id, tp, i)
		}
		if _, ok := ParseTraceparent(i.Traceparent()); !ok {
			t.Fatalf("Begin(%q, %q) sends %q", id, tp, i.Traceparent())
		}
	})
}
