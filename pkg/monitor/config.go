package monitor

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"
)

// Config is everything the monitor needs; cmd/monitor fills it from flags.
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
	// Debounce is how long the loop waits for further changes before it
	// renders; MaxDebounce caps the wait while changes keep coming.
	Debounce    time.Duration
	MaxDebounce time.Duration
	// APITimeout bounds each connection attempt to an apiserver.
	APITimeout time.Duration
	// HAProxyBinary validates candidates with "haproxy -c"; empty disables.
	HAProxyBinary string
	// HealthAddr serves /healthz, /readyz and /metrics; empty disables.
	HealthAddr string
	// StatsSocket is a read-only (level user) haproxy runtime API socket used
	// to confirm each reload and to export backend states; empty disables.
	StatsSocket string
	// VerifyTimeout bounds how long a delivered reload may take to show in
	// haproxy's runtime API.
	VerifyTimeout time.Duration

	// Redirect installs the VIP:api-port → lb-port nftables redirect while
	// RedirectProbeURL (haproxy's monitor-uri) answers 2xx, switched on after
	// RedirectOnAfter good probes and off after RedirectOffAfter bad ones, one
	// probe per CheckInterval.
	Redirect         bool
	RedirectProbeURL string
	RedirectOnAfter  int
	RedirectOffAfter int

	// LocalPrefixes lists the prefixes of local interfaces; nil reads them
	// from the host. Tests substitute a fixed list.
	LocalPrefixes func() ([]netip.Prefix, error)

	Log *logrus.Logger
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	var errs []error
	for name, p := range map[string]string{"kubeconfig": c.KubeconfigPath, "template": c.TemplatePath, "config": c.ConfigPath} {
		if p == "" {
			errs = append(errs, fmt.Errorf("%s path is empty", name))
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
	if c.Redirect && (c.RedirectOnAfter < 1 || c.RedirectOffAfter < 1 || c.RedirectProbeURL == "") {
		errs = append(errs, errors.New("--redirect-on-after and --redirect-off-after must be at least 1 and --redirect-probe-url set"))
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
