package monitor

import (
	"testing"
	"time"
)

// The debouncer under a clock the test moves: every case is a sequence of
// changes at given offsets; renders fire whenever they are due.
func TestDebouncer(t *testing.T) {
	const quiet, max = 100 * time.Millisecond, time.Second
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name    string
		changes []time.Duration // offsets from t0, ascending
		renders []time.Duration // when renders fire
	}{
		{"a single change renders at once", []time.Duration{0}, []time.Duration{0}},
		{"changes far apart each render at once", []time.Duration{0, ms(500), ms(1500)}, []time.Duration{0, ms(500), ms(1500)}},
		{"a change right after a render waits for quiet", []time.Duration{0, ms(50)}, []time.Duration{0, ms(150)}},
		{"a burst: its first at once, the rest once it is over", burst(50, ms(15)), []time.Duration{0, ms(49*15 + 100)}},
		{"an endless stream renders every max", burst(300, ms(10)), []time.Duration{0, ms(10 + 1000), ms(1010 + 1000), ms(2010 + 1000)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Unix(1000, 0)
			d := &debouncer{quiet: quiet, max: max}
			var got []time.Duration
			runUntil := func(now time.Time) {
				for {
					at, ok := d.due()
					if !ok || at.After(now) {
						return
					}
					d.fire(at)
					got = append(got, at.Sub(t0))
				}
			}
			for _, c := range tc.changes {
				runUntil(t0.Add(c))
				d.poke(t0.Add(c))
				runUntil(t0.Add(c))
			}
			runUntil(t0.Add(time.Hour))
			if len(got) != len(tc.renders) {
				t.Fatalf("renders at %v, want %v", got, tc.renders)
			}
			for i := range got {
				if got[i] != tc.renders[i] {
					t.Fatalf("renders at %v, want %v", got, tc.renders)
				}
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
