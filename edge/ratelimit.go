package edge

import (
	"cmp"
	"container/list"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/edge/auth"
)

// Limits are the rate limits a node applies to the requests its clients send it
// (Server.Handler), never again to the requests other nodes relay to it
// (Server.PeerHandler): a relayed request was limited once, where the client
// called. Each key (a token's role and subject; a client IP, IPv6 by its /64)
// has a token bucket of golang.org/x/time/rate. A request without a valid
// token is charged to its IP; so is one whose token the verifier has not seen
// before, before its signature is checked (a flood of bad tokens costs no
// Ed25519 work past the IP's limit), and then to its subject once it verified;
// a token verified before is charged to its subject only. A zero field takes
// DefaultLimits' value.
type Limits struct {
	// PerSubject is the sustained rate of one token subject, in requests per
	// second. Default 50. rate.Inf: no limit (load tools).
	PerSubject rate.Limit
	// SubjectBurst is how many requests one subject may send at once. Default 100.
	SubjectBurst int
	// PerIP is the sustained rate of one client IP calling without a valid token,
	// in requests per second. Default 50. rate.Inf: no limit.
	PerIP rate.Limit
	// IPBurst is how many such requests one IP may send at once. Default 100.
	IPBurst int
	// MaxKeys bounds the buckets kept of each kind: subjects and IPs are kept
	// apart, so new IPs never push a subject out. When full, the bucket of that
	// kind unused longest is dropped. Default 100000.
	MaxKeys int
	// IdleAfter drops a bucket unused this long (a bucket idle long enough to
	// refill is the same as a new one). Default 10 minutes.
	IdleAfter time.Duration
}

// DefaultLimits returns the default Limits.
func DefaultLimits() Limits {
	return Limits{
		PerSubject:   50,
		SubjectBurst: 100,
		PerIP:        50,
		IPBurst:      100,
		MaxKeys:      100_000,
		IdleAfter:    10 * time.Minute,
	}
}

// Validate reports a negative or NaN field.
func (l Limits) Validate() error {
	switch {
	case l.PerSubject < 0 || l.PerIP < 0 || math.IsNaN(float64(l.PerSubject)) || math.IsNaN(float64(l.PerIP)):
		return fmt.Errorf("edge: Config.Limits: rates must be positive (got %v per subject, %v per IP)", l.PerSubject, l.PerIP)
	case l.SubjectBurst < 0 || l.IPBurst < 0:
		return fmt.Errorf("edge: Config.Limits: bursts must be positive (got %d per subject, %d per IP)", l.SubjectBurst, l.IPBurst)
	case l.MaxKeys < 0 || l.IdleAfter < 0:
		return fmt.Errorf("edge: Config.Limits: MaxKeys and IdleAfter must not be negative")
	}
	return nil
}

// withDefaults fills the zero fields, and reads an infinite rate (a flag's
// "inf") as rate.Inf.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if math.IsInf(float64(l.PerSubject), 1) {
		l.PerSubject = rate.Inf
	}
	if math.IsInf(float64(l.PerIP), 1) {
		l.PerIP = rate.Inf
	}
	l.PerSubject, l.PerIP = cmp.Or(l.PerSubject, d.PerSubject), cmp.Or(l.PerIP, d.PerIP)
	l.SubjectBurst, l.IPBurst = cmp.Or(l.SubjectBurst, d.SubjectBurst), cmp.Or(l.IPBurst, d.IPBurst)
	l.MaxKeys, l.IdleAfter = cmp.Or(l.MaxKeys, d.MaxKeys), cmp.Or(l.IdleAfter, d.IdleAfter)
	return l
}

// limiter holds the token buckets of Limits: one LRU of subjects' buckets and
// another of client IPs' (IPv6 by /64), each of at most MaxKeys buckets, so that
// requests from ever new addresses, which cost nothing to make, never push a
// subject's bucket out. It is safe for concurrent use.
type limiter struct {
	subjects, ips *buckets
}

func newLimiter(l Limits, now func() time.Time) *limiter {
	return &limiter{
		subjects: newBuckets(l.PerSubject, l.SubjectBurst, l.MaxKeys, l.IdleAfter, now),
		ips:      newBuckets(l.PerIP, l.IPBurst, l.MaxKeys, l.IdleAfter, now),
	}
}

// allowSubject takes one token from the bucket of p's role and subject. When
// there is none it returns how long until there will be.
func (l *limiter) allowSubject(p auth.Principal) (bool, time.Duration) {
	return l.subjects.allow(string(p.Role) + ":" + p.Subject)
}

// allowIP takes one token from the bucket of r's client address (ipKey).
func (l *limiter) allowIP(r *http.Request) (bool, time.Duration) {
	return l.ips.allow(ipKey(r.RemoteAddr))
}

// len is the number of buckets kept, of both kinds.
func (l *limiter) len() int { return l.subjects.len() + l.ips.len() }

// ipKey is the bucket of a client address (host:port, or a bare host): an IPv4
// address (or IPv4-mapped IPv6) by itself, an IPv6 address by its /64, the
// smallest block one host or home is given (RFC 6177): keying by the whole
// address would give such a client 2^64 buckets. Anything that does not parse
// is keyed as it stands.
func ipKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// buckets holds one token bucket per key, at most max of them, least recently
// used first out, and drops those unused for idle. It is safe for concurrent use.
type buckets struct {
	r     rate.Limit
	burst int
	max   int
	idle  time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // of *bucket
	lru  list.List                // front: most recently used
}

// bucket is one key's token bucket.
type bucket struct {
	key  string
	lim  *rate.Limiter
	used time.Time
}

func newBuckets(r rate.Limit, burst, max int, idle time.Duration, now func() time.Time) *buckets {
	return &buckets{r: r, burst: burst, max: max, idle: idle, now: now, keys: map[string]*list.Element{}}
}

// allow takes one token from key's bucket. When there is none it returns how
// long until there will be.
func (b *buckets) allow(key string) (bool, time.Duration) {
	if b.r == rate.Inf {
		return true, 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.evict(now)
	var k *bucket
	if e, ok := b.keys[key]; ok {
		k = e.Value.(*bucket)
		b.lru.MoveToFront(e)
	} else {
		if b.lru.Len() >= b.max {
			b.drop(b.lru.Back())
		}
		k = &bucket{key: key, lim: rate.NewLimiter(b.r, b.burst)}
		b.keys[key] = b.lru.PushFront(k)
	}
	k.used = now
	res := k.lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict drops the buckets unused for idle; b.mu is held.
func (b *buckets) evict(now time.Time) {
	for e := b.lru.Back(); e != nil; e = b.lru.Back() {
		if now.Sub(e.Value.(*bucket).used) < b.idle {
			return
		}
		b.drop(e)
	}
}

// drop removes one bucket; b.mu is held.
func (b *buckets) drop(e *list.Element) {
	delete(b.keys, e.Value.(*bucket).key)
	b.lru.Remove(e)
}

// len is the number of buckets kept.
func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lru.Len()
}

// errRateLimited is the 429 of a request over its limit; retry is written as
// Retry-After in whole seconds (at least 1).
func errRateLimited(retry time.Duration) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: CodeRateLimited,
		detail: "too many requests; retry after the Retry-After delay",
		header: http.Header{"Retry-After": {strconv.Itoa(max(1, int(math.Ceil(retry.Seconds()))))}}}
}
