package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/load"
)

const (
	alertsFile     = "prometheus/alerts.yml"
	alertTestsFile = "prometheus/alerts_test.yml"
	promConfigFile = "prometheus/prometheus.yml"
	dashboardFile  = "grafana/barberpro.json"
	unitFile       = "systemd/barberpro.service"
	envExampleFile = "systemd/barberpro.env.example"
)

// notOurs are the metric names the queries may use that a barberpro node does
// not export: Prometheus's own per target, and node_exporter's.
var notOurs = map[string]string{
	"up":                             "Prometheus, per scrape target",
	"node_filesystem_avail_bytes":    "node_exporter",
	"node_filesystem_size_bytes":     "node_exporter",
	"node_filesystem_files_free":     "node_exporter",
	"node_cpu_seconds_total":         "node_exporter",
	"node_memory_MemAvailable_bytes": "node_exporter",
}

// promtool returns the path of promtool, or skips t when it is not installed.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install Debian's prometheus package (apt-get install prometheus), as .ci/run does")
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlerts_Promtool checks the rules and runs their unit tests, in which every
// alert fires in one case and stays quiet in another, and checks the example
// configuration.
func TestAlerts_Promtool(t *testing.T) {
	p := promtool(t)
	run(t, p, "check", "rules", alertsFile)
	run(t, p, "test", "rules", alertTestsFile)
	// The example configuration names paths of a Prometheus host: syntax only.
	run(t, p, "check", "config", "--syntax-only", promConfigFile)
}

// TestAlerts_EveryAlertTested checks that alerts_test.yml has, for every alert of
// alerts.yml, a case where it fires and a case where it does not.
func TestAlerts_EveryAlertTested(t *testing.T) {
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, alertTestsFile, &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, r := range alertRules(t) {
		if !fires[r.Alert] {
			t.Errorf("alert %s: no case in %s where it fires", r.Alert, alertTestsFile)
		}
		if !quiet[r.Alert] {
			t.Errorf("alert %s: no case in %s where it does not fire", r.Alert, alertTestsFile)
		}
	}
}

// TestDashboard_QueriesParse hands every dashboard query to promtool, as
// recording rules (Grafana's $__rate_interval and $__range replaced).
func TestDashboard_QueriesParse(t *testing.T) {
	p := promtool(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, q := range dashboardQueries(t) {
		q = strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m").Replace(q)
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: q})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, p, "check", "rules", f)
}

// TestMetrics_QueriedAreExported starts a real node, drives a little traffic
// (a provider, a booking, a refused booking, a request relayed to a jurisdiction
// with no node), scrapes /metrics, and checks that every metric name in the
// alert rules and the dashboard is one the node exports (a histogram's
// _bucket, _sum and _count count) or one of notOurs.
func TestMetrics_QueriedAreExported(t *testing.T) {
	exported := scrapeNode(t)
	used := map[string][]string{} // name -> where
	for _, r := range alertRules(t) {
		for _, n := range metricNames(r.Expr) {
			used[n] = append(used[n], "alert "+r.Alert)
		}
	}
	for _, q := range dashboardQueries(t) {
		for _, n := range metricNames(q) {
			used[n] = append(used[n], "dashboard")
		}
	}
	if len(used) < 15 {
		t.Fatalf("only %d metric names found in the queries (the parser is broken?): %v", len(used), used)
	}
	if missing := unexported(used, exported); len(missing) > 0 {
		t.Errorf("queries use metrics the node does not export:\n%s\nexported: %v",
			strings.Join(missing, "\n"), slices.Sorted(func(yield func(string) bool) {
				for n := range exported {
					if !yield(n) {
						return
					}
				}
			}))
	}
}

// unexported lists the names of used that are neither exported nor notOurs,
// each with where it is used.
func unexported(used map[string][]string, exported map[string]bool) []string {
	var missing []string
	for n, where := range used {
		if !exported[n] && notOurs[n] == "" {
			slices.Sort(where)
			missing = append(missing, fmt.Sprintf("  %s (in %s)", n, strings.Join(slices.Compact(where), ", ")))
		}
	}
	slices.Sort(missing)
	return missing
}

