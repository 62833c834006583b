package render

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"text/template"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

// Renderer holds a parsed template.
type Renderer struct {
	path string
	tmpl *template.Template
}

// Load reads and parses the template at path and executes it once with sample
// data (empty and non-empty backend lists) so that errors only execution finds,
// such as a misspelt field, surface now.
func Load(path string) (*Renderer, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading template: %w", err)
	}
	return Parse(path, string(text))
}

// Parse is Load for a template already in memory; name is used in errors.
func Parse(name, text string) (*Renderer, error) {
	tmpl, err := template.New(filepath.Base(name)).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parsing template %s: %w", name, err)
	}
	r := &Renderer{path: name, tmpl: tmpl}
	for _, sample := range samples() {
		if _, err := r.Render(sample); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Render executes the template. Empty output is an error: an empty haproxy.cfg
// would stop the load balancer on the next reload.
func (r *Renderer) Render(data lbconfig.TemplateData) ([]byte, error) {
	var buf bytes.Buffer
	if err := r.tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", r.path, err)
	}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return nil, fmt.Errorf("rendering %s: the template produced an empty configuration", r.path)
	}
	return buf.Bytes(), nil
}

func samples() []lbconfig.TemplateData {
	base := lbconfig.LBConfig{ApiPort: 6443, LbPort: 9445, StatPort: 29445, Backends: []lbconfig.Backend{}}
	one := base
	one.Backends = []lbconfig.Backend{{Host: "sample", Address: "198.18.0.1", Port: 6443}}
	six := one
	six.FrontendAddr = "::"
	return []lbconfig.TemplateData{{LBConfig: base}, {LBConfig: one}, {LBConfig: six}}
}
