package monitor

import (
	"slices"
	"testing"
	"time"
)

// The debouncer under a clock the test moves: every case is a sequence of
// changes at given offsets; renders fire whenever they are due, and apply a
// change unless the case names them as renders that changed nothing.
func TestDebouncer(t *testing.T) {
	const quiet, max = 100 * time.Millisecond, time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name    string
		changes []time.Duration // offsets from t0, ascending
		noop    []int           // indexes of renders that change nothing
		renders []time.Duration // when renders fire
		applied int             // how many of them applied a change
	}{
		{name: "a single change renders at once", changes: []time.Duration{0}, renders: []time.Duration{0}, applied: 1},
		{name: "changes far apart each render at once", changes: []time.Duration{0, ms(500), ms(1500)},
			renders: []time.Duration{0, ms(500), ms(1500)}, applied: 3},
		{name: "a change right after an applied one waits for quiet", changes: []time.Duration{0, ms(50)},
			renders: []time.Duration{0, ms(150)}, applied: 2},
		// A kubelet registers a Node, then its addresses: the first write
		// renders nothing new, and the second must not wait for it.
		{name: "a change right after one that rendered nothing new renders at once", changes: []time.Duration{0, ms(5)},
			noop: []int{0}, renders: []time.Duration{0, ms(5)}, applied: 1},
		{name: "a burst: its first at once, the rest once it is over", changes: burst(50, ms(15)),
			renders: []time.Duration{0, ms(49*15 + 100)}, applied: 2},
		{name: "a burst whose first change renders nothing new: still two applied", changes: burst(50, ms(15)),
			noop: []int{0}, renders: []time.Duration{0, ms(15), ms(49*15 + 100)}, applied: 2},
		{name: "an endless stream renders every max", changes: burst(300, ms(10)),
			renders: []time.Duration{0, ms(10 + 1000), ms(1010 + 1000), ms(2010 + 1000)}, applied: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Unix(1000, 0)
			d := &debouncer{quiet: quiet, max: max}
			var got []time.Duration
			applied := 0
			runUntil := func(now time.Time) {
				for {
					at, ok := d.due()
					if !ok || at.After(now) {
						return
					}
					d.fire(at)
					if !slices.Contains(tc.noop, len(got)) {
						d.changed(at)
						applied++
					}
					got = append(got, at.Sub(t0))
				}
			}
			for _, c := range tc.changes {
				runUntil(t0.Add(c))
				d.poke(t0.Add(c))
				runUntil(t0.Add(c))
			}
			runUntil(t0.Add(time.Hour))
			if !slices.Equal(got, tc.renders) {
				t.Fatalf("renders at %v, want %v", got, tc.renders)
			}
			if applied != tc.applied {
				t.Fatalf("%d renders applied a change, want %d", applied, tc.applied)
			}
		})
	}
}

// fire reports the first change a render covers, for the event-to-reload
// latency.
func TestDebouncerReportsFirstChange(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := &debouncer{quiet: 100 * time.Millisecond, max: time.Second}
	d.poke(t0)
	d.fire(t0)
	d.poke(t0.Add(20 * time.Millisecond))
	d.poke(t0.Add(40 * time.Millisecond))
	at, _ := d.due()
	if first := d.fire(at); !first.Equal(t0.Add(20 * time.Millisecond)) {
		t.Fatalf("first change %v, want t0+20ms", first.Sub(t0))
	}
	if _, ok := d.due(); ok {
		t.Fatal("due after firing with no change")
	}
}

func burst(n int, every time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i) * every
	}
	return out
}
