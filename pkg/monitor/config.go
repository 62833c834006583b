package monitor

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/failover"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxyctl"
)

// Config is everything the monitor needs; cmd/monitor fills it from flags
// whose defaults come from DefaultConfig.
type Config struct {
	KubeconfigPath string
	TemplatePath   string
	ConfigPath     string

	APIPort       uint16
	LBPort        uint16
	StatPort      uint16
	CheckInterval time.Duration
	VIPs          []netip.Addr

	ReloadSocket string
	// Debounce: a change after a quiet period is rendered at once; changes
	// within Debounce of the last render wait until Debounce has passed
	// without one, at most MaxDebounce from the first.
	Debounce    time.Duration
	MaxDebounce time.Duration
	// APITimeout bounds each connection attempt to an apiserver.
	APITimeout time.Duration
	// HAProxyBinary validates candidates with "haproxy -c"; empty disables.
	HAProxyBinary string
	// HealthAddr serves /healthz, /readyz and /metrics; empty disables.
	HealthAddr string
	// StatsSocket is a haproxy runtime API socket used to confirm each
	// reload and to export backend states; empty disables.
	StatsSocket string
	// VerifyTimeout bounds how long a delivered reload may take to show in
	// haproxy's runtime API.
	VerifyTimeout time.Duration
	// AdminSocket is an admin-level haproxy runtime API socket: membership
	// changes go through it without a reload, and drains need it. Empty:
	// every change reloads.
	AdminSocket string
	// RemovalGrace is how long a removed server drains before its remaining
	// sessions are shut, one by one over RemovalSpread.
	RemovalGrace  time.Duration
	RemovalSpread time.Duration

	// Redirect installs the VIP:api-port → lb-port nftables redirect while
	// RedirectProbeURL (haproxy's monitor-uri) answers 2xx, switched on after
	// RedirectOnAfter good probes and off after RedirectOffAfter bad ones, one
	// probe per CheckInterval.
	Redirect         bool
	RedirectProbeURL string
	RedirectOnAfter  int
	RedirectOffAfter int
	// WatchHAProxy holds a keep-alive connection to RedirectProbeURL (one
	// request, then idle) so that haproxy's death is noticed when the
	// kernel closes it, not on the next probe; the probes go on as the
	// fallback.
	WatchHAProxy bool

	// TrackFile is keepalived's track file on a hostPath both static pods
	// mount, holding a keepalived.Level: Serving while the local haproxy
	// serves (RedirectProbeURL answers); LocalOnly while it does not but
	// LocalAPIURL does; Fault when neither does or the monitor is shutting
	// down. Empty: off.
	TrackFile string
	// LocalAPIURL is the local kube-apiserver's /readyz; empty:
	// https://localhost:<APIPort>/readyz.
	LocalAPIURL string
	// HandOver bounds how long a stopping monitor waits for the VIP to leave
	// this node before it takes the redirect out and exits; HandOverSettle
	// is how long it then goes on holding new connections, for another node
	// to take the VIP (VRRP's skew time, at most one advert interval).
	HandOver       time.Duration
	HandOverSettle time.Duration

	// LocalPrefixes lists the prefixes of local interfaces; nil reads them
	// from the host. Tests substitute a fixed list.
	LocalPrefixes func() ([]netip.Prefix, error)
	// Client, when set, is used instead of a client built from the
	// kubeconfig (tests inject a fake one).
	Client discovery.Client

	// Log defaults to logrus' standard logger.
	Log *logrus.Logger
}

// DefaultConfig holds every default, the original's flags' among them.
func DefaultConfig() Config {
	return Config{
		APIPort: 6443, LBPort: 9445, StatPort: 29445,
		CheckInterval:    6 * time.Second,
		ReloadSocket:     haproxyctl.DefaultSocket,
		Debounce:         150 * time.Millisecond,
		MaxDebounce:      time.Second,
		APITimeout:       2 * time.Second,
		HAProxyBinary:    "haproxy",
		HealthAddr:       "127.0.0.1:29446",
		StatsSocket:      "/var/run/haproxy/haproxy-stats.sock",
		VerifyTimeout:    10 * time.Second,
		AdminSocket:      "/var/run/haproxy/haproxy-admin.sock",
		RemovalGrace:     70 * time.Second,
		RemovalSpread:    10 * time.Second,
		Redirect:         true,
		RedirectProbeURL: "http://127.0.0.1:9444/haproxy_ready",
		RedirectOnAfter:  3,
		RedirectOffAfter: 11,
		WatchHAProxy:     true,
		HandOver:         10 * time.Second,
		HandOverSettle:   time.Second,
	}
}

