package kubeclient

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

// RouteErrors sends client-go's background errors (a watch that failed, a
// list that was forbidden) to log instead of klog's stderr: the first at once,
// then at most one per every, with the number held back meanwhile. An outage
// retried every few seconds stays readable; a forbidden list still shows.
// now is the clock (nil: time.Now).
func RouteErrors(log logrus.FieldLogger, every time.Duration, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	var mu sync.Mutex
	var last time.Time
	held := 0
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{
		func(_ context.Context, err error, msg string, _ ...interface{}) {
			mu.Lock()
			if !last.IsZero() && now().Sub(last) < every {
				held++
				mu.Unlock()
				return
			}
			n := held
			last, held = now(), 0
			mu.Unlock()
			e := log.WithError(err).WithField("source", "client-go")
			if n > 0 {
				e = e.WithField("suppressed", n)
			}
			if msg == "" {
				msg = "API client error"
			}
			e.Warn(msg)
		},
	}
}

// warningLog passes the apiserver's warnings (a deprecated API, say) to the
// log, each text once: degraded discovery reads the deprecated v1 Endpoints
// on every poll.
type warningLog struct {
	log  logrus.FieldLogger
	mu   sync.Mutex
	seen map[string]bool
}

func (w *warningLog) HandleWarningHeader(code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	seen := w.seen[text]
	w.seen[text] = true
	w.mu.Unlock()
	if !seen {
		w.log.WithField("source", "apiserver").Warn(text)
	}
}
