package firewall

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// Rules is what the controller switches; *Redirect in production.
type Rules interface {
	Ensure() error
	Remove() error
}

// Controller probes haproxy every Interval and switches the redirect with
// hysteresis. While on, every good probe re-ensures the rules, repairing them
// if something else flushed the ruleset.
type Controller struct {
	Rules      Rules
	Probe      func(ctx context.Context) error
	Interval   time.Duration
	Hysteresis Hysteresis
	Log        logrus.FieldLogger
	// Installed, if set, is called whenever the rules' real state changes:
	// true once they were ensured, false once removed or when ensuring them
	// failed.
	Installed func(on bool)

	installed bool
}

// Run probes until ctx ends, then removes the rules.
func (c *Controller) Run(ctx context.Context) {
	// Rules left by a previous run that died without cleaning up come out
	// until the probes say otherwise.
	if err := c.Rules.Remove(); err != nil {
		c.Log.WithError(err).Warn("removing leftover API redirect rules")
	}
	c.setInstalled(false)
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		c.step(ctx)
		select {
		case <-ctx.Done():
			if err := c.Rules.Remove(); err != nil {
				c.Log.WithError(err).Error("removing API redirect rules on shutdown")
			} else {
				if c.installed {
					c.Log.Info("API redirect rules removed on shutdown")
				}
				c.setInstalled(false)
			}
			return
		case <-t.C:
		}
	}
}

func (c *Controller) step(ctx context.Context) {
	timeout := min(c.Interval, 2*time.Second)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := c.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	active, changed := c.Hysteresis.Observe(err == nil)
	switch {
	case changed && active:
		c.Log.Info("API reachable through haproxy; redirecting VIP traffic to the load balancer")
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
