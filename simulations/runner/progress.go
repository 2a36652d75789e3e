package runner

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/barberpro/edge/simulations/traffic"
)

type randRand = rand.Rand

func (r *run) setFault(s string) {
	r.progMu.Lock()
	r.faultNow = s
	r.progMu.Unlock()
}

// progress writes a live status line to o.Progress until ctx ends: on a
// terminal one line rewritten with \r every half second, else a line every 5 s.
func (r *run) progress(ctx context.Context, start time.Time, tr *traffic.Traffic, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lastOK int64
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			r.logMu.Lock()
			r.clearLine()
			r.logMu.Unlock()
			return
		case <-tick.C:
		}
		ok, fail, unk := tr.OK.Load(), tr.Fail.Load(), tr.Unknown.Load()
		now := time.Now()
		rate := float64(ok-lastOK) / now.Sub(last).Seconds()
		r.progMu.Lock()
		fault := r.faultNow
		r.progMu.Unlock()
		if fault == "" {
			fault = "-"
		}
		line := fmt.Sprintf("[%s seed=%d] %5.1fs/%v  ok=%d refused=%d unknown=%d  %4.0f ok/s  fault: %s",
			r.sc.Name, r.seed, now.Sub(start).Seconds(), r.duration, ok, fail, unk, rate, fault)
		if len(line) > 150 {
			line = line[:150]
		}
		r.logMu.Lock()
		if r.isTTY {
			r.clearLine()
			fmt.Fprint(r.o.Progress, "\r"+line)
			r.lastLine = len(line)
		} else if now.Sub(r.lastPrint) >= 5*time.Second {
			fmt.Fprintln(r.o.Progress, line)
			r.lastPrint = now
		}
		r.logMu.Unlock()
		lastOK, last = ok, now
	}
}
