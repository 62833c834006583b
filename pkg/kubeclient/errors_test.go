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
	RouteErrors(log, 50*time.Millisecond)

	for i := 0; i < 10; i++ {
		utilruntime.HandleError(errors.New("watch failed: connection refused"))
	}
	if n := len(hook.AllEntries()); n != 1 {
		t.Fatalf("%d lines for a burst of 10 errors, want 1", n)
	}
	time.Sleep(60 * time.Millisecond) // let the rate limit's window pass
	utilruntime.HandleError(errors.New("nodes is forbidden"))
	entries := hook.AllEntries()
	if len(entries) != 2 {
		t.Fatalf("%d lines, want 2", len(entries))
	}
	last := entries[1]
	if last.Level != logrus.WarnLevel || last.Data["suppressed"] != 9 || last.Data[logrus.ErrorKey].(error).Error() != "nodes is forbidden" {
		t.Fatalf("second line %v %v, want a warning with the new error and 9 suppressed", last.Level, last.Data)
	}
}
