# haproxy-monitor. Every target's logic lives in hack/; CI runs "make test".
SHELL := /bin/bash
GO ?= go
BIN_DIR ?= bin

.PHONY: help build test unit fuzz lint demo bench e2e lab-report mutation deps test-binaries clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/monitor, bin/keepalived-conf and bin/node-setup
	$(GO) build -o $(BIN_DIR)/ ./cmd/...

deps: ## install haproxy, socat, keepalived, nftables, curl, containerd, runc, mmdebstrap from Debian when missing
	hack/install-deps.sh

test-binaries: ## build the pinned Kubernetes binaries (kube-apiserver, kubelet, kubeadm, kubectl, controller-manager, scheduler, kube-proxy), crictl, etcd, CoreDNS, the CNI plugins and kind into .cache/bin
	hack/build-test-binaries.sh

test: ## everything CI runs: deps, lint, unit + integration tests and the demo (race), short fuzzing, the e2e lab
	hack/test.sh

unit: ## unit tests only, no installs
	$(GO) test -count=1 ./pkg/... ./cmd/... ./manifests/...

fuzz: ## fuzz each target for a fixed number of executions (FUZZTIME overrides, e.g. 30s)
	hack/fuzz.sh

lint: ## gofmt, go vet, staticcheck
	hack/lint.sh

demo: ## run the monitor against a local etcd + kube-apiserver + haproxy and show it follow changes
	hack/demo.sh

e2e: ## the HA lab in network namespaces (root); results in _output/LAB.md
	hack/e2e.sh

lab-report: ## run the labs with the original's setup as a second column and, if they pass, write LAB.md and the timelines in docs/lab
	hack/lab-report.sh

mutation: ## mutation testing of the pure packages (gremlins); the score per package in _output/mutation/score.txt
	hack/mutation.sh

bench: ## benchmarks against the original's algorithm (~20 min); writes BENCHMARKS.md and bench/latest.txt
	hack/bench.sh

clean: ## remove build outputs (keeps the .cache of test binaries)
	rm -rf $(BIN_DIR) _output
