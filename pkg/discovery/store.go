package discovery

import (
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"
)

// projStore is the reflector's store. It keeps only a projection of each
// object (what the configuration depends on) and calls changed when an add,
// update, delete or relist alters a projection. Everything else an update
// carries, such as status heartbeats, is dropped on arrival.
type projStore[P any] struct {
	// project returns the object's key and projection, or ok=false when the
	// object is not relevant (a node without this store's role label).
	project func(obj any) (key string, p P, ok bool)
	equal   func(a, b P) bool
	changed func()

	mu      sync.RWMutex
	items   map[string]P
	synced  bool
	contact time.Time // last time the API told this store anything
}

var (
	_ cache.ReflectorStore         = (*projStore[int])(nil)
	_ cache.ReflectorBookmarkStore = (*projStore[int])(nil)
)

func newProjStore[P any](project func(any) (string, P, bool), equal func(a, b P) bool, changed func()) *projStore[P] {
	return &projStore[P]{project: project, equal: equal, changed: changed, items: map[string]P{}}
}

func (s *projStore[P]) Add(obj any) error    { s.put(obj); return nil }
func (s *projStore[P]) Update(obj any) error { s.put(obj); return nil }
func (s *projStore[P]) Resync() error        { return nil }

// Bookmark is the apiserver's periodic "nothing changed up to here": proof
// that the watch is alive although no object changed.
func (s *projStore[P]) Bookmark(string) error {
	s.mu.Lock()
	s.contact = time.Now()
	s.mu.Unlock()
	return nil
}

func (s *projStore[P]) lastContact() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.contact
}

func (s *projStore[P]) put(obj any) {
	key, p, ok := s.project(obj)
	if key == "" {
		return
	}
	s.mu.Lock()
	s.contact = time.Now()
	old, had := s.items[key]
	switch {
	case !ok && !had, ok && had && s.equal(old, p):
		s.mu.Unlock()
		return
	case !ok:
		delete(s.items, key) // no longer relevant: relabelled away
	default:
		s.items[key] = p
	}
	s.mu.Unlock()
	s.changed()
}

func (s *projStore[P]) Delete(obj any) error {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	key, _, _ := s.project(obj)
	s.mu.Lock()
	s.contact = time.Now()
	_, had := s.items[key]
	delete(s.items, key)
	s.mu.Unlock()
	if had {
		s.changed()
	}
	return nil
}

// Replace is a full relist: after a watch could not be resumed, or at start.
func (s *projStore[P]) Replace(list []any, _ string) error {
	next := make(map[string]P, len(list))
	for _, obj := range list {
		if key, p, ok := s.project(obj); ok && key != "" {
			next[key] = p
		}
	}
	s.mu.Lock()
	same := s.synced && len(next) == len(s.items)
	if same {
		for k, p := range next {
			if old, ok := s.items[k]; !ok || !s.equal(old, p) {
				same = false
				break
			}
		}
	}
	s.items, s.synced, s.contact = next, true, time.Now()
	s.mu.Unlock()
	if !same {
		s.changed()
	}
	return nil
}

// unsync marks the contents stale: the watch feeding them stopped. The items
// stay until the next list replaces them.
func (s *projStore[P]) unsync() {
	s.mu.Lock()
	s.synced = false
	s.mu.Unlock()
}

func (s *projStore[P]) hasSynced() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.synced
}

func (s *projStore[P]) each(f func(key string, p P)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, p := range s.items {
		f(k, p)
	}
}
