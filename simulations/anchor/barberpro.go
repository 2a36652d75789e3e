package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// barberproIPBase is the loopback network of the barberpro nodes: node i binds
// 127.0.3.(i+1), apart from the etcd members and from the project's tests.
const barberproIPBase = "127.0.3."

// barberproReadyTimeout bounds the wait for a layout's nodes to report ready.
const barberproReadyTimeout = 90 * time.Second

// barberproSettle is a pause after every node is ready, as
// simulations/scripts/bench-layouts.sh makes, before the first run.
const barberproSettle = 2 * time.Second

// arNodes are the nodes of the layouts, in start order: all of jurisdiction ar.
var arNodes = []struct{ id, city string }{
	{"ba-1", "buenos-aires"}, {"cba-1", "cordoba"}, {"ros-1", "rosario"},
}

// barberproCluster is a running barberpro layout: its nodes, their API URLs and
// the token signing key the bench signs with.
type barberproCluster struct {
	bin      string
	procs    []*proc
	urls     []string
	tokenDir string
}

// startBarberPro starts n Argentine nodes as bench-layouts.sh's "after" mode does:
// a CA and node certificates (mTLS between nodes), token keys, rate limits lifted,
// the timing preset profile (BARBERPRO_PROFILE), one node bootstrapping alone or three with --bootstrap-expect
// 3 joining the first; then it waits until every node's /readyz answers 200.
func startBarberPro(ctx context.Context, bin, profile, dir string, n int) (*barberproCluster, error) {
	if n > len(arNodes) {
		return nil, fmt.Errorf("barberpro: at most %d nodes", len(arNodes))
	}
	c := &barberproCluster{bin: bin, tokenDir: filepath.Join(dir, "tokens")}
	if _, err := output(ctx, bin, "ca", "init", "--dir", filepath.Join(dir, "ca")); err != nil {
		return nil, err
	}
	if _, err := output(ctx, bin, "token", "init", "--dir", c.tokenDir); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	env := []string{"BARBERPRO_GOSSIP_KEY=" + base64.StdEncoding.EncodeToString(key), "BARBERPRO_PROFILE=" + profile}
	first := barberproIPBase + "1"
	for i, node := range arNodes[:n] {
		ip := barberproIPBase + strconv.Itoa(i+1)
		tls := filepath.Join(dir, "tls-"+node.id)
		if _, err := output(ctx, bin, "ca", "issue", "--dir", filepath.Join(dir, "ca"),
			"--id", node.id, "--city", node.city, "--ip", ip, "--out", tls); err != nil {
			c.stop()
			return nil, err
		}
		args := []string{"node", "start", "--id", node.id, "--city", node.city,
			"--data-dir", filepath.Join(dir, node.id), "--bind", ip, "--log-level", "warn",
			"--tls-dir", tls, "--token-keys", filepath.Join(c.tokenDir, "keys.json"),
			"--rate-limit", "inf", "--ip-rate-limit", "inf"}
		if n == 1 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--bootstrap-expect", strconv.Itoa(n))
		}
		if i > 0 {
			args = append(args, "--join", first+":7946")
		}
		p, err := startProc(dir, "barberpro-"+node.id, env, bin, args...)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.urls = append(c.urls, "http://"+ip+":8080")
	}
	hc := &http.Client{Timeout: time.Second}
	err := waitReady(ctx, c.procs, barberproReadyTimeout, func(i int) error {
		resp, err := hc.Get(c.urls[i] + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
	if err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(barberproSettle):
		}
	}
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// stop ends every node.
func (c *barberproCluster) stop() { stopAll(c.procs) }

// bench runs `barberpro bench` in mode at each client count against the first
// node, or against every node (clients round-robin) when spread, and returns a
// Measure per client count, in order.
func (c *barberproCluster) bench(ctx context.Context, mode string, users []int, spread bool, d time.Duration) ([]Measure, error) {
	targets := c.urls[:1]
	if spread {
		targets = c.urls
	}
	us := make([]string, len(users))
	for i, u := range users {
		us[i] = strconv.Itoa(u)
	}
	out, err := outputEnv(ctx, benchEnv(), c.bin, "bench", "--target", strings.Join(targets, ","), "--token-dir", c.tokenDir,
		"--users", strings.Join(us, ","), "--duration", d.String(), "--mode", mode, "--json")
	if err != nil {
		return nil, err
	}
	return parseBench(out, users)
}

// benchEnv is the environment of `barberpro bench`: this process's, with
// GOGC=100 unless GOGC is set (then both inherit it). This process's etcd
// driver is the other load generator and runs at Go's default target; the
// bench's own default is 400 (--gc-percent, session 22), which costs it less
// CPU on the cores it shares with the nodes. Both load generators run at one
// GC target, so that neither store gets cores the other's driver used.
func benchEnv() []string {
	if _, set := os.LookupEnv("GOGC"); set {
		return nil
	}
	return append(os.Environ(), "GOGC=100")
}

// benchResult is what this harness reads of one result of `barberpro bench
// --json`. OpsPerSecond is newer than BookingsPerSecond; builds without it
// report bookings_per_second only.
type benchResult struct {
	Clients           int            `json:"clients"`
	OK                int            `json:"ok"`
	Errors            int            `json:"errors"`
	Codes             map[string]int `json:"codes"`
	OpsPerSecond      *float64       `json:"ops_per_second"`
	BookingsPerSecond float64        `json:"bookings_per_second"`
	P50               time.Duration  `json:"p50_ns"`
	P99               time.Duration  `json:"p99_ns"`
}

// parseBench turns the JSON array of `barberpro bench --json` into Measures, one
// per asked client count.
func parseBench(out []byte, users []int) ([]Measure, error) {
	var rs []benchResult
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("barberpro bench output: %w", err)
	}
	if len(rs) != len(users) {
		return nil, fmt.Errorf("barberpro bench output: %d results for %d client counts", len(rs), len(users))
	}
	ms := make([]Measure, len(rs))
	for i, r := range rs {
		if r.Clients != users[i] {
			return nil, fmt.Errorf("barberpro bench output: result %d is of %d clients, want %d", i, r.Clients, users[i])
		}
		ops := r.BookingsPerSecond
		if r.OpsPerSecond != nil {
			ops = *r.OpsPerSecond
		}
		ms[i] = Measure{OK: r.OK, Errors: r.Errors, Codes: r.Codes, OpsPerSecond: ops, P50: r.P50, P99: r.P99}
	}
	return ms, nil
}

// benchSupports returns whether this barberpro build's bench knows mode (builds
// before it refuse the mode only after their setup).
func benchSupports(ctx context.Context, bin, mode string) bool {
	out, err := output(ctx, bin, "bench", "--help")
	return err == nil && modeInHelp(string(out), mode)
}

// modeInHelp reports whether the --mode flag's line of a help text names mode.
func modeInHelp(help, mode string) bool {
	for line := range strings.SplitSeq(help, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--mode ") {
			return strings.Contains(line, mode)
		}
	}
	return false
}

// barberproVersion is what `barberpro version` prints, less the name.
func barberproVersion(ctx context.Context, bin string) string {
	out, err := output(ctx, bin, "version")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.TrimPrefix(string(out), "barberpro"))
}
