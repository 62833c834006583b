package redirect

import "testing"

func TestHysteresis(t *testing.T) {
	cases := []struct {
		name    string
		probes  string // g = good, b = bad
		want    string // state after each probe: 1 on, 0 off
		changes int
	}{
		{"on after 3 good", "ggg", "001", 1},
		{"a bad probe resets the count", "ggbggg", "000001", 1},
		{"off only after 11 bad", "gggbbbbbbbbbbb", "00111111111110", 2},
		{"a good probe in the bad run keeps it on", "gggbbbbbbbbbbgbbbbbbbbbbb", "0011111111111111111111110", 2},
		{"never on", "bbbbb", "00000", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := Hysteresis{OnAfter: 3, OffAfter: 11}
			got, changes := "", 0
			for _, p := range tc.probes {
				active, changed := h.Observe(p == 'g')
				if active {
					got += "1"
				} else {
					got += "0"
				}
				if changed {
					changes++
				}
			}
			if got != tc.want || changes != tc.changes {
				t.Fatalf("probes %s: states %s (%d changes), want %s (%d)", tc.probes, got, changes, tc.want, tc.changes)
			}
		})
	}
}
