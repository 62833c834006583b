package firewall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Rules is what the controller switches; *Redirect in production.
type Rules interface {
	Ensure() error
	Remove() error
}

// Present is implemented by Rules that can tell whether they are fully in
// place, so a restarted controller can keep what its predecessor installed.
type Present interface {
	Present() (bool, error)
}

// TrackState is implemented by a Tracker that can tell what it last said.
type TrackState interface {
	Serving() (bool, error)
}

// Tracker is told whether the local haproxy serves: keepalived's track file
// (keepalived.TrackFile) in production.
type Tracker interface {
	Set(serving bool) error
}

// Controller probes haproxy every ProbeInterval and switches the redirect with
// hysteresis, which counts one observation per Interval (the original's 3 on
// / 11 off, one probe per check interval). A probe that finds nothing
// listening (connection refused: haproxy is gone) takes the redirect out at
// once, so VIP:api-port reaches the local apiserver directly; 503s and
// timeouts keep the hysteresis. While on, every observation re-ensures the
// rules, repairing them if something else flushed the ruleset.
type Controller struct {
	Rules         Rules // nil: probe for Track only
	Probe         func(ctx context.Context) error
	Interval      time.Duration
	ProbeInterval time.Duration // 0: Interval
	Hysteresis    Hysteresis
	Log           logrus.FieldLogger
	// Installed, if set, is called whenever the rules' real state changes:
	// true once they were ensured, false once removed or when ensuring them
	// failed.
	Installed func(on bool)
	// Track, if set, is told after every probe whether haproxy serves (out
	// at once when nothing listens, after two bad probes otherwise, back after
	// two good ones), and that it does not when the controller stops.
	Track      Tracker
	TrackError func(error)
	// HoldsVIP, if set with Track, reports whether a VIP is on this node: on
	// shutdown the controller waits (at most HandOver) for keepalived to
	// move it away before it takes the redirect out, so no client is sent to
	// a node that is going.
	HoldsVIP func() bool
	HandOver time.Duration

	installed bool
	track     Hysteresis
	tracked   *bool
	observed  time.Time // the hysteresis' last observation
}

// Run probes until ctx ends, then hands the VIP over and removes the rules.
func (c *Controller) Run(ctx context.Context) {
	// Rules left by a previous run that died without cleaning up come out
	// until the probes say otherwise.
	if c.Rules == nil {
		c.Rules = noRules{}
	}
	c.track = Hysteresis{OnAfter: 2, OffAfter: 2}
	c.takeOver(ctx)
	every := c.ProbeInterval
	if every <= 0 {
		every = c.Interval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.step(ctx)
		select {
		case <-ctx.Done():
			c.shutdown()
			return
		case <-t.C:
		}
	}
}

// takeOver starts from what a previous run left, if haproxy serves now: its
// redirect rules stay in and the track file goes on saying serving, so a
// monitor restarted on the VIP holder (a crash, an upgrade of its container)
// moves neither the VIP nor a connection. Otherwise rules left by a run that
// died without cleaning up come out until the probes say otherwise, and
// the track file follows the probes from the start.
func (c *Controller) takeOver(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, min(c.Interval, 2*time.Second))
	err := c.Probe(pctx)
	cancel()
	keep := false
	if p, ok := c.Rules.(Present); ok && err == nil {
		keep, _ = p.Present()
	}
	if keep {
		c.Hysteresis.Start(true)
		c.observed = time.Now()
		c.setInstalled(true)
		c.Log.Info("haproxy serves: keeping the API redirect rules a previous run installed")
	} else {
		if rerr := c.Rules.Remove(); rerr != nil {
			c.Log.WithError(rerr).Warn("removing leftover API redirect rules")
		}
		c.setInstalled(false)
	}
	if s, ok := c.Track.(TrackState); ok && err == nil {
		if serving, serr := s.Serving(); serr == nil && serving {
			c.track.Start(true)
			c.tracked = &serving
			c.Log.Info("haproxy serves: keepalived's track file already says so")
		}
	}
}

// shutdown tells keepalived this node no longer serves, waits until the VIP
// has left (bounded), then removes the rules.
func (c *Controller) shutdown() {
	if c.Track != nil {
		c.setTracked(false)
		if c.HoldsVIP != nil {
			start := time.Now()
			for c.HoldsVIP() && time.Since(start) < c.HandOver {
				time.Sleep(50 * time.Millisecond)
			}
			if c.HoldsVIP() {
				c.Log.WithField("waited", c.HandOver).Warn("the VIP did not leave this node; removing the API redirect anyway")
			} else {
				c.Log.WithField("after", time.Since(start).Round(time.Millisecond)).Info("the VIP left this node")
			}
		}
	}
	if err := c.Rules.Remove(); err != nil {
		c.Log.WithError(err).Error("removing API redirect rules on shutdown")
		return
	}
	if c.installed {
		c.Log.Info("API redirect rules removed on shutdown")
	}
	c.setInstalled(false)
}

// step probes once and acts.
func (c *Controller) step(ctx context.Context) {
	timeout := min(c.Interval, 2*time.Second)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := c.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	gone := errors.Is(err, syscall.ECONNREFUSED)
	if c.Track != nil {
		serving, _ := c.track.Observe(err == nil)
		if gone {
			c.track.Reset()
			serving = false
		}
		c.setTracked(serving)
	}
	observe := time.Since(c.observed) >= c.Interval-c.Interval/10
	if !observe && !(gone && c.Hysteresis.Active()) {
		return
	}
	c.observed = time.Now()
	active, changed := c.Hysteresis.Observe(err == nil)
	if gone && active {
		// Nothing listens: haproxy is gone, the hysteresis has nothing to
		// smooth.
		active, changed = false, true
		c.Hysteresis.Reset()
	}
	switch {
	case changed && active:
		c.Log.Info("API reachable through haproxy; redirecting VIP traffic to the load balancer")
	case changed && gone:
		c.Log.WithError(err).Warn("haproxy is not listening; removing the VIP redirect at once")
	case changed:
		c.Log.WithError(err).Warn("API not reachable through haproxy; removing the VIP redirect")
	}
	switch {
	case active && err == nil:
		// Every good probe while on repairs the rules if they went missing.
		if ferr := c.Rules.Ensure(); ferr != nil {
			c.Log.WithError(ferr).Error("installing API redirect rules")
			c.setInstalled(false)
		} else {
			c.setInstalled(true)
		}
	case changed && !active:
		if ferr := c.Rules.Remove(); ferr != nil {
			c.Log.WithError(ferr).Error("removing API redirect rules")
		} else {
			c.setInstalled(false)
		}
	}
}

type noRules struct{}

func (noRules) Ensure() error { return nil }
func (noRules) Remove() error { return nil }

func (c *Controller) setTracked(serving bool) {
	if c.tracked != nil && *c.tracked == serving {
		return
	}
	if err := c.Track.Set(serving); err != nil {
		if c.TrackError != nil {
			c.TrackError(err)
		}
		return
	}
	c.tracked = &serving
	c.Log.WithField("serving", serving).Info("told keepalived whether this node's haproxy serves")
}

func (c *Controller) setInstalled(on bool) {
	if on == c.installed {
		return
	}
	c.installed = on
	if c.Installed != nil {
		c.Installed(on)
	}
}

// HTTPProbe returns a probe that GETs url and wants a 2xx answer: haproxy's
// monitor-uri, which fails while no apiserver backend is up.
func HTTPProbe(url string) func(ctx context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}
