package main

import (
	"golang.org/x/crypto/ssh"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// sftpBatch runs OpenSSH `sftp -b -` as org with keyPath against d and
// returns its output and whether it succeeded.
func sftpBatch(t *testing.T, d *testDaemon, keyPath, org, script string) (string, bool) {
	t.Helper()
	bin := sftptest.LookPath(t, "sftp")
	cmd := exec.Command(bin, "-b", "-", "-P", d.SFTPPort(), "-i", keyPath,
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		org+"@127.0.0.1")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

func newClientKey(t *testing.T) (keyPath string) {
	t.Helper()
	keyPath = filepath.Join(t.TempDir(), "id_ed25519")
	if _, err := writeClientKey(keyPath); err != nil {
		t.Fatal(err)
	}
	return keyPath
}

var hostKeyRE = regexp.MustCompile(`SHA256:[A-Za-z0-9+/]+`)

// hostFingerprints returns the host key fingerprints the daemon logged.
func hostFingerprints(d *testDaemon) []string {
	var fps []string
	for _, l := range d.logLines("host key") {
		fps = append(fps, hostKeyRE.FindString(l["fingerprint"].(string)))
	}
	return fps
}

func TestOnboardUploadAndRestart(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	key := newClientKey(t)

	out, code := d.CLI("", "org", "add", "acme", "--key", key+".pub")
	if code != 0 || !strings.Contains(out, "organization acme created") {
		t.Fatalf("org add acme = %d %q; want 0 and a confirmation", code, out)
	}
	out, code = d.CLI("", "key", "list", "acme")
	if code != 0 || !strings.Contains(out, "SHA256:") || !strings.Contains(out, "ssh-ed25519") {
		t.Fatalf("key list acme = %d %q; want the ed25519 key", code, out)
	}

	src := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(src, []byte("user_id,email,first_name,last_name\nE1,a@example.com,Ada,Lovelace\n"), 0o644)
	if out, ok := sftpBatch(t, d, key, "acme", "put "+src+" users.csv\nls -l\n"); !ok {
		t.Fatalf("sftp put failed:\n%s\n%s", out, d.Logs())
	}
	got, err := os.ReadFile(filepath.Join(d.Data, "orgs", "acme", "users.csv"))
	if err != nil || !strings.Contains(string(got), "Lovelace") {
		t.Fatalf("uploaded file = %q, %v; want the CSV", got, err)
	}

	before := hostFingerprints(d)
	if len(before) != 3 {
		t.Fatalf("logged host keys = %v; want ed25519, ecdsa and rsa", before)
	}
	d.Restart()
	if after := hostFingerprints(d); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("host keys after restart = %v; want %v", after, before)
	}
	out, code = d.CLI("", "org", "list")
	if code != 0 || !strings.Contains(out, "acme") {
		t.Errorf("org list after restart = %d %q; want acme", code, out)
	}
	if out, ok := sftpBatch(t, d, key, "acme", "get users.csv "+filepath.Join(t.TempDir(), "back.csv")+"\n"); !ok {
		t.Errorf("sftp after restart failed:\n%s", out)
	}

	// Removing the key locks the organization out.
	var keys struct {
		Data []struct{ Fingerprint string }
	}
	d.API("GET", "/v1/organizations/acme/keys", nil, &keys)
	if len(keys.Data) != 1 {
		t.Fatalf("keys = %+v; want one", keys)
	}
	if out, code := d.CLI("", "key", "remove", "acme", keys.Data[0].Fingerprint); code != 0 {
		t.Fatalf("key remove = %d %q", code, out)
	}
	if out, ok := sftpBatch(t, d, key, "acme", "ls\n"); ok {
		t.Errorf("sftp with a removed key succeeded:\n%s", out)
	}
}

func TestDemoModeReusesKey(t *testing.T) {
	d := startDaemon(t, daemonOpts{Args: []string{"--demo"}})
	line := regexp.MustCompile(`sftp -i (\S+) -P (\d+) demo@127\.0\.0\.1`).FindStringSubmatch(d.Stdout())
	if line == nil || line[2] != d.SFTPPort() {
		t.Fatalf("demo output = %q; want the sftp line with port %s", d.Stdout(), d.SFTPPort())
	}
	keyBefore, err := os.ReadFile(line[1])
	if err != nil {
		t.Fatal(err)
	}
	if out, ok := sftpBatch(t, d, line[1], "demo", "ls -l\n"); !ok {
		t.Fatalf("the printed demo line does not connect:\n%s", out)
	}
	d.Restart()
	keyAfter, _ := os.ReadFile(line[1])
	if string(keyAfter) != string(keyBefore) {
		t.Error("serve --demo replaced the demo key on restart; want it reused")
	}
	if !strings.Contains(d.Stdout(), "demo@127.0.0.1") {
		t.Errorf("second start printed %q; want the sftp line again", d.Stdout())
	}
	if out, ok := sftpBatch(t, d, line[1], "demo", "ls\n"); !ok {
		t.Errorf("demo key after restart does not connect:\n%s", out)
	}
}

func TestClientWithoutDaemon(t *testing.T) {
	for _, args := range [][]string{{"org", "list"}, {"key", "list", "acme"}} {
		out, code := runBinary(t, "", append(args, "--data", t.TempDir())...)
		if code != 2 || !strings.Contains(out, "no rosterd daemon is running") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("rosterd %v with no daemon = %d %q; want exit 2 and one line", args, code, out)
		}
	}
}

