package discovery_test

import (
	"context"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	clocktesting "k8s.io/utils/clock/testing"
	"reflect"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery/clientset"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery/fakeapi"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

func startSource(t *testing.T, c *fakeapi.Cluster) *discovery.Source {
	t.Helper()
	s := discovery.New(clientset.New(c.Client), discovery.Options{PollInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	t.Cleanup(func() { cancel(); s.Shutdown() })
	return s
}

func names(ns []lbconfig.Node) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

func TestStartupPerForbiddenResource(t *testing.T) {
	tests := []struct {
		name      string
		deny      []string
		mode      discovery.Mode
		nodes     []string
		endpoints []string
		// nothing: neither source readable; never synced.
		nothing bool
	}{
		{name: "everything granted", mode: discovery.ModeWatch, nodes: []string{"m1", "m2"},
			endpoints: []string{"198.18.0.11:6443", "198.18.0.12:6443"}},
		{name: "EndpointSlice forbidden: optional, watch mode all the same", deny: []string{"endpointslices"},
			mode: discovery.ModeWatch, nodes: []string{"m1", "m2"}, endpoints: []string{}},
		{name: "Nodes forbidden: degraded from the Endpoints", deny: []string{"nodes"},
			mode: discovery.ModeDegraded, endpoints: []string{"198.18.0.11:6443", "198.18.0.12:6443"}},
		{name: "as a kubelet without the grant: Nodes and EndpointSlice forbidden", deny: []string{"nodes", "endpointslices"},
			mode: discovery.ModeDegraded, endpoints: []string{"198.18.0.11:6443", "198.18.0.12:6443"}},
		{name: "nothing readable", deny: []string{"nodes", "endpointslices", "endpoints"}, nothing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeapi.New("system:node:m1")
			for _, r := range tc.deny {
				c.Deny[r].Store(true)
			}
			s := startSource(t, c)
			if tc.nothing {
				poll.Must(t, 10*time.Second, "both sources to be refused", func() bool { return s.Status().NothingReadable() })
				if s.HasSynced() || s.Snapshot().Mode != discovery.ModeNone {
					t.Fatalf("synced with nothing readable: %+v", s.Snapshot())
				}
				if st := s.Status(); st.Describe() == "" || st.Identity != "system:node:m1" {
					t.Errorf("status %+v does not explain itself", st)
				}
				return
			}
			poll.Must(t, 10*time.Second, "sync", s.HasSynced)
			// The optional slice watch settles (synced or refused).
			poll.Must(t, 10*time.Second, "the slice watch to settle", func() bool {
				st := s.Status()
				return len(s.Snapshot().APIEndpoints) > 0 || st.SlicesForbidden != nil
			})
			snap := s.Snapshot()
			if snap.Mode != tc.mode {
				t.Fatalf("mode %v, want %v", snap.Mode, tc.mode)
			}
			if got := append([]string{}, snap.APIEndpoints...); !reflect.DeepEqual(got, tc.endpoints) {
				t.Errorf("API endpoints %v, want %v", got, tc.endpoints)
			}
			switch tc.mode {
			case discovery.ModeWatch:
				if got := names(snap.Nodes); !reflect.DeepEqual(got, tc.nodes) {
					t.Errorf("nodes %v, want %v", got, tc.nodes)
				}
			case discovery.ModeDegraded:
				if !reflect.DeepEqual(snap.APIServers, []string{"198.18.0.11", "198.18.0.12"}) || snap.Self.Name != "m1" ||
					!reflect.DeepEqual(snap.Self.InternalIPs, []string{"198.18.0.11"}) {
					t.Errorf("degraded snapshot %+v", snap)
				}
				if st := s.Status(); st.NodesForbidden == nil || st.Identity != "system:node:m1" || st.Describe() == "" {
					t.Errorf("status %+v", st)
				}
			}
		})
	}
}

// A grant applied while running: the forbidden watch asks again, starts,
// and takes over from the degraded source.
func TestGrantAppliedWhileRunning(t *testing.T) {
	c := fakeapi.New("system:node:m1")
	c.Deny["nodes"].Store(true)
	s := startSource(t, c)
	poll.Must(t, 10*time.Second, "degraded mode", func() bool { return s.Snapshot().Mode == discovery.ModeDegraded })
	c.Deny["nodes"].Store(false)
	poll.Must(t, 10*time.Second, "watch mode", func() bool { return s.Snapshot().Mode == discovery.ModeWatch })
	if got := names(s.Snapshot().Nodes); !reflect.DeepEqual(got, []string{"m1", "m2"}) {
		t.Fatalf("nodes %v", got)
	}
	if s.Status().NodesForbidden != nil {
		t.Fatal("still forbidden")
	}
}

// A grant removed while running: the open watch keeps delivering (the API
// does not revoke it); when it ends, the list is refused and the degraded
// source takes over.
func TestGrantRemovedWhileRunning(t *testing.T) {
	c := fakeapi.New("system:node:m1")
	s := startSource(t, c)
	poll.Must(t, 10*time.Second, "watch mode", func() bool { return s.Snapshot().Mode == discovery.ModeWatch })
	c.Deny["nodes"].Store(true)
	if s.Snapshot().Mode != discovery.ModeWatch {
		t.Fatal("left watch mode while the watch was still open")
	}
	c.EndWatches()
	poll.Must(t, 10*time.Second, "degraded mode", func() bool { return s.Snapshot().Mode == discovery.ModeDegraded })
	if snap := s.Snapshot(); !reflect.DeepEqual(snap.APIServers, []string{"198.18.0.11", "198.18.0.12"}) {
		t.Fatalf("degraded snapshot %+v", snap)
	}
}

// Degraded mode's steady cost: per poll interval the Endpoints and the
// permission probes of the three refused watches, at most four requests.
// The intervals are ticks of a fake clock, each let run to its end.
func TestDegradedRequestsPerInterval(t *testing.T) {
	c := fakeapi.New("system:node:m1")
	c.Deny["nodes"].Store(true)
	c.Deny["endpointslices"].Store(true)
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	s := discovery.New(clientset.New(c.Client), discovery.Options{PollInterval: time.Second, Clock: fc})
	ctx, cancel := context.WithCancel(context.Background())
	s.Start(ctx)
	t.Cleanup(func() { cancel(); s.Shutdown() })
	poll.Must(t, 10*time.Second, "degraded mode", func() bool { return s.Snapshot().Mode == discovery.ModeDegraded })
	// The three refused watches wait for their first recheck.
	poll.Must(t, 10*time.Second, "every ticker set", func() bool { return fc.Waiters() >= 4 })
	// Each tick: the Endpoints read and the three watches' permission
	// probes, four requests; waited for, not slept for.
	before := len(c.Client.Actions())
	const intervals = 10
	for i := range intervals {
		fc.Step(time.Second)
		want := before + 4*(i+1)
		poll.Until(2*time.Second, time.Millisecond, func() bool { return len(c.Client.Actions()) >= want })
	}
	got := len(c.Client.Actions()) - before
	t.Logf("%d requests in %d intervals", got, intervals)
	if got > 4*intervals || got < intervals {
		t.Fatalf("%d requests in %d poll intervals, want at least one and at most four per interval", got, intervals)
	}
}
