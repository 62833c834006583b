package render

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
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

// The original's template value, field for field (docs/usage.md, "The
// template's data"): its ApiLBConfig and Backend, under the field LBConfig.
type originalBackend struct {
	Host    string
	Address string
	Port    uint16
}

type originalLBConfig struct {
	ApiPort      uint16 //nolint:revive // the original's name
	LbPort       uint16
	StatPort     uint16
	Backends     []originalBackend
	FrontendAddr string
}

type originalData struct{ LBConfig originalLBConfig }

// shape lists a type's exported fields, recursively, as "path kind": what a
// template can reach.
func shape(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		path, ft := prefix+f.Name, f.Type
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, path+" struct")
			out = append(out, shape(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, path+" []struct")
			out = append(out, shape(ft.Elem(), path+"[].")...)
		default:
			out = append(out, path+" "+ft.String())
		}
	}
	slices.Sort(out)
	return out
}

// Our template data has exactly the original's shape: every field a
// template of the original's can name, with its type, and no other (a
// field we added could shadow a method or change what "range" sees).
func TestTemplateDataHasTheOriginalsShape(t *testing.T) {
	got, want := shape(reflect.TypeOf(lbconfig.TemplateData{}), ""), shape(reflect.TypeOf(originalData{}), "")
	if !slices.Equal(got, want) {
		t.Errorf("template data:\n got %v\nwant %v", got, want)
	}
}

// A member set as the original's monitor and ours both describe it: each
// side's value is built from these plain inputs, not from the other's.
type members struct {
	api, lb, stat uint16
	frontend      string
	backends      [][2]string // name, address
}

func (m members) original() originalData {
	o := originalData{LBConfig: originalLBConfig{ApiPort: m.api, LbPort: m.lb, StatPort: m.stat,
		FrontendAddr: m.frontend, Backends: []originalBackend{}}}
	for _, b := range m.backends {
		o.LBConfig.Backends = append(o.LBConfig.Backends, originalBackend{Host: b[0], Address: b[1], Port: m.api})
	}
	return o
}

func (m members) ours() lbconfig.TemplateData {
	d := lbconfig.TemplateData{LBConfig: lbconfig.LBConfig{ApiPort: m.api, LbPort: m.lb, StatPort: m.stat,
		FrontendAddr: m.frontend, Backends: []lbconfig.Backend{}}}
	for _, b := range m.backends {
		d.LBConfig.Backends = append(d.LBConfig.Backends, lbconfig.Backend{Host: b[0], Address: b[1], Port: m.api})
	}
	return d
}

// Templates that worked with the original render byte for byte the same:
// each template executed by plain text/template over the original's value
// gives exactly our renderer's bytes, for every member set.
func TestTemplatesRenderAsWithTheOriginal(t *testing.T) {
	sets := map[string]members{
		"three": {6443, 9445, 29445, "", [][2]string{{"master-0", "198.18.0.10"}, {"master-1", "198.18.0.11"}, {"master-2", "198.18.0.12"}}},
		"ipv6":  {6443, 9445, 29445, "::", [][2]string{{"master-0", "fd00::10"}}},
		"ports": {7443, 9555, 30000, "", [][2]string{{"a", "198.18.0.1"}}},
		"empty": {6443, 9445, 29445, "", nil},
	}
	for _, path := range []string{"testdata/seed.cfg.tmpl", "../../templates/haproxy.cfg.tmpl"} {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		orig := template.Must(template.New("original").Parse(string(text)))
		r, err := Parse(path, string(text))
		if err != nil {
			t.Fatal(err)
		}
		for name, m := range sets {
			var want bytes.Buffer
			if err := orig.Execute(&want, m.original()); err != nil {
				t.Fatal(err)
			}
			got, err := r.Render(m.ours())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s with %s: ours differs from the original's rendering:\n%s\n---\n%s", path, name, got, want.Bytes())
			}
		}
	}
}

// Every golden render is a configuration haproxy accepts.
func TestGoldenRendersPassHAProxyCheck(t *testing.T) {
	bin := need.Tool(t, "haproxy")[0]
	files, _ := filepath.Glob("testdata/*.cfg")
	if len(files) < 5 {
		t.Fatalf("golden files %v", files)
	}
	for _, f := range files {
		if out, err := exec.Command(bin, "-c", "-f", f).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c -f %s: %v\n%s", f, err, out)
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
