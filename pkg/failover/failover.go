package failover

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/redirect"
)

// Tracker is told what this node serves: keepalived's track file
// (keepalived.TrackFile) in production.
type Tracker interface {
	Set(keepalived.Level) error
}

// TrackState is implemented by a Tracker that can tell what it last said.
type TrackState interface {
	Level() (keepalived.Level, error)
}

// Options configure a Controller.
type Options struct {
	// Probe asks haproxy whether it serves (its monitor-uri, which fails
	// while no apiserver backend is up).
	Probe func(ctx context.Context) error
	// Interval is the check interval: the redirect's hysteresis counts one
	// observation per Interval, and a probe's timeout is at most Interval.
	Interval time.Duration
	// ProbeInterval is how often haproxy is probed; 0: Interval.
	ProbeInterval time.Duration
	// Watch, if set, holds a connection to haproxy and returns once it is
	// closed (HoldConnection); the probe that follows decides what the
	// close meant: a reload's soft stop or an idle timeout (haproxy still
	// answers) or haproxy gone (refused, reset or cut off).
	Watch func(ctx context.Context) error
	// Redirect is the VIP redirect; nil: none.
	Redirect *redirect.Switch
	// Track, if set, is told after every probe how this node grades
	// (Grade); Fault when the controller stops.
	Track      Tracker
	TrackError func(error)
	// LocalProbe checks the local apiserver, which VIP:api-port reaches
	// directly once the redirect is out; nil: Fault whenever haproxy does
	// not serve.
	LocalProbe func(ctx context.Context) error
	// HoldsVIP, if set with Track, reports whether a VIP is on this node.
	// On shutdown the controller holds new connections to the VIP (with a
	// Redirect that can hold), faults the track file and waits, at most
	// HandOver, for keepalived to move the VIP away, then Settle more for
	// another node to take it, before the redirect and the hold come out.
	// A client's new connection waits for its SYN's retransmission instead
	// of landing on a node that is going, and what was in flight finishes
	// there.
	HoldsVIP         func() bool
	HandOver, Settle time.Duration
	// Clock is the time source; nil: the real clock.
	Clock clock.WithTicker
	Log   logrus.FieldLogger
}

// Controller watches the local haproxy, probing it every ProbeInterval and,
// with Watch, holding a connection to it so that its death is an event
// rather than the next probe's finding. From each probe it drives the
// redirect switch and grades this node for keepalived; when its context
// ends it hands the VIP over and takes the redirect out. Its state is its
// own goroutine's.
type Controller struct {
	o     Options
	clock clock.WithTicker
	// track smooths haproxy's health for keepalived: serving after two
	// good probes, not after two bad ones (at once when gone).
	track    redirect.Hysteresis
	tracked  *keepalived.Level
	closedAt time.Time // when the held connection last closed
}

// New returns a Controller; Run starts it.
func New(o Options) *Controller {
	c := &Controller{o: o, clock: o.Clock, track: redirect.Hysteresis{OnAfter: 2, OffAfter: 2}}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	if c.o.ProbeInterval <= 0 {
		c.o.ProbeInterval = c.o.Interval
	}
	return c
}

// Observation is what the controller saw of this node after a probe.
type Observation struct {
	// Serving: the local haproxy serves (its monitor-uri passes), after
	// the track hysteresis.
	Serving bool
	// HoldsVIP: a VIP is on this node.
	HoldsVIP bool
	// LocalAPIServes: the local apiserver answers; asked only while
	// haproxy does not serve.
	LocalAPIServes bool
}

// Grade is the level keepalived is told for what was observed: Holding or
// Serving while haproxy serves (Holding with the VIP here: the priority's
// ceiling, so a holder that serves keeps the VIP), else LocalOnly while the
// local apiserver answers (priority 1: the VIP stays until a node that
// serves takes it), else Fault.
func Grade(o Observation) keepalived.Level {
	switch {
	case o.Serving && o.HoldsVIP:
		return keepalived.Holding
	case o.Serving:
		return keepalived.Serving
	case o.LocalAPIServes:
		return keepalived.LocalOnly
	}
	return keepalived.Fault
}

// Run probes until ctx ends, then hands the VIP over and removes the rules.
func (c *Controller) Run(ctx context.Context) {
	c.takeOver(ctx)
	t := c.clock.NewTicker(c.o.ProbeInterval)
	defer t.Stop()
	// closed carries the end of a held connection; at most one is held.
	closed := make(chan error, 1)
	watching, woken, rearm := false, false, false
	var heldSince time.Time
	for {
		ok := c.step(ctx, woken)
		// Right after a close only if the connection was held at least a
		// probe interval (haproxy ends idle keep-alive connections after
		// its timeout, and a kill in the gap until the next tick would be
		// noticed only by a probe); one that cannot be held must not turn
		// the loop into a spin: the next tick starts it.
		if c.o.Watch != nil && ok && !watching && (!woken || rearm) {
			watching, heldSince = true, c.clock.Now()
			go func() { closed <- c.o.Watch(ctx) }()
		}
		woken = false
		select {
		case <-ctx.Done():
			if watching {
				<-closed
			}
			c.shutdown()
			return
		case <-t.C():
		case err := <-closed:
			watching, woken = false, true
			c.closedAt = c.clock.Now()
			rearm = c.closedAt.Sub(heldSince) >= c.o.ProbeInterval
			c.o.Log.WithError(err).Debug("connection held to haproxy closed; probing at once")
		}
	}
}

