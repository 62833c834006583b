package monitor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/firewall"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/kubeclient"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/metrics"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/reload"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/render"
)

// applyRetry bounds how often a failed apply (read-only directory, haproxy
// refusing the candidate) is tried again without a new cluster event.
const (
	applyRetryMin = time.Second
	applyRetryMax = 30 * time.Second
)

// Monitor is one running control loop.
type Monitor struct {
	cfg      Config
	log      *logrus.Logger
	source   *discovery.Source
	eps      *kubeclient.Endpoints // nil with an injected client
	renderer *render.Renderer
	file     *apply.File
	notifier *reload.Notifier
	state    *state
	metrics  *metrics.Metrics
	verify   *verifier

	// Owned by the loop goroutine.
	applied    []lbconfig.Backend // backends of the last config written or found on disk
	names      []lbconfig.Backend // name memory for degraded discovery (lbconfig.RememberNames)
	lastSkips  string
	lastStatus discovery.Status
	retryDelay time.Duration

	// eventAt is the first API event behind the change awaiting delivery;
	// the loop sets it, the notifier's callback takes it.
	eventMu sync.Mutex
	eventAt time.Time
}

// Run loads the kubeconfig and template, then runs the loop until ctx ends.
// Every input is checked before anything on disk is touched.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	restCfg, eps, err := kubeclient.Load(cfg.KubeconfigPath, cfg.APIPort, cfg.APITimeout, cfg.Log)
	if err != nil {
		return err
	}
	// The metrics exist before the client so that its transport is counted.
	met := metrics.New()
	restCfg.Wrap(met.InstrumentAPI)
	client, err := discovery.NewRESTClient(restCfg)
	if err != nil {
		return err
	}
	m, err := newMonitor(cfg, client, met)
	if err != nil {
		return err
	}
	m.eps = eps
	m.state.apiDown = eps.Down
	return m.Run(ctx)
}

// New checks the template and the config path and prepares the loop over
// client. It writes nothing.
func New(cfg Config, client discovery.Client) (*Monitor, error) {
	return newMonitor(cfg, client, metrics.New())
}

func newMonitor(cfg Config, client discovery.Client, met *metrics.Metrics) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.LocalPrefixes == nil {
		cfg.LocalPrefixes = hostPrefixes
	}
	r, err := render.Load(cfg.TemplatePath)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(cfg.ConfigPath); err == nil && st.IsDir() {
		return nil, fmt.Errorf("config path %s is a directory", cfg.ConfigPath)
	}
	file := &apply.File{Path: cfg.ConfigPath}
	if cfg.HAProxyBinary != "" {
		file.Validate = apply.HAProxyCheck(cfg.HAProxyBinary, 10*time.Second)
	}
	if cfg.VerifyTimeout == 0 {
		cfg.VerifyTimeout = 10 * time.Second
	}
	m := &Monitor{
		cfg:      cfg,
		log:      cfg.Log,
		source:   discovery.New(client, discovery.Options{PollInterval: cfg.CheckInterval}),
		renderer: r,
		file:     file,
		notifier: reload.NewNotifier(cfg.ReloadSocket, cfg.Log),
		state:    newState(),
		metrics:  met,
	}
	met.WatchLastContact(m.source.LastContact)
	m.verify = newVerifier(cfg.StatsSocket, cfg.VerifyTimeout, cfg.CheckInterval, m.metrics, m.state, cfg.Log)
	m.verify.retry = m.notifier.Request
	m.notifier.OnResult = m.reloadResult
	m.state.discovery = m.source.Status
	if old, err := file.Read(); err == nil && len(old) > 0 {
		m.metrics.SetConfigHash(sha(old))
		m.state.setOnDisk(true)
		// The names the servers have on disk, so degraded discovery (which
		// sees only addresses) keeps them.
		for _, s := range haproxycfg.Servers(old) {
			m.names = append(m.names, lbconfig.Backend{Host: s.Name, Address: s.Address, Port: s.Port})
		}
	}
	return m, nil
}

