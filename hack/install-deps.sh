#!/usr/bin/env bash
# Installs the Debian packages the tests, the lab and the demo drive for real
# (haproxy, socat, keepalived, nftables, iproute2, curl, and the basics the
# lab scripts call: sysctl, unshare), and for the kubelet lab containerd, runc
# and mmdebstrap (the image's root filesystem). Skips apt entirely when all are
# present.
set -euo pipefail

want=(haproxy socat keepalived nft ip curl sysctl unshare nsenter containerd runc mmdebstrap)
pkgs=(haproxy socat keepalived nftables iproute2 curl procps util-linux util-linux containerd runc mmdebstrap)
missing=()
for i in "${!want[@]}"; do
  command -v "${want[$i]}" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "${want[$i]}" >/dev/null 2>&1 || missing+=("${pkgs[$i]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root or install them yourself" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
