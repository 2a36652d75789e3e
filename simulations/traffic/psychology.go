package traffic

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/history"
)

// The psychology part of the workload (../shared/design/psychology.md): a client
// grants its consent before its first psychology booking; clients book series
// of psychology sessions; the treating provider moves sessions (check-in,
// complete, no-show) and writes notes that carry the run's marker, and reads
// them back. None of these is a calendar operation of the history (the
// linearizability model knows single bookings only): series occurrences lie
// days away from the contended window and the probes, and only they are moved,
// so the history's bookings keep the states the model expects. Each request is
// a Sample of its kind.

// TextVersion is the consent text version the workload's clients accept.
const TextVersion = "2026-01"

// PsyRecords are the psychology records a workload created (acknowledged), for
// the residency check: none of them may be on a node outside their home.
type PsyRecords struct {
	Consents []string `json:"consents"`
	Series   []string `json:"series"`
	// Bookings are the series' occurrences (the single bookings are in the
	// history).
	Bookings []string `json:"bookings"`
	// Notes counts the notes written (each holds Marker).
	Notes int `json:"notes"`
	// Marker is in the text of every note: no node may hold it unsealed.
	Marker string `json:"marker"`
}

// psy is the workload's record of psychology writes.
type psy struct {
	mu      sync.Mutex
	rec     PsyRecords
	granted map[string]bool // client id + "|" + jurisdiction
}

// Psychology returns the psychology records acknowledged so far.
func (t *Traffic) Psychology() PsyRecords {
	t.psy.mu.Lock()
	defer t.psy.mu.Unlock()
	r := t.psy.rec
	r.Consents, r.Series, r.Bookings = slices.Clone(r.Consents), slices.Clone(r.Series), slices.Clone(r.Bookings)
	r.Marker = t.marker
	return r
}

// Marker is the string every note of the workload holds.
func (t *Traffic) Marker() string { return t.marker }

func (t *Traffic) noteRecord(f func(r *PsyRecords)) {
	t.psy.mu.Lock()
	f(&t.psy.rec)
	t.psy.mu.Unlock()
}

// call sends one request of kind as role/sub through the targets (from the
// worker's own on), retrying an unknown outcome up to retries times on the
// next node, sampling each attempt. It returns the last error.
func (t *Traffic) call(ctx context.Context, first int, kind string, role auth.Role, sub string, retries int,
	do func(ctx context.Context, c *client.Client) error) error {
	err := context.Canceled
	for a := 0; a <= retries && ctx.Err() == nil; a++ {
		tg := t.cfg.Targets[(first+a)%len(t.cfg.Targets)]
		call := time.Now()
		rctx, cancel := context.WithTimeout(ctx, t.cfg.RequestTimeout)
		rctx, wrote := traceWrites(rctx)
		err = do(rctx, clientAs(t.cfg.Tokens, tg.URL, t.hc, role, sub))
		cancel()
		if ctx.Err() != nil {
			return err
		}
		t.sample(kind, tg.Node, call, err, wrote.Load())
		if o, _, _ := Classify(err, wrote.Load()); o != history.Unknown {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50*(a+1)) * time.Millisecond):
		}
	}
	return err
}

// ensureConsent grants clientID's psychology consent in jurisdiction j once
// (idempotently: the same key on every try), before its first booking there.
// It reports whether the consent is known granted.
func (t *Traffic) ensureConsent(ctx context.Context, first int, clientID, j string) bool {
	k := clientID + "|" + j
	t.psy.mu.Lock()
	done := t.psy.granted[k]
	t.psy.mu.Unlock()
	if done {
		return true
	}
	req := client.ConsentRequest{Purpose: client.ConsentPurposePsychology, Jurisdiction: j, TextVersion: TextVersion}
	key := fmt.Sprintf("sim-%d-consent-%s-%s", t.cfg.Seed, clientID, j)
	var got *client.Consent
	err := t.call(ctx, first, "consent", auth.RoleClient, clientID, t.cfg.Retries, func(ctx context.Context, c *client.Client) error {
		var err error
		got, err = c.GrantConsent(ctx, clientID, req, key)
		return err
	})
	if err != nil {
		return false
	}
	t.psy.mu.Lock()
	if !t.psy.granted[k] {
		t.psy.granted[k] = true
		t.psy.rec.Consents = append(t.psy.rec.Consents, got.ID)
	}
	t.psy.mu.Unlock()
	return true
}

// psyProviders are the workload's psychology providers.
func (t *Traffic) psyProviders() []*Provider {
	var out []*Provider
	for i := range t.cfg.Providers {
		if t.cfg.Providers[i].Vertical == "psychology" {
			out = append(out, &t.cfg.Providers[i])
		}
	}
	return out
}

