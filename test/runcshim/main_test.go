package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFlagValue(t *testing.T) {
	for _, c := range []struct {
		args        []string
		long, short string
		want        string
	}{
		{[]string{"--root", "/run/r", "create", "--bundle", "/b/1", "id"}, "--bundle", "-b", "/b/1"},
		{[]string{"create", "-b", "/b/2", "id"}, "--bundle", "-b", "/b/2"},
		{[]string{"run", "--bundle=/b/3", "id"}, "--bundle", "-b", "/b/3"},
		{[]string{"--root", "/run/r", "start", "id"}, "--bundle", "-b", ""},
		{[]string{"create", "--bundle"}, "--bundle", "-b", ""},
		{[]string{"exec", "--process", "/tmp/p.json", "--detach", "id"}, "--process", "-p", "/tmp/p.json"},
	} {
		if got := flagValue(c.args, c.long, c.short); got != c.want {
			t.Errorf("flagValue(%q, %s) = %q, want %q", c.args, c.long, got, c.want)
		}
	}
}

func TestDropCapabilityOfAnExecProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "process.json")
	in := `{"args":["mkdir","-p","/home/envoy"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_SYS_ADMIN"]}}`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dropCapability(path); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Args         []string
		Capabilities map[string][]string
	}
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Capabilities["bounding"], []string{"CAP_SYS_ADMIN"}) || len(got.Args) != 3 {
		t.Errorf("process after: %s", b)
	}
}

func TestDropCapabilityKeepsTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	in := `{"ociVersion":"1.0.2","process":{"args":["/sbin/init"],"capabilities":{` +
		`"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_NET_ADMIN"],"effective":["CAP_SYS_RESOURCE"],` +
		`"permitted":["CAP_CHOWN"]}},"hostname":"node"}`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dropCapability(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	var got struct {
		OCIVersion string `json:"ociVersion"`
		Hostname   string
		Process    struct {
			Args         []string
			Capabilities map[string][]string
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	c := got.Process.Capabilities
	if !slices.Equal(c["bounding"], []string{"CAP_CHOWN", "CAP_NET_ADMIN"}) || len(c["effective"]) != 0 ||
		!slices.Equal(c["permitted"], []string{"CAP_CHOWN"}) {
		t.Errorf("capabilities %v", c)
	}
	if got.OCIVersion != "1.0.2" || got.Hostname != "node" || !slices.Equal(got.Process.Args, []string{"/sbin/init"}) {
		t.Errorf("other fields changed: %s", b)
	}
}

func TestDropCapabilityRefusesABrokenConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dropCapability(path); err == nil {
		t.Error("a broken config.json accepted")
	}
	if b, _ := os.ReadFile(path); string(b) != "{" {
		t.Errorf("a refused config was rewritten: %q", b)
	}
}
