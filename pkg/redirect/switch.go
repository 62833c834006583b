package redirect

import (
	"time"

	"github.com/sirupsen/logrus"
)

// Rules is what the Switch puts in and takes out; *Redirect in production.
type Rules interface {
	Ensure() error
	Remove() error
}

// Present is implemented by Rules that can tell whether they are fully in
// place, so a restarted monitor can keep what its predecessor installed.
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

// SwitchOptions configure a Switch.
type SwitchOptions struct {
	Rules Rules
	// OnAfter and OffAfter are the hysteresis: consecutive good
	// observations to go in, bad ones to come out.
	OnAfter, OffAfter int
	// Interval is how often an observation counts: probes closer together
	// than that count once.
	Interval time.Duration
	Log      logrus.FieldLogger
	// Installed, if set, is called whenever the rules' real state changes:
	// true once they were ensured, false once removed or when ensuring them
	// failed.
	Installed func(on bool)
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Switch puts the redirect in and takes it out from what the probes of
// haproxy find: the original's hysteresis, counting one observation per
// interval (3 good ones to go in, 11 bad ones to come out), except that a
// haproxy found gone (nothing listening) takes it out at once, so
// VIP:api-port reaches the local apiserver instead of a dead port. While in,
// every good observation ensures the rules, repairing them if something
// else flushed the ruleset. It is not safe for concurrent use: one loop
// owns it.
type Switch struct {
	rules     Rules
	hyst      Hysteresis
	interval  time.Duration
	log       logrus.FieldLogger
	installed func(on bool)
	now       func() time.Time

	on       bool      // the rules' real state, as last seen
	observed time.Time // the hysteresis' last observation
}

// NewSwitch returns a Switch that starts out, with no rules known.
func NewSwitch(o SwitchOptions) *Switch {
	s := &Switch{rules: o.Rules, hyst: Hysteresis{OnAfter: o.OnAfter, OffAfter: o.OffAfter}, interval: o.Interval,
		log: o.Log, installed: o.Installed, now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// TakeOver starts from what a previous run left: when haproxy serves and
// the rules are complete they stay in and the switch starts on (a monitor
// restarted on the VIP holder must not move a connection); otherwise
// leftovers come out and the hysteresis decides from there. It reports
// whether it kept them.
func (s *Switch) TakeOver(now time.Time, serving bool) bool {
	keep := false
	if p, ok := s.rules.(Present); ok && serving {
		keep, _ = p.Present()
	}
	if !keep {
		if err := s.rules.Remove(); err != nil {
			s.log.WithError(err).Warn("removing leftover API redirect rules")
		}
		s.set(false)
		return false
	}
	// A predecessor killed while handing the VIP over may have left its
	// hold; the rules stay, the hold must not.
	if h, ok := s.rules.(Holder); ok {
		if err := h.Release(); err != nil {
			s.log.WithError(err).Warn("releasing a hold on new connections a previous run left")
		}
	}
	s.hyst.Start(true)
	s.observed = now
	s.set(true)
	s.log.Info("haproxy serves: keeping the API redirect rules a previous run installed")
	return true
}

// Observe counts one probe of haproxy made at now: err is its failure, gone
// says haproxy is not there at all (nothing listening, or the connection
// held to it closed and the probe right after was cut off). closed is when
// the monitor learnt that haproxy's connection closed, for the log; zero
// when not.
func (s *Switch) Observe(now time.Time, err error, gone bool, closed time.Time) {
	if now.Sub(s.observed) < s.interval-s.interval/10 && !(gone && s.hyst.Active()) {
		return
	}
	s.observed = now
	active, changed := s.hyst.Observe(err == nil)
	if gone && active {
		// Nothing listens: the hysteresis has nothing to smooth.
		active, changed = false, true
		s.hyst.Reset()
	}
	switch {
	case active && err == nil:
		if changed {
			s.log.Info("API reachable through haproxy; redirecting VIP traffic to the load balancer")
		}
		// Every good observation while on repairs the rules if they went
		// missing.
		if ferr := s.rules.Ensure(); ferr != nil {
			s.log.WithError(ferr).Error("installing API redirect rules")
			s.set(false)
		} else {
			s.set(true)
		}
	case changed && !active:
		rerr := s.rules.Remove()
		if rerr != nil {
			s.log.WithError(rerr).Error("removing API redirect rules")
		} else {
			s.set(false)
		}
		log := s.log.WithError(err)
		if !gone {
			log.Warn("API not reachable through haproxy; removed the VIP redirect")
			return
		}
		// How long the redirect outlived haproxy as far as the monitor
		// can see: from the held connection's close to the rules' removal
		// (the lab reports it).
		if after := s.now().Sub(closed); !closed.IsZero() && after < time.Second {
			log = log.WithField("after_close", after.Round(time.Microsecond))
		}
		log.Warn("haproxy is not listening; removed the VIP redirect at once")
	}
}

// Active reports whether the hysteresis says the redirect should be in.
func (s *Switch) Active() bool { return s.hyst.Active() }

// Installed reports the rules' real state as last seen.
func (s *Switch) Installed() bool { return s.on }

// Hold holds new connections to the VIP while it moves away, if the rules
// can; it reports whether they can.
func (s *Switch) Hold() (bool, error) {
	h, ok := s.rules.(Holder)
	if !ok {
		return false, nil
	}
	return true, h.Hold()
}

// Remove takes the rules, and any hold, out.
func (s *Switch) Remove() error {
	if err := s.rules.Remove(); err != nil {
		return err
	}
	s.set(false)
	return nil
}

func (s *Switch) set(on bool) {
	if on == s.on {
		return
	}
	s.on = on
	if s.installed != nil {
		s.installed(on)
	}
}
