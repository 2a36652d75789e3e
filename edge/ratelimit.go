package edge

import (
	"container/list"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/edge/auth"
)

// Limits are the rate limits a node applies to the requests its clients send it
// (Server.Handler), never again to the requests other nodes relay to it
// (Server.PeerHandler): a relayed request was limited once, where the client
// called. Each key (a token's role and subject, or the client IP of a request
// without a valid token) has a token bucket of golang.org/x/time/rate. A zero
// field takes DefaultLimits' value.
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
	// MaxKeys bounds the buckets kept. When full, the bucket unused longest is
	// dropped. Default 100000.
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

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.PerSubject == 0 {
		l.PerSubject = d.PerSubject
	}
	if l.SubjectBurst == 0 {
		l.SubjectBurst = d.SubjectBurst
	}
	if l.PerIP == 0 {
		l.PerIP = d.PerIP
	}
	if l.IPBurst == 0 {
		l.IPBurst = d.IPBurst
	}
	if l.MaxKeys == 0 {
		l.MaxKeys = d.MaxKeys
	}
	if l.IdleAfter == 0 {
		l.IdleAfter = d.IdleAfter
	}
	return l
}

// limiter holds one token bucket per key, at most max of them, least recently
// used first out. It is safe for concurrent use.
type limiter struct {
	limits Limits
	now    func() time.Time

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

func newLimiter(l Limits, now func() time.Time) *limiter {
	return &limiter{limits: l, now: now, keys: map[string]*list.Element{}}
}

// limitKey is the bucket of a request: the role and subject of its valid token
// (valid), or its client IP.
func limitKey(r *http.Request, p auth.Principal, valid bool) (key string, subject bool) {
	if valid {
		return "sub:" + string(p.Role) + ":" + p.Subject, true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host, false
}

// allow takes one token from key's bucket. When there is none it returns how
// long until there will be.
func (l *limiter) allow(key string, subject bool) (bool, time.Duration) {
	r, burst := l.limits.PerIP, l.limits.IPBurst
	if subject {
		r, burst = l.limits.PerSubject, l.limits.SubjectBurst
	}
	if r == rate.Inf {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evict(now)
	var b *bucket
	if e, ok := l.keys[key]; ok {
		b = e.Value.(*bucket)
		l.lru.MoveToFront(e)
	} else {
		if l.lru.Len() >= l.limits.MaxKeys {
			l.drop(l.lru.Back())
		}
		b = &bucket{key: key, lim: rate.NewLimiter(r, burst)}
		l.keys[key] = l.lru.PushFront(b)
	}
	b.used = now
	res := b.lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict drops the buckets unused for IdleAfter; l.mu is held.
func (l *limiter) evict(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		if now.Sub(e.Value.(*bucket).used) < l.limits.IdleAfter {
			return
		}
		l.drop(e)
	}
}

// drop removes one bucket; l.mu is held.
func (l *limiter) drop(e *list.Element) {
	delete(l.keys, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// len is the number of buckets kept.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// errRateLimited is the 429 of a request over its limit; retry is written as
// Retry-After in whole seconds (at least 1).
func errRateLimited(retry time.Duration) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: CodeRateLimited,
		detail: "too many requests; retry after the Retry-After delay",
		header: http.Header{"Retry-After": {strconv.Itoa(max(1, int(math.Ceil(retry.Seconds()))))}}}
}
