#!/usr/bin/env bash
# Assembles, without a registry, a kind node image for the kind lab: what
# "kind build node-image" would make, from what this repository already
# builds. kind's own builder downloads a Kubernetes release and pulls every
# image by name, which cannot work here.
#
#   - a Debian bookworm root filesystem (mmdebstrap) with systemd, Debian's
#     containerd and runc, iptables and the tools kind and kubeadm call;
#   - kind's base files from its Go module (sigs.k8s.io/kind, KIND_VERSION):
#     the entrypoint, the kubelet unit and its kubeadm drop-ins;
#   - containerd's configuration for containerd 1.6 and a loopback-only CNI
#     configuration (kind's CNI, kindnetd, is not served by the module proxy:
#     the lab's cluster disables it; host-network pods run, nodes are Ready);
#   - kubeadm, kubelet, kubectl, crictl and the CNI plugins from
#     hack/build-test-binaries.sh, "v1.37.2" in /kind/version;
#   - the images kubeadm and our static pods run, from hack/build-images.sh,
#     already in containerd's root (/var/lib/containerd), as in kind's own
#     node images.
#
# Writes $IMAGE_DIR/kind-node.tar (default .cache/images), a docker archive of
# localhost/hapm-kind-node:$K8S_VERSION that "docker load" takes, and
# kind-lb.tar: the stand-in for kind's load-balancer image (envoy, not in
# Debian, no registry here) under the name kind runs, test/kindlb as "envoy"
# on a Debian root (kind's start command is a bash loop). Scaffolding for
# kind's own part: the lab never measures through it. Rebuilt when an input
# changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${IMAGE_DIR:-$PWD/.cache/images}
bin=${TEST_BIN_DIR:-$PWD/.cache/bin}
K8S_VERSION=${K8S_VERSION:-v1.37.2}
KIND_VERSION=${KIND_VERSION:-v0.33.0}
name=localhost/hapm-kind-node:$K8S_VERSION
command -v mmdebstrap >/dev/null || { echo "node-image: mmdebstrap missing (make deps)" >&2; exit 1; }
for f in kubeadm kubelet kubectl crictl cni/loopback cni/host-local; do
  [ -x "$bin/$f" ] || { echo "node-image: $bin/$f missing (hack/build-test-binaries.sh)" >&2; exit 1; }
done
for f in kubernetes coredns pause-kubeadm haproxy-monitor rootfs-bookworm-kube; do
  [ -f "$out/$f.tar" ] || { echo "node-image: $out/$f.tar missing (hack/build-images.sh)" >&2; exit 1; }
done
kind_dir=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
base=$kind_dir/images/base/files
[ -f "$base/usr/local/bin/entrypoint" ] || { echo "node-image: kind's base files not found under $kind_dir" >&2; exit 1; }

# The root filesystem: packages, kind's base files and ours, the services
# enabled as kind's base image enables them.
pkgs=systemd,dbus,containerd,runc,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,conntrack,libseccomp2,bash,ca-certificates,curl,jq,procps,socat,e2fsprogs
rootfs=$out/kind-node-rootfs.tar
rstamp=$( (echo "$pkgs $KIND_VERSION"; cat "$0"; find hack/kind/node -type f | sort | xargs cat) | sha256sum | cut -d' ' -f1)
if [ ! -f "$rootfs" ] || [ "$(cat "$rootfs.stamp" 2>/dev/null)" != "$rstamp" ]; then
  echo "node-image: debian root filesystem for the kind node (kind $KIND_VERSION's base files)"
  # The hooks run on this host with the new root as $1.
  mmdebstrap --quiet --variant=minbase --include="$pkgs" \
    --customize-hook="cp -r '$base/usr' '$base/kind' '$base/etc' \"\$1/\"" \
    --customize-hook="cp -r hack/kind/node/etc \"\$1/\"" \
    --customize-hook='chmod 755 "$1/usr/local/bin/entrypoint" "$1/usr/local/bin/clean-install" "$1"/kind/bin/*.sh' \
    --customize-hook='rm -f "$1"/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service "$1"/lib/systemd/system/multi-user.target.wants/* "$1"/etc/systemd/system/*.wants/* "$1"/lib/systemd/system/local-fs.target.wants/* "$1"/lib/systemd/system/sockets.target.wants/*udev* "$1"/lib/systemd/system/sockets.target.wants/*initctl* "$1"/lib/systemd/system/basic.target.wants/*' \
    --customize-hook='echo ReadKMsg=no >>"$1/etc/systemd/journald.conf"' \
    --customize-hook='ln -sf /usr/lib/systemd/systemd "$1/sbin/init"' \
    --customize-hook='chroot "$1" systemctl enable kubelet.service containerd.service undo-mount-hacks.service hapm-import-images.service' \
    --customize-hook='chroot "$1" systemctl mask systemd-binfmt.service' \
    --customize-hook='mkdir -p "$1/etc/kubernetes/manifests" "$1/opt/cni/bin"' \
    bookworm "$out/kind-node-rootfs.partial.tar"
  mv "$out/kind-node-rootfs.partial.tar" "$rootfs"
  echo "$rstamp" >"$rootfs.stamp"
