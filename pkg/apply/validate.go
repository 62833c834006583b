package apply

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// HAProxyCheck returns a Validator running "haproxy -c -f <candidate>" with the
// given binary. It catches what the template cannot know: a server line haproxy
// refuses, a bind it cannot parse.
func HAProxyCheck(binary string, timeout time.Duration) Validator {
	return func(ctx context.Context, path string) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, binary, "-c", "-f", path).CombinedOutput()
		if err != nil {
			msg := strings.TrimSpace(string(out))
			if len(msg) > 2000 {
				msg = msg[:2000] + "..."
			}
			return fmt.Errorf("%s -c: %w: %s", binary, err, msg)
		}
		return nil
	}
}
