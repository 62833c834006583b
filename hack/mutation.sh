#!/usr/bin/env bash
# make mutation: mutation testing of the pure packages with gremlins
# (github.com/go-gremlins/gremlins, built from the Go module proxy into
# .cache/tools): each covered mutant of the code is run against the
# package's unit tests; a mutant the tests do not catch "lived". Prints the
# score per package and in all (killed of killed + lived), and writes
# _output/mutation/<package>.json and _output/mutation/score.txt.
# docs/testing.md reports the score and argues each survivor.
set -euo pipefail
cd "$(dirname "$0")/.."
GREMLINS_VERSION=${GREMLINS_VERSION:-v0.6.0}
tools=$PWD/.cache/tools
if [ ! -x "$tools/gremlins-$GREMLINS_VERSION" ]; then
  echo "mutation: building gremlins $GREMLINS_VERSION"
  GOBIN=$tools go install "github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION"
  mv "$tools/gremlins" "$tools/gremlins-$GREMLINS_VERSION"
fi
pkgs=(${MUTATION_PACKAGES:-pkg/lbconfig pkg/haproxycfg pkg/runtimeapi pkg/apply pkg/haproxyctl pkg/keepalived pkg/render pkg/failover pkg/redirect})
out=_output/mutation
rm -rf "$out" && mkdir -p "$out"
killed=0 lived=0
for p in "${pkgs[@]}"; do
  name=${p//\//-}
  "$tools/gremlins-$GREMLINS_VERSION" unleash --workers 1 --timeout-coefficient 4 -o "$out/$name.json" "./$p" >"$out/$name.log" 2>&1 || true
  read -r k l < <(go run ./hack/mutationscore "$out/$name.json")
  killed=$((killed + k)) lived=$((lived + l))
  printf 'mutation: %-16s killed %3d of %3d\n' "$p" "$k" "$((k + l))" | tee -a "$out/score.txt"
  grep -E '^ +LIVED' "$out/$name.log" | sed "s|^ *|  $p: |" | tee -a "$out/score.txt" || true
done
total=$((killed + lived))
printf 'mutation: in all killed %d of %d (%d%%)\n' "$killed" "$total" "$((total > 0 ? 100 * killed / total : 0))" | tee -a "$out/score.txt"
