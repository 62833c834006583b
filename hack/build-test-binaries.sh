#!/usr/bin/env bash
# Builds pinned Kubernetes binaries (kube-apiserver, kubelet, kubeadm, kubectl,
# kube-controller-manager, kube-scheduler, kube-proxy), crictl, etcd, CoreDNS, the CNI
# plugins bridge, host-local and loopback, and kind from the Go module proxy into a cache directory
# (default: <repo>/.cache/bin), reusing binaries that are already there for these versions. The Kubernetes binaries share one helper module (and its downloads)
# and are built by one go command, so both CPUs stay busy; each is stamped with its version, so
# Nodes report v1.37.2 rather than v0.0.0-master and kubeadm's version checks pass.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.6} # kubeadm v1.37.2's CoreDNSVersion
CNI_VERSION=${CNI_VERSION:-v1.10.0}
KIND_VERSION=${KIND_VERSION:-v0.33.0} # the newest served; writes kubeadm v1beta4
K8S_BINARIES=(kube-apiserver kubelet kubeadm kubectl kube-controller-manager kube-scheduler kube-proxy)
root=$(cd "$(dirname "$0")/.." && pwd)
bindir=${TEST_BIN_DIR:-$root/.cache/bin}
workdir=$root/.cache/build
mkdir -p "$bindir" "$workdir"

staging_version() { # v1.37.2 -> v0.37.2
  echo "v0.${1#v1.}"
}

k8s_module() { # the helper module both Kubernetes binaries build from
  local dir=$workdir/k8s-$K8S_VERSION
  # .ready-2: the module names every binary of K8S_BINARIES (.ready named two).
  if [ -f "$dir/.ready-2" ]; then echo "$dir"; return 0; fi
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
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for b in "${K8S_BINARIES[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$b"; done
      printf ')\n'
    } >tools.go
    go mod tidy >/dev/null 2>&1 || true
    touch .ready-2
  ) >&2
  echo "$dir"
}

build_k8s() { # names...: builds those not cached yet, in one go command
  local missing=() name
  for name in "$@"; do
    [ -x "$bindir/$name-$K8S_VERSION" ] || missing+=("$name")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "build-test-binaries: building ${missing[*]} $K8S_VERSION (many minutes on a cold cache)"
  local dir minor out
  dir=$(k8s_module)
  minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local vpkg=k8s.io/component-base/version pkgs=()
  for name in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  out=$(mktemp -d "$workdir/out.XXXXXX")
  (
    cd "$dir"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$out/" \
      -ldflags "-X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean" \
      "${pkgs[@]}"
  )
  for name in "${missing[@]}"; do
    mv "$out/$name" "$bindir/$name-$K8S_VERSION"
  done
  rmdir "$out"
}

build_crictl() {
  local out=$bindir/crictl-$CRICTL_VERSION
  [ -x "$out" ] && return 0
  echo "build-test-binaries: building crictl $CRICTL_VERSION"
  local dir=$workdir/crictl-$CRICTL_VERSION
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    printf 'module crictlbuild\n\ngo 1.26\n\nrequire sigs.k8s.io/cri-tools %s\n' "$CRICTL_VERSION" >go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/cri-tools/cmd/crictl"\n' >tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$out.tmp" \
      -ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
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

# CoreDNS with the plugins kubeadm's Corefile names, and no others: the full
# set (core/plugin) pulls in every cloud provider's SDK. The same packages and
# the same main as upstream's, like a build from a trimmed plugin.cfg.
build_coredns() {
  local out=$bindir/coredns-$COREDNS_VERSION
  [ -x "$out" ] && return 0
  echo "build-test-binaries: building coredns $COREDNS_VERSION (kubeadm's Corefile plugins)"
  local dir=$workdir/coredns-$COREDNS_VERSION
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    printf 'module corednsbuild\n\ngo 1.26\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" >go.mod
    {
      printf 'package main\n\nimport (\n'
      for p in errors health ready kubernetes metrics forward cache loop reload loadbalance; do
        printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"
      done
      printf '\n\t"github.com/coredns/coredns/coremain"\n)\n\nfunc main() { coremain.Run() }\n'
    } >main.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$out.tmp" .
    mv "$out.tmp" "$out"
  )
}

build_cni() {
  local out=$bindir/cni-$CNI_VERSION
  [ -x "$out/bridge" ] && [ -x "$out/host-local" ] && [ -x "$out/loopback" ] && return 0
  echo "build-test-binaries: building the CNI plugins bridge, host-local, loopback $CNI_VERSION"
  local dir=$workdir/cni-$CNI_VERSION
  rm -rf "$dir" "$out.tmp" && mkdir -p "$dir" "$out.tmp"
  (
    cd "$dir"
    printf 'module cnibuild\n\ngo 1.26.8\n\nrequire github.com/containernetworking/plugins %s\n' "$CNI_VERSION" >go.mod
    printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "github.com/containernetworking/plugins/plugins/main/bridge"\n\t_ "github.com/containernetworking/plugins/plugins/ipam/host-local"\n\t_ "github.com/containernetworking/plugins/plugins/main/loopback"\n)\n' >tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    local m=github.com/containernetworking/plugins/plugins
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$out.tmp/" $m/main/bridge $m/ipam/host-local $m/main/loopback
  )
  rm -rf "$out" && mv "$out.tmp" "$out"
}

build_kind() {
  local out=$bindir/kind-$KIND_VERSION
  [ -x "$out" ] && return 0
  echo "build-test-binaries: building kind $KIND_VERSION"
  rm -rf "$workdir/kind-$KIND_VERSION" && mkdir -p "$workdir/kind-$KIND_VERSION"
  CGO_ENABLED=0 GOBIN=$workdir/kind-$KIND_VERSION go install "sigs.k8s.io/kind@$KIND_VERSION"
  mv "$workdir/kind-$KIND_VERSION/kind" "$out"
}

build_etcd
build_k8s "${K8S_BINARIES[@]}"
build_crictl
build_coredns
build_cni
build_kind
for name in "${K8S_BINARIES[@]}"; do
  ln -sf "$name-$K8S_VERSION" "$bindir/$name"
done
ln -sf "etcd-$ETCD_VERSION" "$bindir/etcd"
ln -sf "crictl-$CRICTL_VERSION" "$bindir/crictl"
ln -sf "coredns-$COREDNS_VERSION" "$bindir/coredns"
ln -sfn "cni-$CNI_VERSION" "$bindir/cni"
ln -sf "kind-$KIND_VERSION" "$bindir/kind"
echo "build-test-binaries: ${K8S_BINARIES[*]}, crictl, etcd, coredns, the CNI plugins and kind ready in $bindir"
