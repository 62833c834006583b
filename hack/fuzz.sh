#!/usr/bin/env bash
# Runs every fuzz target briefly; go test -fuzz takes one target per run.
# Budgets are execution counts, not durations: with a duration, go1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" failure at the
# deadline (golang/go#75804, fixed in Go 1.27). FUZZTIME overrides all budgets.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(
  "./pkg/lbconfig FuzzValidateNodeName 300000x"
  "./pkg/lbconfig FuzzParseAddress 100000x"
  "./pkg/render FuzzRender 200000x"
  "./pkg/lbconfig FuzzAPIServerNodes 100000x"
)
for t in "${targets[@]}"; do
  read -r pkg name budget <<<"$t"
  budget=${FUZZTIME:-$budget}
  echo "fuzz: $name ($pkg), $budget"
  go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$budget" -timeout 10m
done
