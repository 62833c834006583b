# haproxy-monitor. Every target's logic lives in hack/; CI runs "make test".
SHELL := /bin/bash
GO ?= go
BIN_DIR ?= bin

.PHONY: help build test unit fuzz lint demo bench e2e deps test-binaries clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/monitor
	$(GO) build -o $(BIN_DIR)/monitor ./cmd/monitor

deps: ## install haproxy, socat, keepalived, nftables, wrk from Debian when missing
	hack/install-deps.sh

test-binaries: ## build the pinned kube-apiserver and etcd into .cache/bin
	hack/build-test-binaries.sh

test: ## everything CI runs: deps, lint, unit + integration tests (race), short fuzzing, the e2e lab
	hack/test.sh

unit: ## unit tests only, no installs
	$(GO) test -count=1 ./pkg/... ./cmd/... ./manifests/...

fuzz: ## fuzz each target for FUZZTIME (default 10s)
	hack/fuzz.sh

lint: ## gofmt, go vet, staticcheck
	hack/lint.sh

demo: ## run the monitor against a local etcd + kube-apiserver + haproxy and show it follow changes
	hack/demo.sh

e2e: ## the HA lab in network namespaces (root); writes LAB.md
	hack/e2e.sh

bench: ## benchmarks against the original's algorithm (~15 min); writes BENCHMARKS.md and bench/latest.txt
	hack/bench.sh

clean: ## remove build outputs (keeps the .cache of test binaries)
	rm -rf $(BIN_DIR)
