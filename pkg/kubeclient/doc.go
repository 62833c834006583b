// Package kubeclient builds the API client from the kubelet's kubeconfig so that
// it never depends on the load balancer the monitor configures: connections go
// to the first reachable of the last good endpoint, the kubeconfig's server,
// the local apiserver and the last-known apiservers, each with a short dial
// timeout. TLS is still verified against the kubeconfig's server name.
package kubeclient
