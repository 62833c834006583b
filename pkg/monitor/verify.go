package monitor

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/metrics"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// verifier confirms through haproxy's runtime API that a delivered reload
// made haproxy serve the rendered server set (the reload protocol itself is
// one-way), and samples backend states for the metrics.
type verifier struct {
	socket   string
	timeout  time.Duration
	interval time.Duration
	metrics  *metrics.Metrics
	state    *state
	log      logrus.FieldLogger

	// retry asks for another reload when haproxy does not serve the
	// configuration in time: the reloader may have dropped the request.
	retry func()

	mu       sync.Mutex
	expected []lbconfig.Backend
	sentAt   time.Time // zero when no delivered reload awaits confirmation
	wake     chan struct{}
}

func newVerifier(socket string, timeout, interval time.Duration, m *metrics.Metrics, st *state, log logrus.FieldLogger) *verifier {
	return &verifier{socket: socket, timeout: timeout, interval: interval, metrics: m, state: st, log: log, wake: make(chan struct{}, 1)}
}

// expect records the server set the file on disk now describes.
func (v *verifier) expect(backends []lbconfig.Backend) {
	v.mu.Lock()
	v.expected = backends
	v.mu.Unlock()
}

// check starts confirming a reload delivered at sentAt.
func (v *verifier) check(sentAt time.Time) {
	if v.socket == "" {
		return
	}
	v.mu.Lock()
	v.sentAt = sentAt
	v.mu.Unlock()
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

func (v *verifier) run(ctx context.Context) {
	if v.socket == "" {
		return
	}
	sample := time.NewTicker(v.interval)
	defer sample.Stop()
	poll := time.NewTicker(25 * time.Millisecond)
	defer poll.Stop()
	for {
		v.mu.Lock()
		pending := !v.sentAt.IsZero()
		v.mu.Unlock()
		var tick <-chan time.Time
		if pending {
			tick = poll.C
		}
		select {
		case <-ctx.Done():
			return
		case <-v.wake:
			v.step(ctx)
		case <-tick:
			v.step(ctx)
		case <-sample.C:
			if !pending {
				v.step(ctx)
			}
		}
	}
}

// step reads haproxy's servers once: updates the up/down gauges and settles a
// pending confirmation when haproxy serves the expected set or time is up.
func (v *verifier) step(ctx context.Context) {
	servers, err := runtimeapi.ServersState(ctx, v.socket, "masters")
	v.mu.Lock()
	expected, sentAt := v.expected, v.sentAt
	v.mu.Unlock()
	if err == nil {
		up := 0
		for _, s := range servers {
			if s.Up {
				up++
			}
		}
		v.metrics.Backends.WithLabelValues("up").Set(float64(up))
		v.metrics.Backends.WithLabelValues("down").Set(float64(len(servers) - up))
	}
	if sentAt.IsZero() {
		return
	}
	switch {
	case err == nil && serves(servers, expected):
		d := time.Since(sentAt)
		v.metrics.ReloadToServing.Observe(d.Seconds())
		v.metrics.Verifications.WithLabelValues("serving").Inc()
		v.state.verified(nil)
		v.settle(sentAt)
		v.log.WithFields(logrus.Fields{"after": d.Round(time.Millisecond), "servers": len(servers)}).Debug("haproxy serves the new configuration")
	case time.Since(sentAt) > v.timeout && errors.Is(err, fs.ErrNotExist) && !socketExists(v.socket):
		// No runtime socket appeared (a template without it): nothing to
		// confirm with, which is not haproxy's failure.
		v.metrics.Verifications.WithLabelValues("unavailable").Inc()
		v.settle(sentAt)
		v.log.WithField("socket", v.socket).Info("no haproxy runtime API socket; reloads are not confirmed")
	case time.Since(sentAt) > v.timeout:
		v.metrics.Verifications.WithLabelValues("timeout").Inc()
		v.state.verified(errVerifyTimeout)
		v.settle(sentAt)
		v.log.WithFields(logrus.Fields{"socket": v.socket, "timeout": v.timeout}).WithError(err).Warn("haproxy does not serve the new configuration after the reload; reloading again")
		if v.retry != nil {
			v.retry()
		}
	}
}

var errVerifyTimeout = errors.New("haproxy did not pick up the last configuration")

// settle clears the pending confirmation unless a newer reload replaced it.
func (v *verifier) settle(sentAt time.Time) {
	v.mu.Lock()
	if sentAt.IsZero() || v.sentAt.Equal(sentAt) {
		v.sentAt = time.Time{}
	}
	v.mu.Unlock()
}

func socketExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&fs.ModeSocket != 0
}

// serves reports whether haproxy's servers are exactly the expected backends.
func serves(servers map[string]runtimeapi.Server, expected []lbconfig.Backend) bool {
	if len(servers) != len(expected) {
		return false
	}
	for _, b := range expected {
		s, ok := servers[b.Host]
		if !ok || s.Addr != b.Address || s.Port != portString(b.Port) {
			return false
		}
	}
	return true
}