// takeOver starts from what a previous run left, if haproxy serves now: its
// redirect rules stay in and the track file goes on saying serving, so a
// monitor restarted on the VIP holder (a crash, an upgrade of its
// container) moves neither the VIP nor a connection. Otherwise leftovers
// come out and the probes decide from the start.
func (c *Controller) takeOver(ctx context.Context) {
	err := c.probe(ctx, c.o.Probe)
	if c.o.Redirect != nil {
		c.o.Redirect.TakeOver(c.clock.Now(), err == nil)
	}
	if s, ok := c.o.Track.(TrackState); ok && err == nil {
		if l, serr := s.Level(); serr == nil && (l == keepalived.Serving || l == keepalived.Holding) {
			c.track.Start(true)
			c.tracked = &l
			c.o.Log.Info("haproxy serves: keepalived's track file already says so")
		}
	}
}

// step probes once and acts, the redirect first (the data path), then the
// track file; it reports whether the probe passed. woken says a held
// connection to haproxy just closed: a probe then cut off (refused, reset,
// closed) means haproxy died, not that it is slow.
func (c *Controller) step(ctx context.Context, woken bool) bool {
	err := c.probe(ctx, c.o.Probe)
	if ctx.Err() != nil {
		return false
	}
	gone := errors.Is(err, syscall.ECONNREFUSED) || (woken && cutOff(err))
	if c.o.Redirect != nil {
		c.o.Redirect.Observe(c.clock.Now(), err, gone, c.closedAt)
	}
	if c.o.Track != nil {
		serving, _ := c.track.Observe(err == nil)
		if gone {
			c.track.Reset()
			serving = false
		}
		obs := Observation{Serving: serving, HoldsVIP: serving && c.o.HoldsVIP != nil && c.o.HoldsVIP()}
		if !serving && c.o.LocalProbe != nil {
			lctx, cancel := context.WithTimeout(ctx, min(c.o.Interval, time.Second))
			obs.LocalAPIServes = c.o.LocalProbe(lctx) == nil
			cancel()
		}
		c.setTracked(Grade(obs))
	}
	return err == nil
}

// probe runs p with a timeout of min(Interval, 2 s).
func (c *Controller) probe(ctx context.Context, p func(context.Context) error) error {
	pctx, cancel := context.WithTimeout(ctx, min(c.o.Interval, 2*time.Second))
	defer cancel()
	return p(pctx)
}

// cutOff reports a probe that lost its connection rather than an answer.
func cutOff(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// shutdown holds new connections to the VIP, tells keepalived this node is
// going, waits until the VIP has left (bounded) and another node has had
// time to take it, then removes the rules and the hold.
func (c *Controller) shutdown() {
	if c.o.Track != nil {
		// keepalived, stopped with the monitor (a node shutting down), may
		// have removed the VIP already; clients that have not heard of the
		// next holder still send here, so hold as if it were still here.
		wasHolding := c.tracked != nil && *c.tracked == keepalived.Holding
		holding := c.o.HoldsVIP != nil && (c.o.HoldsVIP() || wasHolding)
		if holding && c.o.Redirect != nil {
			if ok, err := c.o.Redirect.Hold(); err != nil {
				c.o.Log.WithError(err).Warn("holding new connections to the VIP while it moves")
			} else if ok {
				c.o.Log.Info("holding new connections to the VIP while it moves to another node")
			}
		}
		c.setTracked(keepalived.Fault)
		if holding {
			c.handOver()
		}
	}
	if c.o.Redirect == nil {
		return
	}
	was := c.o.Redirect.Installed()
	if err := c.o.Redirect.Remove(); err != nil {
		c.o.Log.WithError(err).Error("removing API redirect rules on shutdown")
		return
	}
	if was {
		c.o.Log.Info("API redirect rules removed on shutdown")
	}
}

// handOver waits, by the clock, for the VIP to leave this node (at most
// HandOver), then Settle for another node to announce it.
func (c *Controller) handOver() {
	start := c.clock.Now()
	deadline := c.clock.NewTimer(c.o.HandOver)
	defer deadline.Stop()
	check := c.clock.NewTicker(20 * time.Millisecond)
	defer check.Stop()
	for c.o.HoldsVIP() {
		select {
		case <-deadline.C():
			c.o.Log.WithField("waited", c.o.HandOver).Warn("the VIP did not leave this node; removing the API redirect anyway")
			return
		case <-check.C():
		}
	}
	c.o.Log.WithField("after", c.clock.Since(start).Round(time.Millisecond)).Info("the VIP left this node")
	settle := c.clock.NewTimer(c.o.Settle)
	defer settle.Stop()
	<-settle.C()
}

func (c *Controller) setTracked(l keepalived.Level) {
	if c.tracked != nil && *c.tracked == l {
		return
	}
	if err := c.o.Track.Set(l); err != nil {
		if c.o.TrackError != nil {
			c.o.TrackError(err)
		}
		return
	}
	c.tracked = &l
	c.o.Log.WithField("level", l.String()).Info("told keepalived what this node serves")
}
