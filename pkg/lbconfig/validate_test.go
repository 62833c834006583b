package lbconfig

import (
	"strings"
	"testing"
	"unicode"
)

func TestValidateNodeName(t *testing.T) {
	// The longest name allowed: 253 characters.
	longest := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	good := []string{"m1", "master-0.example.com", "a", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63), longest}
	bad := []string{"", "M1", "-m1", "m1-", "m 1", "m1\n", "m1#x", "m1;x", "m1/x", "m1..x", strings.Repeat("a", 254)}
	for _, n := range good {
		if err := ValidateNodeName(n); err != nil {
			t.Errorf("ValidateNodeName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateNodeName(n); err == nil {
			t.Errorf("ValidateNodeName(%q) = nil, want an error", n)
		}
	}
}

func TestParseAddress(t *testing.T) {
	tests := map[string]string{ // input -> canonical, "" for refused
		"198.18.0.1":         "198.18.0.1",
		"127.0.0.5":          "127.0.0.5",
		"fd00::1":            "fd00::1",
		"FD00:0::1":          "fd00::1",
		"::ffff:198.18.0.1":  "198.18.0.1",
		"0.0.0.0":            "",
		"::":                 "",
		"255.255.255.255":    "",
		"ff02::1":            "",
		"fe80::1%eth0":       "",
		"fe80::1":            "",
		"169.254.0.5":        "169.254.0.5",
		"198.18.0.1 ":        "",
		"198.18.0.1:6443":    "",
		"[fd00::1]":          "",
		"198.018.0.1":        "",
		"host.example.com":   "",
		"198.18.0.1\nserver": "",
	}
	for in, want := range tests {
		a, err := ParseAddress(in)
		if want == "" {
			if err == nil {
				t.Errorf("ParseAddress(%q) = %v, want an error", in, a)
			}
			continue
		}
		if err != nil || a.String() != want {
			t.Errorf("ParseAddress(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
}

// safeToken is what the haproxy cfg can take without quoting: no white space,
// no comment or escape characters.
func safeToken(s string) bool {
	for _, r := range s {
		if unicode.IsSpace(r) || r == '#' || r == '\\' || r == '"' || r == '\'' || r > unicode.MaxASCII {
			return false
		}
	}
	return s != ""
}

func FuzzValidateNodeName(f *testing.F) {
	for _, s := range []string{"m1", "m 1", "a.b-c", "x\nserver", "#", "\u00e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateNodeName(name) == nil && !safeToken(name) {
			t.Fatalf("accepted unsafe node name %q", name)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"198.18.0.1", "fd00::1", "fe80::1%x y", "::ffff:1.2.3.4", "1.2.3.4 bind"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		out := a.String()
		if !safeToken(out) || strings.ContainsAny(out, "%[]") {
			t.Fatalf("ParseAddress(%q) gave unsafe %q", s, out)
		}
		if again, err := ParseAddress(out); err != nil || again != a {
			t.Fatalf("canonical form %q does not round-trip: %v %v", out, again, err)
		}
	})
}