// TestMetricNames checks the query parser, and that a misspelled metric is
// reported.
func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="barberpro"} == 0`, []string{"up"}},
		{`sum by (city) (rate(barberpro_http_requests_total{status=~"5.."}[$__rate_interval]) * on (instance) group_left (city) barberpro_node_info{city=~"$city"})`,
			[]string{"barberpro_http_requests_total", "barberpro_node_info"}},
		{`histogram_quantile(0.99, sum by (instance, le) (rate(x_bucket{route="POST /v1/bookings"}[5m]))) > 0.15`, []string{"x_bucket"}},
		{`a / (b > 0) < 0.10 and on (jurisdiction) c offset 5m > 1e9`, []string{"a", "b", "c"}},
		{`max by (jurisdiction) (changes(t[15m])) > 3 unless on(j) group_left m`, []string{"m", "t"}},
		{`label_values(barberpro_node_info{jurisdiction=~"$jurisdiction"}, city)`, []string{"barberpro_node_info"}},
		{`sum without (le) (rate(x[1m])) or vector(0)`, []string{"x"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
	used := map[string][]string{"barbrpro_http_requests_total": {"dashboard"}, "up": {"alert"}, "barberpro_x_count": {"alert"}}
	got := unexported(used, map[string]bool{"barberpro_x_count": true})
	if len(got) != 1 || !strings.Contains(got[0], "barbrpro_http_requests_total") {
		t.Errorf("unexported = %v, want the misspelled name alone", got)
	}
}

// TestSystemdUnit_Hardened checks the unit's hardening keys, that its data dir
// is the example environment's, and, where systemd-analyze is installed, that
// systemd accepts the unit and rates its exposure 2.0 or lower.
func TestSystemdUnit_Hardened(t *testing.T) {
	unit := parseUnit(t, unitFile)
	svc := unit["Service"]
	want := map[string]string{
		"User":                  "barberpro",
		"Group":                 "barberpro",
		"EnvironmentFile":       "/etc/barberpro/barberpro.env",
		"ProtectSystem":         "strict",
		"ReadWritePaths":        "/var/lib/barberpro",
		"NoNewPrivileges":       "yes",
		"PrivateTmp":            "yes",
		"ProtectHome":           "yes",
		"CapabilityBoundingSet": "",
		"AmbientCapabilities":   "",
		"LimitNOFILE":           "65536",
		"Restart":               "on-failure",
		"ExecStart":             "/usr/local/bin/barberpro node start",
	}
	for k, v := range want {
		got, ok := svc[k]
		if !ok {
			t.Errorf("[Service] has no %s= (want %q)", k, v)
		} else if !slices.Contains(got, v) {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	env := parseEnv(t, envExampleFile)
	if dd := env["BARBERPRO_DATA_DIR"]; !slices.Contains(svc["ReadWritePaths"], dd) {
		t.Errorf("%s: BARBERPRO_DATA_DIR=%s is not a ReadWritePaths= of the unit (%v)", envExampleFile, dd, svc["ReadWritePaths"])
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not found: the unit is not verified by systemd (apt-get install systemd)")
		return
	}
	// verify wants ExecStart's binary to exist: point it at this test binary.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "barberpro.service")
	b = bytes.Replace(b, []byte("ExecStart=/usr/local/bin/barberpro "), []byte("ExecStart="+self+" "), 1)
	if err := os.WriteFile(copyPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(t, sa, "verify", copyPath); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify warns:\n%s", out)
	}
	run(t, sa, "security", "--offline=yes", "--threshold=20", copyPath)
}

// --- helpers ---

type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var doc struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, alertsFile, &doc)
	var out []alertRule
	for _, g := range doc.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", alertsFile)
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// dashboardQueries returns every PromQL expression of the dashboard: its
// panels' targets (rows' nested panels too) and its templating queries.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: %v", dashboardFile, err)
			}
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, tg.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) != nil { // older Grafana: a plain string
			json.Unmarshal(v.Query, &q.Query)
		}
		if m := labelValues.FindStringSubmatch(strings.TrimSpace(q.Query)); m != nil {
			out = append(out, m[1])
		} else if q.Query != "" {
			out = append(out, q.Query)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no queries", dashboardFile)
	}
	return out
}

// labelValues matches Grafana's label_values(METRIC_SELECTOR, label).
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$`)

