package kubeclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Endpoints is a failover dialer over a list of apiserver addresses. An
// address is only good once a TLS handshake verified against the kubeconfig's
// server name succeeded: a load balancer without backends, or anything else
// that accepts TCP and is not an apiserver, is skipped.
type Endpoints struct {
	DialTimeout time.Duration
	Log         logrus.FieldLogger
	// TLS is the client TLS configuration (CA, client certificate, server
	// name); nil dials plain TCP (http:// servers).
	TLS *tls.Config

	mu        sync.Mutex
	static    []string // kubeconfig server, then the local apiserver
	dynamic   []string // learnt from discovery; replaced as a whole
	preferred string   // the last address a dial succeeded to
	down      bool     // the last dial found no endpoint reachable
}

// NewEndpoints returns a dialer over the given fixed addresses (host:port).
func NewEndpoints(static []string, dialTimeout time.Duration, log logrus.FieldLogger) *Endpoints {
	return &Endpoints{static: dedup(static), DialTimeout: dialTimeout, Log: log}
}

// SetDynamic replaces the addresses learnt from the cluster (backends and the
// kubernetes EndpointSlice), tried after the fixed ones.
func (e *Endpoints) SetDynamic(addrs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dynamic = dedup(addrs)
}

// Preferred is the address the last successful dial went to.
func (e *Endpoints) Preferred() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.preferred
}

// Down reports whether the last dial found no endpoint reachable.
func (e *Endpoints) Down() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.down
}

// Candidates lists the addresses in the order the next dial tries them.
func (e *Endpoints) Candidates() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	all := make([]string, 0, 1+len(e.static)+len(e.dynamic))
	if e.preferred != "" {
		all = append(all, e.preferred)
	}
	all = append(all, e.static...)
	all = append(all, e.dynamic...)
	return dedup(all)
}

// DialContext is an http.Transport DialContext (and DialTLSContext when TLS
// is set). The address asked for is the kubeconfig's server; it is always
// among the candidates.
func (e *Endpoints) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var errs []error
	for _, addr := range e.Candidates() {
		if ctx.Err() != nil {
			break
		}
		conn, err := e.dialOne(ctx, network, addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.mu.Lock()
		prev, wasDown := e.preferred, e.down
		e.preferred, e.down = addr, false
		e.mu.Unlock()
		if (prev != addr || wasDown) && e.Log != nil {
			e.Log.WithFields(logrus.Fields{"endpoint": addr, "previous": prev}).Info("API connection endpoint selected")
		}
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, errors.Join(append(errs, ctx.Err())...)
	}
	err := fmt.Errorf("no apiserver endpoint reachable: %w", errors.Join(errs...))
	e.mu.Lock()
	wasDown := e.down
	e.down = true
	e.mu.Unlock()
	if !wasDown && e.Log != nil {
		// Once per outage; the watches retry every few seconds meanwhile.
		e.Log.WithError(err).Warn("API unreachable on every endpoint; keeping the configuration on disk")
	}
	return nil, err
}

func (e *Endpoints) dialOne(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, e.DialTimeout)
	defer cancel()
	raw, err := (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext(ctx, network, addr)
	if err != nil || e.TLS == nil {
		return raw, err
	}
	tc := tls.Client(raw, e.TLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	return tc, nil
}

func dedup(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
