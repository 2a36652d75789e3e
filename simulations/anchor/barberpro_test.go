package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseBench_OpsPerSecondOrBookings(t *testing.T) {
	older := `[{"clients":1,"mode":"spread","ok":8430,"errors":0,"elapsed_ns":10000000000,"bookings_per_second":843,"p50_ns":1150000,"p90_ns":1,"p99_ns":2000000,"max_ns":3},
	{"clients":100,"mode":"spread","ok":43650,"errors":2,"codes":{"transport":2},"bookings_per_second":4365,"p50_ns":20000000,"p99_ns":54000000}]`
	ms, err := parseBench([]byte(older), []int{1, 100})
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].OpsPerSecond != 843 || ms[0].P50 != 1150*time.Microsecond || ms[1].OpsPerSecond != 4365 || ms[1].Errors != 2 || ms[1].Codes["transport"] != 2 {
		t.Errorf("older output: %+v", ms)
	}
	newer := `[{"clients":100,"mode":"availability","ok":330000,"errors":0,"ops_per_second":33000,"bookings_per_second":0,"p50_ns":2000000,"p99_ns":9000000}]`
	ms, err = parseBench([]byte(newer), []int{100})
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].OpsPerSecond != 33000 {
		t.Errorf("newer output: ops/s = %v, want ops_per_second's 33000", ms[0].OpsPerSecond)
	}
	if _, err := parseBench([]byte(newer), []int{1, 100}); err == nil {
		t.Error("one result for two client counts: no error")
	}
	if _, err := parseBench([]byte("usage: ..."), []int{1}); err == nil {
		t.Error("not JSON: no error")
	}
}

func TestModeInHelp(t *testing.T) {
	older := "Flags:\n      --mode string         spread (each client its own provider) or hot (all on one provider) (default \"spread\")\n"
	newer := "booking is a real commit. Four modes (--mode):\n  city ...\nFlags:\n      --mode string         city, spread, hot or availability (each client reads its own provider's availability) (default \"city\")\n"
	if modeInHelp(older, "availability") {
		t.Error("older help: availability found")
	}
	if !modeInHelp(older, "spread") || !modeInHelp(newer, "availability") {
		t.Error("a listed mode not found")
	}
}

// The bench runs at the GC target of the etcd driver: Go's 100 unless GOGC is
// set, which it then inherits.
func TestBenchEnvGCTarget(t *testing.T) {
	t.Setenv("GOGC", "250")
	if env := benchEnv(); env != nil {
		t.Fatalf("GOGC set: bench env %v, want this process's", env)
	}
	os.Unsetenv("GOGC") // t.Setenv restores it
	env := benchEnv()
	if len(env) == 0 || env[len(env)-1] != "GOGC=100" {
		t.Fatalf("GOGC unset: bench env ends %v, want GOGC=100", env[max(0, len(env)-1):])
	}
}

// outputEnv runs the program with the environment it is given.
func TestOutputEnvPassesEnv(t *testing.T) {
	out, err := outputEnv(context.Background(), []string{"GOGC=123"}, "/bin/sh", "-c", "echo $GOGC")
	if err != nil || strings.TrimSpace(string(out)) != "123" {
		t.Fatalf("outputEnv: %q, %v", out, err)
	}
}
