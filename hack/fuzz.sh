#!/usr/bin/env bash
# Fuzzes every fuzz target in the module, found by name (func FuzzX in a
# _test.go file), so a new target cannot be left to its seeds; go test -fuzz
# takes one target per run. Budgets are execution counts, not durations: with
# a duration, go1.26's fuzz coordinator can report a spurious "context
# deadline exceeded" failure at the deadline (golang/go#75804, fixed in Go
# 1.27). FUZZTIME overrides every budget.
set -euo pipefail
cd "$(dirname "$0")/.."
default=100000x
declare -A budget=(
  [FuzzValidateNodeName]=300000x
  [FuzzRender]=200000x
)
found=0
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  n=${FUZZTIME:-${budget[$name]:-$default}}
  echo "fuzz: $name ($pkg), $n"
  go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$n" -timeout 10m
  found=$((found + 1))
done < <(grep -rHoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' cmd pkg test | sed -E 's/:func /:/' | sort)
echo "fuzz: $found targets"
