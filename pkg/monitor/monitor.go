package monitor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/failover"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxyctl"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/kubeclient"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/metrics"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/redirect"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/render"
)

// Monitor is one running control loop.
type Monitor struct {
	cfg      Config
	log      *logrus.Logger
	source   *discovery.Source
	eps      *kubeclient.Endpoints // nil with an injected client
	renderer *render.Renderer
	file     *apply.File
	haproxy  *haproxyctl.Controller
	failover *failover.Controller // nil when neither the redirect nor a track file is on
	health   *health
	metrics  *metrics.Metrics

	// Owned by the loop goroutine.
	debounce     debouncer
	applied      []lbconfig.Backend // backends of the last configuration handed to the controller
	handed       []byte             // that configuration
	drain        []string           // the servers it was asked to drain
	mem          memory             // what the desired state depends on besides a snapshot
	lastSkips    string
	lastStatus   discovery.Status
	unverifiable bool // said once that reloads cannot be confirmed
	templateText []byte
	templateErr  error

	reread chan struct{}
}

// Run builds the monitor from cfg and runs it until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	m, err := New(cfg)
	if err != nil {
		return err
	}
	return m.Run(ctx)
}

// New checks every input (settings, template, config path, kubeconfig) and
// prepares the loop. It writes nothing.
func New(cfg Config) (*Monitor, error) {
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.LocalPrefixes == nil {
		cfg.LocalPrefixes = hostPrefixes
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	text, err := os.ReadFile(cfg.TemplatePath)
	if err != nil {
		return nil, fmt.Errorf("reading template: %w", err)
	}
	r, err := render.Parse(cfg.TemplatePath, string(text))
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(cfg.ConfigPath); err == nil && st.IsDir() {
		return nil, fmt.Errorf("config path %s is a directory", cfg.ConfigPath)
	}
	if target, err := (&apply.File{Path: cfg.ConfigPath}).Target(); err != nil {
		return nil, fmt.Errorf("config path %s: %w", cfg.ConfigPath, err)
	} else if st, err := os.Stat(filepath.Dir(target)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("config directory %s does not exist (the hostPath the haproxy container reads)", filepath.Dir(target))
	}
	m := &Monitor{
		cfg: cfg, log: cfg.Log, renderer: r, templateText: text, metrics: metrics.New(), health: newHealth(),
		reread:   make(chan struct{}, 1),
		file:     &apply.File{Path: cfg.ConfigPath},
		debounce: debouncer{quiet: cfg.Debounce, max: cfg.MaxDebounce},
	}
	if cfg.HAProxyBinary != "" {
		m.file.Validate = apply.HAProxyCheck(cfg.HAProxyBinary, 10*time.Second)
	}
	client := cfg.Client
	if client == nil {
		restCfg, eps, err := kubeclient.Load(cfg.KubeconfigPath, cfg.APIPort, cfg.APITimeout, cfg.Log)
		if err != nil {
			return nil, err
		}
		restCfg.Wrap(m.metrics.InstrumentAPI)
		answers := &kubeclient.Health{}
		restCfg.Wrap(answers.Wrap)
		if client, err = discovery.NewRESTClient(restCfg); err != nil {
			return nil, err
		}
		m.eps, m.health.apiDown, m.health.apiFailing = eps, eps.Reason, answers.Failing
		m.metrics.WatchAPIFailing(answers.Failing)
	}
	m.source = discovery.New(client, discovery.Options{PollInterval: cfg.CheckInterval})
	m.health.discovery = m.source.Status
	m.metrics.WatchLastContact(m.source.LastContact)
	m.haproxy = haproxyctl.New(haproxyctl.Options{File: m.file, Socket: cfg.ReloadSocket, StatsSocket: cfg.StatsSocket,
		AdminSocket: cfg.AdminSocket, VerifyTimeout: cfg.VerifyTimeout, SampleInterval: cfg.CheckInterval,
		Grace: cfg.RemovalGrace, Spread: cfg.RemovalSpread, Log: m.log.WithField("component", "haproxy")})
	m.failover = m.newFailover()
	if old, err := m.file.Read(); err == nil && len(old) > 0 {
		m.metrics.SetConfigHash(sha(old))
		m.health.setOnDisk(true)
		m.mem.haveConfig = true
		// The names the servers have on disk, so degraded discovery (which
		// sees only addresses) keeps them.
		for _, s := range haproxycfg.Servers(old) {
			m.mem.names = append(m.mem.names, lbconfig.Backend{Host: s.Name, Address: s.Address, Port: s.Port})
		}
	}
	return m, nil
}

// Run runs the loop until ctx ends. Only a failing health listener is fatal;
// API, disk and socket failures are logged and retried.
func (m *Monitor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	release, err := m.file.Lock()
	switch {
	case errors.Is(err, apply.ErrLockUnavailable):
		// The guard against a second writer cannot be taken (a read-only
		// directory): the writes will fail and say so; keep serving.
		m.log.WithError(err).Warn("running without the one-writer lock")
	case err != nil:
		return err
	default:
		defer release()
	}
	if removed, err := m.file.RemoveStaleTemps(); len(removed) > 0 || err != nil {
		m.log.WithError(err).WithField("files", removed).Info("removed temporary files a previous run left")
	}
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
	// Everything started here is joined before Run returns, in this order:
	// the loop, the reload controller, the failover's hand-over (the
	// redirect is out before the process exits), then, deferred above, the
	// discovery, the health listener and the one-writer lock.
	controllerDone := make(chan struct{})
	go func() { m.haproxy.Run(ctx); close(controllerDone) }()
	failoverDone := make(chan struct{})
	if m.failover != nil {
		go func() { m.failover.Run(ctx); close(failoverDone) }()
	} else {
		close(failoverDone)
	}

	synced := make(chan struct{})
	go func() {
		if m.source.WaitForSync(ctx) {
			close(synced)
		}
	}()
	m.loop(ctx, synced)
	cancel()
	<-controllerDone
	<-failoverDone
	m.log.Info("haproxy monitor stopped")
	return nil
}

func (m *Monitor) loop(ctx context.Context, synced <-chan struct{}) {
	heartbeat := time.NewTicker(m.cfg.CheckInterval)
	defer heartbeat.Stop()
	templates := time.NewTicker(templateCheckEvery)
	defer templates.Stop()
	render := time.NewTimer(time.Hour)
	defer render.Stop()
	waitingSync := synced
	for {
		m.health.beat()
		if at, ok := m.debounce.due(); ok {
			render.Reset(time.Until(at))
		} else {
			render.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			m.noteDiscovery()
		case <-templates.C:
			m.checkTemplate()
		case <-m.reread:
			m.log.Info("SIGHUP: reading the template again")
			m.checkTemplate()
		case <-waitingSync:
			waitingSync = nil
			m.health.setSynced()
			m.log.Info("API caches synced")
			m.debounce.now(time.Now())
		case <-m.source.Changes():
			m.noteDiscovery()
			if waitingSync == nil {
				m.debounce.poke(time.Now())
			}
		case <-render.C:
			at := time.Now()
			if m.sync(m.debounce.fire(at)) {
				m.debounce.changed(at)
			}
		case ev := <-m.haproxy.Events():
			m.onReload(ev)
		}
	}
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

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// newFailover returns the controller that watches haproxy for the redirect
// and keepalived's track file, or nil when both are off.
func (m *Monitor) newFailover() *failover.Controller {
	redirectOn := m.cfg.Redirect && len(m.cfg.VIPs) > 0
	if !redirectOn && m.cfg.TrackFile == "" {
		return nil
	}
	o := failover.Options{
		Probe:    failover.HTTPProbe(m.cfg.RedirectProbeURL),
		Interval: m.cfg.CheckInterval,
		// Every 100 ms for keepalived and a haproxy that is gone (every
		// probe is one local HTTP request); the redirect's hysteresis still
		// counts one observation per interval.
		ProbeInterval: min(m.cfg.CheckInterval, 100*time.Millisecond),
		Log:           m.log.WithField("component", "failover"),
	}
	if m.cfg.WatchHAProxy {
		var err error
		if o.Watch, err = failover.HoldConnection(m.cfg.RedirectProbeURL, min(m.cfg.CheckInterval, 2*time.Second)); err != nil {
			m.log.WithError(err).Warn("--watch-haproxy: probing only")
		}
	}
	if redirectOn {
		o.Redirect = redirect.NewSwitch(redirect.SwitchOptions{
			Rules:   &redirect.Redirect{VIPs: m.cfg.VIPs, APIPort: m.cfg.APIPort, LBPort: m.cfg.LBPort},
			OnAfter: m.cfg.RedirectOnAfter, OffAfter: m.cfg.RedirectOffAfter, Interval: m.cfg.CheckInterval,
			Log:       m.log.WithField("component", "redirect"),
			Installed: func(on bool) { m.metrics.RedirectActive.Set(metrics.Bool(on)) },
		})
	}
	if m.cfg.TrackFile != "" {
		o.Track = keepalived.TrackFile{Path: m.cfg.TrackFile}
		o.TrackError = func(err error) {
			m.metrics.TrackFileErrors.Inc()
			m.log.WithError(err).Warn("keepalived track file not written; its script check decides alone")
		}
		o.LocalProbe = failover.APIServerProbe(m.cfg.localAPIURL())
		o.HoldsVIP = func() bool { return holdsVIP(m.cfg.VIPs) }
		o.HandOver, o.Settle = m.cfg.HandOver, m.cfg.HandOverSettle
	}
	return failover.New(o)
}
