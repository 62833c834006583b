package lbconfig

import (
	"reflect"
	"strconv"
	"testing"
)

func TestAPIServerNodes(t *testing.T) {
	self := Node{Name: "m1", InternalIPs: []string{"198.18.0.11", "fd00::11"}}
	known := []Backend{{Host: "m2", Address: "198.18.0.12"}, {Host: "m1", Address: "198.18.0.99"}, {Host: "Bad_Name", Address: "198.18.0.14"}}
	tests := []struct {
		name  string
		addrs []string
		self  Node
		known []Backend
		want  []string // Name=address
	}{
		{"own address takes the own name", []string{"198.18.0.11"}, self, nil, []string{"m1=198.18.0.11"}},
		{"IPv6 own address in another notation", []string{"FD00:0::11"}, self, nil, []string{"m1=FD00:0::11"}},
		{"known address keeps the name it had", []string{"198.18.0.11", "198.18.0.12"}, self, known, []string{"m1=198.18.0.11", "m2=198.18.0.12"}},
		{"self wins over a stale known name for another address", []string{"198.18.0.99", "198.18.0.11"}, self, known,
			[]string{"apiserver-198-18-0-99=198.18.0.99", "m1=198.18.0.11"}},
		{"an invalid known name is not reused", []string{"198.18.0.14"}, Node{}, known, []string{"apiserver-198-18-0-14=198.18.0.14"}},
		{"unknown addresses are named after themselves", []string{"198.18.0.13", "fd00::13", "fd00::"}, Node{}, nil,
			[]string{"apiserver-198-18-0-13=198.18.0.13", "apiserver-fd00--13=fd00::13", "apiserver-fd00--0=fd00::"}},
		{"no self, no known", nil, Node{}, nil, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := []string{}
			for _, n := range APIServerNodes(tc.addrs, tc.self, tc.known) {
				if err := ValidateNodeName(n.Name); err != nil {
					t.Errorf("invalid name: %v", err)
				}
				got = append(got, n.Name+"="+n.InternalIPs[0])
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Whatever the Endpoints hold, every address gets a distinct valid name, and
// the names Build keeps never break a server line.
func FuzzAPIServerNodes(f *testing.F) {
	f.Add("198.18.0.1", "fd00::1", "m1", "198.18.0.1")
	f.Add("bogus address", "::", "apiserver-198-18-0-1", "198.18.0.2")
	f.Fuzz(func(t *testing.T, a1, a2, knownName, knownAddr string) {
		nodes := APIServerNodes([]string{a1, a2, a1}, Node{Name: knownName, InternalIPs: []string{a2}},
			[]Backend{{Host: knownName, Address: knownAddr}})
		seen := map[string]bool{}
		for _, n := range nodes {
			if err := ValidateNodeName(n.Name); err != nil {
				t.Fatalf("name %q: %v", n.Name, err)
			}
			if seen[n.Name] {
				t.Fatalf("name %q given twice", n.Name)
			}
			seen[n.Name] = true
		}
	})
}

func TestRememberNames(t *testing.T) {
	known := []Backend{{Host: "m1", Address: "198.18.0.11"}, {Host: "m2", Address: "198.18.0.12"}}
	got := RememberNames(known, []Backend{{Host: "m1", Address: "198.18.0.21"}, {Host: "m3", Address: "198.18.0.12"}})
	want := []Backend{{Host: "m1", Address: "198.18.0.21"}, {Host: "m3", Address: "198.18.0.12"}, {Host: "m1", Address: "198.18.0.11"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	var many []Backend
	for i := 0; i < 2*MaxRememberedNames; i++ {
		many = append(many, Backend{Host: "n" + strconv.Itoa(i), Address: "198.18.1." + strconv.Itoa(i)})
	}
	if got := RememberNames(many, known); len(got) != MaxRememberedNames || got[0] != known[0] || got[2] != many[0] {
		t.Fatalf("bounded memory: %d entries, starting %v", len(got), got[:3])
	}
}

// A name keeps every letter and digit, and a taken name gets the first free
// suffix.
func TestSynthName(t *testing.T) {
	for _, tc := range []struct {
		addr string
		used []string
		want string
	}{
		{"Zone9.example", nil, "apiserver-zone9-example"},
		{"az_09", nil, "apiserver-az-09"},
		{"198.18.0.1", []string{"apiserver-198-18-0-1"}, "apiserver-198-18-0-1-2"},
		{"198.18.0.1", []string{"apiserver-198-18-0-1", "apiserver-198-18-0-1-2"}, "apiserver-198-18-0-1-3"},
	} {
		used := map[string]bool{}
		for _, u := range tc.used {
			used[u] = true
		}
		if got := synthName(tc.addr, used); got != tc.want {
			t.Errorf("synthName(%q, %v) = %q, want %q", tc.addr, tc.used, got, tc.want)
		}
	}
}
