# BarberPro Edge. `make run` starts the local demo; `make test` is what CI runs.
GO      ?= go
BIN     := bin/barberpro
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.Version=$(VERSION)
# Packages whose tests run under the race detector (concurrent code).
RACE_PKGS := ./storage/... ./actors/... ./edge/... ./cluster/...

.PHONY: all build build-failpoints run test vet fmt-check race unit fuzz bench bench-vs-etcd proto clean sim sim-ci

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/barberpro

## build-failpoints: bin/barberpro-failpoints, built with the failpoints tag: it
## reads BARBERPRO_FAILPOINTS (e.g. snapshot-restore=crash) and crashes or stalls
## where told; the simulations use it (snapshot-install-crash; raft-log-nosync=on
## is the power-loss scenarios' control). Never ship it.
build-failpoints:
	$(GO) build -tags failpoints -ldflags "$(LDFLAGS)" -o $(BIN)-failpoints ./cmd/barberpro

## run: a local cluster with demo data; prints curl lines to try.
run: build
	./$(BIN) demo

## test: vet, formatting, every test, and the race detector on the concurrent packages.
test: vet fmt-check unit race

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -count=1 -timeout 15m ./...
	$(GO) test -count=1 -tags failpoints -run Failpoint ./storage/

race:
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

## fuzz: run each fuzz target for FUZZTIME (the seed corpora already run in `make test`).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## sim: every failover scenario of simulations/scenarios (real processes; iptables
## partitions need root; disk-full mounts a tmpfs and power-loss FUSE file systems,
## skipped when not root). Reports
## under sim-reports/. SIM_ARGS adds flags, e.g. SIM_ARGS="--seed 7" or
## SIM_ARGS="--node-binary /path/to/an/older/barberpro". sim-ci: the short CI
## selection (about 4 minutes).
SIM_ARGS ?=
sim: build build-failpoints
	./$(BIN) sim $(SIM_ARGS)

sim-ci: build
	./$(BIN) sim --ci $(SIM_ARGS)

## bench: the go test benchmarks of every package.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

## bench-vs-etcd: etcd (built from its Go module in simulations/anchor, a module of
## its own) and barberpro side by side in issue 11's layouts, in one run: prints the
## table of throughput, p50/p99 and ratios barberpro/etcd, and writes
## simulations/anchor/reports/bench-vs-etcd.json. About 3.5 minutes (plus etcd's build the first time); only ratios from
## one run compare (docs/PERFORMANCE.md). BENCH_ARGS adds flags, e.g.
## BENCH_ARGS="--duration 20s --layouts 3" (--help lists them).
BENCH_ARGS ?=
bench-vs-etcd: build
	cd simulations/anchor && $(GO) build -o bin/etcd ./cmd/etcd && $(GO) run . --barberpro ../../$(BIN) $(BENCH_ARGS)

## proto: regenerate protos/ with the pinned protoc-gen-go (needs protoc: apt-get install protobuf-compiler).
proto:
	$(GO) build -o bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	cd protos && $(GO) generate ./...

clean:
	rm -rf bin
