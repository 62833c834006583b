#!/usr/bin/env bash
# A kind cluster of three control planes whose API endpoint is the VIP that
# our haproxy, monitor and keepalived static pods serve from "kubeadm init"
# on: kubeadm's controlPlaneEndpoint is VIP:6443, the first node bootstraps
# through it and the others join through it. See docs/kind.md.
#
#   hack/kind/up.sh --vip 172.18.255.250 [--subnet 172.18.0.0/16 [--ip-range 172.18.0.0/17]]
#   hack/kind/up.sh --vip ... --image NODE_IMAGE      # a node image that holds our image already
#   hack/kind/up.sh --delete                          # the cluster and this script's files
set -euo pipefail
cd "${0%/*}/../.."

usage() {
  cat <<'EOF'
usage: hack/kind/up.sh --vip VIP [options]
       hack/kind/up.sh --delete [--name NAME]

  --vip VIP             the API VIP: inside the docker network "kind", outside
                        the range docker hands out (its --ip-range)
  --subnet CIDR         create the network "kind" with this IPv4 subnet if it
                        does not exist (an existing one is used as it is)
  --ip-range CIDR       the part of --subnet docker gives containers (default:
                        its lower half)
  --name NAME           the cluster's name (default hapm)
  --image IMAGE         the node image, used as it is: it must hold the product
                        image and import it at boot (hack/kind/node-image.sh
                        builds such an image without a registry)
  --base-image IMAGE    without --image: the kind node image to add the product
                        image to (default kindest/node:v1.37.0)
  --product-image IMG   our image (default localhost/haproxy-monitor:latest;
                        build it with: docker build -t IMG -f Containerfile .)
  --kubeadm-patch FILE  one more kubeadm configuration patch (repeatable)
  --no-cni              disable kind's CNI (kindnetd); host-network pods still run
  --state-dir DIR       where the per-node files go (default
                        ~/.local/state/hapm-kind/NAME)
EOF
}

name=hapm vip= subnet= ip_range= image= base_image=kindest/node:v1.37.0
product=localhost/haproxy-monitor:latest patches=() no_cni=false delete=false state=
while [ $# -gt 0 ]; do
  case $1 in
  --vip) vip=$2; shift ;;
  --subnet) subnet=$2; shift ;;
  --ip-range) ip_range=$2; shift ;;
  --name) name=$2; shift ;;
  --image) image=$2; shift ;;
  --base-image) base_image=$2; shift ;;
  --product-image) product=$2; shift ;;
  --kubeadm-patch) patches+=("$2"); shift ;;
  --no-cni) no_cni=true ;;
  --state-dir) state=$2; shift ;;
  --delete) delete=true ;;
  -h | --help) usage; exit 0 ;;
  *) echo "up.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
state=${state:-${XDG_STATE_HOME:-$HOME/.local/state}/hapm-kind/$name}
fail() { echo "up.sh: $*" >&2; exit 1; }

# --- prerequisites, before anything is created --------------------------------
command -v docker >/dev/null || fail "docker is required (a Docker engine and its CLI)"
command -v kind >/dev/null || fail "kind is required: go install sigs.k8s.io/kind@v0.33.0"
docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (docker info): is it running, may you use it?"
kv=$(kind version | awk '{print $2}')
# kind v0.32.0 is the first to write kubeadm's v1beta4 configuration, which
# kubeadm 1.37 needs, and to merge certSANs patches.
if [ "$(printf 'v0.32.0\n%s\n' "$kv" | sort -V | head -1)" != v0.32.0 ]; then
  fail "kind $kv is too old: v0.32.0 or newer is needed (kubeadm v1beta4 configuration)"
fi

if $delete; then
  kind delete cluster --name "$name"
  # The network, if this script made it and nothing else uses it.
  if [ -f "$state/network-created" ] && docker network inspect kind >/dev/null 2>&1 &&
    [ -z "$(docker network inspect kind -f '{{range .Containers}}{{.Name}} {{end}}')" ]; then
    docker network rm kind >/dev/null
  fi
  rm -rf "$state"
  exit 0
fi

[ -n "$vip" ] || { usage >&2; fail "--vip is required"; }
ip2int() { local IFS=.; set -- $1; echo $(( ($1 << 24) + ($2 << 16) + ($3 << 8) + $4 )); }
valid_ip() { [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] && [ "${BASH_REMATCH[1]}" -le 255 ] &&
  [ "${BASH_REMATCH[2]}" -le 255 ] && [ "${BASH_REMATCH[3]}" -le 255 ] && [ "${BASH_REMATCH[4]}" -le 255 ]; }
