#!/usr/bin/env bash
# make demo: builds what it needs, then runs the demo program (test/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/install-deps.sh
hack/build-test-binaries.sh
export TEST_BIN_DIR=${TEST_BIN_DIR:-$PWD/.cache/bin}
go run ./test/demo
