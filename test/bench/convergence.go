package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/chart"
)

// convergence: API write → reload received on the socket.
func (b *bench) convergence() error {
	ctx := context.Background()
	results := map[string][]float64{}
	for _, run := range []struct {
		impl   string
		trials int
	}{{ours, b.cfg.trialsOurs}, {baseline, b.cfg.trialsBaseline}} {
		if err := b.resetNodes(ctx); err != nil {
			return err
		}
		in, err := b.start(run.impl)
		if err != nil {
			return err
		}
		if err := in.ready(); err != nil {
			in.stop()
			return err
		}
		for i := 0; i < run.trials; i++ {
			// Writes land at a random point of the baseline's 6 s poll cycle,
			// as real changes would; ours has no cycle to be in phase with.
			if run.impl == baseline {
				time.Sleep(time.Duration(rand.Int64N(int64(6 * time.Second))))
			}
			n := in.sink.count()
			start := time.Now()
			kind, err := b.change(ctx, i)
			if err != nil {
				in.stop()
				return err
			}
			got, ok := in.sink.waitAfter(n, 60*time.Second)
			if !ok {
				in.stop()
				return fmt.Errorf("%s: no reload within 60 s of trial %d (%s)", run.impl, i, kind)
			}
			d := ms(got.Sub(start))
			results[run.impl] = append(results[run.impl], d)
			b.sample("Convergence/impl="+run.impl, d, "ms")
			fmt.Printf("   %-16s trial %2d %-8s %9.1f ms\n", run.impl, i, kind, d)
		}
		in.stop()
	}
	o, base := summarize(results[ours]), summarize(results[baseline])
	b.printf("\n## 1. Convergence: API write → `reload` received on the socket\n\n")
	b.printf("Writes cycle through add a master, change its InternalIP, delete it; baseline writes start at a random\n")
	b.printf("point of its 6 s poll cycle. haproxy-monitor runs with its defaults (150 ms debounce, `haproxy -c` validation).\n")
	b.printf("Trials follow each other at once, so each write lands within the debounce's quiet time after the previous\n")
	b.printf("render and waits it out: the debounce's worst case. An isolated change is rendered at once (section 6).\n")
	b.printf("Goal: p99 under 250 ms.\n\n")
	b.printf("| | trials | min | median | p99 |\n|---|---|---|---|---|\n")
	b.printf("| haproxy-monitor | %d | %.0f ms | %.0f ms | %.0f ms |\n", o.N, o.Min, o.Median, o.P99)
	b.printf("| baseline | %d | %.0f ms | %.0f ms | %.0f ms |\n", base.N, base.Min, base.Median, base.P99)
	b.printf("| ratio baseline ÷ ours | | %.0f× | %.0f× | %.0f× |\n", base.Min/o.Min, base.Median/o.Median, base.P99/o.P99)
	return b.picture("convergence.png", "API write → reload received, every trial", "ms",
		chart.Series{Name: "haproxy-monitor", Samples: results[ours]}, chart.Series{Name: "the original's algorithm", Samples: results[baseline]})
}
