package monitor

import (
	"strings"
	"testing"
	"time"
)

// /healthz fails once the control loop has missed three check intervals
// (and a second's slack), and not before.
func TestHealthyAfterMissedIntervals(t *testing.T) {
	const interval = 6 * time.Second
	beat := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s := &health{lastBeat: beat}
	for _, tc := range []struct {
		after time.Duration
		ok    bool
	}{
		{0, true},
		{interval, true},
		{3*interval + time.Second, true},
		{3*interval + time.Second + time.Millisecond, false},
		{time.Hour, false},
	} {
		err := s.healthy(beat.Add(tc.after), interval)
		if (err == nil) != tc.ok {
			t.Errorf("%v after the last beat: %v, want healthy %v", tc.after, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "control loop has not run for") {
			t.Errorf("%v after the last beat: %q does not say the loop is stuck", tc.after, err)
		}
	}
}
