package haproxyctl

import (
	"context"
	"time"

	"k8s.io/utils/clock"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// Sampler reads the servers' health from haproxy's runtime API every
// Interval, for the metrics; it changes nothing.
type Sampler struct {
	Socket   string
	Interval time.Duration
	Clock    clock.WithTicker
}

// Run samples until ctx ends, handing each sample to emit.
func (s *Sampler) Run(ctx context.Context, emit func(context.Context, Event)) {
	t := s.Clock.NewTicker(s.Interval)
	defer t.Stop()
	for {
		servers, err := runtimeapi.ServersState(ctx, s.Socket, "")
		ev := Event{Kind: Sampled, At: s.Clock.Now(), Err: err}
		for _, sv := range servers {
			if sv.Up {
				ev.Up++
			} else {
				ev.Down++
			}
		}
		if ctx.Err() != nil {
			return
		}
		emit(ctx, ev)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}