// series books a series of two weekly sessions of a psychology provider, a
// week and more past the contended window (colliding with other clients'
// series, so some are refused with their conflicts).
func (w *worker) series(ctx context.Context) {
	ps := w.t.psyProviders()
	if len(ps) == 0 {
		w.book(ctx)
		return
	}
	p := ps[w.rng.IntN(len(ps))]
	cid := w.clientID(p)
	if !w.t.ensureConsent(ctx, w.id, cid, p.Jurisdiction) {
		return
	}
	start := p.Window.AddDate(0, 0, 8).Add(time.Duration(w.rng.IntN(w.t.cfg.WindowSlots)) * 15 * time.Minute)
	w.n++
	key := fmt.Sprintf("sim-%d-c%d-%d", w.t.cfg.Seed, w.id, w.n)
	req := client.SeriesRequest{ProviderID: p.ID, ServiceID: p.ServiceID, ClientID: cid, Start: start.In(p.Loc).Format(time.RFC3339), Every: "1w", Count: 2}
	var s *client.Series
	err := w.t.call(ctx, w.id, "series", auth.RoleClient, cid, w.t.cfg.Retries, func(ctx context.Context, c *client.Client) error {
		var err error
		s, err = c.BookSeries(ctx, req, key)
		return err
	})
	if err != nil {
		return
	}
	ids := make([]string, 0, len(s.Items))
	for _, b := range s.Items {
		ids = append(ids, b.ID)
		w.sessions = append(w.sessions, session{id: b.ID, p: p, moveable: true})
	}
	w.t.noteRecord(func(r *PsyRecords) {
		r.Series = append(r.Series, s.ID)
		r.Bookings = append(r.Bookings, ids...)
	})
}

// session moves one of the worker's series sessions as its treating provider:
// check-in then complete, or (one time in four) no-show. A session moves once.
func (w *worker) session(ctx context.Context) {
	i := slices.IndexFunc(w.sessions, func(s session) bool { return s.moveable })
	if i < 0 {
		w.series(ctx)
		return
	}
	s := &w.sessions[i]
	s.moveable = false
	moves := []string{"check-in", "complete"}
	if w.rng.IntN(4) == 0 {
		moves = []string{"no-show"}
	}
	for _, m := range moves {
		err := w.t.call(ctx, w.id, "session", auth.RoleProvider, s.p.ID, w.t.cfg.Retries, func(ctx context.Context, c *client.Client) error {
			_, err := moveSession(ctx, c, m, s.id)
			return err
		})
		if err != nil {
			return // the next move would not be legal
		}
	}
}

// moveSession sends one move ("check-in", "complete", "no-show").
func moveSession(ctx context.Context, c *client.Client, move, id string) (*client.Session, error) {
	switch move {
	case "check-in":
		return c.CheckIn(ctx, id)
	case "complete":
		return c.Complete(ctx, id)
	}
	return c.NoShow(ctx, id)
}

// notes writes the notes of one of the worker's psychology sessions as its
// treating provider, a text holding the run's marker, and reads them back: a
// read that does not return what was written is sampled as notes_mismatch.
func (w *worker) notes(ctx context.Context) {
	if len(w.sessions) == 0 {
		w.series(ctx)
		return
	}
	s := w.sessions[w.rng.IntN(len(w.sessions))]
	w.n++
	text := fmt.Sprintf("Sesión %s, nota %d de c%d: %s. El paciente refiere mejoría del sueño.", s.id, w.n, w.id, w.t.marker)
	err := w.t.call(ctx, w.id, "notes.put", auth.RoleProvider, s.p.ID, w.t.cfg.Retries, func(ctx context.Context, c *client.Client) error {
		_, err := c.PutNotes(ctx, s.id, text)
		return err
	})
	if err != nil {
		return
	}
	w.t.noteRecord(func(r *PsyRecords) { r.Notes++ })
	var got *client.Notes
	err = w.t.call(ctx, w.id+1, "notes.get", auth.RoleProvider, s.p.ID, 0, func(ctx context.Context, c *client.Client) error {
		var err error
		got, err = c.Notes(ctx, s.id)
		return err
	})
	if err == nil && got.Text != text {
		w.t.NotesMismatch.Add(1)
		w.t.mu.Lock()
		w.t.samples = append(w.t.samples, Sample{Kind: "notes.get", Node: "-", Call: time.Now(), Return: time.Now(), Outcome: history.Fail, Status: http.StatusOK, Code: "notes_mismatch"})
		w.t.mu.Unlock()
	}
}

// session is a psychology booking of the worker: a single booking (in the
// history; never moved) or a series occurrence (moveable once).
type session struct {
	id       string
	p        *Provider
	moveable bool
}
