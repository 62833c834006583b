package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

// footprint: RSS and CPU of each monitor, idle and under churn, with 3
// masters, then with the workers added.
func (b *bench) footprint() error {
	ctx := context.Background()
	ins, stop, err := b.startBoth(ctx)
	defer stop()
	if err != nil {
		return err
	}
	type row struct {
		scenario, impl string
		fp             footprint
	}
	var rows []row
	measure := func(scenario string, churn func(stop <-chan struct{})) error {
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		fps := map[string]footprint{}
		var mu sync.Mutex
		// Both processes are watched over the same window and the same churn.
		stopChurn := make(chan struct{})
		if churn != nil {
			go churn(stopChurn)
		}
		for impl, in := range ins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fp, err := measureFootprint(in.proc.PID(), b.cfg.fpWindow, nil)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				fps[impl] = fp
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(stopChurn)
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		for _, impl := range []string{ours, baseline} {
			fp := fps[impl]
			rows = append(rows, row{scenario, impl, fp})
			b.sample(fmt.Sprintf("Footprint/%s/impl=%s", scenario, impl), fp.PeakRSSMiB, "MiB")
			b.sample(fmt.Sprintf("FootprintCPU/%s/impl=%s", scenario, impl), fp.CPUPercent, "%cpu")
			fmt.Printf("   %-28s %-16s RSS %6.1f MiB  CPU %5.2f %%\n", scenario, impl, fp.PeakRSSMiB, fp.CPUPercent)
		}
		return nil
	}
	churn := func(workers int) func(stop <-chan struct{}) {
		return func(stop <-chan struct{}) {
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				// A master moves every 250 ms; 25 workers heartbeat per tick.
				_ = harness.SetInternalIP(ctx, b.client, "m3", fmt.Sprintf("127.0.0.%d", 13+i%2))
				for j := 0; j < 25 && workers > 0; j++ {
					_ = harness.Heartbeat(ctx, b.client, fmt.Sprintf("w%d", rand.IntN(workers)))
				}
			}
		}
	}
	if err := measure("3 masters, idle", nil); err != nil {
		return err
	}
	if err := measure("3 masters, churn", churn(0)); err != nil {
		return err
	}
	fmt.Printf("   creating %d worker Nodes\n", b.cfg.workers)
	if err := b.createWorkers(ctx, b.cfg.workers); err != nil {
		return err
	}
	label := fmt.Sprintf("+%d workers", b.cfg.workers)
	if err := measure(label+", idle", nil); err != nil {
		return err
	}
	if err := measure(label+", churn", churn(b.cfg.workers)); err != nil {
		return err
	}
	b.printf("\n## 3. Footprint\n\n")
	b.printf("Peak RSS and CPU share of each monitor process over %v windows, both watched at once. Churn: a master's\n", b.cfg.fpWindow)
	b.printf("InternalIP changes every 250 ms, and with workers present 100 worker heartbeats per second.\n")
	b.printf("Goal: RSS under 40 MiB and flat in the number of workers. haproxy-monitor's CPU under churn is mostly\n")
	b.printf("`haproxy -c` validating the 4 new configurations a second; the baseline polls and does not notice them.\n\n")
	b.printf("| scenario | haproxy-monitor RSS | baseline RSS | haproxy-monitor CPU | baseline CPU |\n|---|---|---|---|---|\n")
	for i := 0; i+1 < len(rows); i += 2 {
		b.printf("| %s | %.1f MiB | %.1f MiB | %.2f %% | %.2f %% |\n", rows[i].scenario,
			rows[i].fp.PeakRSSMiB, rows[i+1].fp.PeakRSSMiB, rows[i].fp.CPUPercent, rows[i+1].fp.CPUPercent)
	}
	return nil
}

func (b *bench) createWorkers(ctx context.Context, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ip := fmt.Sprintf("198.19.%d.%d", i/250, i%250+1)
				if err := harness.CreateNode(ctx, b.client, harness.NodeObject(fmt.Sprintf("w%d", i), "", ip)); err != nil {
					select { // keep the first error, keep draining
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}