fi

version=$(mktemp)
trap 'rm -f "$version"' EXIT
echo "$K8S_VERSION" >"$version"
files=(-file /kind/version="$version")
for b in kubeadm kubelet kubectl; do
  files+=(-file "/usr/bin/$b=$bin/$b")
done
files+=(-file /usr/local/bin/crictl="$bin/crictl")
for p in loopback host-local bridge portmap; do
  [ -x "$bin/cni/$p" ] && files+=(-file "/opt/cni/bin/$p=$bin/cni/$p")
done
# The images, imported ahead into a containerd root as kind's own node
# images carry them (/var/lib/containerd, which docker copies into each
# node's /var volume): a node's kubelet starts at once, as kubeadm init
# expects. Debian's containerd on this host does the import, as the node's
# would.
images=(kubernetes coredns pause-kubeadm haproxy-monitor)
istamp=$( (containerd --version; for i in "${images[@]}"; do cat "$out/$i.stamp" 2>/dev/null || stat -c %Y "$out/$i.tar"; done) | sha256sum | cut -d' ' -f1)
ilayer=$out/kind-node-containerd.tar
if [ "$(cat "$ilayer.stamp" 2>/dev/null)" != "$istamp" ] || [ ! -f "$ilayer" ]; then
  echo "node-image: importing ${images[*]} into a containerd root for the node"
  tmp=$(mktemp -d "$out/.containerd.XXXXXX")
  printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s/containerd.sock"\n' \
    "$tmp" "$tmp" "$tmp" >"$tmp/config.toml"
  containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
  cpid=$!
  trap 'kill "$cpid" 2>/dev/null; rm -rf "$tmp" "$version"' EXIT
  for _ in $(seq 1 100); do [ -S "$tmp/containerd.sock" ] && break; sleep 0.1; done
  for i in "${images[@]}"; do
    ctr --address "$tmp/containerd.sock" --namespace k8s.io images import "$out/$i.tar" >/dev/null
  done
  kill "$cpid"
  wait "$cpid" || true
  tar -C "$tmp/root" --numeric-owner --transform 's,^\.,var/lib/containerd,' -cf "$ilayer.partial" .
  mv "$ilayer.partial" "$ilayer"
  echo "$istamp" >"$ilayer.stamp"
  rm -rf "$tmp"
  trap 'rm -f "$version"' EXIT
fi
stamp=$( (echo "$name $rstamp $istamp"; readlink -f "$bin/kubeadm" "$bin/kubelet" "$bin/kubectl" "$bin/crictl") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/kind-node.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$out/kind-node.tar" ]; then
  go run ./test/ociimage -name "$name" -out "$out/kind-node.tar" -layer "$rootfs" -layer "$ilayer" "${files[@]}" \
    -entrypoint /usr/local/bin/entrypoint -cmd /sbin/init -env container=docker -stop-signal 'SIGRTMIN+3'
  echo "$stamp" >"$out/kind-node.stamp"
fi

KIND_LB_IMAGE=docker.io/envoyproxy/envoy:v1.36.2 # kind $KIND_VERSION's loadbalancer.Image
mkdir -p "$out/bin"
CGO_ENABLED=0 go build -trimpath -o "$out/bin/kindlb" ./test/kindlb
lstamp=$( (echo "$KIND_LB_IMAGE"; cat "$out/rootfs-bookworm-kube.tar.pkgs" "$out/bin/kindlb") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/kind-lb.stamp" 2>/dev/null)" != "$lstamp" ] || [ ! -f "$out/kind-lb.tar" ]; then
  go run ./test/ociimage -name "$KIND_LB_IMAGE" -out "$out/kind-lb.tar" -layer "$out/rootfs-bookworm-kube.tar" \
    -file /usr/local/bin/envoy="$out/bin/kindlb"
  echo "$lstamp" >"$out/kind-lb.stamp"
fi
echo "node-image: $out/kind-node.tar ($name) and kind-lb.tar (stand-in for $KIND_LB_IMAGE) ready"
