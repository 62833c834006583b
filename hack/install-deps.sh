#!/usr/bin/env bash
# Installs the Debian packages the tests, the lab and the demo drive for real
# (haproxy, socat, keepalived, nftables, iproute2, curl, and the basics the
# lab scripts call: sysctl, unshare; tcpdump, with which a keepalived test
# watches VRRP adverts on the wire), and for the kubelet lab containerd, runc
# and mmdebstrap (the image's root filesystem), and for the kind lab Debian's
# Docker engine (docker.io: the lab starts its own dockerd, on lab addresses
# only; a policy-rc.d keeps the package from starting one). Skips
# apt entirely when all are present.
set -euo pipefail

want=(haproxy socat keepalived nft ip curl sysctl unshare nsenter tcpdump containerd runc mmdebstrap dockerd)
pkgs=(haproxy socat keepalived nftables iproute2 curl procps util-linux util-linux tcpdump containerd runc mmdebstrap docker.io)
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
# No package may start its service here (docker.io would start a dockerd on
# docker's default 172.17/16 bridge): policy-rc.d says no while apt runs.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# install-deps: services are not started by package installs\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