func TestAPIAuthAndErrors(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	resp, err := http.Get("http://" + d.HTTPAddr + "/v1/organizations")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/organizations without token = %d; want 401", resp.StatusCode)
	}
	for _, h := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + d.HTTPAddr + h)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d; want 200", h, resp.StatusCode)
		}
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	tests := []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"POST", "/v1/organizations", map[string]string{"name": "Bad_Name"}, 400, "invalid_name"},
		{"POST", "/v1/organizations", map[string]string{"name": "acme", "public_key": "ssh-dss AAAA nope"}, 400, "invalid_key"},
		{"POST", "/v1/organizations", map[string]string{"name": "acme"}, 201, ""},
		{"POST", "/v1/organizations", map[string]string{"name": "acme"}, 409, "already_exists"},
		{"PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{"inactive_users": "purge"}}, 400, "invalid_settings"},
		{"PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{"delete_threshold_percent": 150}}, 400, "invalid_settings"},
		{"PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{"storage_quota": 0}}, 400, "invalid_settings"},
		{"PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{"storage_quota": 20 << 30}}, 200, ""},
		{"PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{"inactive_users": "delete"}}, 200, ""},
		{"GET", "/v1/organizations/nope", nil, 404, "not_found"},
		{"DELETE", "/v1/organizations/acme/keys/SHA256:nope", nil, 404, "not_found"},
	}
	for _, tt := range tests {
		e.Error.Code = ""
		if got := d.API(tt.method, tt.path, tt.body, &e); got != tt.status || e.Error.Code != tt.code {
			t.Errorf("%s %s %v = %d %q; want %d %q", tt.method, tt.path, tt.body, got, e.Error.Code, tt.status, tt.code)
		}
	}
	var o struct {
		Settings struct {
			InactiveUsers string `json:"inactive_users"`
		}
	}
	d.API("GET", "/v1/organizations/acme", nil, &o)
	if o.Settings.InactiveUsers != "delete" {
		t.Errorf("settings after PATCH = %+v; want inactive_users delete", o)
	}
	if _, err := os.Stat(filepath.Join(d.Data, "orgs", "acme", "reports")); err != nil {
		t.Errorf("organization folder not created: %v", err)
	}
	if strings.Contains(d.Logs(), d.Token) {
		t.Error("the API token appears in the daemon's log")
	}
}

func TestDataDirectoryIsPrivate(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	for name, want := range map[string]os.FileMode{".": 0o700, fileAPIToken: 0o600, "host_keys/ssh_host_ed25519_key": 0o600, "host_keys/ssh_host_ecdsa_key": 0o600, "host_keys/ssh_host_rsa_key": 0o600} {
		st, err := os.Stat(filepath.Join(d.Data, name))
		if err != nil {
			t.Errorf("stat %s: %v", name, err)
			continue
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode = %v; want %v", name, st.Mode().Perm(), want)
		}
	}
}

// TestKeyRemoveSlashes: a fingerprint is base64 and may hold "//", which
// an unescaped URL path would collapse; `key remove` must still find it.
func TestKeyRemoveSlashes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	var fp string
	for range 20000 {
		pub, err := writeClientKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if fp = ssh.FingerprintSHA256(pub); strings.Contains(fp, "//") {
			break
		}
	}
	if !strings.Contains(fp, "//") {
		t.Fatalf("no fingerprint with // in 20000 keys")
	}
	d := startDaemon(t, daemonOpts{})
	if out, code := d.CLI("", "org", "add", "acme", "--key", path+".pub"); code != 0 {
		t.Fatalf("org add = %d %q", code, out)
	}
	if out, code := d.CLI("", "key", "remove", "acme", fp); code != 0 {
		t.Fatalf("key remove %s = %d %q", fp, code, out)
	}
	var keys struct {
		Data []struct{ Fingerprint string }
	}
	d.API("GET", "/v1/organizations/acme/keys", nil, &keys)
	if len(keys.Data) != 0 {
		t.Errorf("keys after remove = %+v; want none", keys.Data)
	}
}
