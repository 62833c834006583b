// Package kubeclient builds the API client from the kubelet's kubeconfig, in
// any form client-go supports, so that it never depends on the load balancer
// the monitor configures: client-go dials through a failover dialer that tries
// the last good endpoint, the kubeconfig's server, the local apiserver and the
// last-known apiservers, each verified by a TLS handshake against the
// kubeconfig's CA and server name before use. It also follows how the API
// answers (Health), for readiness.
package kubeclient
