#!/usr/bin/env bash
# Builds, without a registry, the images the lab's kubelets run: the product
# image localhost/haproxy-monitor:latest (a Debian root filesystem from the
# packages in hack/image-packages.txt, made by mmdebstrap, plus the monitor
# keepalived-conf and node-setup) and localhost/pause:latest, as OCI tars that
# "ctr images import" loads; and, for the kubeadm lab, one image of the
# control-plane binaries hack/build-test-binaries.sh built (on a Debian root
# filesystem with iptables, which kube-proxy runs) under each name
# "kubeadm config images list" asks for, etcd under the tag the lab's kubeadm
# configuration gives (etcd.local.imageTag), and CoreDNS under the name of
# kubeadm's addon. The upstream images cannot be
# pulled here; these hold the same binaries at the paths kubeadm's manifests
# run. Cached in .cache/images; rebuilt when the package list or the
# binaries change.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${IMAGE_DIR:-$PWD/.cache/images}
mkdir -p "$out/bin"
command -v mmdebstrap >/dev/null || { echo "build-images: mmdebstrap missing (make deps)" >&2; exit 1; }

pkgs=$(grep -v '^#' hack/image-packages.txt | xargs | tr ' ' ',')
rootfs=$out/rootfs-bookworm.tar
if [ ! -f "$rootfs" ] || [ "$(cat "$rootfs.pkgs" 2>/dev/null)" != "$pkgs" ]; then
  echo "build-images: debian root filesystem with $pkgs"
  # mmdebstrap picks the output format from the name: keep ".tar" last.
  mmdebstrap --quiet --variant=minbase --include="$pkgs" bookworm "$out/rootfs-bookworm.partial.tar"
  mv "$out/rootfs-bookworm.partial.tar" "$rootfs"
  echo "$pkgs" >"$rootfs.pkgs"
fi

export CGO_ENABLED=0
go build -trimpath -o "$out/bin/" ./cmd/monitor ./cmd/keepalived-conf ./cmd/node-setup ./test/pause
stamp=$(cat "$rootfs.pkgs" "$out/bin/monitor" "$out/bin/keepalived-conf" "$out/bin/node-setup" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/haproxy-monitor.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$out/haproxy-monitor.tar" ]; then
  go run ./test/ociimage -name localhost/haproxy-monitor:latest -out "$out/haproxy-monitor.tar" -layer "$rootfs" \
    -file /usr/local/bin/monitor="$out/bin/monitor" -file /usr/local/bin/keepalived-conf="$out/bin/keepalived-conf" -file /usr/local/bin/node-setup="$out/bin/node-setup"
  echo "$stamp" >"$out/haproxy-monitor.stamp"
fi
if [ ! -f "$out/pause.tar" ] || [ "$out/bin/pause" -nt "$out/pause.tar" ]; then
  go run ./test/ociimage -name localhost/pause:latest -out "$out/pause.tar" -file /pause="$out/bin/pause" -entrypoint /pause
fi

# The kubeadm lab's images.
bin=${TEST_BIN_DIR:-$PWD/.cache/bin}
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_TAG=${ETCD_TAG:-3.6.16-0} # the lab's etcd.local.imageTag: our etcd build, not kubeadm's default
PAUSE_NAME=registry.k8s.io/pause:3.10.2 # kubeadm's sandbox image; containerd's sandbox_image
kpkgs=iptables,ca-certificates
krootfs=$out/rootfs-bookworm-kube.tar
if [ ! -f "$krootfs" ] || [ "$(cat "$krootfs.pkgs" 2>/dev/null)" != "$kpkgs" ]; then
  echo "build-images: debian root filesystem with $kpkgs"
  mmdebstrap --quiet --variant=minbase --include="$kpkgs" bookworm "$out/rootfs-bookworm-kube.partial.tar"
  mv "$out/rootfs-bookworm-kube.partial.tar" "$krootfs"
  echo "$kpkgs" >"$krootfs.pkgs"
fi
kbins=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
kargs=(-layer "$krootfs" -file /usr/local/bin/etcd="$bin/etcd")
names=(-name "registry.k8s.io/etcd:$ETCD_TAG")
for b in "${kbins[@]}"; do
  kargs+=(-file "/usr/local/bin/$b=$bin/$b")
  names+=(-name "registry.k8s.io/$b:$K8S_VERSION")
done
kstamp=$( (cat "$krootfs.pkgs"; echo "${names[*]}"; readlink -f "$bin/etcd" "${kbins[@]/#/$bin/}") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/kubernetes.stamp" 2>/dev/null)" != "$kstamp" ] || [ ! -f "$out/kubernetes.tar" ]; then
  go run ./test/ociimage "${names[@]}" -out "$out/kubernetes.tar" "${kargs[@]}"
  echo "$kstamp" >"$out/kubernetes.stamp"
fi
# CoreDNS under the name kubeadm's addon asks for, run as upstream's image runs
# it (the binary at /coredns, its entrypoint).
COREDNS_NAME=registry.k8s.io/coredns/coredns:${COREDNS_VERSION:-v1.14.6}
cstamp=$( (echo "$COREDNS_NAME"; readlink -f "$bin/coredns") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/coredns.stamp" 2>/dev/null)" != "$cstamp" ] || [ ! -f "$out/coredns.tar" ]; then
  go run ./test/ociimage -name "$COREDNS_NAME" -out "$out/coredns.tar" -file /coredns="$bin/coredns" -entrypoint /coredns
  echo "$cstamp" >"$out/coredns.stamp"
fi
if [ ! -f "$out/pause-kubeadm.tar" ] || [ "$out/bin/pause" -nt "$out/pause-kubeadm.tar" ]; then
  go run ./test/ociimage -name "$PAUSE_NAME" -out "$out/pause-kubeadm.tar" -file /pause="$out/bin/pause" -entrypoint /pause
fi
echo "build-images: $out/haproxy-monitor.tar, pause.tar, kubernetes.tar, coredns.tar and pause-kubeadm.tar ready"
