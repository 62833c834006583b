package kubeclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Endpoints is a failover dialer over a list of apiserver addresses.
type Endpoints struct {
	DialTimeout time.Duration
	Log         logrus.FieldLogger

	mu        sync.Mutex
	static    []string // kubeconfig server, then the local apiserver
	dynamic   []string // learnt from discovery; replaced as a whole
	preferred string   // the last address a dial succeeded to
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

// Dial is a rest.Config Dial function. The address client-go asks for is the
// kubeconfig's server; it is always among the candidates.
func (e *Endpoints) Dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var errs []error
	for _, addr := range e.Candidates() {
		if ctx.Err() != nil {
			break
		}
		dctx, cancel := context.WithTimeout(ctx, e.DialTimeout)
		conn, err := (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext(dctx, network, addr)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.mu.Lock()
		prev := e.preferred
		e.preferred = addr
		e.mu.Unlock()
		if prev != addr && e.Log != nil {
			e.Log.WithFields(logrus.Fields{"endpoint": addr, "previous": prev}).Info("API connection endpoint selected")
		}
		return conn, nil
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return nil, fmt.Errorf("no apiserver endpoint reachable: %w", errors.Join(errs...))
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
