package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/procs"
	"github.com/barberpro/edge/simulations/seed"
)

func newDemoCmd() *cobra.Command {
	var (
		dataDir      string
		ipBase       int
		noRateLimits bool
		pprof        bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local 5-city cluster with demo data and print curl lines to try",
		Long: `Start a local cluster of five node processes, each on its own loopback IP with the
default ports: Buenos Aires (127.0.0.11), Córdoba (.12), Rosario (.13), La Plata (.14)
— jurisdiction ar — and us-east (.15), joined by encrypted gossip. Seed providers of
every vertical (barber, beauty, fitness, psychology) in the four Argentine cities,
print curl lines that work as printed against any node, and run until Ctrl-C, which
stops every node cleanly. The data dirs are temporary unless --data-dir is given.

The nodes keep the default rate limits (50 requests/s per token subject, 50/s per IP
without a verified token), under which a load run from one machine measures 429s;
--no-rate-limits starts them with --rate-limit inf --ip-rate-limit inf, for the
` + "`barberpro bench`" + ` line the demo prints.`,
		Example: "  barberpro demo\n  barberpro demo --data-dir ./data/demo\n  barberpro demo --no-rate-limits --ip-base 141   # then the printed barberpro bench line",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			binary, err := os.Executable()
			if err != nil {
				return err
			}
			if dataDir == "" {
				dir, mkErr := os.MkdirTemp("", "barberpro-demo-")
				if mkErr != nil {
					return mkErr
				}
				// A temporary dir goes away after a clean run, and stays when
				// the demo failed: its node logs say why.
				defer func() {
					if err == nil {
						os.RemoveAll(dir)
					} else {
						err = fmt.Errorf("%w\n(the nodes' logs and data are kept in %s)", err, dir)
					}
				}()
				dataDir = dir
			}
			sec, err := procs.NewSecrets(filepath.Join(dataDir, "secrets"), nil)
			if err != nil {
				return err
			}
			c, err := procs.FiveCities(binary, dataDir, sec, ipBase)
			if err != nil {
				return err
			}
			for _, p := range c.Procs {
				p.Spec.Env = append(p.Spec.Env, demoEnv(p.Spec.IP, noRateLimits, pprof)...)
			}
			defer c.StopAll(15 * time.Second)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Starting 5 nodes (logs and data in %s)...\n", dataDir)
			sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			if err := c.StartAll(sctx); err != nil {
				return err
			}
			var urls []string
			for _, p := range c.Procs {
				urls = append(urls, p.Spec.ID+" "+p.Spec.City+" "+p.Spec.URL())
			}
			fmt.Fprintf(out, "Nodes:\n  %s\n", strings.Join(urls, "\n  "))
			if err := seedAndPrint(ctx, out, sec, c, noRateLimits); err != nil {
				return err
			}
			<-ctx.Done()
			fmt.Fprintln(out, "\nStopping the nodes...")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", "", "keep the nodes' data and logs here (default: a temporary dir, removed on exit)")
	fl.IntVar(&ipBase, "ip-base", 11, "last byte of the first node's loopback IP (nodes take five in a row)")
	fl.BoolVar(&noRateLimits, "no-rate-limits", false, "start the nodes with --rate-limit inf --ip-rate-limit inf, for barberpro bench")
	fl.BoolVar(&pprof, "pprof", false, "each node serves Go runtime profiles on its own IP, port "+strconv.Itoa(procs.PprofPort)+" (its --pprof-addr; a node whose port is taken fails to start), e.g. go tool pprof http://127.0.0.11:"+strconv.Itoa(procs.PprofPort)+"/debug/pprof/profile?seconds=20")
	return cmd
}

// demoEnv is what the demo adds to the environment of its node bound to ip:
// no rate limits (unlimitedEnv), its runtime profiles served on
// ip:procs.PprofPort (pprof).
func demoEnv(ip string, noRateLimits, pprof bool) []string {
	var env []string
	if noRateLimits {
		env = append(env, unlimitedEnv...)
	}
	if pprof {
		env = append(env, envName("pprof-addr")+"="+net.JoinHostPort(ip, strconv.Itoa(procs.PprofPort)))
	}
	return env
}

// unlimitedEnv lifts a node's rate limits (its --rate-limit and --ip-rate-limit).
var unlimitedEnv = []string{envName("rate-limit") + "=inf", envName("ip-rate-limit") + "=inf"}

// benchLine is the demo's `barberpro bench` line: 10,000 people of the four
// cities for 60 s against every node, and what it needs when the nodes keep
// their rate limits. It names the binary the nodes run (after `make run`,
// bin/barberpro is on no PATH), so it works as printed.
func benchLine(cl *procs.Cluster, tokenDir string, unlimited bool) demoLine {
	var urls []string
	for _, p := range cl.Procs {
		urls = append(urls, p.Spec.URL())
	}
	what := "Load: 10,000 people of the four cities for 60 s, each at its city's node; per-route, per-city p50/p95/p99, errors apart from 409s, each node's RSS"
	if !unlimited {
		what += " (these nodes keep their rate limits, so it would measure 429s: start the demo with --no-rate-limits for it)"
	}
	return demoLine{what, fmt.Sprintf("%s bench --target %s --token-dir %s --users %d --duration %s",
		cl.Procs[0].Binary, strings.Join(urls, ","), tokenDir, benchCityUsers, benchCityDuration)}
}

// seedAndPrint creates the demo providers through the API (the psychologists
// licensed and verified), grants Ana's psychology consent, writes a token per
// role under the secrets dir, and prints curl lines that work against the
// cluster as printed (each reads its token from its file).
func seedAndPrint(ctx context.Context, w io.Writer, sec *procs.Secrets, cl *procs.Cluster, unlimited bool) error {
	base, other, us := cl.Procs[0].Spec.URL(), cl.Procs[1].Spec.URL(), cl.Procs[4].Spec.URL()
	c := client.New(base, nil).WithToken(sec.Operator())
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitReady(wctx); err != nil {
		return err
	}
	providers, err := seed.Create(ctx, c, seed.DemoProviders())
	if err != nil {
		return err
	}
	var barber, psy client.Provider
	for _, p := range providers {
		if p.City != "buenos-aires" {
			continue
		}
		switch p.Vertical {
		case "barber":
			barber = p
		case "psychology":
			psy = p
		}
	}
	// A token file per role: two clients, the barber, an operator.
	tokenFile := map[string]string{}
	for _, t := range []struct {
		name string
		role auth.Role
		sub  string
	}{
		{"ana", auth.RoleClient, "cli-ana"}, {"bruno", auth.RoleClient, "cli-bruno"},
		{"barber", auth.RoleProvider, barber.ID}, {"psychologist", auth.RoleProvider, psy.ID}, {"operator", auth.RoleOperator, "ops"},
	} {
		tok, err := sec.Token(t.role, t.sub)
		if err != nil {
			return err
		}
		path := filepath.Join(sec.Dir, t.name+".token")
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			return err
		}
		tokenFile[t.name] = path
	}
	bearer := func(name string) string {
		return fmt.Sprintf(`-H "Authorization: Bearer $(cat %s)"`, tokenFile[name])
	}
	svc := barber.Services[0]
	loc, err := time.LoadLocation(barber.Timezone)
	if err != nil {
		return err
	}
	from := time.Now().In(loc).AddDate(0, 0, 1).Format(time.DateOnly)
	av, err := c.Availability(ctx, barber.ID, svc.ID, from, 7)
	if err != nil {
		return err
	}
	if len(av.Slots) == 0 {
		return fmt.Errorf("demo: no free slot for %s in the next week", barber.Name)
	}

	fmt.Fprintf(w, "\nBarberPro Edge demo: every node serves every city; these lines use several.\n")
	fmt.Fprintf(w, "Seeded %d providers: barber, beauty, fitness and psychology in %s.\n\n", len(providers), strings.Join(seed.Cities, ", "))
	lines, err := bookingLines(base, other, us, barber, svc, av.Slots[0].Start, bearer)
	if err != nil {
		return err
	}
	psyLines, err := psychologyDemo(ctx, base, us, sec, psy, tokenFile, bearer)
	if err != nil {
		return err
	}
	lines = append(lines, psyLines...)
	var scans []string
	for _, p := range cl.Procs {
		if p.Spec.City == "us-east" {
			scans = append(scans, "--scan "+p.Spec.ID+"="+p.Spec.DataDir, "--scan "+p.Spec.ID+"="+p.LogPath)
		}
	}
	scans = append(scans, "--scan "+cl.Procs[0].Spec.ID+"="+cl.Procs[0].Spec.DataDir)
	lines = append(lines,
		demoLine{"Walk Ana's jurisdiction's audit chain, recomputing every hash (exit 1 names a broken link)",
			fmt.Sprintf("%s audit verify --addr %s --token \"$(cat %s)\"", cl.Procs[0].Binary, base, tokenFile["operator"])},
		demoLine{"Is any psychology id, consent or note marker on the US node's disk or log? (ba-1's dir is the control)",
			fmt.Sprintf("%s residency check --addr %s --token \"$(cat %s)\" %s --marker DEMO-NOTE-MARKER", cl.Procs[0].Binary, base, tokenFile["operator"], strings.Join(scans, " "))},
		benchLine(cl, sec.TokenDir(), unlimited),
	)

	fmt.Fprintf(w, "Tokens (one per role) are in %s; the CA and node certificates in %s.\n", sec.Dir, filepath.Join(sec.Dir, "ca"))
	fmt.Fprintf(w, "More: barberpro token issue --dir %s --role client --sub cli-carla\n\n", sec.TokenDir())
	for _, l := range lines {
		fmt.Fprintf(w, "# %s\n%s\n\n", l.what, l.cmd)
	}
	fmt.Fprintln(w, "Ctrl-C stops the demo.")
	return nil
}

