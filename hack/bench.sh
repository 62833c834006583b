#!/usr/bin/env bash
# make bench: side-by-side benchmarks against the original's algorithm on a
# local etcd + kube-apiserver + haproxy. Not part of make test; takes ~20 min.
# Writes BENCHMARKS.md and bench/latest.txt (benchstat format: compare two runs
# with `go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da old.txt new.txt`).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/install-deps.sh
hack/build-test-binaries.sh
export TEST_BIN_DIR=${TEST_BIN_DIR:-$PWD/.cache/bin}
go run ./test/bench -out BENCHMARKS.md -benchstat bench/latest.txt "$@"
