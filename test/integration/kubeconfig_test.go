package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

func writeKubeconfigUser(t *testing.T, path, user string) {
	t.Helper()
	if err := cp.WriteKubeconfigUser(path, cp.APIServers[0].URL, user); err != nil {
		t.Fatal(err)
	}
}

// An exec credential plugin returning the node's client certificate (the
// monitor refused any exec plugin at start before): it runs as the node,
// through the failover dialer, and serves.
func TestKubeconfigExecPlugin(t *testing.T) {
	s := newSite(t)
	certPEM, keyPEM, err := cp.CA.ClientCert("system:node:m1", []string{"system:nodes"})
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := json.Marshal(map[string]any{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
		"status": map[string]string{"clientCertificateData": string(certPEM), "clientKeyData": string(keyPEM)}})
	credFile := filepath.Join(s.dir, "credential.json")
	plugin := filepath.Join(s.dir, "credential-plugin")
	writeFile(t, credFile, cred, 0o600)
	writeFile(t, plugin, []byte("#!/bin/sh\nexec cat "+credFile+"\n"), 0o755)
	writeKubeconfigUser(t, s.args.Kubeconfig, `{exec: {apiVersion: client.authentication.k8s.io/v1, command: "`+plugin+`", interactiveMode: Never}}`)
	s.startWithM1()
}

// A token file that turns invalid after sync (revoked): the file on disk
// keeps serving, /readyz stays 200 but says the API answers 401 and since
// when, the metric counts the seconds; the restored token is used again
// without a restart.
func TestFailingAPIAfterSync(t *testing.T) {
	s := newSite(t)
	port := s.health()
	tok := filepath.Join(s.dir, "token")
	writeFile(t, tok, []byte(cp.Token+"\n"), 0o600)
	writeKubeconfigUser(t, s.args.Kubeconfig, `{tokenFile: "`+tok+`"}`)
	s.startWithM1()
	before := s.cfg()
	writeFile(t, tok, []byte("revoked\n"), 0o600)
	// The open watches would carry on: restart the apiserver to end them.
	api := cp.APIServers[0]
	cp.StopAPIServer(api)
	if err := cp.StartAPIServer(context.Background(), api); err != nil {
		t.Fatal(err)
	}
	if body, ok := harness.WaitReadyz(port, 60*time.Second, func(code int, body string) bool {
		return code == 200 && strings.Contains(body, "API requests failing since") && strings.Contains(body, "Unauthorized")
	}); !ok {
		t.Fatalf("/readyz never said the API fails: %q", body)
	}
	if m := scrape(t, port); m["haproxy_monitor_api_failing_seconds"] <= 0 {
		t.Errorf("api_failing_seconds = %v", m["haproxy_monitor_api_failing_seconds"])
	}
	if !harness.FileUnchanged(s.hap.CfgPath, before) {
		t.Fatal("the cfg changed while the API refused us")
	}
	writeFile(t, tok, []byte(cp.Token+"\n"), 0o600)
	if body, ok := harness.WaitReadyz(port, 60*time.Second, func(code int, body string) bool { return code == 200 && body == "ok\n" }); !ok {
		t.Fatalf("/readyz after the token was restored: %q", body)
	}
}
