package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogPrivacy(t *testing.T) {
	const planted = "sim-planted-1-c0"
	clean := `{"time":"t","level":"INFO","msg":"request","route":"GET /v1/bookings/{id}","status":200,"node":"ba-1"}` + "\n"
	tests := []struct {
		name  string
		logs  map[string]string // node → log text ("" = a missing file)
		check string            // the violation expected ("" = clean)
		refs  []string
		plant string
	}{
		{name: "clean logs pass", logs: map[string]string{"ba-1": clean, "us-1": clean}, plant: planted},
		{name: "a client id in the US log", logs: map[string]string{"ba-1": clean, "us-1": clean + `{"msg":"relay","path":"/v1/clients/sim-1-c7/bookings"}` + "\n"},
			check: CheckLogPrivacy, refs: []string{"us-1", "sim-1-c7"}, plant: planted},
		{name: "a client id in an ar log is a violation too", logs: map[string]string{"ba-1": strings.Repeat(clean, 50000) + "sim-1-c7 at the end\n"},
			check: CheckLogPrivacy, refs: []string{"ba-1", "sim-1-c7"}, plant: planted},
		{name: "a log that cannot be read", logs: map[string]string{"ba-1": ""}, check: CheckLogPrivacyControl, refs: []string{"ba-1"}, plant: planted},
		{name: "no planted needle", logs: map[string]string{"ba-1": clean}, check: CheckLogPrivacyControl},
		{name: "no logs", logs: map[string]string{}, check: CheckLogPrivacyControl, plant: planted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string][]string{}
			for node, text := range tc.logs {
				p := filepath.Join(dir, node+".log")
				if text != "" {
					if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				files[node] = []string{p}
			}
			res := LogPrivacy(files, []string{"sim-1-c7", "sim-1-c8"}, tc.plant)
			if tc.check == "" {
				if !res.OK() {
					t.Fatalf("want clean, got %+v", res.Violations)
				}
				if res.Checked["log-privacy.files"] != len(tc.logs) {
					t.Fatalf("scanned %d files, want %d", res.Checked["log-privacy.files"], len(tc.logs))
				}
				return
			}
			wantViolation(t, res, tc.check, nil, tc.refs...)
		})
	}
}
