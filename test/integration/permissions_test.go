package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

// What a kubelet's identity may read, without and with manifests/rbac.yaml,
// asked of the real kube-apiserver (Node,RBAC with NodeRestriction). README's
// permission table is this test's table.
func TestNodeIdentityPermissions(t *testing.T) {
	ctx := context.Background()
	s := newSite(t)
	s.node("m1", harness.MasterLabel, 11)
	s.node("m2", harness.MasterLabel, 12)
	s.kubernetesEndpoints("198.18.0.11", "198.18.0.12")
	c, err := cp.NodeHTTPClient("m1")
	if err != nil {
		t.Fatal(err)
	}
	const (
		nodesByLabel = "/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fmaster"
		watchNodes   = "/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fmaster&watch=1&timeoutSeconds=1"
		allNodes     = "/api/v1/nodes"
		otherNode    = "/api/v1/nodes/m2"
		ownNode      = "/api/v1/nodes/m1"
		ownNodeList  = "/api/v1/nodes?fieldSelector=metadata.name%3Dm1"
		sliceByName  = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?fieldSelector=metadata.name%3Dkubernetes"
		watchSlice   = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?fieldSelector=metadata.name%3Dkubernetes&watch=1&timeoutSeconds=1"
		allSlices    = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
		otherSlice   = "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices?fieldSelector=metadata.name%3Dkubernetes"
		endpoints    = "/api/v1/namespaces/default/endpoints/kubernetes"
		allEndpoints = "/api/v1/namespaces/default/endpoints"
	)
	type row struct {
		path               string
		without, withGrant int
	}
	table := []row{
		{nodesByLabel, 403, 200}, {watchNodes, 403, 200}, {allNodes, 403, 200},
		{otherNode, 403, 403}, {ownNode, 200, 200}, {ownNodeList, 200, 200},
		{sliceByName, 403, 200}, {watchSlice, 403, 200}, {allSlices, 403, 403}, {otherSlice, 403, 403},
		{endpoints, 200, 200}, {allEndpoints, 403, 403},
	}
	check := func(grant bool) {
		t.Helper()
		for _, r := range table {
			want := r.without
			if grant {
				want = r.withGrant
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cp.APIServers[0].URL+r.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", r.path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("grant=%v GET %s: %d, want %d", grant, r.path, resp.StatusCode, want)
			}
		}
		resp, err := c.Post(cp.APIServers[0].URL+"/apis/authentication.k8s.io/v1/selfsubjectreviews", "application/json",
			strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Errorf("grant=%v SelfSubjectReview: %d, want 201", grant, resp.StatusCode)
		}
	}
	withoutRBAC(t)
	check(false)
	if err := harness.ApplyRBAC(ctx, client); err != nil {
		t.Fatal(err)
	}
	waitAuthorized(t, c, nodesByLabel)
	check(true)
}

// An identity that may read neither the Nodes nor the kubernetes Endpoints
// (not a node, no grant): the monitor says so in its log and /readyz, keeps
// running (a grant may come), and leaves the file on disk alone.
func TestIdentityThatMayReadNothing(t *testing.T) {
	s := newSite(t)
	port := s.health()
	if err := cp.WriteCertKubeconfig(s.args.Kubeconfig, cp.APIServers[0].URL, "nobody", "nobodies"); err != nil {
		t.Fatal(err)
	}
	s.node("m1", harness.MasterLabel, 11)
	const precious = "# precious, must survive\n"
	writeFile(t, s.hap.CfgPath, []byte(precious), 0o644)
	s.startHAProxy()
	s.startMonitor()
	s.waitLog(30*time.Second, "no readable source of control-plane members")
	code, body := harness.Readyz(port)
	if code != 503 || !strings.Contains(body, "nobody may read neither the Nodes") || !strings.Contains(body, "manifests/rbac.yaml") {
		t.Errorf("/readyz = %d %q, want 503 naming the identity and the fix", code, body)
	}
	if !harness.FileUnchanged(s.hap.CfgPath, []byte(precious)) || s.hap.ReloadsReceived() != 0 || s.mon.Exited() {
		t.Fatalf("cfg changed, %d reloads, or the monitor exited (%v)", s.hap.ReloadsReceived(), s.mon.Exited())
	}
}
