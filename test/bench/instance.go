package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

const (
	ours     = "haproxy-monitor"
	baseline = "baseline"
)

// instance is one monitor process (ours or the baseline) writing its own cfg
// and sending reloads to its own sink.
type instance struct {
	impl string
	proc *harness.Process
	sink *sink
	hap  *harness.HAProxy // paths and ports only; haproxy does not run
}

func (b *bench) start(impl string) (*instance, error) {
	b.seq++
	dir := filepath.Join(b.dir, fmt.Sprintf("%s-%d", impl, b.seq))
	hap, err := harness.PrepareHAProxy(dir)
	if err != nil {
		return nil, err
	}
	sk, err := newSink(hap.MasterSock)
	if err != nil {
		return nil, err
	}
	in := &instance{impl: impl, sink: sk, hap: hap}
	// No haproxy runs here: every change goes to the sink as a reload, as
	// the baseline's do.
	args := harness.MonitorArgs{Kubeconfig: b.kubeconfig, HAProxy: hap, APIPort: b.apiPort, VIPs: "127.0.0.100",
		Extra: []string{"--haproxy-admin-socket", ""}}
	logPath := filepath.Join(dir, "monitor.log")
	switch impl {
	case ours:
		in.proc, err = harness.StartMonitor(b.oursBin, logPath, args)
	case baseline:
		in.proc, err = harness.StartProcess(baseline, logPath, nil, b.baseBin,
			"--api-port", strconv.Itoa(b.apiPort), "--lb-port", strconv.Itoa(hap.LBPort),
			"--stat-port", strconv.Itoa(hap.StatPort), "--check-interval", "6s",
			"--api-vips", "127.0.0.100", "--reload-socket", hap.MasterSock,
			b.kubeconfig, hap.TemplatePath, hap.CfgPath)
	}
	if err != nil {
		sk.close()
		return nil, err
	}
	return in, nil
}

// ready waits for the first reload: the instance has applied its initial view.
func (in *instance) ready() error {
	if _, ok := in.sink.waitAfter(0, 60*time.Second); !ok {
		return fmt.Errorf("%s sent no reload within 60 s:\n%s", in.impl, in.proc.Tail(20))
	}
	return nil
}

func (in *instance) stop() {
	in.proc.Stop(10 * time.Second)
	in.sink.close()
}

// resetNodes leaves exactly three masters m1..m3 on 127.0.0.11-13.
func (b *bench) resetNodes(ctx context.Context) error {
	if err := harness.DeleteAllNodes(ctx, b.client); err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		n := harness.NodeObject(fmt.Sprintf("m%d", i), harness.MasterLabel, fmt.Sprintf("127.0.0.%d", 10+i))
		if err := harness.CreateNode(ctx, b.client, n); err != nil {
			return err
		}
	}
	return nil
}

// change makes trial i's membership change: add m4, move m4, delete m4.
func (b *bench) change(ctx context.Context, i int) (kind string, err error) {
	switch i % 3 {
	case 0:
		return "add", harness.CreateNode(ctx, b.client, harness.NodeObject("m4", harness.MasterLabel, "127.0.0.14"))
	case 1:
		return "address", harness.SetInternalIP(ctx, b.client, "m4", "127.0.0.15")
	default:
		return "remove", b.client.CoreV1().Nodes().Delete(ctx, "m4", metav1.DeleteOptions{})
	}
}

// startBoth resets the Nodes and runs one instance of each implementation,
// both having applied their first view. stop ends whichever started.
func (b *bench) startBoth(ctx context.Context) (ins map[string]*instance, stop func(), err error) {
	ins = map[string]*instance{}
	stop = func() {
		for _, in := range ins {
			in.stop()
		}
	}
	if err := b.resetNodes(ctx); err != nil {
		return ins, stop, err
	}
	for _, impl := range []string{ours, baseline} {
		in, err := b.start(impl)
		if err != nil {
			return ins, stop, err
		}
		ins[impl] = in
		if err := in.ready(); err != nil {
			return ins, stop, err
		}
	}
	return ins, stop, nil
}
