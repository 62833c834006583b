// Package keepalived renders keepalived.conf for the API VIP from
// templates/keepalived.conf.tmpl: one VRRP instance per address family, each
// tracking haproxy's monitor-uri.
package keepalived

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"text/template"
)

// Config is what the template needs.
type Config struct {
	Interface       string
	VirtualRouterID int // the IPv6 instance uses VirtualRouterID+1
	Priority        int
	AuthPass        string
	HealthURL       string
	VIPs            []netip.Addr
}

type family struct {
	Name string
	VIPs []string
}

var (
	ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	passRE  = regexp.MustCompile(`^[A-Za-z0-9]{1,8}$`)
	urlRE   = regexp.MustCompile(`^https?://[A-Za-z0-9.:\[\]/_-]+$`)
)

// Validate refuses values keepalived would reject or that could break out of
// their place in the file.
func (c Config) Validate() error {
	switch {
	case !ifaceRE.MatchString(c.Interface):
		return fmt.Errorf("interface %q is not an interface name", c.Interface)
	case c.VirtualRouterID < 1 || c.VirtualRouterID > 254:
		return fmt.Errorf("virtual router id %d is outside 1-254", c.VirtualRouterID)
	case c.Priority < 1 || c.Priority > 254:
		return fmt.Errorf("priority %d is outside 1-254", c.Priority)
	case !passRE.MatchString(c.AuthPass):
		return fmt.Errorf("auth pass must be 1-8 letters or digits (keepalived truncates longer ones)")
	case !urlRE.MatchString(c.HealthURL):
		return fmt.Errorf("health URL %q is not a plain http(s) URL", c.HealthURL)
	case len(c.VIPs) == 0:
		return fmt.Errorf("no VIP")
	}
	return nil
}

// Render executes the template file at path with c.
func Render(path string, c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := template.New("keepalived").Funcs(template.FuncMap{"add": func(a, b int) int { return a + b }}).Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	var v4, v6 family
	v4.Name, v6.Name = "V4", "V6"
	for _, v := range c.VIPs {
		if v.Is4() {
			v4.VIPs = append(v4.VIPs, v.String()+"/32")
		} else {
			v6.VIPs = append(v6.VIPs, v.String()+"/128")
		}
	}
	var fams []family
	for _, f := range []family{v4, v6} {
		if len(f.VIPs) > 0 {
			fams = append(fams, f)
		}
	}
	data := struct {
		Config
		Families []family
	}{c, fams}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", path, err)
	}
	return buf.Bytes(), nil
}
