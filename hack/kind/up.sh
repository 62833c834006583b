#!/usr/bin/env bash
# For users with Docker (kind needs a Docker engine; CI here has none, so this
# is not run by make test). Creates a 3-control-plane kind cluster, builds the
# image from Containerfile, installs the haproxy and keepalived static pods on
# every control-plane node, and smoke-tests the VIP.
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

kind create cluster --name "$name" --config hack/kind/kind-config.yaml
docker build -t "$image" -f Containerfile .
kind load docker-image --name "$name" "$image"

# A free address in kind's docker network for the VIP: the subnet's .250.
subnet=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' | tr ' ' '\n' | grep -v : | head -1)
vip=$(echo "$subnet" | awk -F'[./]' '{print $1"."$2"."$3".250"}')
echo "VIP $vip on $subnet"

prio=100
for node in $(kind get nodes --name "$name" | grep control-plane); do
  docker exec "$node" mkdir -p /etc/kubernetes/static-pod-resources/haproxy /etc/kubernetes/static-pod-resources/keepalived /etc/haproxy
  docker cp templates/haproxy.cfg.tmpl "$node":/etc/kubernetes/static-pod-resources/haproxy/haproxy.cfg.tmpl
  go run ./cmd/keepalived-conf -interface eth0 -vips "$vip" -priority "$prio" -auth-pass hapmkind |
    docker exec -i "$node" tee /etc/kubernetes/static-pod-resources/keepalived/keepalived.conf >/dev/null
  # kind's kubelet kubeconfig lives in /etc/kubernetes/kubelet.conf.
  sed -e "s/198.18.0.100/$vip/" -e 's#/var/lib/kubelet/kubeconfig#/etc/kubernetes/kubelet.conf#' \
      -e 's#path: "/var/lib/kubelet"#path: "/etc/kubernetes"#' -e 's#mountPath: "/var/lib/kubelet"#mountPath: "/etc/kubernetes"#' \
      manifests/haproxy.yaml | docker exec -i "$node" tee /etc/kubernetes/manifests/haproxy.yaml >/dev/null
  docker cp manifests/keepalived.yaml "$node":/etc/kubernetes/manifests/keepalived.yaml
  prio=$((prio + 1))
done

echo "waiting for the API through the VIP"
node=$(kind get nodes --name "$name" | grep control-plane | head -1)
for _ in $(seq 1 120); do
  if docker exec "$node" curl -skf "https://$vip:6443/readyz" >/dev/null; then
    echo "smoke test passed: https://$vip:6443/readyz answers through keepalived + haproxy"
    docker exec "$node" grep -c '^  server ' /etc/haproxy/haproxy.cfg
    exit 0
  fi
  sleep 2
done
echo "smoke test failed" >&2
exit 1
