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

// Endpoints is a failover dialer over a list of apiserver addresses. It hands
// client-go plain TCP connections (client-go does TLS and authentication for
// every kubeconfig form), but an address only counts once a TLS handshake
// verified against the kubeconfig's CA and server name succeeded on it: a load
// balancer without backends, or anything else that accepts TCP and is not an
// apiserver, is skipped. A verified address that hangs up before answering is
// verified again before it is used next.
type Endpoints struct {
	DialTimeout time.Duration
	// HandshakeTimeout bounds a verification handshake; it is separate from
	// DialTimeout so a slow link can still complete one.
	HandshakeTimeout time.Duration
	Log              logrus.FieldLogger
	// Probe verifies an address (CA and server name, no client
	// certificate); nil for http:// servers, where a TCP connect suffices.
	Probe *tls.Config
	// dial makes one TCP connection; tests slow it down.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu        sync.Mutex
	static    []string // kubeconfig server, then the local apiserver
	dynamic   []string // learnt from discovery; replaced as a whole
	preferred string   // the last address a dial succeeded to
	verified  map[string]bool
	attempts  uint64 // dial attempts started
	stateSeq  uint64 // the attempt that last set down/lastErr
	down      bool   // the last dial found no endpoint reachable
	lastErr   error  // why
}

// NewEndpoints returns a dialer over the given fixed addresses (host:port).
func NewEndpoints(static []string, dialTimeout time.Duration, log logrus.FieldLogger) *Endpoints {
	return &Endpoints{static: dedup(static), DialTimeout: dialTimeout, HandshakeTimeout: 10 * time.Second,
		Log: log, verified: map[string]bool{}}
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

// Down reports whether the latest dial attempt found no endpoint reachable.
func (e *Endpoints) Down() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.down
}

// Reason says why the API is unreachable ("" while it is not).
func (e *Endpoints) Reason() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.down || e.lastErr == nil {
		return ""
	}
	return e.lastErr.Error()
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

// DialContext is rest.Config's Dial. The address asked for is the
// kubeconfig's server; it is always among the candidates.
func (e *Endpoints) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	e.mu.Lock()
	e.attempts++
	seq := e.attempts
	e.mu.Unlock()
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
		e.settle(seq, addr, nil)
		return &watchedConn{Conn: conn, e: e, addr: addr}, nil
	}
	if ctx.Err() != nil {
		return nil, errors.Join(append(errs, ctx.Err())...)
	}
	err := fmt.Errorf("no apiserver endpoint reachable: %w", errors.Join(errs...))
	e.settle(seq, "", err)
	return nil, err
}

// settle records the outcome of attempt seq unless a later attempt already
// did: a dial begun during an outage that fails after a newer one succeeded
// must not mark the API down again.
func (e *Endpoints) settle(seq uint64, addr string, err error) {
	e.mu.Lock()
	if seq < e.stateSeq {
		e.mu.Unlock()
		return
	}
	e.stateSeq = seq
	prev, wasDown := e.preferred, e.down
	e.down, e.lastErr = err != nil, err
	if err == nil {
		e.preferred = addr
	}
	e.mu.Unlock()
	if e.Log == nil {
		return
	}
	switch {
	case err == nil && (prev != addr || wasDown):
		e.Log.WithFields(logrus.Fields{"endpoint": addr, "previous": prev}).Info("API connection endpoint selected")
	case err != nil && !wasDown:
		// Once per outage; the watches retry every few seconds meanwhile.
		e.Log.WithError(err).Warn("API unreachable on every endpoint; keeping the configuration on disk")
	}
}

// dialOne connects to addr, verifying it first unless it is known good.
func (e *Endpoints) dialOne(ctx context.Context, network, addr string) (net.Conn, error) {
	if e.Probe != nil && !e.isVerified(addr) {
		if err := e.verify(ctx, network, addr); err != nil {
			return nil, err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, e.DialTimeout)
	defer cancel()
	return e.tcp(dctx, network, addr)
}

func (e *Endpoints) tcp(ctx context.Context, network, addr string) (net.Conn, error) {
	if e.dial != nil {
		return e.dial(ctx, network, addr)
	}
	return (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext(ctx, network, addr)
}

// verify makes a TLS handshake with addr on a connection of its own.
func (e *Endpoints) verify(ctx context.Context, network, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, e.DialTimeout)
	raw, err := e.tcp(dctx, network, addr)
	cancel()
	if err != nil {
		return err
	}
	defer raw.Close()
	hctx, cancel := context.WithTimeout(ctx, e.HandshakeTimeout)
	defer cancel()
	if err := tls.Client(raw, e.Probe).HandshakeContext(hctx); err != nil {
		return fmt.Errorf("TLS with %s: %w", addr, err)
	}
	e.setVerified(addr, true)
	return nil
}

func (e *Endpoints) isVerified(addr string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.verified[addr]
}

func (e *Endpoints) setVerified(addr string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.verified[addr] = ok
}

// watchedConn notices a peer that hangs up before sending anything: the
// address is verified again before its next use.
type watchedConn struct {
	net.Conn
	e       *Endpoints
	addr    string
	mu      sync.Mutex
	gotData bool
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	first := !c.gotData
	if n > 0 {
		c.gotData = true
	}
	c.mu.Unlock()
	if err != nil && n == 0 && first {
		c.e.setVerified(c.addr, false)
	}
	return n, err
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
