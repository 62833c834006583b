package firewall

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
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

// Holder is implemented by Rules that can hold new connections to the VIP
// (drop their SYNs, so clients send them again a second later) while the
// VIP moves away; Release lets them through again, and Remove releases the
// hold with the rules.
type Holder interface {
	Hold() error
	Release() error
}

// TrackState is implemented by a Tracker that can tell what it last said.
type TrackState interface {
	Level() (keepalived.Level, error)
}

// Tracker is told what this node serves: keepalived's track file
// (keepalived.TrackFile) in production.
type Tracker interface {
	Set(keepalived.Level) error
}

// Controller probes haproxy every ProbeInterval and switches the redirect with
// hysteresis, which counts one observation per Interval (the original's 3 on
// / 11 off, one probe per check interval). A probe that finds nothing
// listening (connection refused: haproxy is gone) takes the redirect out at
// once, so VIP:api-port reaches the local apiserver directly; 503s and
// timeouts keep the hysteresis. While on, every observation re-ensures the
// rules, repairing them if something else flushed the ruleset.
//
// With Watch set, haproxy's death is an event rather than the next probe's
// finding: after each good probe the controller holds a connection to
// haproxy, which the kernel closes the moment the process dies, and probes
// at once when it closes.
type Controller struct {
	Rules         Rules // nil: probe for Track only
	Probe         func(ctx context.Context) error
	Interval      time.Duration
	ProbeInterval time.Duration // 0: Interval
	// Watch, if set, holds a connection to haproxy and returns once it is
	// closed (HoldConnection); the probe that follows decides what the
	// close meant: a reload's soft stop or an idle timeout (haproxy still
	// answers) or haproxy gone (refused, reset or cut off).
	Watch      func(ctx context.Context) error
	Hysteresis Hysteresis
	Log        logrus.FieldLogger
	// Installed, if set, is called whenever the rules' real state changes:
	// true once they were ensured, false once removed or when ensuring them
	// failed.
	Installed func(on bool)
	// Track, if set, is told after every probe what this node serves:
	// Serving while haproxy does (it stops at once when nothing listens,
	// after two bad probes otherwise, and is back after two good ones), or
	// Holding if a VIP is on this node then (HoldsVIP); otherwise LocalOnly
	// while LocalProbe passes, Fault when it does not; Fault when the
	// controller stops.
	Track      Tracker
	TrackError func(error)
	// LocalProbe checks the local apiserver, which VIP:api-port reaches
	// directly once the redirect is out; nil: Fault whenever haproxy does
	// not serve.
	LocalProbe func(ctx context.Context) error
	// HoldsVIP, if set with Track, reports whether a VIP is on this node.
	// It is asked at every probe. On shutdown the controller holds new
	// connections to the VIP (Rules that are a Holder), faults the track
	// file and waits (at most HandOver) for keepalived to move the VIP
	// away, then Settle more for another node to take it, before it takes
	// the redirect and the hold out. A client's new connection waits for
	// its SYN's retransmission instead of landing on a node that is going,
	// and what was in flight finishes there.
	HoldsVIP func() bool
	HandOver time.Duration
	Settle   time.Duration

	installed bool
	track     Hysteresis
	tracked   *keepalived.Level
	observed  time.Time // the hysteresis' last observation
	closedAt  time.Time // when the held connection last closed
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
	// closed carries the end of a held connection; at most one is held.
	closed := make(chan error, 1)
	watching, woken := false, false
	for {
		ok := c.step(ctx, woken)
		// Not right after a close: a connection that cannot be held must
		// not turn the loop into a spin; the next tick starts it.
		if c.Watch != nil && ok && !watching && !woken {
			watching = true
			go func() { closed <- c.Watch(ctx) }()
		}
		woken = false
		select {
		case <-ctx.Done():
			if watching {
				<-closed
			}
			c.shutdown()
			return
		case <-t.C:
		case err := <-closed:
			watching, woken = false, true
			c.closedAt = time.Now()
			c.Log.WithError(err).Debug("connection held to haproxy closed; probing at once")
		}
	}
}

