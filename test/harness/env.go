package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
)

// RepoRoot is the directory holding go.mod, found upwards from the working
// directory (tests run in their package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// BinDir is where hack/build-test-binaries.sh put etcd and kube-apiserver.
func BinDir() (string, error) {
	if d := os.Getenv("TEST_BIN_DIR"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "bin"), nil
}

// Require reports a missing tool as an error naming how to get it.
func Require(tools ...string) error {
	bin, err := BinDir()
	if err != nil {
		return err
	}
	var missing []error
	for _, t := range tools {
		switch t {
		case "etcd", "kube-apiserver", "kubelet", "kubeadm", "kubectl", "crictl", "kind":
			if _, err := os.Stat(filepath.Join(bin, t)); err != nil {
				missing = append(missing, fmt.Errorf("%s not in %s (run hack/build-test-binaries.sh)", t, bin))
			}
		default:
			if _, err := exec.LookPath(t); err != nil {
				missing = append(missing, fmt.Errorf("%s not installed (run hack/install-deps.sh)", t))
			}
		}
	}
	return errors.Join(missing...)
}

var (
	portMu   sync.Mutex
	usedPort = map[int]bool{}
)

// FreePort returns a TCP port that is free on every address in hosts (and on
// 127.0.0.1) and was not handed out before in this process.
func FreePort(hosts ...string) (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for attempt := 0; attempt < 100; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if usedPort[port] || !freeOn(port, hosts) {
			continue
		}
		usedPort[port] = true
		return port, nil
	}
	return 0, errors.New("no free port found")
}

func freeOn(port int, hosts []string) bool {
	for _, h := range hosts {
		ln, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}
