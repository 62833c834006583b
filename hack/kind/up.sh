#!/usr/bin/env bash
# For users with Docker (kind needs a Docker engine; the machines here have
# none, so this script has not been run here and make test does not run it;
# the same static pods run under a real kubelet in the lab instead).
# Creates a 3-control-plane kind cluster whose apiserver certificates include
# the VIP, builds the image from Containerfile, applies manifests/rbac.yaml,
# installs the haproxy and keepalived static pods on every control-plane node,
# and smoke-tests the VIP.
#
#   hack/kind/up.sh            # create, install, test
#   hack/kind/up.sh --delete   # remove the cluster
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${KIND_CLUSTER:-hapm}
image=localhost/haproxy-monitor:latest

if [ "${1:-}" = "--delete" ]; then
  exec kind delete cluster --name "$name"
fi
command -v kind >/dev/null && command -v docker >/dev/null || { echo "kind and docker are required" >&2; exit 1; }

# The VIP must be known before the cluster exists: it goes into the
# apiservers' certificates (the monitor's kubeconfig and clients name it).
# kind uses the docker network "kind"; create it first if needed and take a
# free address near its end.
docker network inspect kind >/dev/null 2>&1 || docker network create kind >/dev/null
subnet=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' | tr ' ' '\n' | grep -v : | head -1)
vip=$(echo "$subnet" | awk -F'[./]' '{print $1"."$2"."$3".250"}')
echo "VIP $vip on $subnet"

config=$(mktemp)
trap 'rm -f "$config"' EXIT
sed "s/VIP_PLACEHOLDER/$vip/" hack/kind/kind-config.yaml >"$config"
kind create cluster --name "$name" --config "$config"
kubectl --context "kind-$name" apply -f manifests/rbac.yaml
docker build -t "$image" -f Containerfile .
kind load docker-image --name "$name" "$image"

prio=100
for node in $(kind get nodes --name "$name" | grep control-plane); do
  docker exec "$node" mkdir -p /etc/kubernetes/static-pod-resources/haproxy /etc/kubernetes/static-pod-resources/keepalived /etc/haproxy
  docker cp templates/haproxy.cfg.tmpl "$node":/etc/kubernetes/static-pod-resources/haproxy/haproxy.cfg.tmpl
  docker run --rm "$image" keepalived-conf -interface eth0 -vips "$vip" -priority "$prio" -auth-pass hapmkind \
      -track-file /var/run/haproxy-monitor/haproxy |
    docker exec -i "$node" tee /etc/kubernetes/static-pod-resources/keepalived/keepalived.conf >/dev/null
  # kind's (kubeadm's) kubelet kubeconfig is /etc/kubernetes/kubelet.conf; it
  # names the client certificate under /var/lib/kubelet/pki, which the
  # manifest mounts as it is. Only the kubeconfig's host path changes.
  sed -e "s/198.18.0.100/$vip/" -e 's#path: "/var/lib/kubelet/kubeconfig"#path: "/etc/kubernetes/kubelet.conf"#' \
      manifests/haproxy.yaml | docker exec -i "$node" tee /etc/kubernetes/manifests/haproxy.yaml >/dev/null
  docker cp manifests/keepalived.yaml "$node":/etc/kubernetes/manifests/keepalived.yaml
  prio=$((prio + 1))
done

echo "waiting for the API through the VIP"
node=$(kind get nodes --name "$name" | grep control-plane | head -1)
for _ in $(seq 1 120); do
  if docker exec "$node" curl -sf --cacert /etc/kubernetes/pki/ca.crt "https://$vip:6443/readyz" >/dev/null; then
    echo "smoke test passed: https://$vip:6443/readyz answers, verified, through keepalived + haproxy"
    docker exec "$node" grep -c '^  server ' /etc/haproxy/haproxy.cfg
    exit 0
  fi
  sleep 2
done
echo "smoke test failed" >&2
exit 1
