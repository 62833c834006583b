#!/usr/bin/env bash
# make e2e: the HA lab in network namespaces (3 masters with kube-apiserver,
# haproxy + reloader, monitor with the nftables redirect, keepalived; a client
# sending load to the VIP), once as processes and once as the static pods of
# real kubelets with containerd (images from hack/build-images.sh), a
# cluster kubeadm builds through the VIP (three control planes, a worker), and
# hack/kind/up.sh against a Docker engine the lab starts (node image from
# hack/kind/node-image.sh). Needs root. Prints the results table and writes it to LAB_RESULTS (default
# _output/LAB.md, ignored by git); "make lab-report" copies a passing run's
# table to the committed LAB.md. HAPM_LAB_BASELINE=1 adds the original's setup
# as a second column (~7 min), HAPM_LAB_SOAK=10m the faster-VRRP soak under
# CPU load; make lab-report sets both, make test neither.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/install-deps.sh
hack/build-test-binaries.sh
hack/build-images.sh
hack/kind/node-image.sh
export TEST_BIN_DIR=${TEST_BIN_DIR:-$PWD/.cache/bin}
export HAPM_REQUIRE_TOOLS=1
mkdir -p _output && rm -rf _output/docs/lab
export LAB_RESULTS=${LAB_RESULTS:-$PWD/_output/LAB.md}
# test/digest ends a failed run with each failure's first lines (a CI page
# shows the tail of a long log) and drops the diffs' context lines.
go build -o _output/digest ./test/digest
go test -count=1 -timeout 50m -json ./test/e2e 2>&1 | _output/digest -v -drop '        +'
