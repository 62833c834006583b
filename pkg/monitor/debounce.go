package monitor

import "time"

// debouncer decides when a render is due. The first change after a quiet
// period (no applied change for quiet) is due at once; a change that
// follows an applied one within quiet is due once quiet has passed without
// another change, and at most max after the first change not yet rendered.
// Only a render that changed what haproxy is asked to serve starts a quiet
// period: a change that renders nothing new (a Node created before its
// addresses are) leaves the next one free to render at once. A burst of any
// length costs at most two applied renders: its first change, and the
// state once it is over. It holds no timer: the loop asks due() and owns
// the timer, so tests drive it with their own clock.
type debouncer struct {
	quiet, max time.Duration

	applied time.Time // the last render that applied a change; zero before any
	first   time.Time // first change not yet rendered; zero when none
	at      time.Time // when the render is due; zero when none is
}

// poke records a change at now.
func (d *debouncer) poke(now time.Time) {
	idle := d.at.IsZero() && (d.applied.IsZero() || now.Sub(d.applied) >= d.quiet)
	if d.first.IsZero() {
		d.first = now
	}
	if idle {
		d.at = now // leading edge
		return
	}
	d.at = minTime(now.Add(d.quiet), d.first.Add(d.max))
}

// now makes a render due at once (caches synced, a retry).
func (d *debouncer) now(now time.Time) {
	if d.first.IsZero() {
		d.first = now
	}
	d.at = now
}

// due reports when the next render is due; ok is false when none is.
func (d *debouncer) due() (at time.Time, ok bool) { return d.at, !d.at.IsZero() }

// fire starts a render at now and returns the first change it covers.
func (d *debouncer) fire(now time.Time) (first time.Time) {
	first = d.first
	if first.IsZero() {
		first = now
	}
	d.first, d.at = time.Time{}, time.Time{}
	return first
}

// changed records that the render fired at at applied a change: changes
// that follow within quiet wait for the burst to end.
func (d *debouncer) changed(at time.Time) {
	d.applied = at
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
