package load

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// progress counts a run's requests for its live progress line.
type progress struct {
	done, errors, conflicts, inFlight atomic.Int64
}

// isTerminal reports whether w is a terminal, where the progress line is
// rewritten in place ("\r") instead of printed once per interval.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// start prints a progress line to cfg.Progress every cfg.ProgressEvery until
// the returned stop is called (nothing without cfg.Progress).
func (p *progress) start(cfg Config, begin time.Time) (stop func()) {
	if cfg.Progress == nil {
		return func() {}
	}
	w, tty := cfg.Progress, isTerminal(cfg.Progress)
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(cfg.ProgressEvery)
		defer tick.Stop()
		last, lastAt := int64(0), begin
		for {
			select {
			case <-quit:
				if tty {
					fmt.Fprintln(w)
				}
				return
			case now := <-tick.C:
				done := p.done.Load() + p.conflicts.Load() + p.errors.Load()
				rate := float64(done-last) / now.Sub(lastAt).Seconds()
				last, lastAt = done, now
				line := fmt.Sprintf("%6s  %8.0f req/s  answered %d  errors %d  409s %d  in flight %d",
					now.Sub(begin).Round(time.Second), rate, done, p.errors.Load(), p.conflicts.Load(), p.inFlight.Load())
				if tty {
					fmt.Fprintf(w, "\r%s\033[K", line)
				} else {
					fmt.Fprintln(w, line)
				}
			}
		}
	}()
	return func() { close(quit); <-finished }
}
