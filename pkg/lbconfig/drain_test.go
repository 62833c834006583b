package lbconfig

import (
	"reflect"
	"testing"
)

func TestDraining(t *testing.T) {
	b := []Backend{{Host: "m1", Address: "198.18.0.11"}, {Host: "m2", Address: "198.18.0.12"}, {Host: "m3", Address: "fd00::13"}}
	all := map[string]bool{"198.18.0.11": true, "198.18.0.12": true, "fd00::13": true}
	tests := []struct {
		name  string
		ready []string
		seen  map[string]bool
		want  []string
	}{
		{"all ready", []string{"198.18.0.11:6443", "198.18.0.12:6443", "[fd00::13]:6443"}, all, nil},
		{"one left the slice", []string{"198.18.0.11:6443", "[fd00::13]:6443"}, all, []string{"m2"}},
		{"never seen there: left alone", []string{"198.18.0.11:6443"}, map[string]bool{"198.18.0.11": true, "198.18.0.12": true}, []string{"m2"}},
		{"an empty slice never drains everything", nil, all, nil},
		{"only foreign addresses ready: never all", []string{"198.19.0.1:6443"}, all, nil},
		{"IPv6 in another notation is the same", []string{"198.18.0.11:6443", "198.18.0.12:6443", "[FD00:0::13]:6443"}, all, nil},
	}
	for _, tc := range tests {
		if got := Draining(b, tc.ready, tc.seen); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	seen := map[string]bool{}
	SeenReady(seen, []string{"[FD00::13]:6443", "bogus"})
	if !seen["fd00::13"] || len(seen) != 1 {
		t.Errorf("seen %v", seen)
	}
}
