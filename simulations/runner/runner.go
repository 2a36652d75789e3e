// Package runner runs a failover simulation end to end: it starts a real
// five-city cluster of `barberpro node start` processes, drives the scenario's
// workload through every node, injects and heals its faults on schedule, probes
// every hot provider after the last heal, stops the nodes cleanly, reads every
// node's FSM file, runs the checkers on the history and the final state, and
// writes the report.
//
// Whatever happens — a failed fault, a node that will not start, Ctrl-C — every
// fault is healed, every iptables rule of the run removed and every node
// process stopped before Run returns.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/barberpro/edge/edge/client"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/simulations/check"
	"github.com/barberpro/edge/simulations/failpoint"
	"github.com/barberpro/edge/simulations/history"
	"github.com/barberpro/edge/simulations/procs"
	"github.com/barberpro/edge/simulations/report"
	"github.com/barberpro/edge/simulations/scenario"
	"github.com/barberpro/edge/simulations/traffic"
	"github.com/barberpro/edge/storage"
)

// Options are one run's settings.
type Options struct {
	// Scenario to run.
	Scenario *scenario.Scenario
	// Seed overrides the scenario's seed when non-zero.
	Seed uint64
	// Duration overrides the scenario's duration when non-zero (the fault
	// schedule is kept; faults past the new end are dropped).
	Duration time.Duration
	// Binary is the barberpro binary the nodes run.
	Binary string
	// FailpointBinary is a barberpro built with `-tags failpoints` for the
	// faults that crash a node at a failpoint ("" when there is none).
	FailpointBinary string
	// ReportDir receives the report; default ./sim-reports/<scenario>-<seed>-<time>.
	ReportDir string
	// Out receives the one-screen summary; Progress the live progress line and
	// the log of fault actions. Default os.Stdout, os.Stderr.
	Out, Progress io.Writer
	// StartTimeout bounds the cluster's start. Default 90 s.
	StartTimeout time.Duration
	// LinearizabilityTimeout bounds porcupine per provider. Default 15 s.
	LinearizabilityTimeout time.Duration
}

// Result is a finished run.
type Result struct {
	Scenario  string
	Seed      uint64
	ReportDir string
	Report    *report.Report
	Checks    check.Result
}

// Passed reports whether the run found no violation.
func (r *Result) Passed() bool { return r.Report != nil && r.Report.Passed }

// Run runs one scenario. The error is for a run that could not be carried out
// (the cluster did not start); a run that found violations returns a Result
// with Passed false and a nil error.
func Run(ctx context.Context, o Options) (*Result, error) {
	r, err := newRun(o)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type run struct {
	o        Options
	sc       *scenario.Scenario
	seed     uint64
	duration time.Duration
	dir      string
	dataRoot string
	ipt      *failpoint.IPTables
	cl       *procs.Cluster
	fc       *failpoint.Cluster
	rec      *history.Recorder
	logMu    sync.Mutex
	logf     func(format string, args ...any)
	notes    []string

	faults    []failpoint.Fault // one per schedule event, built before the start
	keepData  bool              // Cleanup keeps what the faults' mounts hold
	sampler   *statusSampler
	placement []check.PlacementSample
	hosting   map[string]int
	loadNext  int // next slot of the background provider Cluster.Load books

	progMu    sync.Mutex
	faultNow  string
	lastLine  int
	isTTY     bool
	lastPrint time.Time
}

func newRun(o Options) (*run, error) {
	if o.Scenario == nil {
		return nil, errors.New("runner: no scenario")
	}
	if o.Binary == "" {
		return nil, errors.New("runner: no barberpro binary")
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 90 * time.Second
	}
	if o.LinearizabilityTimeout <= 0 {
		o.LinearizabilityTimeout = 15 * time.Second
	}
	r := &run{o: o, sc: o.Scenario, seed: o.Seed, duration: o.Scenario.Duration, rec: history.New()}
	if r.seed == 0 {
		r.seed = r.sc.Seed
	}
	if r.seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		for _, x := range b {
			r.seed = r.seed<<8 | uint64(x)
		}
		r.seed &= 1<<53 - 1 // printable and JSON-safe
	}
	if o.Duration > 0 {
		r.duration = o.Duration
	}
	r.dir = o.ReportDir
	if r.dir == "" {
		r.dir = filepath.Join("sim-reports", fmt.Sprintf("%s-%d-%s", r.sc.Name, r.seed, time.Now().Format("20060102T150405")))
	}
	r.dataRoot = filepath.Join(r.dir, "data")
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && o.Progress == os.Stderr {
		r.isTTY = true
	}
	r.logf = func(format string, args ...any) {
		r.logMu.Lock()
		defer r.logMu.Unlock()
		r.clearLine()
		fmt.Fprintf(o.Progress, "[%s] %s\n", r.sc.Name, fmt.Sprintf(format, args...))
	}
	return r, nil
}