// demoLine is a curl line the demo prints and what it shows.
type demoLine struct{ what, cmd string }

// bookingLines are the demo's lines about bookings and the cluster: the
// barber's availability on the day of slot (the first free one: the day after
// today may be one he does not work), Ana booking slot with svc, Bruno refused
// it, what each token may read, and the operators' routes. base is Buenos
// Aires' node, other Córdoba's, us the US node's.
func bookingLines(base, other, us string, barber client.Provider, svc client.Service, slot string, bearer func(string) string) ([]demoLine, error) {
	loc, err := time.LoadLocation(barber.Timezone)
	if err != nil {
		return nil, err
	}
	start, err := time.Parse(time.RFC3339, slot)
	if err != nil {
		return nil, fmt.Errorf("demo: slot %q: %w", slot, err)
	}
	day := start.In(loc).Format(time.DateOnly)
	book := fmt.Sprintf(`{"provider_id":"%s","service_id":"%s","client_id":"cli-ana","start":"%s"}`, barber.ID, svc.ID, slot)
	otherBook := strings.Replace(book, "cli-ana", "cli-bruno", 1)
	return []demoLine{
		{"List the providers of Buenos Aires (public: no token)", fmt.Sprintf("curl -s '%s/v1/providers?city=buenos-aires'", base)},
		{"Availability of " + barber.Name + " (" + svc.Name + ")", fmt.Sprintf("curl -s '%s/v1/providers/%s/availability?service_id=%s&from=%s&days=1'", base, barber.ID, svc.ID, day)},
		{"Ana books the first free slot with her client token: 201", fmt.Sprintf("curl -s -i -X POST %s/v1/bookings %s -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' -d '%s'", base, bearer("ana"), book)},
		{"Bruno wants the same slot, through Córdoba's node: 409 slot_unavailable (and not whose)", fmt.Sprintf("curl -s -i -X POST %s/v1/bookings %s -H 'Content-Type: application/json' -d '%s'", other, bearer("bruno"), otherBook)},
		{"Ana retries with her Idempotency-Key: the same booking; keep its id", fmt.Sprintf("BOOKING=$(curl -s -X POST %s/v1/bookings %s -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' -d '%s' | grep -o '\"id\":\"[^\"]*\"' | head -1 | cut -d'\"' -f4); echo $BOOKING", base, bearer("ana"), book)},
		{"Bruno may not read Ana's booking: 404", fmt.Sprintf("curl -s -i %s/v1/bookings/$BOOKING %s", base, bearer("bruno"))},
		{"The barber sees it on his calendar", fmt.Sprintf("curl -s %s/v1/bookings/$BOOKING %s", base, bearer("barber"))},
		{"Ana cancels it: the slot is free again at once", fmt.Sprintf("curl -s -X POST %s/v1/bookings/$BOOKING/cancel %s", base, bearer("ana"))},
		{"Without a token: 401", fmt.Sprintf("curl -s -i %s/v1/clients/cli-ana/bookings", base)},
		{"Where the provider's calendar actor runs, asked of the US node (operator)", fmt.Sprintf("curl -s %s/v1/providers/%s/placement %s", us, barber.ID, bearer("operator"))},
		{"The cluster: members, Raft groups and their leaders (operator)", fmt.Sprintf("curl -s %s/v1/cluster/members %s; curl -s %s/v1/cluster/status %s", base, bearer("operator"), us, bearer("operator"))},
		{"Health, readiness, metrics, the OpenAPI contract (public)", fmt.Sprintf("curl -s %s/readyz; curl -s %s/metrics | grep barberpro_; curl -s %s/openapi.json | head -c 300", base, base, base)},
	}, nil
}