# in_cidr IP CIDR
in_cidr() {
  local net=${2%/*} bits=${2#*/}
  valid_ip "$net" && [[ $bits =~ ^[0-9]+$ ]] && [ "$bits" -le 32 ] || return 2
  local mask=$(( bits == 0 ? 0 : (0xffffffff << (32 - bits)) & 0xffffffff ))
  [ $(( $(ip2int "$1") & mask )) -eq $(( $(ip2int "$net") & mask )) ]
}
valid_ip "$vip" || fail "--vip $vip is not an IPv4 address"
for c in "$subnet" "$ip_range"; do
  [ -z "$c" ] || [ "$(in_cidr 0.0.0.0 "$c"; echo $?)" -ne 2 ] || fail "$c is not an IPv4 network (a.b.c.d/bits)"
done
kind get clusters 2>/dev/null | grep -qx "$name" && fail "a kind cluster named $name exists already (hack/kind/up.sh --delete --name $name removes it)"

# The VIP must be on the network the nodes are on, where docker's IPAM never
# hands it to a container: inside a subnet, outside the range it allocates.
create_network=false
if docker network inspect kind >/dev/null 2>&1; then
  [ -z "$subnet" ] || echo "up.sh: the network kind exists; --subnet $subnet is not used" >&2
  found=false
  while read -r s r; do
    [ -n "$s" ] || continue
    in_cidr "$vip" "$s" 2>/dev/null || continue
    found=true
    [ -n "$r" ] || fail "the network kind hands out all of $s (no --ip-range), so docker may give $vip to a container; recreate it: docker network rm kind, then hack/kind/up.sh --vip $vip --subnet $s"
    in_cidr "$vip" "$r" && fail "$vip is inside the range $r that docker hands out on the network kind: choose a VIP in $s outside $r"
  done < <(docker network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{.IPRange}}{{"\n"}}{{end}}' | grep -v ':')
  $found || fail "$vip is not inside any IPv4 subnet of the network kind ($(docker network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}'))"
  if docker network inspect kind -f '{{range .Containers}}{{.IPv4Address}} {{end}}' | tr ' ' '\n' | grep -q "^$vip/"; then
    fail "$vip is in use by a container on the network kind"
  fi
else
  [ -n "$subnet" ] || fail "the network kind does not exist: give --subnet (and --ip-range) to create it, e.g. --subnet 172.18.0.0/16"
  in_cidr "$vip" "$subnet" || fail "$vip is not inside --subnet $subnet"
  if [ -z "$ip_range" ]; then
    ip_range=${subnet%/*}/$(( ${subnet#*/} + 1 ))
  fi
  in_cidr "${ip_range%/*}" "$subnet" || fail "--ip-range $ip_range is not inside --subnet $subnet"
  in_cidr "$vip" "$ip_range" && fail "$vip is inside --ip-range $ip_range, which docker hands out: choose a VIP in $subnet outside it"
  create_network=true
fi

# Our image writes each node's files (node-setup) and, without --image, goes
# into the node image.
docker image inspect "$product" >/dev/null 2>&1 ||
  fail "$product not found: docker build -t $product -f Containerfile ."
if [ -n "$image" ]; then
  docker image inspect "$image" >/dev/null 2>&1 || fail "node image $image not found (docker image ls)"
fi
for p in "${patches[@]}"; do
  [ -f "$p" ] || fail "--kubeadm-patch $p: no such file"
done

# --- nothing was created above this line --------------------------------------
# Until the cluster exists, a failure takes back what this run made; after
# that kind's nodes stay for a look (--delete removes them).
cluster_made=false
undo() {
  local rc=$?
  [ $rc -eq 0 ] && return
  if ! $cluster_made; then
    kind delete cluster --name "$name" >/dev/null 2>&1 || true
    if [ -f "$state/network-created" ]; then docker network rm kind >/dev/null 2>&1 || true; fi
    rm -rf "$state"
    echo "up.sh: failed; what this run made is removed" >&2
  else
    echo "up.sh: failed; the cluster is left for a look: hack/kind/up.sh --delete --name $name removes it" >&2
  fi
}
trap undo EXIT
mkdir -p "$state"
if $create_network; then
  # The options kind gives the network it creates.
  docker network create kind --driver bridge --subnet "$subnet" --ip-range "$ip_range" \
    -o com.docker.network.bridge.enable_ip_masquerade=true >/dev/null
  touch "$state/network-created"
  echo "up.sh: network kind: $subnet, containers from $ip_range"
fi

if [ -z "$image" ]; then
  # kind's node image plus our image, imported into containerd at the node's
  # first boot: the static pods run from kubeadm init on, before any
  # "kind load" could reach the nodes.
  image=localhost/hapm-kind-node:$(echo "$base_image" | sed 's/.*://')
  ctx=$state/node-image
  rm -rf "$ctx" && mkdir -p "$ctx/kind/images" "$ctx/etc/systemd/system"
  docker save "$product" -o "$ctx/kind/images/haproxy-monitor.tar"
  cp hack/kind/node/etc/systemd/system/hapm-import-images.service "$ctx/etc/systemd/system/"
  cat >"$ctx/Dockerfile" <<EOF
