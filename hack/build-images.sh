#!/usr/bin/env bash
# Builds, without a registry, the images the lab's kubelets run: the product
# image localhost/haproxy-monitor:latest (a Debian root filesystem from the
# packages in hack/image-packages.txt, made by mmdebstrap, plus the monitor
# keepalived-conf and node-setup) and localhost/pause:latest, as OCI tars that
# "ctr images import" loads. Cached in .cache/images; rebuilt when the package
# list or the binaries change.
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
echo "build-images: $out/haproxy-monitor.tar and $out/pause.tar ready"