// psychologyDemo grants Ana's psychology consent (with her token) and returns
// the curl lines of the psychology vertical: consents, a session booked with
// psy, its notes written and read by the psychologist, what others may not do,
// the audit of it, and the erasure of Ana's health data.
func psychologyDemo(ctx context.Context, base, us string, sec *procs.Secrets, psy client.Provider, tokenFile map[string]string,
	bearer func(string) string) ([]demoLine, error) {
	if psy.ID == "" || len(psy.Services) == 0 {
		return nil, fmt.Errorf("demo: no psychologist in Buenos Aires was seeded")
	}
	anaTok, err := sec.Token(auth.RoleClient, "cli-ana")
	if err != nil {
		return nil, err
	}
	consent := client.ConsentRequest{Purpose: client.ConsentPurposePsychology, Jurisdiction: "ar", TextVersion: "2026-01"}
	if _, err := client.New(base, nil).WithToken(anaTok).GrantConsent(ctx, "cli-ana", consent, "demo-consent-ana"); err != nil {
		return nil, fmt.Errorf("demo: Ana's psychology consent: %w", err)
	}
	loc, err := time.LoadLocation(psy.Timezone)
	if err != nil {
		return nil, err
	}
	from := time.Now().In(loc).AddDate(0, 0, 1).Format(time.DateOnly)
	av, err := client.New(base, nil).Availability(ctx, psy.ID, psy.Services[0].ID, from, 14)
	if err != nil {
		return nil, err
	}
	if len(av.Slots) == 0 {
		return nil, fmt.Errorf("demo: no free slot for %s in the next two weeks", psy.Name)
	}
	book := fmt.Sprintf(`{"provider_id":"%s","service_id":"%s","client_id":"cli-ana","start":"%s"}`, psy.ID, psy.Services[0].ID, av.Slots[0].Start)
	notes := `{"text":"Primera sesión: refiere ansiedad en el trabajo. DEMO-NOTE-MARKER"}`
	j := "-H 'Content-Type: application/json'"
	return []demoLine{
		{"Psychology: " + psy.Name + " is licensed and verified; Ana's consents (the demo granted psychology-care in ar)",
			fmt.Sprintf("curl -s %s/v1/clients/cli-ana/consents %s", base, bearer("ana"))},
		{"Ana grants it again with the same Idempotency-Key: the same consent (its id says its jurisdiction's city)",
			fmt.Sprintf("curl -s -X POST %s/v1/clients/cli-ana/consents %s %s -H 'Idempotency-Key: demo-consent-ana' -d '%s'", base, bearer("ana"), j,
				`{"purpose":"psychology-care","jurisdiction":"ar","text_version":"2026-01"}`)},
		{"Bruno has no consent: 422 consent_required, before the slot is looked at",
			fmt.Sprintf("curl -s -i -X POST %s/v1/bookings %s %s -d '%s'", base, bearer("bruno"), j, strings.Replace(book, "cli-ana", "cli-bruno", 1))},
		{"Ana books a session through the US node (it relays, keeps nothing): 201, Cache-Control: no-store; keep its id",
			fmt.Sprintf("SESSION=$(curl -s -X POST %s/v1/bookings %s %s -H 'Idempotency-Key: demo-psy-1' -d '%s' | grep -o '\"id\":\"[^\"]*\"' | head -1 | cut -d'\"' -f4); echo $SESSION", us, bearer("ana"), j, book)},
		{"The psychologist writes the session's notes (sealed before they reach Raft: AES-256-GCM under Ana's data key)",
			fmt.Sprintf("curl -s -X PUT %s/v1/sessions/$SESSION/notes %s %s -d '%s'", base, bearer("psychologist"), j, notes)},
		{"...and reads them back; only the treating provider may",
			fmt.Sprintf("curl -s -i %s/v1/sessions/$SESSION/notes %s", base, bearer("psychologist"))},
		{"Not the operator, not Ana: 403, and the refusal is audited",
			fmt.Sprintf("curl -s -i %s/v1/sessions/$SESSION/notes %s; curl -s -i %s/v1/sessions/$SESSION/notes %s", base, bearer("operator"), base, bearer("ana"))},
		{"The session: Ana may read it; the psychologist checks her in, then completes it",
			fmt.Sprintf("curl -s %s/v1/sessions/$SESSION %s; curl -s -X POST %s/v1/sessions/$SESSION/check-in %s; curl -s -X POST %s/v1/sessions/$SESSION/complete %s",
				base, bearer("ana"), base, bearer("psychologist"), base, bearer("psychologist"))},
		{"Who touched the session, allowed or refused (operator): the hash-chained audit log",
			fmt.Sprintf("curl -s '%s/v1/audit?object='$SESSION %s", base, bearer("operator"))},
		{"Everything held about Ana (her token)",
			fmt.Sprintf("curl -s %s/v1/clients/cli-ana/export %s", base, bearer("ana"))},
		{"Ana erases her health data: her data key is destroyed everywhere; the notes read 410 erased",
			fmt.Sprintf("curl -s -i -X DELETE %s/v1/clients/cli-ana/health-data %s; curl -s -i %s/v1/sessions/$SESSION/notes %s", base, bearer("ana"), base, bearer("psychologist"))},
	}, nil
}
