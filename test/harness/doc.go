// Package harness starts the real components the monitor talks to, on one
// host: etcd and kube-apiserver built from the Go module proxy, TLS servers
// standing in for the masters' apiservers, haproxy driven by the reloader
// script from manifests/haproxy.yaml, and the monitor binary itself. The
// integration suite, the demo, the lab and the benchmarks share it.
package harness
