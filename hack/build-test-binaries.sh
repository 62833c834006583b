#!/usr/bin/env bash
# Builds pinned kube-apiserver and etcd from the Go module proxy into a cache directory
# (default: <repo>/.cache/bin), reusing binaries that are already there for these versions.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
root=$(cd "$(dirname "$0")/.." && pwd)
bindir=${TEST_BIN_DIR:-$root/.cache/bin}
workdir=$root/.cache/build
mkdir -p "$bindir" "$workdir"

staging_version() { # v1.37.2 -> v0.37.2
  echo "v0.${1#v1.}"
}

build_apiserver() {
  local out=$bindir/kube-apiserver-$K8S_VERSION
  [ -x "$out" ] && return 0
  echo "build-test-binaries: building kube-apiserver $K8S_VERSION (several minutes on a cold cache)"
  local dir=$workdir/apiserver-$K8S_VERSION
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -n "$gomod" ] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
    local sv
    sv=$(staging_version "$K8S_VERSION")
    {
      echo "module apiserverbuild"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      # Every staging module is replaced by "./staging/src/..." upstream; point each at its
      # published version instead so the module builds outside the kubernetes tree.
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" |
        awk -v v="$sv" '{print "replace " $1 " => " $1 " " v}'
    } >go.mod
    cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
    go mod tidy >/dev/null 2>&1 || true
    GOFLAGS=-mod=mod go build -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$out.tmp" "$out"
  )
}

build_etcd() {
  local out=$bindir/etcd-$ETCD_VERSION
  [ -x "$out" ] && return 0
  echo "build-test-binaries: building etcd $ETCD_VERSION"
  local dir=$workdir/etcd-$ETCD_VERSION
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    cat >go.mod <<GOMOD
module etcdbuild

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
    cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    go build -o "$out.tmp" .
    mv "$out.tmp" "$out"
  )
}

build_etcd
build_apiserver
ln -sf "kube-apiserver-$K8S_VERSION" "$bindir/kube-apiserver"
ln -sf "etcd-$ETCD_VERSION" "$bindir/etcd"
echo "build-test-binaries: $bindir/kube-apiserver and $bindir/etcd ready"
