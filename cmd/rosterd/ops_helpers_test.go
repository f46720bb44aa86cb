package main

// Helpers for the operations tests (ops_*_test.go): a daemon started with
// exactly the arguments a test gives (no harness flags, for config-file
// tests), known_hosts for the real daemon's host keys, organizations with a
// client key, and waiting for an ingest report.

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// startServeArgs starts `rosterd serve ARGS...` with env added to the
// environment, without the harness's flags (so a config file can set data,
// addresses and log format), and waits until /readyz answers 200. data is
// the data directory that args or the config file choose; the addresses
// must be 127.0.0.1:0 and the log JSON.
func startServeArgs(t *testing.T, data string, args, env []string) *testDaemon {
	t.Helper()
	d := &testDaemon{t: t, Data: data}
	d.cmd = exec.Command(rosterdBin, append([]string{"serve"}, args...)...)
	d.cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET="), env...)
	d.logs, d.stdout = &sftptest.Buffer{}, &sftptest.Buffer{}
	d.cmd.Stderr, d.cmd.Stdout = d.logs, d.stdout
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start rosterd: %v", err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(d.Stop)
	waitFor(t, 30*time.Second, "rosterd ready", func() bool {
		select {
		case <-d.done:
			t.Fatalf("rosterd exited at start: %v\n%s", d.cmd.ProcessState, d.logs)
		default:
		}
		if !d.readAddrs() {
			return false
		}
		resp, err := http.Get("http://" + d.HTTPAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	tok, err := os.ReadFile(filepath.Join(d.Data, fileAPIToken))
	if err != nil {
		t.Fatalf("read api token: %v", err)
	}
	d.Token = strings.TrimSpace(string(tok))
	return d
}

// waitExit waits for the daemon to exit on its own (after a signal the test
// sent) and returns its exit code.
func waitExit(t *testing.T, d *testDaemon, within time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		d.cmd.Process.Kill()
		<-d.done
		t.Fatalf("rosterd did not exit within %v\n%s", within, d.Logs())
		return -1
	}
}

// addOrg creates org with a fresh ed25519 client key and returns the
// private key's path.
func addOrg(t *testing.T, d *testDaemon, org string) string {
	t.Helper()
	key := newClientKey(t)
	if out, code := d.CLI("", "org", "add", org, "--key", key+".pub"); code != 0 {
		t.Fatalf("org add %s = %d %q", org, code, out)
	}
	return key
}

// hostKeys returns the daemon's host keys, read from its data directory.
func hostKeys(t *testing.T, d *testDaemon) []ssh.PublicKey {
	t.Helper()
	var keys []ssh.PublicKey
	for _, name := range sftpd.HostKeyFiles {
		pem, err := os.ReadFile(filepath.Join(d.Data, "host_keys", name))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		keys = append(keys, s.PublicKey())
	}
	return keys
}

// writeKnownHosts writes a known_hosts file naming the daemon's host keys
// for its SFTP address, as an org admin would after checking the
// fingerprints, and returns its path.
func writeKnownHosts(t *testing.T, d *testDaemon) string {
	t.Helper()
	var b strings.Builder
	for _, k := range hostKeys(t, d) {
		b.WriteString(knownhosts.Line([]string{d.SFTPAddr}, k) + "\n")
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dialSSH opens an SSH connection to the daemon as org with keyPath,
// checking the host key.
func dialSSH(t *testing.T, d *testDaemon, org, keyPath string) (*ssh.Client, error) {
	t.Helper()
	return dialSSHHost(t, d, org, keyPath, hostKeys(t, d)[0])
}

// dialSSHHost is dialSSH with host key hk pinned: a fleet's, say, which
// is in the store rather than in the data directory.
func dialSSHHost(t *testing.T, d *testDaemon, org, keyPath string, hk ssh.PublicKey) (*ssh.Client, error) {
	t.Helper()
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Dial("tcp", d.SFTPAddr, &ssh.ClientConfig{
		User:              org,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(hk),
		HostKeyAlgorithms: []string{hk.Type()},
		Timeout:           10 * time.Second,
	})
}

// ingestWired reports whether the running daemon has the batches API, which
// lands with the ingest pipeline. org must exist.
func ingestWired(t *testing.T, d *testDaemon, org string) bool {
	t.Helper()
	return d.API("GET", "/v1/organizations/"+org+"/batches", nil, nil) != http.StatusNotFound
}

// latestReport returns ORG/reports/latest.json decoded, or nil while there
// is none or its batch is not final.
func latestReport(d *testDaemon, org string) map[string]any {
	var rep map[string]any
	raw, err := os.ReadFile(filepath.Join(d.Data, "orgs", org, "reports", "latest.json"))
	if err != nil || json.Unmarshal(raw, &rep) != nil {
		return nil
	}
	switch rep["status"] {
	case "pending", "processing", nil:
		return nil
	}
	return rep
}

// waitLatestReport polls ORG/reports/latest.json until it exists with a
// final status and cond (nil: any) holds for it, and returns it.
func waitLatestReport(t *testing.T, d *testDaemon, org string, within time.Duration, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	var rep map[string]any
	waitFor(t, within, "a report in "+org+"/reports", func() bool {
		rep = latestReport(d, org)
		return rep != nil && (cond == nil || cond(rep))
	})
	return rep
}

// countOf returns report["counts"][key] as an int (-1 when absent).
func countOf(rep map[string]any, key string) int {
	c, _ := rep["counts"].(map[string]any)
	if v, ok := c[key].(float64); ok {
		return int(v)
	}
	return -1
}

// logMatches returns the daemon's JSON log lines for which match is true.
func logMatches(d *testDaemon, match func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(d.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && match(m) {
			out = append(out, m)
		}
	}
	return out
}

// msgPrefix matches log lines whose msg starts with prefix.
func msgPrefix(prefix string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		s, _ := m["msg"].(string)
		return strings.HasPrefix(s, prefix)
	}
}

// accepts reports whether addr accepts a TCP connection now.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// examplesDir is the repository's examples folder.
func examplesDir(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
