#!/usr/bin/env bash
# The whole test run, as CI runs it: installs what is missing, builds the pinned
# Kubernetes binaries (kube-apiserver, kubelet, kubeadm, ...) and etcd, lints, runs unit and integration tests with the race
# detector, fuzzes briefly, then runs the HA lab in network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-deps.sh
hack/build-test-binaries.sh
hack/lint.sh

export TEST_BIN_DIR=${TEST_BIN_DIR:-$PWD/.cache/bin}
export HAPM_REQUIRE_TOOLS=1 # a missing haproxy/socat/apiserver fails instead of skipping
# The lab runs on its own afterwards: its failover timings should not compete
# with the integration suite for the CPUs.
mkdir -p _output && go build -o _output/digest ./test/digest # go test's output, each failure's first lines at the end
go test -race -count=1 -timeout 20m -json $(go list ./... | grep -v /test/e2e) 2>&1 | _output/digest
hack/fuzz.sh
hack/e2e.sh # results in _output/LAB.md