func (r *run) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.notes = append(r.notes, msg)
	r.logf("note: %s", msg)
}

// clearLine erases the progress line (TTY only). Caller holds logMu.
func (r *run) clearLine() {
	if r.isTTY && r.lastLine > 0 {
		fmt.Fprintf(r.o.Progress, "\r%s\r", strings.Repeat(" ", r.lastLine))
		r.lastLine = 0
	}
}

func (r *run) run(ctx context.Context) (res *Result, err error) {
	sc := r.sc
	fmt.Fprintf(r.o.Out, "== %s: seed %d (rerun: barberpro sim %s --seed %d)\n", sc.Name, r.seed, sc.Name, r.seed)
	fmt.Fprintf(r.o.Out, "   %s; faults: %s\n", sc.Description, sc.Summary())
	if err := os.MkdirAll(r.dataRoot, 0o750); err != nil {
		return nil, err
	}
	r.ipt = failpoint.NewIPTables(failpoint.Tag(sc.Topology.IPBase))
	schedule := r.sc.Schedule(r.seed)
	needIPT, needLoad := false, false
	r.faults = make([]failpoint.Fault, len(schedule))
	for _, ev := range schedule {
		f, err := failpoint.New(ev.Fault, ev.Params, ev.Pick)
		if err != nil {
			return nil, err
		}
		if err := f.Available(); err != nil {
			return nil, fmt.Errorf("runner: fault %s cannot run here: %w", ev.Fault, err)
		}
		if ev.Fault == "partition" {
			needIPT = true
		}
		if l, ok := f.(interface{ NeedsLoad() bool }); ok && l.NeedsLoad() {
			needLoad = true
		}
		r.faults[ev.Index] = f
	}
	if r.ipt.Available() == nil {
		if n, err := r.ipt.Sweep(); err != nil {
			return nil, fmt.Errorf("runner: sweep stale iptables rules: %w", err)
		} else if n > 0 {
			r.logf("removed %d stale iptables rules tagged %s", n, r.ipt.Tag)
		}
	}
	_ = needIPT

	// The cluster.
	sec, err := procs.NewSecrets(filepath.Join(r.dataRoot, "secrets"), nil)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	if r.cl, err = procs.FiveCities(r.o.Binary, r.dataRoot, sec, sc.Topology.IPBase); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	r.fc = &failpoint.Cluster{Procs: r.cl, Jurisdiction: map[string]string{}, City: map[string]string{}, IPTables: r.ipt, Logf: r.logf,
		Original: map[string]procs.Spec{}, FailpointBinary: r.o.FailpointBinary}
	for _, p := range r.cl.Procs {
		// The workload's clients and preload send far above a person's rate,
		// all from the runner's IPs (the first use of each token is charged to
		// the IP), and the rate limits have their own tests: no limit here.
		p.Spec.Env = append(p.Spec.Env, "BARBERPRO_PROFILE=local", "BARBERPRO_RATE_LIMIT=inf", "BARBERPRO_IP_RATE_LIMIT=inf")
		j := "ar"
		if p.Spec.City == "us-east" {
			j = "us"
		}
		r.fc.Jurisdiction[p.Spec.ID], r.fc.City[p.Spec.ID] = j, p.Spec.City
		r.fc.Original[p.Spec.ID] = p.Spec.Clone()
	}
	// Whatever happens from here: iptables rules removed, processes gone, the
	// faults' mounts undone (their files kept unless the run passed).
	r.keepData = true
	defer func() {
		if n, e := r.ipt.Sweep(); e == nil && n > 0 {
			r.logf("removed %d leftover iptables rules", n)
		}
		r.cl.KillAll()
		for _, f := range r.faults {
			if p, ok := f.(failpoint.Preparer); ok {
				if err := p.Cleanup(r.fc, r.keepData); err != nil {
					r.logf("clean up after %s: %v", f.Name(), err)
				}
			}
		}
	}()
	if err := portsFree(r.cl); err != nil {
		return nil, err
	}
	for _, f := range r.faults {
		if p, ok := f.(failpoint.Preparer); ok {
			if err := p.Prepare(ctx, r.fc); err != nil {
				return nil, fmt.Errorf("runner: prepare %s: %w", f.Name(), err)
			}
		}
	}
	r.logf("starting 5 nodes on 127.0.0.%d-%d (data under %s)", sc.Topology.IPBase, sc.Topology.IPBase+4, r.dataRoot)
	sctx, cancel := context.WithTimeout(ctx, r.o.StartTimeout)
	err = r.cl.StartAll(sctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("runner: start cluster: %w (node logs under %s)", err, r.dataRoot)
	}
	if _, err := r.fc.WaitLeader(ctx, "ar", 30*time.Second); err != nil {
		return nil, err
	}
	r.sampler = newStatusSampler(r.cl, time.Second)
	samplerCtx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	go r.sampler.run(samplerCtx)
	targets := make([]traffic.Target, len(r.cl.Procs))
	for i, p := range r.cl.Procs {
		targets[i] = traffic.Target{Node: p.Spec.ID, URL: p.Spec.URL()}
	}

	// Providers.
	w := sc.Workload
	admin := client.New(r.cl.Procs[1].Spec.URL(), nil).WithToken(sec.Operator())
	hot, err := traffic.Create(ctx, admin, traffic.HotSpecs(w.HotProviders, w.Verticals, *w.USProvider), time.Now())
	if err != nil {
		return nil, err
	}
	for _, p := range hot {
		r.fc.Hot = append(r.fc.Hot, p.ID)
	}
	arTargets := targets[:4]
	if w.Preload > 0 || needLoad {
		pre, err := traffic.Create(ctx, admin, []client.Provider{traffic.PreloadSpec()}, time.Now())
		if err != nil {
			return nil, err
		}
		if w.Preload > 0 {
			t0 := time.Now()
			n := traffic.Preload(ctx, r.rec, sec, arTargets, pre[0], w.Preload, 16, r.seed, 5*time.Second)
			r.logf("preloaded %d/%d bookings in %v", n, w.Preload, time.Since(t0).Round(time.Millisecond))
		}
		r.loadNext = w.Preload
		var loadMu sync.Mutex
		r.fc.Load = func(ctx context.Context, n int) int {
			var live []traffic.Target
			for _, t := range arTargets {
				if r.cl.ByID(t.Node).Running() {
					live = append(live, t)
				}
			}
			if len(live) == 0 {
				return 0
			}
			loadMu.Lock()
			first := r.loadNext
			r.loadNext += n
			loadMu.Unlock()
			// Few workers: the leader batches concurrent proposals into one
			// Raft entry, and the faults that load want entries.
			return traffic.PreloadFrom(ctx, r.rec, sec, live, pre[0], first, n, 2, r.seed, 5*time.Second)
		}
	}

	// Workload.
	tr := traffic.New(traffic.Config{
		Targets: targets, Providers: hot, Clients: w.Clients,
		Mix: traffic.Mix{Book: w.Mix.Book, Cancel: w.Mix.Cancel, Reschedule: w.Mix.Reschedule, Get: w.Mix.Get, Availability: w.Mix.Availability,
			Series: w.Mix.Series, Session: w.Mix.Session, Notes: w.Mix.Notes},
		WindowSlots: w.WindowSlots, ThinkTime: w.ThinkTime, RequestTimeout: w.RequestTimeout, Retries: *w.Retries,
		Seed: r.seed, Rand: func(stream uint64) *randRand { return sc.Rand(r.seed, stream) }, Recorder: r.rec,
		Tokens: sec,
	})
	defer tr.Close()
	start := time.Now()
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	var twg sync.WaitGroup
	twg.Add(1)
	go func() { defer twg.Done(); tr.Run(trafficCtx) }()
	progressDone := make(chan struct{})
	go r.progress(trafficCtx, start, tr, progressDone)

	// Faults, one after the other, on schedule.
	var records []report.FaultRecord
	var injected []failpoint.Fault
	healed := false
	healAll := func() {
		if healed {
			return
		}
		healed = true
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, f := range injected {
			if err := f.Heal(hctx, r.fc); err != nil {
				r.logf("heal %s: %v", f.Name(), err)
			}
		}
		injected = nil
		if _, err := r.ipt.Sweep(); err != nil {
			r.logf("sweep iptables: %v", err)
		}
		if err := r.fc.EnsureUp(hctx); err != nil {
			r.logf("bring every node up: %v", err)
		}
	}
	defer healAll()
	for _, ev := range schedule {
		if ev.At >= r.duration {
			r.note("fault %d (%s) at %v dropped: past the run's duration %v", ev.Index, ev.Fault, ev.At, r.duration)
			continue
		}
		if !sleepUntil(ctx, start.Add(ev.At)) {
			break
		}
		f := r.faults[ev.Index]
		rec := report.FaultRecord{Index: ev.Index, Name: ev.Fault, Params: ev.Params, Injected: time.Now()}
		r.setFault(ev.Fault)
		injected = append(injected, f)
		if err := f.Inject(ctx, r.fc); err != nil {
			rec.Error = "inject: " + err.Error()
			r.note("fault %s: inject failed: %v", ev.Fault, err)
		}
		rec.InjectDone = time.Now()
		rec.Describe = f.Describe()
		r.setFault(rec.Describe)
		sleepUntil(ctx, rec.Injected.Add(ev.HealAfter))
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := f.Heal(hctx, r.fc); err != nil {
			rec.Error = strings.TrimPrefix(rec.Error+"; heal: "+err.Error(), "; ")
			r.note("fault %s: heal failed: %v", ev.Fault, err)
		}
		cancel()
		injected = slices.DeleteFunc(injected, func(x failpoint.Fault) bool { return x == f })
		rec.Healed = time.Now()
		rec.Describe = f.Describe()
		for _, p := range hot {
			if slices.Contains(f.Affected(), p.Jurisdiction) {
				rec.Affected = append(rec.Affected, p.ID)
			}
		}
		r.logf("fault %s healed after %v: %s", ev.Fault, rec.Healed.Sub(rec.Injected).Round(time.Millisecond), rec.Describe)
		r.setFault("")
		records = append(records, rec)
	}
	lastHeal := start
	if len(records) > 0 {
		lastHeal = records[len(records)-1].Healed
	}

	// Liveness: probe every hot provider from the last heal, while the workload
	// goes on; then let the workload run out its duration.
	var probes []traffic.ProbeResult
	if ctx.Err() == nil {
		probes = traffic.Probe(ctx, r.rec, sec, targets, hot, r.seed, sc.Liveness.Bound, w.RequestTimeout)
	}
	if after := sc.Checks.PlacementAfter; after > 0 && sleepUntil(ctx, lastHeal.Add(after)) {
		r.placement, r.hosting = r.askPlacement(ctx, hot)
	}
	sleepUntil(ctx, start.Add(r.duration))
	stopTraffic()
	twg.Wait()
	<-progressDone
	end := time.Now()
	interrupted := ctx.Err() != nil
	if interrupted {
		r.note("interrupted: %v", context.Cause(ctx))
	}

	// Converge, then stop every node cleanly and read its FSM file.
	healAll()
	if !interrupted {
		r.converge("ar", 20*time.Second)
	}
	stopSampler()
	r.sampler.wait()
	r.sampler.sampleAll(context.Background()) // the final state of every group
	audited := r.auditedIDs(context.Background())
	if psy := tr.Psychology(); len(psy.Consents)+len(psy.Series)+psy.Notes > 0 {
		r.note("psychology workload: %d consents, %d series (%d sessions), %d notes written holding %s, %d audited records",
			len(psy.Consents), len(psy.Series), len(psy.Bookings), psy.Notes, psy.Marker, len(audited))
	}
	r.logf("stopping nodes (SIGTERM)")
	r.cl.StopAll(15 * time.Second)
	ops := r.rec.Ops()
	res = &Result{Scenario: sc.Name, Seed: r.seed, ReportDir: r.dir}
	res.Checks = r.checks(ops, hot, lastHeal, records, tr.Psychology(), audited)
	if n := tr.NotesMismatch.Load(); n > 0 {
		res.Checks.Violations = append(res.Checks.Violations, check.Violation{Check: CheckNotes,
			Detail: fmt.Sprintf("%d session notes read back by their provider were not the text written", n)})
	}

	// Report.
	rep := report.Build(report.Input{Scenario: sc.Name, Description: sc.Description, Seed: r.seed, Start: start, End: end,
		Ops: ops, Samples: tr.Samples(), Faults: records, Liveness: probes, LastHeal: lastHeal, Bound: sc.Liveness.Bound})
	rep.Checks = res.Checks
	for _, v := range res.Checks.Violations {
		rep.Violations = append(rep.Violations, v.String())
	}
	for _, v := range res.Checks.Inconclusive {
		rep.Notes = append(rep.Notes, "inconclusive: "+v.String())
	}
	rep.Notes = append(rep.Notes, r.notes...)
	rep.Passed = res.Checks.OK() && !interrupted
	r.keepData = !rep.Passed
	res.Report = rep
	var errs []error
	errs = append(errs, history.WriteFile(filepath.Join(r.dir, "history.jsonl"), ops))
	errs = append(errs, r.sampler.writeFile(filepath.Join(r.dir, "status.jsonl")))
	errs = append(errs, rep.WriteJSON(filepath.Join(r.dir, "report.json")))
	if e := rep.WriteChart(filepath.Join(r.dir, "chart.png")); e != nil {
		rep.Notes = append(rep.Notes, "chart: "+e.Error())
	}
	if err := errors.Join(errs...); err != nil {
		r.logf("writing the report: %v", err)
	}
	if rep.Passed {
		// Keep the report, the history and the node logs; drop the data dirs.
		for _, p := range r.cl.Procs {
			os.RemoveAll(p.Spec.DataDir)
		}
		os.RemoveAll(filepath.Join(r.dir, "porcupine"))
	}
	fmt.Fprint(r.o.Out, rep.Summary())
	fmt.Fprintf(r.o.Out, "checks: %s\n", checkedLine(res.Checks))
	kept := "report.json, chart.png, history.jsonl, status.jsonl, node logs"
	if !rep.Passed {
		kept += ", data dirs, porcupine HTML"
	}
	fmt.Fprintf(r.o.Out, "report: %s (%s)\n", r.dir, kept)
	return res, nil
}

