// Command monitor keeps haproxy.cfg on a control-plane node in step with the
// cluster's control-plane members and tells haproxy to reload.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/kubeclient"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/monitor"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	cfg := monitor.DefaultConfig()
	def := monitor.DefaultConfig()
	var apiVIP net.IP
	var apiVIPs []net.IP
	var logLevel string
	var kubeconfigWait time.Duration

	cmd := &cobra.Command{
		Use:   "monitor path_to_kubeconfig path_to_haproxy_cfg_template path_to_config",
		Short: "Monitors the control-plane members and keeps haproxy.cfg in step",
		Long: "Watches the control-plane Nodes and the kubernetes EndpointSlices through the given kubeconfig,\n" +
			"renders the haproxy.cfg template when the members change, writes the result atomically and\n" +
			"asks the haproxy container to reload over its unix socket.",
		Args:          cobra.ExactArgs(3),
		SilenceUsage:  false,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true // past argument parsing, errors are not usage errors
			lvl, err := logrus.ParseLevel(logLevel)
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := logrus.New()
			log.SetLevel(lvl)
			// Milliseconds: a failover takes tens of them.
			log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
			cfg.Log = log
			kubeclient.RouteErrors(log, 30*time.Second, nil)
			cfg.KubeconfigPath, cfg.TemplatePath, cfg.ConfigPath = args[0], args[1], args[2]
			cfg.VIPs, err = vipList(apiVIP, apiVIPs, log)
			if err != nil {
				return err
			}
			if cfg.HAProxyBinary != "" {
				if cfg.HAProxyBinary, err = findHAProxy(cfg.HAProxyBinary, cmd.Flags().Changed("haproxy-binary"), log); err != nil {
					return err
				}
			}
			// Detect a dead apiserver connection in seconds, not client-go's
			// default 45 s; read by client-go when the transport is built.
			setDefaultEnv("HTTP2_READ_IDLE_TIMEOUT_SECONDS", "5")
			setDefaultEnv("HTTP2_PING_TIMEOUT_SECONDS", "3")

			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if err := waitForKubeconfig(ctx, cfg.KubeconfigPath, cfg.HealthAddr, kubeconfigWait, log); err != nil {
				return err
			}
			m, err := monitor.New(cfg)
			if err != nil {
				return err
			}
			// SIGHUP re-reads the template instead of killing the process.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					m.Reread()
				}
			}()
			return m.Run(ctx)
		},
	}
	f := cmd.Flags()
	// The original's flags, names, types and defaults unchanged.
	f.Uint16Var(&cfg.APIPort, "api-port", def.APIPort, "Port where the OpenShift API listens")
	f.Uint16Var(&cfg.LBPort, "lb-port", def.LBPort, "Port where the API HAProxy LB will listen")
	f.Uint16Var(&cfg.StatPort, "stat-port", def.StatPort, "Port where the HAProxy stats API will listen")
	f.DurationVar(&cfg.CheckInterval, "check-interval", def.CheckInterval, "Time between monitor checks")
	f.IPVar(&apiVIP, "api-vip", nil, "DEPRECATED: Virtual IP Address to reach the OpenShift API")
	f.IPSliceVar(&apiVIPs, "api-vips", nil, "Virtual IP Addresses to reach the OpenShift API")
	_ = f.MarkDeprecated("api-vip", "use --api-vips")
	// Ours.
	f.StringVar(&cfg.ReloadSocket, "reload-socket", def.ReloadSocket, "Unix socket of the haproxy container's reloader")
	f.DurationVar(&cfg.Debounce, "debounce", def.Debounce, "A change after a quiet period renders at once; later ones wait this long for more")
	f.DurationVar(&cfg.MaxDebounce, "max-debounce", def.MaxDebounce, "Longest a render waits while changes keep coming")
	f.DurationVar(&cfg.APITimeout, "api-timeout", def.APITimeout, "Connect timeout for each apiserver endpoint tried")
	f.StringVar(&cfg.HAProxyBinary, "haproxy-binary", def.HAProxyBinary, "haproxy used to validate each new config with -c; empty disables")
	f.StringVar(&cfg.HealthAddr, "health-bind-address", def.HealthAddr, "Address serving /healthz, /readyz and /metrics; empty disables")
	f.StringVar(&cfg.HealthAddr, "metrics-bind-address", def.HealthAddr, "DEPRECATED: the old name of --health-bind-address")
	_ = f.MarkDeprecated("metrics-bind-address", "use --health-bind-address")
	f.StringVar(&cfg.StatsSocket, "haproxy-stats-socket", def.StatsSocket, "haproxy runtime API socket used to confirm reloads and export backend states; empty disables")
	f.DurationVar(&cfg.VerifyTimeout, "reload-verify-timeout", def.VerifyTimeout, "How long a delivered reload may take to show in haproxy's runtime API")
	f.StringVar(&cfg.AdminSocket, "haproxy-admin-socket", def.AdminSocket, "Admin-level haproxy runtime API socket: membership changes without a reload, drains; empty: every change reloads")
	f.DurationVar(&cfg.RemovalGrace, "removal-grace", def.RemovalGrace, "How long a removed server drains before its remaining connections are shut")
	f.DurationVar(&cfg.RemovalSpread, "removal-spread", def.RemovalSpread, "Time over which a removed server's remaining connections are shut, one by one")
	f.BoolVar(&cfg.Redirect, "api-redirect", def.Redirect, "Redirect VIP:api-port to lb-port with nftables while haproxy reports the API reachable")
	f.StringVar(&cfg.RedirectProbeURL, "redirect-probe-url", def.RedirectProbeURL, "haproxy monitor-uri, probed every 100 ms; the redirect's hysteresis counts one observation per check interval")
	f.BoolVar(&cfg.WatchHAProxy, "watch-haproxy", def.WatchHAProxy, "Hold a keep-alive connection to the probe URL (one request, then idle), so that haproxy's death takes the redirect out at once rather than at the next probe")
	f.IntVar(&cfg.RedirectOnAfter, "redirect-on-after", def.RedirectOnAfter, "Consecutive good probes before the redirect goes in")
	f.IntVar(&cfg.RedirectOffAfter, "redirect-off-after", def.RedirectOffAfter, "Consecutive bad probes before it comes out")
	f.StringVar(&cfg.TrackFile, "keepalived-track-file", def.TrackFile, "keepalived track file to write (weight -1): -253 while the local haproxy serves and the VIP is here, 0 while it serves, 253 while only the local apiserver does, 254 when neither does or on shutdown; empty disables")
	f.StringVar(&cfg.LocalAPIURL, "local-apiserver-url", def.LocalAPIURL, "The local kube-apiserver's readiness URL, probed while haproxy does not serve; empty: https://localhost:<api-port>/readyz")
	f.DurationVar(&cfg.HandOver, "vip-handover-timeout", def.HandOver, "On SIGTERM, how long to wait for the VIP to leave this node before removing the redirect")
	f.DurationVar(&cfg.HandOverSettle, "vip-handover-settle", def.HandOverSettle, "On SIGTERM, how long new connections stay held after the VIP left, for another node to take it")
	f.DurationVar(&kubeconfigWait, "kubeconfig-wait", 10*time.Minute, "At start, how long to wait for the kubeconfig and the certificate files it names to exist (a joining node's kubelet writes them during TLS bootstrap, after the static pods start); 0: fail at once")
	f.StringVar(&logLevel, "log-level", "info", "Log level: debug, info, warn, error")
	return cmd
}

