// Command baseline is the original monitor's algorithm, rebuilt from this
// project's pure packages for side-by-side benchmarks: a full LIST of master
// Nodes every --check-interval through the kubeconfig's server with a 30 s
// timeout, a change applied only after three identical observations, the
// config written and "reload" sent; with --api-redirect, the original's
// firewall loop: haproxy's monitor-uri probed once per check interval by an
// HTTP client without a timeout, the nftables redirect in after 3 good
// probes and out after 11 bad ones, removed on SIGTERM. It is a measuring
// stick (benchmarks, the lab's baseline column), not a product.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/failover"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxyctl"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/redirect"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/render"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run() error {
	apiPort := flag.Uint("api-port", 6443, "")
	lbPort := flag.Uint("lb-port", 9445, "")
	statPort := flag.Uint("stat-port", 29445, "")
	interval := flag.Duration("check-interval", 6*time.Second, "")
	vips := flag.String("api-vips", "", "")
	sock := flag.String("reload-socket", haproxyctl.DefaultSocket, "")
	apiRedirect := flag.Bool("api-redirect", false, "run the original's firewall redirect loop")
	probeURL := flag.String("probe-url", "http://localhost:9444/haproxy_ready", "haproxy's monitor-uri")
	flag.Parse()
	if flag.NArg() != 3 {
		return fmt.Errorf("usage: baseline kubeconfig template cfg [flags]")
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", flag.Arg(0))
	if err != nil {
		return err
	}
	restCfg.Timeout = 30 * time.Second
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	r, err := render.Load(flag.Arg(1))
	if err != nil {
		return err
	}
	opts := lbconfig.Options{APIPort: uint16(*apiPort), LBPort: uint16(*lbPort), StatPort: uint16(*statPort)}
	for _, v := range strings.Split(*vips, ",") {
		if a, err := netip.ParseAddr(v); err == nil {
			opts.VIPs = append(opts.VIPs, a)
		}
	}
	file := &apply.File{Path: flag.Arg(2)}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *apiRedirect {
		done := make(chan struct{})
		go func() {
			defer close(done)
			redirectLoop(ctx, &redirect.Redirect{VIPs: opts.VIPs, APIPort: opts.APIPort, LBPort: opts.LBPort}, *probeURL, *interval)
		}()
		defer func() { stop(); <-done }()
	}

	var last, applied *lbconfig.LBConfig
	same := 0
	for {
		cfg, err := observe(ctx, client, opts)
		switch {
		case err != nil:
			fmt.Fprintln(os.Stderr, "list:", err)
			same = 0
		case last != nil && reflect.DeepEqual(*last, cfg):
			same++
		default:
			last, same = &cfg, 1
		}
		if same >= 3 && (applied == nil || !reflect.DeepEqual(*applied, cfg)) {
			data, err := r.Render(lbconfig.TemplateData{LBConfig: cfg})
			if err == nil {
				_, err = file.Apply(ctx, data)
			}
			if err == nil {
				err = sendReload(*sock)
			}
			if err != nil {
				return err // the original exits on render or socket errors
			}
			applied = &cfg
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

func observe(ctx context.Context, client kubernetes.Interface, opts lbconfig.Options) (lbconfig.LBConfig, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "node-role.kubernetes.io/master"})
	if err != nil {
		return lbconfig.LBConfig{}, err
	}
	nodes := make([]lbconfig.Node, 0, len(list.Items))
	for _, n := range list.Items {
		ln := lbconfig.Node{Name: n.Name}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ln.InternalIPs = append(ln.InternalIPs, a.Address)
			}
		}
		nodes = append(nodes, ln)
	}
	cfg, _ := lbconfig.Build(nodes, opts)
	return cfg, nil
}

// redirectLoop is the original's: one probe per interval, 3 good to put the
// redirect in, 11 bad to take it out, whatever the failure; out on exit.
func redirectLoop(ctx context.Context, rules *redirect.Redirect, url string, interval time.Duration) {
	h := redirect.Hysteresis{OnAfter: 3, OffAfter: 11}
	probe := failover.HTTPProbe(url) // no timeout but the shutdown, as the original's
	for ctx.Err() == nil {
		ok := probe(ctx) == nil
		if ctx.Err() != nil {
			break // a probe cut short by the shutdown is no observation
		}
		active, changed := h.Observe(ok)
		switch {
		case active:
			if err := rules.Ensure(); err != nil {
				fmt.Fprintln(os.Stderr, "redirect:", err)
			}
		case changed:
			if err := rules.Remove(); err != nil {
				fmt.Fprintln(os.Stderr, "redirect:", err)
			}
		}
		if changed {
			fmt.Fprintln(os.Stderr, "redirect active:", active)
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	if err := rules.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, "redirect:", err)
	}
}

func sendReload(path string) error {
	c, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte("reload\n"))
	return err
}
