package kubeclient

import (
	"errors"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

func TestRouteErrorsRateLimits(t *testing.T) {
	saved := utilruntime.ErrorHandlers
	defer func() { utilruntime.ErrorHandlers = saved }()
	log, hook := test.NewNullLogger()
	now := time.Unix(1000, 0)
	RouteErrors(log, 30*time.Second, func() time.Time { return now })

	for i := 0; i < 10; i++ {
		utilruntime.HandleError(errors.New("watch failed: connection refused"))
	}
	if n := len(hook.AllEntries()); n != 1 {
		t.Fatalf("%d lines for a burst of 10 errors, want 1", n)
	}
	now = now.Add(30*time.Second - time.Millisecond) // still within the window
	utilruntime.HandleError(errors.New("held back too"))
	if n := len(hook.AllEntries()); n != 1 {
		t.Fatalf("%d lines within the window, want 1", n)
	}
	now = now.Add(time.Millisecond) // the window has passed
	utilruntime.HandleError(errors.New("nodes is forbidden"))
	entries := hook.AllEntries()
	if len(entries) != 2 {
		t.Fatalf("%d lines, want 2", len(entries))
	}
	last := entries[1]
	if last.Level != logrus.WarnLevel || last.Data["suppressed"] != 10 || last.Data[logrus.ErrorKey].(error).Error() != "nodes is forbidden" {
		t.Fatalf("second line %v %v, want a warning with the new error and 10 suppressed", last.Level, last.Data)
	}
}