// HoldConnection returns a Watch that opens a connection to haproxy's probe
// listener (probeURL, its monitor-uri), asks for probeURL once and keeps the
// connection open, idle, until it is closed: by the kernel the moment
// haproxy dies, by haproxy on a reload's soft stop (it closes idle
// keep-alive connections at once; one that never sent a request would keep
// the old process alive until its request timeout) or after its keep-alive
// timeout, or by ctx.
//
// The request is plain HTTP: an https:// or unusable probeURL is an error.
func HoldConnection(probeURL string, dialTimeout time.Duration) (func(ctx context.Context) error, error) {
	addr, err := ProbeAddr(probeURL)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(probeURL) // ProbeAddr parsed it
	if u.Scheme != "http" {
		return nil, fmt.Errorf("probe URL %q: the held connection speaks plain HTTP", probeURL)
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n"
	return func(ctx context.Context) error {
		d := net.Dialer{Timeout: dialTimeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		defer stop()
		defer conn.Close()
		if _, err := io.WriteString(conn, req); err != nil {
			return err
		}
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
		if resp.Close {
			return fmt.Errorf("haproxy closes the connection after answering: %s", resp.Status)
		}
		// Idle from here: any byte or the end is the event.
		_, err = r.ReadByte()
		if err == nil {
			err = errors.New("unexpected data on the held connection")
		}
		return err
	}, nil
}

// ProbeAddr is the host:port a probe URL connects to.
func ProbeAddr(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", fmt.Errorf("probe URL %q has no host", rawURL)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
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
		// A predecessor killed while handing the VIP over may have left its
		// hold; the rules stay, the hold must not.
		if h, ok := c.Rules.(Holder); ok {
			if herr := h.Release(); herr != nil {
				c.Log.WithError(herr).Warn("releasing a hold on new connections a previous run left")
			}
		}
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
		if l, serr := s.Level(); serr == nil && (l == keepalived.Serving || l == keepalived.Holding) {
			c.track.Start(true)
			c.tracked = &l
			c.Log.Info("haproxy serves: keepalived's track file already says so")
		}
	}
}

// shutdown holds new connections to the VIP, tells keepalived this node is
// going, waits until the VIP has left (bounded) and another node has had
// time to take it, then removes the rules and the hold.
func (c *Controller) shutdown() {
	if c.Track != nil {
		// keepalived, stopped with the monitor (a node shutting down), may
		// have removed the VIP already; clients that have not heard of the
		// next holder still send here, so hold as if it were still here.
		wasHolding := c.tracked != nil && *c.tracked == keepalived.Holding
		holding := c.HoldsVIP != nil && (c.HoldsVIP() || wasHolding)
		if h, ok := c.Rules.(Holder); ok && holding {
			if err := h.Hold(); err != nil {
				c.Log.WithError(err).Warn("holding new connections to the VIP while it moves")
			}
		}
		c.setTracked(keepalived.Fault)
		if holding {
			start := time.Now()
			for c.HoldsVIP() && time.Since(start) < c.HandOver {
				time.Sleep(20 * time.Millisecond)
			}
			if c.HoldsVIP() {
				c.Log.WithField("waited", c.HandOver).Warn("the VIP did not leave this node; removing the API redirect anyway")
			} else {
				c.Log.WithField("after", time.Since(start).Round(time.Millisecond)).Info("the VIP left this node")
				time.Sleep(c.Settle)
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

// step probes once and acts, the redirect first (the data path), then the
// track file; it reports whether the probe passed. woken says a held
// connection to haproxy just closed: a probe then cut off (refused, reset,
// closed) means haproxy died, not that it is slow.
func (c *Controller) step(ctx context.Context, woken bool) bool {
	timeout := min(c.Interval, 2*time.Second)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := c.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	gone := errors.Is(err, syscall.ECONNREFUSED) || (woken && cutOff(err))
	c.redirect(err, gone)
	if c.Track != nil {
		serving, _ := c.track.Observe(err == nil)
		if gone {
			c.track.Reset()
			serving = false
		}
		c.setTracked(c.level(ctx, serving))
	}
	return err == nil
}

// cutOff reports a probe that lost its connection rather than an answer.
func cutOff(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// redirect counts an observation (once per Interval, or at once when
// haproxy is gone) and switches the rules.
func (c *Controller) redirect(err error, gone bool) {
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
		defer func(log logrus.FieldLogger) {
			// How long the redirect outlived haproxy, as far as the
			// monitor can see: from the held connection's close to the
			// rules' removal (the lab reports it; docs/vip-failover.md).
			if !c.closedAt.IsZero() && time.Since(c.closedAt) < time.Second {
				log = log.WithField("after_close", time.Since(c.closedAt).Round(10*time.Microsecond))
			}
			log.WithError(err).Warn("haproxy is not listening; removed the VIP redirect at once")
		}(c.Log)
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

// level is what keepalived is told: Holding or Serving while haproxy
// serves, else LocalOnly while the local apiserver answers, else Fault.
func (c *Controller) level(ctx context.Context, serving bool) keepalived.Level {
	switch {
	case serving && c.HoldsVIP != nil && c.HoldsVIP():
		return keepalived.Holding
	case serving:
		return keepalived.Serving
	}
	if c.LocalProbe == nil {
		return keepalived.Fault
	}
	pctx, cancel := context.WithTimeout(ctx, min(c.Interval, time.Second))
	defer cancel()
	if c.LocalProbe(pctx) != nil {
		return keepalived.Fault
	}
	return keepalived.LocalOnly
}

func (c *Controller) setTracked(l keepalived.Level) {
	if c.tracked != nil && *c.tracked == l {
		return
	}
	if err := c.Track.Set(l); err != nil {
		if c.TrackError != nil {
			c.TrackError(err)
		}
		return
	}
	c.tracked = &l
	c.Log.WithField("level", l.String()).Info("told keepalived what this node serves")
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
	return probe(&http.Transport{DisableKeepAlives: true}, url, func(code int) bool { return code/100 == 2 })
}

// APIServerProbe returns a probe of a kube-apiserver's /readyz at url that
// skips certificate verification (it asks only whether the apiserver
// serves): 200 passes, and so do 401 and 403, an apiserver that serves but
// does not answer anonymous readiness checks.
func APIServerProbe(url string) func(ctx context.Context) error {
	tr := &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // readiness only, nothing sent
	return probe(tr, url, func(code int) bool {
		return code == http.StatusOK || code == http.StatusUnauthorized || code == http.StatusForbidden
	})
}

// probe GETs url through tr and passes when ok accepts the status.
func probe(tr *http.Transport, url string, ok func(code int) bool) func(ctx context.Context) error {
	client := &http.Client{Transport: tr}
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
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		if !ok(resp.StatusCode) {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}