FROM $base_image
COPY kind/images/ /kind/images/
COPY etc/systemd/system/hapm-import-images.service /etc/systemd/system/
RUN systemctl enable hapm-import-images.service
EOF
  docker build -q -t "$image" "$ctx" >/dev/null
  echo "up.sh: node image $image ($base_image with $product)"
fi

# The files each control-plane node needs before kubeadm runs, written by
# node-setup in a container on the network kind (the interface and subnet
# it checks are the nodes'); the first run also listens for a VRRP router
# or a host that has the VIP already.
nodes=(control-plane control-plane2 control-plane3)
prio=150
for i in "${!nodes[@]}"; do
  dir=$state/${nodes[$i]}
  rm -rf "$dir" && mkdir -p "$dir"
  check=false
  [ "$i" -eq 0 ] && check=true
  docker run --rm --network kind --cap-add NET_ADMIN --cap-add NET_RAW -v "$dir:/out" "$product" \
    node-setup -installer kubeadm -interface eth0 -vips "$vip" -priority $((prio - i)) -auth-pass hapmkind \
    -image "$product" -root /out -check-network=$check >/dev/null
done

config=$state/kind-config.yaml
{
  echo "kind: Cluster"
  echo "apiVersion: kind.x-k8s.io/v1alpha4"
  echo "networking:"
  echo "  disableDefaultCNI: $no_cni"
  echo "kubeadmConfigPatches:"
  echo "- |"
  echo "  kind: ClusterConfiguration"
  echo "  controlPlaneEndpoint: \"$vip:6443\""
  # At SIGTERM the apiserver leaves the kubernetes EndpointSlice at once and
  # goes on accepting for 5 s: every haproxy drains it before it stops
  # listening (without it, connections haproxy just handed it are reset).
  echo "  apiServer:"
  echo "    extraArgs:"
  echo "    - {name: shutdown-delay-duration, value: 5s}"
  echo "- |"
  echo "  kind: JoinConfiguration"
  echo "  discovery:"
  echo "    bootstrapToken:"
  echo "      apiServerEndpoint: \"$vip:6443\""
  echo "- |"
  echo "  kind: KubeletConfiguration"
  echo "  failCgroupV1: false"
  for p in "${patches[@]}"; do
    echo "- |"
    sed 's/^/  /' "$p"
  done
  echo "nodes:"
  for n in "${nodes[@]}"; do
    echo "- role: control-plane"
    echo "  extraMounts:"
    for f in etc/kubernetes/manifests/haproxy.yaml etc/kubernetes/manifests/keepalived.yaml \
      etc/kubernetes/static-pod-resources/haproxy etc/kubernetes/static-pod-resources/keepalived; do
      echo "  - hostPath: $state/$n/$f"
      echo "    containerPath: /$f"
    done
  done
} >"$config"

kind create cluster --name "$name" --image "$image" --config "$config"
cluster_made=true
node=$name-control-plane
docker exec -i "$node" kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f - <manifests/rbac.yaml >/dev/null

# Smoke test: the VIP answers through haproxy, not only the apiserver behind
# it. haproxy's frontend on the VIP holder counts the request, and its
# monitor-uri, which only haproxy answers, passes on VIP:9444.
echo "up.sh: waiting for the API through haproxy on $vip"
holder=
for _ in $(seq 1 90); do
  holder=
  for n in "${nodes[@]}"; do
    docker exec "$name-$n" ip -o addr show dev eth0 | grep -q " $vip/" && holder=$name-$n
  done
  if [ -n "$holder" ] && docker exec "$holder" curl -fsS -o /dev/null "http://$vip:9444/haproxy_ready" 2>/dev/null; then
    # haproxy's statistics (hostNetwork, local only): the frontend's sessions.
    stats() { docker exec "$holder" curl -fsS "http://127.0.0.1:29445/haproxy_stats;csv" 2>/dev/null | awk -F, '$1=="main" && $2=="FRONTEND" {print $8}'; }
    before=$(stats)
    if docker exec "$node" kubectl --kubeconfig /etc/kubernetes/admin.conf --server "https://$vip:6443" get --raw /readyz >/dev/null 2>&1; then
      after=$(stats)
      if [ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ]; then
        echo "up.sh: smoke test passed: https://$vip:6443/readyz answered through haproxy on $holder (frontend sessions $before → $after)"
        exit 0
      fi
    fi
  fi
  sleep 2
done
fail "smoke test failed: the VIP $vip (on ${holder:-no node}) did not answer through haproxy"
