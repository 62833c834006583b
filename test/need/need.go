// Package need decides what a missing program means to a test: a skip on a
// developer's machine, a failure under "make test" (HAPM_REQUIRE_TOOLS=1),
// where a skipped suite would prove nothing.
package need

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing tools fail instead of skipping.
func Required() bool { return os.Getenv("HAPM_REQUIRE_TOOLS") != "" }

// Tool returns the path of each named program, or skips or fails t.
func Tool(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, 0, len(names))
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			Missing(t, "%s not installed (run hack/install-deps.sh)", n)
		}
		paths = append(paths, p)
	}
	return paths
}

// Root skips or fails t unless it runs as root (network namespaces, nftables).
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}

// Missing skips t, or fails it when tools are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// Main is TestMain's form: err is what is missing (nil: nothing). It returns
// the exit code to end with and whether to end now.
func Main(suite string, err error) (code int, stop bool) {
	if err == nil {
		return 0, false
	}
	if Required() {
		fmt.Fprintf(os.Stderr, "%s: %v\n", suite, err)
		return 1, true
	}
	fmt.Printf("%s: skipped: %v\n", suite, err)
	return 0, true
}
