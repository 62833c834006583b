package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The files kind writes for envoy (a bootstrap naming the LDS and CDS
// files, a TCP listener, a cluster of the control-plane nodes' endpoints)
// give the listener's address and the endpoints.
func TestLoadReadsKindsFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lds := write("lds.yaml", `
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: listener_apiserver
  address:
    socket_address:
      address: "0.0.0.0"
      port_value: 6443
`)
	cds := write("cds.yaml", `
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: kube_apiservers
  load_assignment:
    cluster_name: kube_apiservers
    endpoints:
    - lb_endpoints:
      - endpoint:
          address:
            socket_address:
              address: hapm-control-plane
              port_value: 6443
      - endpoint:
          address:
            socket_address:
              address: hapm-control-plane2
              port_value: 6443
`)
	boot := write("envoy.yaml", `
node:
  cluster: hapm
  id: hapm-external-load-balancer
dynamic_resources:
  cds_config:
    resource_api_version: V3
    path_config_source:
      path: `+cds+`
  lds_config:
    resource_api_version: V3
    path_config_source:
      path: `+lds+`
`)
	var b bootstrap
	if err := readYAML(boot, &b); err != nil {
		t.Fatal(err)
	}
	c, err := load(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.listen != "0.0.0.0:6443" || !slices.Equal(c.endpoints, []string{"hapm-control-plane:6443", "hapm-control-plane2:6443"}) {
		t.Fatalf("config %+v", c)
	}
	// kind's first files are empty resource lists: nothing to serve yet.
	write("lds.yaml", "resources: []")
	write("cds.yaml", "resources: []")
	if c, err := load(b); err != nil || c.listen != "" || len(c.endpoints) != 0 {
		t.Fatalf("empty files: %+v, %v", c, err)
	}
}
