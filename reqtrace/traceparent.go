package reqtrace

import (
	"encoding/hex"
)

// Traceparent is a parsed W3C traceparent header: the trace, the span of the
// sender (the receiver's parent) and the trace flags.
type Traceparent struct {
	Version  byte
	TraceID  [16]byte
	ParentID [8]byte
	Flags    byte
}

// traceparentLen is the length of a version-00 traceparent:
// 2 version, 32 trace-id, 16 parent-id, 2 flags, and 3 dashes.
const traceparentLen = 55

// ParseTraceparent parses a traceparent header value as W3C Trace Context
// (Level 1, §3.2 and §4.3) says a receiver must:
//   - version is two lowercase hex digits, and ff is invalid;
//   - version 00 is exactly "00-" 32 hex "-" 16 hex "-" 2 hex (55 characters);
//   - a higher version is parsed as 00 from its first 55 characters, which must
//     be followed by nothing or by "-" (fields it may add);
//   - hex digits are lowercase; a trace id or parent id of all zeros is invalid.
//
// Flags are kept as they are. ok is false for anything else; the caller then
// starts a new trace.
func ParseTraceparent(s string) (tp Traceparent, ok bool) {
	if len(s) < traceparentLen || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tp, false
	}
	var v [1]byte
	if !lowerHex(v[:], s[0:2]) || v[0] == 0xff {
		return tp, false
	}
	tp.Version = v[0]
	switch {
	case tp.Version == 0 && len(s) != traceparentLen:
		return tp, false
	case len(s) > traceparentLen && s[traceparentLen] != '-':
		return tp, false
	}
	var f [1]byte
	if !lowerHex(tp.TraceID[:], s[3:35]) || !lowerHex(tp.ParentID[:], s[36:52]) || !lowerHex(f[:], s[53:55]) {
		return tp, false
	}
	tp.Flags = f[0]
	if tp.TraceID == [16]byte{} || tp.ParentID == [8]byte{} {
		return tp, false
	}
	return tp, true
}

// FormatTraceparent writes tp as a version-00 traceparent (whatever
// tp.Version: this service speaks version 00).
func FormatTraceparent(tp Traceparent) string {
	b := make([]byte, 0, traceparentLen)
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, tp.TraceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, tp.ParentID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, []byte{tp.Flags})
	return string(b)
}

// lowerHex decodes s, lowercase hex digits only, into dst (len(s) = 2·len(dst)).
func lowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}
