package haproxyctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/fakesock"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
)

// The runtime path against a real haproxy is tested in test/integration
// (controller_test.go), with the haproxy container of the manifest.

// A runtime API that is not there: the change still lands, by reload.
func TestControllerRuntimeFailureFallsBack(t *testing.T) {
	path := sockPath(t)
	l := fakesock.NewReloader(t, path)
	c := startController(t, Options{Socket: path, AdminSocket: sockPath(t), VerifyTimeout: 50 * time.Millisecond})
	file := c.opts.File
	if _, err := file.Apply(context.Background(), []byte(cfgA)); err != nil {
		t.Fatal(err)
	}
	c.Serve(Target{Config: []byte(cfgAB)})
	if ev := expect(t, c, RuntimeFailed); !errors.Is(ev.Err, os.ErrNotExist) && !strings.Contains(fmt.Sprint(ev.Err), "no such file") {
		t.Fatalf("runtime failure %v", ev.Err)
	}
	if ev := expect(t, c, Written); ev.Path != PathReload {
		t.Fatalf("written %+v", ev)
	}
	expect(t, c, Delivered)
	poll.Must(t, 10*time.Second, "the reload line", func() bool { lines, _ := l.Lines(); return len(lines) == 1 })
}
