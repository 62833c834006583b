package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func threeMasters(frontend string) lbconfig.TemplateData {
	return lbconfig.TemplateData{LBConfig: lbconfig.LBConfig{
		ApiPort: 6443, LbPort: 9445, StatPort: 29445, FrontendAddr: frontend,
		Backends: []lbconfig.Backend{
			{Host: "master-0", Address: "198.18.0.10", Port: 6443},
			{Host: "master-1", Address: "198.18.0.11", Port: 6443},
			{Host: "master-2", Address: "198.18.0.12", Port: 6443},
		},
	}}
}

func TestGolden(t *testing.T) {
	empty := lbconfig.TemplateData{LBConfig: lbconfig.LBConfig{ApiPort: 6443, LbPort: 9445, StatPort: 29445, Backends: []lbconfig.Backend{}}}
	v6 := lbconfig.TemplateData{LBConfig: lbconfig.LBConfig{
		ApiPort: 6443, LbPort: 9445, StatPort: 29445, FrontendAddr: "::",
		Backends: []lbconfig.Backend{{Host: "master-0", Address: "fd00::10", Port: 6443}},
	}}
	cases := []struct {
		template, golden string
		data             lbconfig.TemplateData
	}{
		{"testdata/seed.cfg.tmpl", "testdata/seed-three.cfg", threeMasters("")},
		{"testdata/seed.cfg.tmpl", "testdata/seed-empty.cfg", empty},
		{"../../templates/haproxy.cfg.tmpl", "testdata/ours-three.cfg", threeMasters("")},
		{"../../templates/haproxy.cfg.tmpl", "testdata/ours-empty.cfg", empty},
		{"../../templates/haproxy.cfg.tmpl", "testdata/ours-ipv6.cfg", v6},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.golden), func(t *testing.T) {
			r, err := Load(tc.template)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Render(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(tc.golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tc.golden)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/render -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s rendered differently from %s:\n%s", tc.template, tc.golden, got)
			}
		})
	}
}

// The seed article's template, executed the way the original executes it,
// must give the bytes we produce: text/template over the same field names.
func TestSeedTemplateMatchesOriginalData(t *testing.T) {
	r, err := Load("testdata/seed.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Render(threeMasters(""))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"  bind :::9445 v4v6",
		"  bind localhost:29445",
		"   server master-0 198.18.0.10:6443 weight 1 verify none check check-ssl inter 1s fall 2 rise 3",
		"   server master-2 198.18.0.12:6443 weight 1 verify none check check-ssl inter 1s fall 2 rise 3",
	} {
		if !strings.Contains(string(got), line+"\n") {
			t.Errorf("missing line %q in\n%s", line, got)
		}
	}
}

func TestOursOmitsFrontendWithoutBackends(t *testing.T) {
	r, err := Load("../../templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := r.Render(lbconfig.TemplateData{LBConfig: lbconfig.LBConfig{LbPort: 9445, Backends: []lbconfig.Backend{}}})
	full, _ := r.Render(threeMasters(""))
	if strings.Contains(string(empty), "frontend main") {
		t.Error("frontend rendered without backends")
	}
	if !strings.Contains(string(full), "frontend main") {
		t.Error("frontend missing with backends")
	}
	if strings.Contains(string(full), "Username:Password") || strings.Contains(string(full), "stats auth") {
		t.Error("literal stats credentials in our template")
	}
	if !strings.Contains(string(full), "expose-fd listeners") {
		t.Error("stats socket does not expose listeners for seamless reloads")
	}
}

func TestBrokenTemplates(t *testing.T) {
	cases := map[string]string{
		"syntax":        "{{ range .LBConfig.Backends }}",
		"unknown field": "x {{ .LBConfig.Nope }}",
		"bad function":  "{{ nosuch 1 }}",
		"empty output":  "{{- /* nothing */ -}}\n  \n",
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(name, text); err == nil {
				t.Fatalf("template %q accepted", text)
			}
		})
	}
	if _, err := Load("testdata/does-not-exist.tmpl"); err == nil {
		t.Fatal("missing template accepted")
	}
}

func FuzzRender(f *testing.F) {
	r, err := Load("../../templates/haproxy.cfg.tmpl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("master-0", "198.18.0.10", uint16(6443))
	f.Add("m 1", "fd00::1", uint16(1))
	f.Add("x\nbind :80", "1.2.3.4\nserver", uint16(0))
	f.Fuzz(func(t *testing.T, name, addr string, port uint16) {
		// Whatever discovery hands over, only validated members reach the
		// template, and then every member is exactly one server line.
		nodes := []lbconfig.Node{{Name: name, InternalIPs: []string{addr}}}
		cfg, _ := lbconfig.Build(nodes, lbconfig.Options{APIPort: port, LBPort: 9445, StatPort: 29445})
		out, err := r.Render(lbconfig.TemplateData{LBConfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(string(out), "\n  server "); got != len(cfg.Backends) {
			t.Fatalf("%d server lines for %d backends:\n%s", got, len(cfg.Backends), out)
		}
		base, _ := r.Render(lbconfig.TemplateData{LBConfig: lbconfig.LBConfig{LbPort: 9445, StatPort: 29445, Backends: cfg.Backends[:0]}})
		if extra := strings.Count(string(out), "\n") - strings.Count(string(base), "\n"); len(cfg.Backends) == 1 && extra != 3+1 {
			t.Fatalf("one backend added %d lines, want frontend (3) + server (1)", extra)
		}
	})
}
