package redirect

// Hysteresis turns a stream of probe results into on/off: on after OnAfter
// consecutive good probes, off after OffAfter consecutive bad ones, so a
// flapping probe does not flap the redirect.
type Hysteresis struct {
	OnAfter, OffAfter int

	good, bad int
	active    bool
}

// Observe records one probe result and reports the state and whether this
// result changed it.
func (h *Hysteresis) Observe(ok bool) (active, changed bool) {
	if ok {
		h.good, h.bad = h.good+1, 0
		if !h.active && h.good >= h.OnAfter {
			h.active = true
			return true, true
		}
	} else {
		h.good, h.bad = 0, h.bad+1
		if h.active && h.bad >= h.OffAfter {
			h.active = false
			return false, true
		}
	}
	return h.active, false
}

// Active reports the current state.
func (h *Hysteresis) Active() bool { return h.active }

// Reset forgets the counts and turns off.
func (h *Hysteresis) Reset() { h.good, h.bad, h.active = 0, 0, false }

// Start begins in the given state with no counts: a restarted controller
// takes over the state its predecessor left.
func (h *Hysteresis) Start(active bool) { h.good, h.bad, h.active = 0, 0, active }