// Run runs the loop until ctx ends. Only a failing health listener is fatal;
// API, disk and socket failures are logged and retried.
func (m *Monitor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopHealth, err := m.serveHealth(ctx)
	if err != nil {
		return err
	}
	defer stopHealth()

	m.log.WithFields(logrus.Fields{
		"config": m.cfg.ConfigPath, "template": m.cfg.TemplatePath, "vips": m.cfg.VIPs,
		"socket": m.cfg.ReloadSocket, "debounce": m.cfg.Debounce,
	}).Info("starting haproxy monitor")
	m.source.Start(ctx)
	defer m.source.Shutdown()
	go m.notifier.Run(ctx)
	go m.verify.run(ctx)
	if fw := m.firewall(); fw != nil {
		done := make(chan struct{})
		go func() { fw.Run(ctx); close(done) }()
		// Runs after the loop returns: the rules are out before we exit.
		defer func() { <-done }()
	}

	synced := make(chan struct{})
	go func() {
		if m.source.WaitForSync(ctx) {
			close(synced)
		}
	}()
	m.loop(ctx, synced)
	m.log.Info("haproxy monitor stopped")
	return nil
}

func (m *Monitor) loop(ctx context.Context, synced <-chan struct{}) {
	heartbeat := time.NewTicker(m.cfg.CheckInterval)
	defer heartbeat.Stop()
	debounce := newDebouncer(m.cfg.Debounce, m.cfg.MaxDebounce)
	defer debounce.stop()
	var retry <-chan time.Time
	waitingSync := synced
	for {
		m.state.beat()
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			m.noteDiscovery()
		case <-waitingSync:
			waitingSync = nil
			m.state.setSynced()
			m.log.Info("API caches synced")
			debounce.now()
		case <-m.source.Changes():
			m.noteDiscovery()
			if waitingSync == nil {
				debounce.poke()
			}
		case <-debounce.C():
			retry = m.syncAndSchedule(ctx, debounce.fired())
		case <-retry:
			retry = m.syncAndSchedule(ctx, time.Now())
		}
	}
}

// syncAndSchedule syncs and returns a timer channel when the sync must be
// retried without waiting for an event.
func (m *Monitor) syncAndSchedule(ctx context.Context, eventAt time.Time) <-chan time.Time {
	if err := m.sync(ctx, eventAt); err != nil {
		m.retryDelay = min(max(2*m.retryDelay, applyRetryMin), applyRetryMax)
		m.log.WithError(err).WithField("retry_in", m.retryDelay).Error("configuration not applied")
		return time.After(m.retryDelay)
	}
	m.retryDelay = 0
	return nil
}

func (m *Monitor) serveHealth(ctx context.Context) (stop func(), err error) {
	if m.cfg.HealthAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", m.cfg.HealthAddr)
	if err != nil {
		return nil, fmt.Errorf("health listener on %s: %w", m.cfg.HealthAddr, err)
	}
	srv := &http.Server{Handler: m.healthMux(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	m.log.WithField("address", ln.Addr().String()).Info("serving /healthz, /readyz and /metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// reloadResult runs in the notifier after each delivery attempt.
func (m *Monitor) reloadResult(r reload.Result) {
	m.state.reloadResult(r)
	if r.Err != nil {
		m.metrics.Reloads.WithLabelValues("failed").Inc()
		m.metrics.ReloadRetries.Inc()
		return
	}
	m.metrics.Reloads.WithLabelValues("delivered").Inc()
	m.eventMu.Lock()
	eventAt := m.eventAt
	m.eventAt = time.Time{}
	m.eventMu.Unlock()
	if !eventAt.IsZero() {
		m.metrics.EventToReload.Observe(r.Finished.Sub(eventAt).Seconds())
	}
	m.verify.check(r.Finished)
}

// noteEvent records the first event behind a change about to be delivered.
func (m *Monitor) noteEvent(at time.Time) {
	m.eventMu.Lock()
	if m.eventAt.IsZero() || at.Before(m.eventAt) {
		m.eventAt = at
	}
	m.eventMu.Unlock()
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// firewall returns the redirect controller, or nil when it is off.
func (m *Monitor) firewall() *firewall.Controller {
	if !m.cfg.Redirect || len(m.cfg.VIPs) == 0 {
		return nil
	}
	return &firewall.Controller{
		Rules:      &firewall.Redirect{VIPs: m.cfg.VIPs, APIPort: m.cfg.APIPort, LBPort: m.cfg.LBPort},
		Probe:      firewall.HTTPProbe(m.cfg.RedirectProbeURL),
		Interval:   m.cfg.CheckInterval,
		Hysteresis: firewall.Hysteresis{OnAfter: m.cfg.RedirectOnAfter, OffAfter: m.cfg.RedirectOffAfter},
		Log:        m.log.WithField("component", "redirect"),
		OnChange: func(active bool) {
			v := 0.0
			if active {
				v = 1
			}
			m.metrics.RedirectActive.Set(v)
		},
	}
}
