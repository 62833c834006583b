package kubeclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/tools/clientcmd"
)

// MissingCredentials lists what of the kubeconfig at path does not exist
// yet: the file itself, or the files its current context names (client
// certificate and key, CA, token file; relative paths resolved against the
// kubeconfig's directory). On a node joining a cluster the kubelet writes
// all of them during its TLS bootstrap, after the static pods have started.
// A kubeconfig that exists but does not parse, or has no current context
// to use, is an error: no wait mends it.
func MissingCredentials(path string) ([]string, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return []string{path}, nil
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	ctxName := cfg.CurrentContext
	kctx, ok := cfg.Contexts[ctxName]
	if !ok {
		return nil, fmt.Errorf("kubeconfig %s: current context %q not found", path, ctxName)
	}
	var files []string
	if c, ok := cfg.Clusters[kctx.Cluster]; ok {
		files = append(files, c.CertificateAuthority)
	}
	if a, ok := cfg.AuthInfos[kctx.AuthInfo]; ok {
		files = append(files, a.ClientCertificate, a.ClientKey, a.TokenFile)
	}
	var missing []string
	for _, f := range files {
		if f == "" {
			continue
		}
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(path), f)
		}
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, f)
		}
	}
	return missing, nil
}

// WaitForCredentials waits, checking every interval, until nothing of the
// kubeconfig at path is missing (MissingCredentials), up to timeout; a
// timeout of 0 does not wait. It logs once what it waits for. A kubeconfig
// that does not parse, and one still incomplete at the timeout, are errors.
func WaitForCredentials(ctx context.Context, path string, timeout, interval time.Duration, log logrus.FieldLogger) error {
	deadline := time.Now().Add(timeout)
	logged := false
	for {
		missing, err := MissingCredentials(path)
		if err != nil || len(missing) == 0 {
			if err == nil && logged {
				log.WithField("kubeconfig", path).Info("the kubeconfig and its credentials exist; starting")
			}
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("kubeconfig %s: %v missing (waited %v for the kubelet's TLS bootstrap)", path, missing, timeout)
		}
		if !logged {
			log.WithFields(logrus.Fields{"kubeconfig": path, "missing": missing, "up_to": timeout}).
				Info("waiting for the kubeconfig and the credentials it names (the kubelet writes them during TLS bootstrap)")
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
