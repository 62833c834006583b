package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

// economy: reloads caused by heartbeat churn (goal 0) and by a burst of
// changes.
func (b *bench) economy() error {
	ctx := context.Background()
	ins, stop, err := b.startBoth(ctx)
	defer stop()
	if err != nil {
		return err
	}
	before := map[string]int{ours: ins[ours].sink.count(), baseline: ins[baseline].sink.count()}
	beats := 0
	start := time.Now()
	for time.Since(start) < b.cfg.econWindow {
		for i := 1; i <= 3; i++ {
			if err := harness.Heartbeat(ctx, b.client, fmt.Sprintf("m%d", i)); err != nil {
				return err
			}
			beats++
		}
		time.Sleep(time.Second) // each master heartbeats once a second, 10× the kubelet's default
	}
	hours := time.Since(start).Hours()
	perHour := map[string]float64{}
	for impl, in := range ins {
		perHour[impl] = float64(in.sink.count()-before[impl]) / hours
		b.sample("ReloadsPerHourHeartbeats/impl="+impl, perHour[impl], "reloads/h")
	}
	fmt.Printf("   %d heartbeats: %.0f reloads/h (ours), %.0f reloads/h (baseline)\n", beats, perHour[ours], perHour[baseline])

	// Burst: 100 changes as fast as the API takes them.
	for impl := range ins {
		before[impl] = ins[impl].sink.count()
	}
	burstStart := time.Now()
	for i := 1; i <= 100; i++ { // m3 cycles through .13, .14, .15 and ends on .14
		if err := harness.SetInternalIP(ctx, b.client, "m3", fmt.Sprintf("127.0.0.%d", 13+i%3)); err != nil {
			return err
		}
	}
	burst := time.Since(burstStart)
	final := "127.0.0.14"
	counts := map[string]int{}
	for impl, in := range ins {
		ok := harness.Poll(60*time.Second, 50*time.Millisecond, func() bool {
			return strings.Contains(readFile(in.hap.CfgPath), "server m3 "+final+":")
		})
		if !ok {
			return fmt.Errorf("%s did not apply the final state of the burst", impl)
		}
		// Settled: no further reload for 3 s (the baseline needs a full
		// observation cycle to be sure; ours is done well before).
		for last := in.sink.count(); ; {
			time.Sleep(3 * time.Second)
			if n := in.sink.count(); n == last {
				break
			} else {
				last = n
			}
		}
		counts[impl] = in.sink.count() - before[impl]
		b.sample("ReloadsBurst100/impl="+impl, float64(counts[impl]), "reloads")
	}
	fmt.Printf("   100 changes in %v: %d reloads (ours), %d reloads (baseline)\n", burst.Round(time.Millisecond), counts[ours], counts[baseline])
	b.printf("\n## 4. Reload economy\n\n")
	b.printf("| | haproxy-monitor | baseline |\n|---|---|---|\n")
	b.printf("| heartbeat churn (%d heartbeats over %v), reloads per hour | %.0f | %.0f |\n", beats, b.cfg.econWindow, perHour[ours], perHour[baseline])
	b.printf("| burst of 100 changes in %v, reloads | %d | %d |\n", burst.Round(time.Millisecond), counts[ours], counts[baseline])
	b.printf("\nThe baseline also reloads zero times on heartbeats (it compares configurations); its burst count is low\n")
	b.printf("because it applies nothing until three polls agree, which is what costs it 12-18 s per change.\n")
	return nil
}
