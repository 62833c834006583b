// Command bench measures haproxy-monitor against the original monitor's
// algorithm (test/bench/baseline) on a real etcd + kube-apiserver from the test
// harness, side by side in one run: convergence, API load, footprint, reload
// economy, and haproxy's side of reloads under load. It prints tables, writes
// them as Markdown (-out) and writes every trial in benchstat's format
// (-benchstat) so later runs can be compared with benchstat.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/haproxy-monitor/haproxy-monitor/test/chart"
	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

type config struct {
	out, benchstat string
	phases         string
	trialsOurs     int
	trialsBaseline int
	apiWindow      time.Duration
	fpWindow       time.Duration
	workers        int
	econWindow     time.Duration
	reloads        int
}

type bench struct {
	cfg        config
	dir        string
	cp         *harness.ControlPlane
	client     kubernetes.Interface
	apiPort    int
	oursBin    string
	baseBin    string
	kubeconfig string
	report     strings.Builder
	stat       strings.Builder
	seq        int
	// pictures is where the distributions' PNGs go (docs/bench beside the
	// report); "" without -out.
	pictures string
}

// picture draws samples' distributions into name under pictures and links
// it from the report.
func (b *bench) picture(name, title, unit string, series ...chart.Series) error {
	if b.pictures == "" {
		return nil
	}
	if err := chart.Distribution(filepath.Join(b.pictures, name), title, unit, series...); err != nil {
		return err
	}
	b.printf("\n![%s](docs/bench/%s)\n", title, name)
	return nil
}

func main() {
	var c config
	flag.StringVar(&c.out, "out", "", "write the report as Markdown to this file")
	flag.StringVar(&c.benchstat, "benchstat", "", "write every trial in benchstat format to this file")
	flag.StringVar(&c.phases, "phases", "convergence,apiload,footprint,economy,haproxy,runtime", "phases to run")
	flag.IntVar(&c.trialsOurs, "trials", 30, "convergence trials for haproxy-monitor")
	flag.IntVar(&c.trialsBaseline, "baseline-trials", 6, "convergence trials for the baseline (about 15 s each)")
	flag.DurationVar(&c.apiWindow, "api-window", time.Minute, "steady-state window for the API load")
	flag.DurationVar(&c.fpWindow, "footprint-window", 20*time.Second, "window for each footprint measurement")
	flag.IntVar(&c.workers, "workers", 5000, "worker Nodes created for the footprint phase")
	flag.DurationVar(&c.econWindow, "economy-window", time.Minute, "heartbeat churn window for the reload economy")
	flag.IntVar(&c.reloads, "reloads", 100, "monitor-driven reloads under load in the haproxy phase")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	dir, err := os.MkdirTemp("", "hapm-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{cfg: c, dir: dir}
	if c.out != "" {
		b.pictures = filepath.Join(filepath.Dir(c.out), "docs", "bench")
	}
	hosts := []string{"127.0.0.1"}
	for i := 11; i <= 17; i++ {
		hosts = append(hosts, fmt.Sprintf("127.0.0.%d", i))
	}
	if b.apiPort, err = harness.FreePort(hosts...); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if b.cp, err = harness.StartControlPlane(ctx, filepath.Join(dir, "cp"), harness.ControlPlaneOptions{APIPort: b.apiPort}); err != nil {
		return err
	}
	defer b.cp.Stop()
	if b.client, err = b.cp.Client(); err != nil {
		return err
	}
	// Both monitors run as a master's kubelet would, with the grant of
	// manifests/rbac.yaml (the original's LIST of Nodes needs it as well).
	if err := harness.ApplyRBAC(ctx, b.client); err != nil {
		return err
	}
	b.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := b.cp.WriteNodeKubeconfig(b.kubeconfig, b.cp.APIServers[0].URL, "m1"); err != nil {
		return err
	}
	if b.oursBin, err = harness.MonitorBinary(dir); err != nil {
		return err
	}
	if b.baseBin, err = harness.Build(dir, "./test/bench/baseline", "baseline"); err != nil {
		return err
	}
	b.header()
	phases := map[string]func() error{
		"convergence": b.convergence, "apiload": b.apiLoad, "footprint": b.footprint,
		"economy": b.economy, "haproxy": b.haproxySide, "runtime": b.runtimePhase,
	}
	for _, name := range strings.Split(c.phases, ",") {
		f, ok := phases[name]
		if !ok {
			return fmt.Errorf("unknown phase %q", name)
		}
		fmt.Printf("\n== %s\n", name)
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Printf("   (%s took %v)\n", name, time.Since(start).Round(time.Second))
	}
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(b.report.String()), 0o644); err != nil {
			return err
		}
	}
	if c.benchstat != "" {
		if err := os.MkdirAll(filepath.Dir(c.benchstat), 0o755); err != nil {
			return err
		}
		return os.WriteFile(c.benchstat, []byte(b.stat.String()), 0o644)
	}
	return nil
}

// printf writes to stdout and to the Markdown report.
func (b *bench) printf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	fmt.Print(s)
	b.report.WriteString(s)
}

// sample records one trial for benchstat: name is a benchmark name, value in unit.
func (b *bench) sample(name string, value float64, unit string) {
	// benchstat splits on white space: no spaces or commas in names.
	name = strings.NewReplacer(" ", "-", ",", "").Replace(name)
	fmt.Fprintf(&b.stat, "Benchmark%s 1 %.3f %s\n", name, value, unit)
}

func (b *bench) header() {
	out := func(name string, args ...string) string {
		o, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "?"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(o)), "\n")
		return line
	}
	cpu := "?"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(info), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, cpu, _ = strings.Cut(l, ": ")
				break
			}
		}
	}
	ncpu := strings.TrimSpace(out("nproc"))
	b.printf("# Benchmarks\n\nGenerated by `make bench` (`go run ./test/bench -out BENCHMARKS.md -benchstat bench/latest.txt`) on %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.printf("| | |\n|---|---|\n| machine | %s, %s CPUs, kernel %s |\n| go | %s |\n| kube-apiserver | %s |\n| etcd | %s |\n| haproxy | %s |\n\n",
		cpu, ncpu, out("uname", "-r"), out("go", "version"),
		pinned("kube-apiserver"), out(filepath.Join(mustBinDir(), "etcd"), "--version"),
		out("haproxy", "-v"))
	b.printf("The baseline is the original monitor's algorithm (`test/bench/baseline`): a LIST of master Nodes every 6 s,\n" +
		"applied after three identical observations. It lists with a label selector, the generous reading of the original.\n" +
		"Each table gives min / median / p99 over the trials and the ratio baseline ÷ haproxy-monitor.\n")
}

// pinned names the version hack/build-test-binaries.sh built: a build from the
// module proxy carries no version stamp, the file name does.
func pinned(name string) string {
	target, err := filepath.EvalSymlinks(filepath.Join(mustBinDir(), name))
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(filepath.Base(target), name+"-") + " (built from the Go module proxy)"
}

func mustBinDir() string {
	d, _ := harness.BinDir()
	return d
}