// Validate reports every setting that cannot work.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range []struct{ name, path string }{{"kubeconfig", c.KubeconfigPath}, {"template", c.TemplatePath}, {"config", c.ConfigPath}} {
		if p.path == "" && (p.name != "kubeconfig" || c.Client == nil) {
			errs = append(errs, fmt.Errorf("%s path is empty", p.name))
		}
	}
	if c.APIPort == 0 || c.LBPort == 0 {
		errs = append(errs, errors.New("--api-port and --lb-port must be non-zero"))
	}
	if c.CheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("--check-interval must be positive, got %v", c.CheckInterval))
	}
	if c.Debounce < 0 || c.MaxDebounce < c.Debounce {
		errs = append(errs, fmt.Errorf("--debounce %v must be between 0 and the maximum %v", c.Debounce, c.MaxDebounce))
	}
	if c.APITimeout <= 0 {
		errs = append(errs, fmt.Errorf("--api-timeout must be positive, got %v", c.APITimeout))
	}
	if c.VerifyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--reload-verify-timeout must be positive, got %v", c.VerifyTimeout))
	}
	if c.RemovalGrace < 0 || c.RemovalSpread < 0 {
		errs = append(errs, fmt.Errorf("--removal-grace and --removal-spread must not be negative"))
	}
	if c.TrackFile != "" {
		if st, err := os.Stat(filepath.Dir(c.TrackFile)); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("--keepalived-track-file: directory %s does not exist (the hostPath shared with the keepalived pod)", filepath.Dir(c.TrackFile)))
		} else if unix.Access(filepath.Dir(c.TrackFile), unix.W_OK) != nil {
			errs = append(errs, fmt.Errorf("--keepalived-track-file: directory %s is not writable", filepath.Dir(c.TrackFile)))
		}
		if c.RedirectProbeURL == "" {
			errs = append(errs, errors.New("--keepalived-track-file needs --redirect-probe-url"))
		}
		if u, err := url.Parse(c.localAPIURL()); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--local-apiserver-url %q is not an http(s) URL", c.localAPIURL()))
		}
	}
	if c.Redirect && (c.RedirectOnAfter < 1 || c.RedirectOffAfter < 1 || c.RedirectProbeURL == "") {
		errs = append(errs, errors.New("--redirect-on-after and --redirect-off-after must be at least 1 and --redirect-probe-url set"))
	}
	if _, err := failover.ProbeAddr(c.RedirectProbeURL); err != nil && c.WatchHAProxy && (c.Redirect || c.TrackFile != "") {
		errs = append(errs, fmt.Errorf("--redirect-probe-url (held open by --watch-haproxy): %w", err))
	}
	if c.HandOver < 0 || c.HandOverSettle < 0 {
		errs = append(errs, errors.New("--vip-handover-timeout and --vip-handover-settle must not be negative"))
	}
	if c.ReloadSocket == "" {
		errs = append(errs, errors.New("--reload-socket is empty"))
	}
	for _, v := range c.VIPs {
		if !v.IsValid() || v.IsUnspecified() {
			errs = append(errs, fmt.Errorf("VIP %v is not a usable address", v))
		}
	}
	return errors.Join(errs...)
}

// localAPIURL is LocalAPIURL or its default from APIPort.
func (c *Config) localAPIURL() string {
	if c.LocalAPIURL != "" {
		return c.LocalAPIURL
	}
	return "https://" + net.JoinHostPort("localhost", strconv.Itoa(int(c.APIPort))) + "/readyz"
}
