package monitor

import "time"

// debouncer fires once quiet has passed since the last poke, or once max has
// passed since the first poke of a burst, whichever is first: a single change
// waits only quiet, an endless stream of changes still renders every max.
type debouncer struct {
	quiet, max time.Duration
	timer      *time.Timer
	first      time.Time // zero when idle
}

func newDebouncer(quiet, max time.Duration) *debouncer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &debouncer{quiet: quiet, max: max, timer: t}
}

func (d *debouncer) C() <-chan time.Time {
	return d.timer.C
}

// poke records a change.
func (d *debouncer) poke() {
	now := time.Now()
	if d.first.IsZero() {
		d.first = now
	}
	wait := d.quiet
	if deadline := d.first.Add(d.max); now.Add(wait).After(deadline) {
		wait = deadline.Sub(now)
	}
	d.timer.Reset(wait)
}

// now fires as soon as possible.
func (d *debouncer) now() {
	if d.first.IsZero() {
		d.first = time.Now()
	}
	d.timer.Reset(0)
}

// fired must be called after C delivered, to start a new burst. It returns
// when the burst began: the first change it covers.
func (d *debouncer) fired() time.Time {
	first := d.first
	d.first = time.Time{}
	if first.IsZero() {
		first = time.Now()
	}
	return first
}

func (d *debouncer) stop() { d.timer.Stop() }
