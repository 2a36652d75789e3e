// Package ids builds and parses the ids that route: a provider id carries the
// provider's home city and a booking id its provider's home city, so any node can
// tell, from the id alone, which jurisdiction holds the record and which city its
// calendar actor prefers. It is a leaf package (standard library only) so the edge,
// the actor layer (placement) and tools share one parse.
//
// Format: "<kind>_<city>_<rest>", e.g. "prv_buenos-aires_k3j4q7...". kind is
// "prv", "bkg", "cns" (consents) or "srs" (series); city is a topology city name (lower-case ASCII letters, digits
// and '-', never '_'); rest is the random part (non-empty, printable ASCII without
// spaces or '/'; it may itself contain '_'). Service ids ("svc_<random>") and
// other ids do not route. New makes the random part of every id the edge
// assigns, in creation-time order.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// Kinds of ids that carry a city.
const (
	// Provider prefixes provider ids.
	Provider = "prv"
	// Booking prefixes booking ids; the city is the booking's provider's.
	Booking = "bkg"
	// Consent prefixes consent ids; the city is a city of the jurisdiction the
	// consent names (the first of the topology's), so it routes there.
	Consent = "cns"
	// Series prefixes series ids; the city is the series' provider's.
	Series = "srs"
)

// Bounds of the parts of an id.
const (
	// MaxCityLen bounds the city part.
	MaxCityLen = 64
	// MaxIDLen bounds a whole id (the edge accepts ids of at most 200 bytes).
	MaxIDLen = 200
)

// Prefix is what the random part of a routed id is appended to (with "_"):
// Prefix(Provider, "cordoba") = "prv_cordoba". The edge passes it to its
// Config.NewID, whose default returns prefix + "_" + random.
func Prefix(kind, city string) string { return kind + "_" + city }

// CityOf returns the city carried by a provider, booking, consent or series id,
// and whether id is one. It never panics and allocates nothing: the city is a substring of id.
func CityOf(id string) (city string, ok bool) {
	if len(id) > MaxIDLen {
		return "", false
	}
	kind, after, found := strings.Cut(id, "_")
	if !found || (kind != Provider && kind != Booking && kind != Consent && kind != Series) {
		return "", false
	}
	city, rest, found := strings.Cut(after, "_")
	if !found || !ValidCity(city) || !validRest(rest) {
		return "", false
	}
	return city, true
}

// ValidCity reports whether name can be the city part of an id: 1..MaxCityLen
// bytes of a-z, 0-9 and '-', starting and ending with a letter or digit.
func ValidCity(name string) bool {
	if name == "" || len(name) > MaxCityLen || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validRest reports whether s can be the random part: non-empty printable ASCII
// without spaces or '/'.
func validRest(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return false
		}
	}
	return true
}

// orderedEncoding is base32 with an alphabet in ASCII order ("2".."7" sort
// before "a".."z"), so the encoded strings of equal length sort as the bytes
// they encode.
var orderedEncoding = base32.NewEncoding("234567abcdefghijklmnopqrstuvwxyz").WithPadding(base32.NoPadding)

// NewAt returns prefix + "_" + a new random part that sorts by creation time:
// 26 base32 characters of the 48-bit Unix millisecond of now, then 80 random
// bits. Ids made later sort after ids made earlier (to the millisecond, on one
// clock), so the store inserts a new record's keys where the last ones went —
// at the end of its range — and writes a few pages per commit instead of one
// page per record (storage/DESIGN.md, "Key order"). The random bits keep ids
// unguessable and unique; the time in an id is when it was made, which its
// holder learns anyway from the record.
func NewAt(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails
	return prefix + "_" + orderedEncoding.EncodeToString(b[:])
}

// New is NewAt(prefix, time.Now()): the edge's default id maker.
func New(prefix string) string { return NewAt(prefix, time.Now()) }
