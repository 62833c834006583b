package harness

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ControlPlane is one etcd and one or more kube-apiservers sharing it.
type ControlPlane struct {
	Dir  string
	CA   *CA
	Logf func(format string, args ...any)

	EtcdURL string
	etcd    *Process

	// Admin credentials for the test and the monitor.
	Token string

	APIServers []*APIServer
}

// APIServer is one kube-apiserver process.
type APIServer struct {
	Name    string
	Address string // bind and advertise address
	Port    int
	URL     string
	args    []string
	dir     string
	proc    *Process
}

// ControlPlaneOptions shape a control plane.
type ControlPlaneOptions struct {
	// APIServers lists the bind addresses, one apiserver each; default one on
	// 127.0.0.1.
	APIServers []string
	// APIPort is shared by all apiservers; 0 picks a free one.
	APIPort int
	// EtcdAddress is where etcd listens; default 127.0.0.1.
	EtcdAddress string
	// Wrap, if set, turns an apiserver's argv into the command to run (for
	// example to run it inside a network namespace); EtcdWrap likewise.
	Wrap     func(apiserverName string, argv []string) []string
	EtcdWrap func(argv []string) []string
	// BindAll makes each apiserver listen on every address (as on a real
	// master, where localhost:6443 and the VIP reach it too) while it still
	// advertises its own.
	BindAll bool
	// ExtraSANs are added to every apiserver's serving certificate (the VIP).
	ExtraSANs []net.IP
	// ServiceCIDR defaults to 198.18.128.0/24; an IPv6 control plane needs an
	// IPv6 one (the kubernetes Service's family follows it).
	ServiceCIDR string
	// ShutdownDelay is kube-apiserver's --shutdown-delay-duration: after
	// SIGTERM it leaves the kubernetes Endpoints and fails /readyz but keeps
	// serving this long (default 0).
	ShutdownDelay time.Duration
	Logf          func(format string, args ...any)
}

