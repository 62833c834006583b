package discovery

import (
	"context"
	"k8s.io/utils/clock"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// syncStore is a reflector store that knows whether its contents are current.
type syncStore interface {
	cache.ReflectorStore
	hasSynced() bool
	// unsync marks the contents as no longer maintained (the watch stopped).
	unsync()
}

// guardedWatch runs one reflector and stops it when the API answers 403: a
// forbidden list retried every few seconds forever would only add load and
// log lines. While forbidden it asks again, with a single-item list, every
// recheck; once allowed it starts a new reflector, so a grant applied while
// the monitor runs is picked up without a restart.
type guardedWatch struct {
	name    string
	inner   cache.ListerWatcher
	typ     runtime.Object
	store   syncStore
	recheck time.Duration
	clock   clock.WithTicker
	// changed is called when the forbidden state flips or the store syncs.
	changed func()

	mu        sync.Mutex
	forbidden error
	stopRun   context.CancelFunc
}

// Forbidden returns the 403 that stopped the watch, or nil while it may run.
func (g *guardedWatch) Forbidden() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.forbidden
}

// current reports whether the store holds a watched, up-to-date list.
func (g *guardedWatch) current() bool { return g.Forbidden() == nil && g.store.hasSynced() }

func (g *guardedWatch) run(ctx context.Context) {
	for ctx.Err() == nil {
		runCtx, cancel := context.WithCancel(ctx)
		g.mu.Lock()
		g.stopRun = cancel
		g.mu.Unlock()
		backoff := RetryBackoff
		r := cache.NewReflectorWithOptions(g.watcher(), g.typ, g.store, cache.ReflectorOptions{Name: g.name, Backoff: &backoff})
		r.RunWithContext(runCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		// Stopped because the API said 403: what the store holds is no
		// longer kept up to date.
		g.store.unsync()
		g.changed()
		g.waitAllowed(ctx)
	}
}

// waitAllowed probes with a one-item list every recheck until the answer is
// anything but 403 (an unreachable API is the reflector's business).
func (g *guardedWatch) waitAllowed(ctx context.Context) {
	t := g.clock.NewTicker(g.recheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout(g.recheck))
		_, err := cache.ToListerWatcherWithContext(g.inner).ListWithContext(pctx, metav1.ListOptions{Limit: 1})
		cancel()
		if !apierrors.IsForbidden(err) && ctx.Err() == nil {
			g.setForbidden(nil)
			return
		}
	}
}

func (g *guardedWatch) setForbidden(err error) {
	g.mu.Lock()
	was := g.forbidden
	g.forbidden = err
	stop := g.stopRun
	g.mu.Unlock()
	if err != nil && stop != nil {
		stop()
	}
	if (was == nil) != (err == nil) {
		g.changed()
	}
}

// watcher wraps inner so that a 403 on list or watch stops the reflector. It
// keeps inner's answer to whether the client can stream the initial list
// (fake clientsets cannot).
func (g *guardedWatch) watcher() cache.ListerWatcher {
	inner := cache.ToListerWatcherWithContext(g.inner)
	observe := func(err error) {
		if apierrors.IsForbidden(err) {
			g.setForbidden(err)
		}
	}
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := inner.ListWithContext(ctx, o)
			observe(err)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := inner.WatchWithContext(ctx, o)
			observe(err)
			return w, err
		},
	}, g.inner)
}

// probeTimeout bounds one request made on a schedule of every.
func probeTimeout(every time.Duration) time.Duration {
	return min(max(every, 2*time.Second), 10*time.Second)
}
