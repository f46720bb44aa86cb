package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// writeCert writes a self-signed certificate for name, and its key, into
// dir and returns their paths.
func writeCert(t *testing.T, dir, name string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}

// TestHTTPSListener: with tls_cert and tls_key the HTTP listener speaks
// HTTPS only; the client subcommands trust exactly the certificate the
// daemon serves (issued here for another name than the loopback address),
// setup links are https, and the console's cookie is Secure.
func TestHTTPSListener(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "rosterd.test")
	data := filepath.Join(dir, "data")
	cmd := exec.Command(rosterdBin, "serve", "--data", data, "--sftp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "ROSTERD_TLS_CERT="+cert, "ROSTERD_TLS_KEY="+key)
	d := &testDaemon{t: t, Data: data, cmd: cmd, logs: &sftptest.Buffer{}, stdout: &sftptest.Buffer{}, done: make(chan struct{})}
	cmd.Stderr, cmd.Stdout = d.logs, d.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(d.Stop)

	jar, _ := cookiejar.New(nil)
	insecure := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var base string
	waitFor(t, 30*time.Second, "rosterd ready over https", func() bool {
		raw, err := os.ReadFile(filepath.Join(data, fileHTTPAddr))
		if err != nil {
			return false
		}
		base = strings.TrimSpace(string(raw))
		resp, err := insecure.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("http_addr = %q; want https://127.0.0.1:PORT", base)
	}
	if resp, err := http.Get("http://" + strings.TrimPrefix(base, "https://") + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP is answered on the TLS listener")
		}
	}

	run := func(args ...string) (string, int) {
		return runBinary(t, "", append(args, "--data", data)...)
	}
	if out, code := run("org", "add", "acme"); code != 0 {
		t.Fatalf("org add over https = %d: %s", code, out)
	}
	out, code := run("org", "invite", "acme")
	if code != 0 || !strings.Contains(out, base+"/setup/") {
		t.Errorf("org invite over https = %d: %s; want a link under %s", code, out, base)
	}

	page := getPage(t, insecure, base+"/console/signin")
	form := url.Values{"csrf": {csrfIn(t, page)}, "secret": {readToken(t, data)}}
	req, _ := http.NewRequest("POST", base+"/console/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var signin string
	resp, err := insecure.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "rosterd_console=") {
			signin = v
		}
	}
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(signin, "; Secure") || !strings.Contains(signin, "HttpOnly") {
		t.Errorf("sign-in over https = %d, cookie %q; want a Secure, HttpOnly session cookie", resp.StatusCode, signin)
	}

	// Another certificate in the data directory: the client refuses the
	// daemon's.
	other, _ := writeCert(t, dir, "other.test")
	pemOther, _ := os.ReadFile(other)
	os.WriteFile(filepath.Join(data, fileHTTPCert), pemOther, 0o600)
	if out, code := run("org", "list"); code == 0 || !strings.Contains(out, fileHTTPCert) {
		t.Errorf("org list with another pinned certificate = %d: %s; want a refusal naming %s", code, out, fileHTTPCert)
	}
}

func readToken(t *testing.T, data string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(data, fileAPIToken))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}
