#!/usr/bin/env bash
# Builds pinned kube-apiserver, kubelet and etcd from the Go module proxy into a cache
# directory (default: <repo>/.cache/bin), reusing binaries that are already there for these
# versions. kube-apiserver and kubelet share one helper module (and its downloads); both are
# stamped with their version, so Nodes report v1.37.2 rather than v0.0.0-master.
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

k8s_module() { # the helper module both Kubernetes binaries build from
  local dir=$workdir/k8s-$K8S_VERSION
  if [ -f "$dir/.ready" ]; then echo "$dir"; return 0; fi
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -n "$gomod" ] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
    local sv
    sv=$(staging_version "$K8S_VERSION")
    {
      echo "module k8sbuild"
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

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
    go mod tidy >/dev/null 2>&1 || true
    touch .ready
  ) >&2
  echo "$dir"
}

build_k8s() { # name
  local name=$1 out=$bindir/$1-$K8S_VERSION
  [ -x "$out" ] && return 0
  echo "build-test-binaries: building $name $K8S_VERSION (several minutes on a cold cache)"
  local dir minor
  dir=$(k8s_module)
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local vpkg=k8s.io/component-base/version
  (
    cd "$dir"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$out.tmp" \
      -ldflags "-X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean" \
      "k8s.io/kubernetes/cmd/$name"
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
build_k8s kube-apiserver
build_k8s kubelet
ln -sf "kube-apiserver-$K8S_VERSION" "$bindir/kube-apiserver"
ln -sf "kubelet-$K8S_VERSION" "$bindir/kubelet"
ln -sf "etcd-$ETCD_VERSION" "$bindir/etcd"
echo "build-test-binaries: kube-apiserver, kubelet and etcd ready in $bindir"
