#!/usr/bin/env bash
# Runs every fuzz target briefly; go test -fuzz takes one target per run.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}
targets=(
  "./pkg/lbconfig FuzzValidateNodeName"
  "./pkg/lbconfig FuzzParseAddress"
  "./pkg/render FuzzRender"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "fuzz: $name ($pkg) for $FUZZTIME"
  go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME"
done
