package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/barberpro/edge/edge/client"
)

// fakeCluster serves what residency check asks of a cluster of ba-1 (ar) and
// us-1 (us): members (both at the server's address), status (with usInAr, us-1
// a member of the ar group), the psychology providers, their placement (on
// placeOn), and an audit log naming a booking, a consent and a client.
func fakeCluster(t *testing.T, usInAr bool, placeOn string) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ops" {
			w.WriteHeader(401)
			return
		}
		host := strings.TrimPrefix(srv.URL, "http://")
		var v any
		switch r.URL.Path {
		case "/v1/cluster/members":
			v = map[string]any{"items": []map[string]any{
				{"id": "ba-1", "city": "buenos-aires", "jurisdiction": "ar", "status": "alive", "addresses": map[string]string{"http": host}},
				{"id": "us-1", "city": "us-east", "jurisdiction": "us", "status": "alive", "addresses": map[string]string{"http": host}},
			}}
		case "/v1/cluster/status":
			ar := []map[string]any{{"id": "ba-1", "role": "leader"}}
			if usInAr {
				ar = append(ar, map[string]any{"id": "us-1", "role": "nonvoter"})
			}
			v = map[string]any{"node": "ba-1", "groups": []map[string]any{{"group": "ar", "leader": "ba-1", "members": ar}, {"group": "us", "leader": "us-1", "members": []map[string]any{{"id": "us-1", "role": "leader"}}}}}
		case "/v1/providers":
			if r.URL.Query().Get("vertical") != "psychology" {
				t.Errorf("providers asked with %q", r.URL.RawQuery)
			}
			v = map[string]any{"items": []map[string]any{{"id": "prv_buenos-aires_psy1", "name": "Lic", "vertical": "psychology", "city": "buenos-aires", "jurisdiction": "ar", "services": []any{}, "weekly_hours": map[string]any{}}}}
		case "/v1/providers/prv_buenos-aires_psy1/placement":
			j := "ar"
			if placeOn == "us-1" {
				j = "us"
			}
			v = map[string]any{"node": placeOn, "city": "x", "jurisdiction": j}
		case "/v1/audit":
			v = map[string]any{"items": []client.AuditEntry{
				{Seq: 1, Subject: "cli-ana-psy", Role: "client", Action: "consent.grant", Object: "cns_buenos-aires_c1"},
				{Seq: 2, Subject: "cli-ana-psy", Role: "client", Action: "booking.create", Object: "bkg_buenos-aires_b1"},
				{Seq: 3, Subject: "ops", Role: "operator", Action: "export", Object: "client:cli-ana-psy"},
				{Seq: 4, Subject: "ops", Role: "operator", Action: "booking.read", Object: "x"},
			}}
		default:
			w.WriteHeader(404)
			return
		}
		json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func plant(t *testing.T, path, data string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResidencyCheck(t *testing.T) {
	const marker = "PSY-MARKER-4242"
	type files map[string]string
	arFiles := files{"fsm.db": "prv_buenos-aires_psy1 bkg_buenos-aires_b1 cns_buenos-aires_c1 cli-ana-psy"}
	tests := []struct {
		name      string
		usInAr    bool
		placeOn   string
		ar, us    files
		usLog     string
		named     bool     // scan as NODE=DIR (ba-1 as control) rather than bare dirs
		want      []string // in the output, "" = OK
		exitWant  int
		noControl bool
	}{
		{name: "clean", placeOn: "ba-1", ar: arFiles, us: files{"fsm.db": "barbers only"}, usLog: `{"msg":"relayed to ar"}`, named: true},
		{name: "clean, bare dirs", placeOn: "ba-1", ar: arFiles, us: files{"fsm.db": "barbers only"}, usLog: "ok"},
		{name: "a consent id in the US log", placeOn: "ba-1", ar: arFiles, us: files{"fsm.db": "x"}, usLog: `{"consent":"cns_buenos-aires_c1"}`, named: true,
			want: []string{"node us-1 (jurisdiction us) holds", "cns_buenos-aires_c1", "us-1.log"}, exitWant: 1},
		{name: "an unknown consent of an ar city on the US disk", placeOn: "ba-1", ar: arFiles, us: files{"raft/snap/state.bin": "...cns_buenos-aires_zzz..."}, named: true,
			want: []string{"consent id prefix cns_buenos-aires_", "raft/snap/state.bin"}, exitWant: 1},
		{name: "an unaudited booking of a psychology city in a US snapshot", placeOn: "ba-1", ar: arFiles, us: files{"snapshots/1/state.bin": "bkg_buenos-aires_never-audited"}, named: true,
			want: []string{"booking id prefix of a city with psychology providers bkg_buenos-aires_", "snapshots/1/state.bin"}, exitWant: 1},
		{name: "an audited client on the US disk", placeOn: "ba-1", ar: arFiles, us: files{"fsm.db": "cli-ana-psy"}, named: true,
			want: []string{"client (audited) cli-ana-psy"}, exitWant: 1},
		{name: "the marker base64'd on the ar disk", placeOn: "ba-1",
			ar: files{"fsm.db": arFiles["fsm.db"], "raft.db": base64.StdEncoding.EncodeToString([]byte("note: " + marker + "!"))}, us: files{"fsm.db": "x"}, named: true,
			want: []string{"node ba-1 (jurisdiction ar) holds note marker " + marker, "raft.db"}, exitWant: 1},
		{name: "us-1 replicates ar", usInAr: true, placeOn: "ba-1", ar: arFiles, us: files{"fsm.db": "x"}, named: true,
			want: []string{"node us-1 (jurisdiction us) is a member of Raft group ar"}, exitWant: 1},
		{name: "the actor runs abroad", placeOn: "us-1", ar: arFiles, us: files{"fsm.db": "x"}, named: true,
			want: []string{"calendar actor of psychology provider prv_buenos-aires_psy1 runs on node us-1"}, exitWant: 1},
		{name: "control: the ar dir lacks the ids", placeOn: "ba-1", ar: files{"fsm.db": "nothing"}, us: files{"fsm.db": "x"}, named: true,
			want: []string{"cannot be trusted"}, exitWant: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeCluster(t, tt.usInAr, tt.placeOn)
			root := t.TempDir()
			for name, data := range tt.ar {
				plant(t, filepath.Join(root, "ba-1", name), data)
			}
			for name, data := range tt.us {
				plant(t, filepath.Join(root, "us-1", name), data)
			}
			plant(t, filepath.Join(root, "us-1.log"), tt.usLog)
			args := []string{"residency", "check", "--addr", srv.URL, "--token", "ops", "--marker", marker}
			if tt.named {
				args = append(args, "--scan", "ba-1="+filepath.Join(root, "ba-1"), "--scan", "us-1="+filepath.Join(root, "us-1"), "--scan", "us-1="+filepath.Join(root, "us-1.log"))
			} else {
				args = append(args, "--scan", filepath.Join(root, "us-1"), "--scan", filepath.Join(root, "us-1.log"))
			}
			out, err := runCLI(t, args...)
			if got := exitCode(err); got != tt.exitWant {
				t.Fatalf("exit %d, want %d: %v\n%s", got, tt.exitWant, err, out)
			}
			if tt.exitWant == 0 && !strings.Contains(out, "residency check OK") {
				t.Fatalf("output does not say OK:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestResidencyCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"residency", "check", "--addr", "http://127.0.0.1:1"},                                   // no token
		{"residency", "check", "--addr", "nope", "--token", "t"},                                 // bad addr
		{"residency", "check", "--addr", "http://127.0.0.1:1", "--token", "t", "--marker", "ab"}, // marker too short
		{"residency", "check", "--addr", "http://127.0.0.1:1", "--token", "t", "--scan", "us-1="},
	} {
		if _, err := runCLI(t, args...); exitCode(err) != 2 {
			t.Errorf("%q: %v, want exit 2", args, err)
		}
	}
}