// StartControlPlane starts etcd and the apiservers and waits until each
// answers /readyz. On error everything started is stopped.
func StartControlPlane(ctx context.Context, dir string, opts ControlPlaneOptions) (_ *ControlPlane, err error) {
	if err := Require("etcd", "kube-apiserver"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin, _ := BinDir()
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if len(opts.APIServers) == 0 {
		opts.APIServers = []string{"127.0.0.1"}
	}
	if opts.EtcdAddress == "" {
		opts.EtcdAddress = "127.0.0.1"
	}
	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Dir: dir, CA: ca, Logf: opts.Logf, Token: "admin-token-for-tests"}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	if err := cp.startEtcd(bin, opts.EtcdAddress, opts.EtcdWrap); err != nil {
		return nil, err
	}
	port := opts.APIPort
	if port == 0 {
		if port, err = FreePort(opts.APIServers...); err != nil {
			return nil, err
		}
	}
	if err := cp.writeAuth(); err != nil {
		return nil, err
	}
	saPub, saKey, err := writeServiceAccountKeys(dir)
	if err != nil {
		return nil, err
	}
	for i, addr := range opts.APIServers {
		s, err := cp.newAPIServer(bin, fmt.Sprintf("apiserver-%d", i), addr, port, saPub, saKey, opts)
		if err != nil {
			return nil, err
		}
		cp.APIServers = append(cp.APIServers, s)
	}
	for _, s := range cp.APIServers {
		if err := cp.StartAPIServer(ctx, s); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

func (cp *ControlPlane) startEtcd(bin, addr string, wrap func([]string) []string) error {
	// In a namespace of its own (wrap) etcd has its ports to itself.
	client, peer := 2379, 2380
	if wrap == nil {
		var err error
		if client, err = FreePort(addr); err != nil {
			return err
		}
		if peer, err = FreePort(addr); err != nil {
			return err
		}
	}
	host := net.JoinHostPort(addr, "")
	host = strings.TrimSuffix(host, ":")
	cURL := "http://" + host + ":" + strconv.Itoa(client)
	pURL := "http://" + host + ":" + strconv.Itoa(peer)
	cp.EtcdURL = cURL
	argv := []string{filepath.Join(bin, "etcd"),
		"--name", "default", "--data-dir", filepath.Join(cp.Dir, "etcd-data"),
		"--listen-client-urls", cURL, "--advertise-client-urls", cURL,
		"--listen-peer-urls", pURL, "--initial-advertise-peer-urls", pURL,
		"--initial-cluster", "default=" + pURL,
		"--unsafe-no-fsync", "--log-level", "warn"}
	if wrap != nil {
		argv = wrap(argv)
	}
	var err error
	cp.etcd, err = StartProcess("etcd", filepath.Join(cp.Dir, "etcd.log"), nil, argv...)
	if err != nil {
		return err
	}
	ok := Poll(30*time.Second, 100*time.Millisecond, func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(cURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		return fmt.Errorf("etcd did not become healthy:\n%s", cp.etcd.Tail(20))
	}
	return nil
}

func (cp *ControlPlane) writeAuth() error {
	tokens := cp.Token + ",admin,admin-uid,system:masters\n"
	if err := os.WriteFile(filepath.Join(cp.Dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return err
	}
	// Client certificates signed by the test CA authenticate nodes, as the
	// kubelet's do.
	return os.WriteFile(filepath.Join(cp.Dir, "client-ca.crt"), cp.CA.CertPEM, 0o644)
}

func (cp *ControlPlane) newAPIServer(bin, name, addr string, port int, saPub, saKey string, opts ControlPlaneOptions) (*APIServer, error) {
	dir := filepath.Join(cp.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ip := net.ParseIP(addr)
	certPEM, keyPEM, err := cp.CA.Serving(name, []string{"localhost", "kubernetes", "kubernetes.default.svc"},
		append([]net.IP{ip, net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, opts.ExtraSANs...))
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	args := []string{
		filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", cp.EtcdURL,
		"--bind-address", bindAddress(addr, opts.BindAll), "--secure-port", strconv.Itoa(port),
		"--advertise-address", addr,
		"--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
		"--cert-dir", filepath.Join(dir, "certs"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--token-auth-file", filepath.Join(cp.Dir, "tokens.csv"),
		"--client-ca-file", filepath.Join(cp.Dir, "client-ca.crt"),
		// As kubeadm, kind and OpenShift run it: a node may read only its
		// own Node unless RBAC grants more.
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--service-cluster-ip-range", serviceCIDR(opts.ServiceCIDR),
		"--shutdown-delay-duration", opts.ShutdownDelay.String(),
		"--v", "0",
	}
	if ip != nil && ip.IsLoopback() {
		// kube-apiserver refuses to advertise loopback into the kubernetes
		// Endpoints unless it does not reconcile them at all.
		args = append(args, "--endpoint-reconciler-type", "none")
	}
	if opts.Wrap != nil {
		args = opts.Wrap(name, args)
	}
	return &APIServer{Name: name, Address: addr, Port: port, dir: dir, args: args,
		URL: "https://" + net.JoinHostPort(addr, strconv.Itoa(port))}, nil
}

// StartAPIServer (re)starts s and waits for /readyz.
func (cp *ControlPlane) StartAPIServer(ctx context.Context, s *APIServer) error {
	if s.proc != nil && !s.proc.Exited() {
		return fmt.Errorf("%s already running", s.Name)
	}
	p, err := StartProcess(s.Name, filepath.Join(s.dir, "kube-apiserver.log"), nil, s.args...)
	if err != nil {
		return err
	}
	s.proc = p
	start := time.Now()
	client := cp.httpClient()
	ok := Poll(90*time.Second, 200*time.Millisecond, func() bool {
		if p.Exited() || ctx.Err() != nil {
			return true
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+cp.Token)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	switch {
	case p.Exited():
		return fmt.Errorf("%s exited:\n%s", s.Name, p.Tail(30))
	case ctx.Err() != nil:
		return ctx.Err()
	case !ok:
		return fmt.Errorf("%s not ready after %v:\n%s", s.Name, time.Since(start), p.Tail(30))
	}
	cp.Logf("%s ready on %s after %v", s.Name, s.URL, time.Since(start).Round(time.Millisecond))
	return nil
}

// StopAPIServer stops s (SIGTERM, then SIGKILL).
func (cp *ControlPlane) StopAPIServer(s *APIServer) {
	if s.proc != nil {
		s.proc.Stop(15 * time.Second)
	}
}

// KillAPIServer kills s with SIGKILL, like a crash.
func (cp *ControlPlane) KillAPIServer(s *APIServer) {
	if s.proc != nil && !s.proc.Exited() {
		_ = s.proc.Signal(9)
		_ = s.proc.Wait(context.Background())
	}
}

// Stop stops every process of the control plane.
func (cp *ControlPlane) Stop() {
	for _, s := range cp.APIServers {
		cp.StopAPIServer(s)
	}
	if cp.etcd != nil {
		cp.etcd.Stop(10 * time.Second)
	}
}

func (cp *ControlPlane) httpClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: cp.CA.Pool(), MinVersion: tls.VersionTLS12},
	}}
}

// WriteKubeconfig writes an admin kubeconfig whose server is serverURL,
// verified against the test CA. The monitor never runs with it: only the
// tests' own API writes do.
func (cp *ControlPlane) WriteKubeconfig(path, serverURL string) error {
	return cp.WriteKubeconfigUser(path, serverURL, fmt.Sprintf("{token: %q}", cp.Token))
}

// WriteKubeconfigUser writes a kubeconfig for serverURL, verified against
// the test CA, whose user is the given YAML mapping (any form client-go
// takes: a token, certificate files, an exec plugin).
func (cp *ControlPlane) WriteKubeconfigUser(path, serverURL, user string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority-data: %s}
contexts:
- name: test
  context: {cluster: test, user: u}
current-context: test
users:
- name: u
  user: %s
`, serverURL, base64.StdEncoding.EncodeToString(cp.CA.CertPEM), user)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// WriteNodeKubeconfig writes a kubeconfig like a kubelet's: user
// system:node:<node> in group system:nodes, authenticated by a client
// certificate in files next to it (the kubelet's pki directory), server
// serverURL verified against the test CA.
func (cp *ControlPlane) WriteNodeKubeconfig(path, serverURL, node string) error {
	return cp.WriteCertKubeconfig(path, serverURL, "system:node:"+node, "system:nodes")
}

// WriteCertKubeconfig is WriteNodeKubeconfig for any user and groups.
func (cp *ControlPlane) WriteCertKubeconfig(path, serverURL, user string, groups ...string) error {
	certPEM, keyPEM, err := cp.CA.ClientCert(user, groups)
	if err != nil {
		return err
	}
	pki := filepath.Join(filepath.Dir(path), "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	cert := filepath.Join(pki, "kubelet-client-current.pem")
	if err := os.WriteFile(cert, append(certPEM, keyPEM...), 0o600); err != nil {
		return err
	}
	return cp.WriteKubeconfigUser(path, serverURL, fmt.Sprintf("{client-certificate: %q, client-key: %q}", cert, cert))
}

// NodeHTTPClient is an HTTP client presenting node's client certificate,
// trusting the test CA.
func (cp *ControlPlane) NodeHTTPClient(node string) (*http.Client, error) {
	certPEM, keyPEM, err := cp.CA.ClientCert("system:node:"+node, []string{"system:nodes"})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: cp.CA.Pool(), Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}}, nil
}

// RESTConfig is an admin client config for serverURL (default: the first
// apiserver).
func (cp *ControlPlane) RESTConfig(serverURL string) (*rest.Config, error) {
	if serverURL == "" {
		serverURL = cp.APIServers[0].URL
	}
	path := filepath.Join(cp.Dir, "admin-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".kubeconfig")
	if err := cp.WriteKubeconfig(path, serverURL); err != nil {
		return nil, err
	}
	defer os.Remove(path)
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.WarningHandler = rest.NoWarnings{} // the tests write the deprecated v1 Endpoints on purpose
	return cfg, nil
}

// Client is an admin clientset for the first apiserver.
func (cp *ControlPlane) Client() (kubernetes.Interface, error) {
	cfg, err := cp.RESTConfig("")
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func bindAddress(addr string, all bool) string {
	switch {
	case !all:
		return addr
	case strings.Contains(addr, ":"):
		return "::"
	}
	return "0.0.0.0"
}

func serviceCIDR(c string) string {
	if c == "" {
		return "198.18.128.0/24"
	}
	return c
}
