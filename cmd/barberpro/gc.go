package main

import (
	"os"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// defaultGCPercent is the Go GC target percentage of a node and of the bench
// (--gc-percent). A node's live heap is small (bbolt is memory-mapped): 400
// gave ~20 % more bookings/s than Go's 100 at 256 clients. The bench of
// 10,000 people (city mode) has 10,000 goroutine stacks to scan each cycle:
// 400 took its CPU from 48 % to 40 % of a core (docs/PERFORMANCE.md, session
// 22).
const defaultGCPercent = 400

// gcPercentFlag registers --gc-percent on fl, for the process whose GC it
// tunes (what).
func gcPercentFlag(fl *pflag.FlagSet, p *int, what string) {
	fl.IntVar(p, "gc-percent", defaultGCPercent, "Go GC target percentage of "+what+" (GOGC, if set, wins; 0 or less: Go's default)")
}

// setGCPercent applies --gc-percent p unless GOGC is set (it wins) or p is
// not positive (Go's default stays).
func setGCPercent(p int) {
	if _, set := os.LookupEnv("GOGC"); !set && p > 0 {
		debug.SetGCPercent(p)
	}
}
