package lbconfig

import (
	"net"
	"sort"
)

// Draining names the backends to put in drain: those whose address was
// among the ready apiservers of the kubernetes EndpointSlice (seen) and is
// not any more, which is what a kube-apiserver shutting down gracefully does
// before it stops serving. A backend never seen there is left alone (its
// apiserver may advertise another address), and the last backends are never
// all drained: a wrong or empty slice must not take the API away.
func Draining(backends []Backend, ready []string, seen map[string]bool) []string {
	now := map[string]bool{}
	for _, hp := range ready {
		if host, _, err := net.SplitHostPort(hp); err == nil {
			if a, err := ParseAddress(host); err == nil {
				now[a.String()] = true
			}
		}
	}
	var out []string
	for _, b := range backends {
		if seen[b.Address] && !now[b.Address] {
			out = append(out, b.Host)
		}
	}
	if len(out) == len(backends) {
		return nil
	}
	sort.Strings(out)
	return out
}

// SeenReady adds the addresses of ready (host:port) to seen.
func SeenReady(seen map[string]bool, ready []string) {
	for _, hp := range ready {
		if host, _, err := net.SplitHostPort(hp); err == nil {
			if a, err := ParseAddress(host); err == nil {
				seen[a.String()] = true
			}
		}
	}
}
