// Package poll waits for a condition with a deadline. It is the one helper
// every suite uses instead of sleeping for something to happen.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every interval until it is true or timeout passes, and
// reports whether it became true.
func Until(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// Must is Until for tests: it fails t, naming what it waited for, when
// cond does not become true within timeout (checked every 5 ms).
func Must(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(timeout, 5*time.Millisecond, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