// portsFree checks that no other process listens on the cluster's addresses:
// a node of someone else's cluster there would answer our readiness probes.
func portsFree(c *procs.Cluster) error {
	for _, p := range c.Procs {
		for _, port := range []int{procs.HTTPPort, procs.GossipPort, procs.RaftPort, procs.ActorPort} {
			addr := net.JoinHostPort(p.Spec.IP, strconv.Itoa(port))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("runner: %s is taken (another cluster on these addresses? pick another topology.ip_base): %w", addr, err)
			}
			ln.Close()
		}
	}
	return nil
}

// sleepUntil waits until t or ctx ends; false if ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// converge waits until the leader of group j reports every member at the same
// applied index, so the final states can be compared; it notes a timeout with
// the last indexes seen.
func (r *run) converge(j string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	last := "no status"
	for time.Now().Before(deadline) {
		for _, p := range r.cl.Procs {
			if r.fc.Jurisdiction[p.Spec.ID] != j {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := client.New(p.Spec.URL(), nil).WithToken(r.cl.Secrets.Operator()).Status(ctx)
			cancel()
			if err != nil {
				continue
			}
			for _, g := range st.Groups {
				if g.Group != j || g.Leader != p.Spec.ID {
					continue
				}
				idx := map[uint64]bool{}
				var parts []string
				for _, m := range g.Members {
					idx[m.AppliedIndex] = true
					parts = append(parts, fmt.Sprintf("%s=%d", m.ID, m.AppliedIndex))
				}
				last = "leader " + g.Leader + ": " + strings.Join(parts, " ")
				if len(idx) == 1 && len(g.Members) == len(r.fc.Group(j)) {
					return
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.note("group %s did not converge (one applied index on every member) within %v before the stop (%s)", j, timeout, last)
}

// checks reads every node's FSM file and runs the checkers.
func (r *run) checks(ops []history.Op, hot []traffic.Provider, lastHeal time.Time, records []report.FaultRecord,
	psy traffic.PsyRecords, audited []string) check.Result {
	var results []check.Result
	lin := check.Linearizable(ops, r.o.LinearizabilityTimeout, filepath.Join(r.dir, "porcupine"))
	results = append(results, lin)

	// Final states.
	replicas := map[string][]check.Booking{}
	digests := map[string]map[string]string{}
	finals := map[string][]check.Booking{}
	var inspectErr check.Result
	for _, p := range r.cl.Procs {
		id, j := p.Spec.ID, r.fc.Jurisdiction[p.Spec.ID]
		if digests[j] == nil {
			digests[j] = map[string]string{}
		}
		st, err := storage.Inspect(p.Spec.DataDir)
		if err != nil {
			digests[j][id] = ""
			inspectErr.Violations = append(inspectErr.Violations, check.Violation{Check: check.CheckReplicasAgree,
				Detail: fmt.Sprintf("node %s: final state unreadable: %v", id, err)})
			continue
		}
		digests[j][id] = hex.EncodeToString(st.Digest)
		var bs []check.Booking
		for _, b := range st.Bookings {
			status := "confirmed"
			if b.Status == bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
				status = check.StatusCancelled
			}
			bs = append(bs, check.Booking{ID: b.Id, ProviderID: b.ProviderId, Status: status,
				Start: time.UnixMilli(b.StartMs), End: time.UnixMilli(max(b.BlockedUntilMs, b.EndMs))})
		}
		replicas[id] = bs
		finals[id] = bs
	}
	results = append(results, inspectErr, check.NoDoubleBooking(replicas), check.ReplicasAgree(digests))

	// Acknowledged writes, on every replica of the provider's group.
	jurOf := map[string]string{}
	for _, p := range hot {
		jurOf[p.ID] = p.Jurisdiction
	}
	byGroup := map[string][]history.Op{}
	for _, op := range ops {
		j := jurOf[op.ProviderID]
		if j == "" {
			j = "ar" // the preload provider
		}
		byGroup[j] = append(byGroup[j], op)
	}
	for _, p := range r.cl.Procs {
		id := p.Spec.ID
		if bs, ok := finals[id]; ok {
			results = append(results, check.AckedPresent(byGroup[r.fc.Jurisdiction[id]], bs))
		}
	}

	// Residency: psychology provider, booking and client ids of the history,
	// the consents, series and occurrences the workload made, and the objects
	// of the ar audit log, in every node's data dir and log; the notes' marker
	// on no node at all (sealed), plain or base64.
	if needles := residencyNeedles(ops, psy, audited); len(needles) > 0 {
		results = append(results, check.ResidencyScan(check.HomeJurisdiction, r.nodeDirs(), needles, true))
	}

	// No client id in any node's log, whatever its jurisdiction.
	clients := map[string]bool{}
	for _, op := range ops {
		if op.ClientID != "" {
			clients[op.ClientID] = true
		}
	}
	logs := map[string][]string{}
	for _, p := range r.cl.Procs {
		logs[p.Spec.ID] = []string{p.LogPath}
	}
	results = append(results, check.LogPrivacy(logs, slices.Sorted(maps.Keys(clients)), check.PlantedNeedle(int64(r.seed))))

	// Liveness after the last heal.
	var providers []string
	for _, p := range hot {
		providers = append(providers, p.ID)
	}
	results = append(results, check.Liveness(ops, providers, lastHeal, r.sc.Liveness.Bound))

	// One history per group: no fork in any status sample; no node ended by
	// itself.
	results = append(results, check.Fork(r.sampler.all()), check.NoCrash(r.exits()))
	// What the scenario asked for besides.
	if r.sc.Checks.PlacementAfter > 0 {
		home := map[string]string{}
		for _, p := range hot {
			for _, id := range r.fc.IDs() {
				if r.fc.City[id] == p.City {
					home[p.ID] = id
				}
			}
		}
		results = append(results, check.Placement(r.placement, home))
		results = append(results, check.HostsCalendars(r.fc.Group("ar"), r.hosting))
	}
	var windows []check.DiskWindow
	for _, f := range r.faults {
		if d, ok := f.(failpoint.DiskWindows); ok {
			for _, w := range d.DiskWindows() {
				windows = append(windows, check.DiskWindow{Node: w.Node, Full: w.Full, Grown: w.Grown, Ready: w.Ready, Restarted: w.Restarted})
			}
		}
	}
	if len(windows) > 0 {
		results = append(results, check.DiskFull(ops, windows, r.sc.Liveness.Bound))
	}
	return check.Merge(results...).WithOps(ops)
}

// CheckNotes is the check that notes read back are the notes written.
const CheckNotes = "notes-read-back"

// nodeDirs are every node's data dir and log, with its jurisdiction.
func (r *run) nodeDirs() map[string]check.NodeDir {
	dirs := map[string]check.NodeDir{}
	for _, p := range r.cl.Procs {
		dirs[p.Spec.ID] = check.NodeDir{Dir: p.Spec.DataDir, Jurisdiction: r.fc.Jurisdiction[p.Spec.ID], Extra: []string{p.LogPath}}
	}
	return dirs
}

// residencyNeedles are what must stay in Argentina: the psychology provider,
// client and acknowledged booking ids of the history, the workload's consents,
// series and their occurrences, the objects the ar audit log names; and the
// notes' marker, which must be nowhere unsealed.
func residencyNeedles(ops []history.Op, psy traffic.PsyRecords, audited []string) []check.Needle {
	seen := map[string]bool{}
	var out []check.Needle
	add := func(what string, ids ...string) {
		for _, id := range ids {
			if id != "" && !seen[id] {
				seen[id] = true
				out = append(out, check.Needle{Value: id, What: what})
			}
		}
	}
	for _, op := range ops {
		if op.Vertical != "psychology" {
			continue
		}
		add("psychology provider", op.ProviderID)
		add("psychology client", op.ClientID)
		if op.BookingID != "" && op.Outcome == history.OK {
			add("psychology booking", op.BookingID)
		}
	}
	add("consent", psy.Consents...)
	add("series", psy.Series...)
	add("series occurrence", psy.Bookings...)
	add("audited record", audited...)
	if psy.Marker != "" && psy.Notes > 0 {
		out = append(out, check.Needle{Value: psy.Marker, What: "note marker", Base64: true, Sealed: true})
	}
	return out
}

// auditedIDs lists the objects the ar audit log names (client ids for
// "client:<id>"), read from the first ar node that serves it; none when no
// node does (noted).
func (r *run) auditedIDs(ctx context.Context) []string {
	var last error
	for _, p := range r.cl.Procs {
		if r.fc.Jurisdiction[p.Spec.ID] != check.HomeJurisdiction || !p.Running() {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var ids []string
		seen := map[string]bool{}
		last = client.New(p.Spec.URL(), nil).WithToken(r.cl.Secrets.Operator()).AuditAll(actx, client.AuditQuery{Limit: 500}, func(es []client.AuditEntry) error {
			for _, e := range es {
				id := strings.TrimPrefix(e.Object, "client:")
				if len(id) >= 6 && !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
			return nil
		})
		cancel()
		if last == nil {
			return ids
		}
	}
	r.note("the ar audit log could not be read for the residency check: %v", last)
	return nil
}

func checkedLine(c check.Result) string {
	verdict := "all passed"
	if !c.OK() {
		verdict = fmt.Sprintf("%d VIOLATION(S)", len(c.Violations))
	} else if !c.Clean() {
		verdict = fmt.Sprintf("passed, %d inconclusive", len(c.Inconclusive))
	}
	keys := make([]string, 0, len(c.Checked))
	for k := range c.Checked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c.Checked[k]))
	}
	return verdict + "; " + strings.Join(parts, " ")
}