// waitForKubeconfig waits for the kubeconfig's files (kubeclient's
// WaitForCredentials) while answering the liveness probe on healthAddr, so
// the kubelet does not restart a monitor that waits for the kubelet's own
// TLS bootstrap; /readyz says not ready. The stand-in listener closes before
// the monitor's own opens.
func waitForKubeconfig(ctx context.Context, path, healthAddr string, wait time.Duration, log logrus.FieldLogger) error {
	missing, err := kubeclient.MissingCredentials(path)
	if err != nil || len(missing) == 0 || wait <= 0 {
		return err // nothing to wait for; monitor.New reports what is wrong
	}
	if healthAddr != "" {
		ln, err := net.Listen("tcp", healthAddr)
		if err != nil {
			return fmt.Errorf("health listener on %s: %w", healthAddr, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok: waiting for the kubeconfig") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "waiting for the kubeconfig "+path, http.StatusServiceUnavailable)
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	return kubeclient.WaitForCredentials(ctx, path, wait, 500*time.Millisecond, log)
}

// vipList merges the deprecated single VIP into the list like the original.
func vipList(single net.IP, list []net.IP, log logrus.FieldLogger) ([]netip.Addr, error) {
	if len(list) == 0 && single != nil {
		list = []net.IP{single}
	} else if single != nil {
		log.WithField("api-vip", single).Warn("--api-vips given; ignoring the deprecated --api-vip")
	}
	out := make([]netip.Addr, 0, len(list))
	for _, ip := range list {
		a, ok := netip.AddrFromSlice(ip)
		if !ok || a.Unmap().IsUnspecified() {
			return nil, fmt.Errorf("VIP %v is not a usable address", ip)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

// findHAProxy resolves the validation binary. When the flag was left at its
// default and no haproxy is installed (the monitor image need not ship one),
// validation is off with a warning instead of failing every apply.
func findHAProxy(name string, explicit bool, log logrus.FieldLogger) (string, error) {
	path, err := exec.LookPath(name)
	switch {
	case err == nil:
		return path, nil
	case explicit:
		return "", fmt.Errorf("--haproxy-binary: %w", err)
	}
	log.WithField("binary", name).Warn("haproxy not found; new configurations are not validated with haproxy -c")
	return "", nil
}

func setDefaultEnv(key, value string) {
	if _, ok := os.LookupEnv(key); !ok {
		_ = os.Setenv(key, value)
	}
}