var (
	reStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	reMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	reRanges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	reLabelList = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	// notMetric are PromQL's keywords and aggregation operators (which may be
	// followed by "by (...)" before their parenthesis).
	notMetric = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
	}
)

// metricNames returns, sorted and once each, the metric names a PromQL
// expression selects: what is left once strings, label matchers, ranges, label
// lists, functions, keywords and numbers are taken out. A Grafana
// label_values(...) query gives its selector's metric.
func metricNames(expr string) []string {
	if m := labelValues.FindStringSubmatch(strings.TrimSpace(expr)); m != nil {
		expr = m[1]
	}
	expr = reStrings.ReplaceAllString(expr, `""`)
	expr = reMatchers.ReplaceAllString(expr, " ")
	expr = reRanges.ReplaceAllString(expr, " ")
	expr = reLabelList.ReplaceAllString(expr, " ")
	var out []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	for i := 0; i < len(expr); {
		c := expr[i]
		if !isPart(c) && c != '.' && c != '$' {
			i++
			continue
		}
		j := i
		for j < len(expr) && (isPart(expr[j]) || expr[j] == '.' || expr[j] == '$') {
			j++
		}
		word := expr[i:j]
		k := j
		for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
			k++
		}
		fn := k < len(expr) && expr[k] == '('
		if isStart(word[0]) && !strings.ContainsAny(word, ".$") && !fn && !notMetric[strings.ToLower(word)] {
			out = append(out, word)
		}
		i = j
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// scrapeNode starts a lone node (clustertest.MustStartNode), makes it serve a
// provider creation, a booking, a refused booking and a request for a
// jurisdiction it has no node of, and returns the metric names of its
// /metrics: every sample's, and a histogram's or summary's family name too.
func scrapeNode(t *testing.T) map[string]bool {
	t.Helper()
	n := clustertest.MustStartNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ops := clustertest.Operator(t, n)
	p := load.LoadProvider("buenos-aires", 0)
	p.Services = []client.Service{{Name: "corte", DurationMinutes: 30, Price: client.Money{Amount: "1500.00", Currency: "ARS"}}}
	got, err := ops.CreateProvider(ctx, p, "")
	if err != nil {
		t.Fatalf("create provider: %v", err)
	}
	// 10:00 two days ahead in Buenos Aires (the load provider works around the clock).
	loc, err := time.LoadLocation("America/Argentina/Buenos_Aires")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(loc)
	start := time.Date(now.Year(), now.Month(), now.Day()+2, 10, 0, 0, 0, loc).Format(time.RFC3339)
	req := client.BookingRequest{ProviderID: got.ID, ServiceID: got.Services[0].ID, ClientID: "cli-ana", Start: start}
	if _, err := ops.Book(ctx, req, ""); err != nil {
		t.Fatalf("book: %v", err)
	}
	if _, err := ops.Book(ctx, req, ""); err == nil {
		t.Fatal("the same slot was booked twice")
	}
	hc := clustertest.HTTPClient(t, n)
	if hc == nil {
		hc = http.DefaultClient
	}
	if resp, err := hc.Get(n.URL() + "/v1/providers?city=us-east"); err == nil {
		resp.Body.Close() // relayed to us: no node there (barberpro_http_forwarded_total)
	}
	resp, err := hc.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			switch f[3] {
			case "histogram":
				names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
			case "summary":
				names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if !names["barberpro_http_requests_total"] || !names["barberpro_raft_is_leader"] {
		t.Fatalf("/metrics lacks the node's basic metrics:\n%s", body)
	}
	return names
}

// parseUnit reads a systemd unit file: section -> key -> values (a key may
// repeat).
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value in a section: %q", path, i+1, line)
			}
			k = strings.TrimSpace(k)
			out[section][k] = append(out[section][k], strings.TrimSpace(v))
		}
	}
	return out
}

// parseEnv reads an EnvironmentFile's KEY=VALUE lines.
func parseEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}
