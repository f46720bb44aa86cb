package main

// The client interop suite (issue 11, "Clients in CI"): every SFTP client
// an export job really uses does what an export job does against the real
// rosterd binary, and each step is checked by the report the upload
// produced, the files on disk and the API. The clients live under
// testdata/clients, one program or script per client, each performing the
// steps given on its command line (the step language is described in
// testdata/clients/gosftp/main.go). runScenario is the one driver; the
// table says which steps each client has.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

// clientRunner runs the client with steps and returns its output.
type clientRunner func(t *testing.T, steps ...string) (string, error)

// interopClient is one row of the interop table.
type interopClient struct {
	name string
	// steps are the steps the client has beside ls, put and get.
	steps []string
	// preserves: put keeps the local file's modification time.
	preserves bool
	// sha1 runs the client against the daemon with allow_sha1_rsa on.
	sha1 bool
	// setup finds the client (skipping, or failing under CI=true, when
	// it is missing), makes and registers its key for org, and returns
	// how to run it.
	setup func(t *testing.T, d *testDaemon, org string) clientRunner
}

func (c interopClient) has(step string) bool {
	return slices.Contains([]string{"ls", "put", "get"}, step) || slices.Contains(c.steps, step)
}

var interopClients = []interopClient{
	{name: "psftp", steps: []string{"rename", "chmod", "resume"}, setup: puttyClient("psftp")},
	{name: "pscp", preserves: true, setup: puttyClient("pscp")},
	{name: "jsch-ecdsa", steps: []string{"rename", "chmod", "mtime", "append", "resume"}, setup: jschClient("ecdsa")},
	{name: "jsch-rsa", steps: []string{"rename", "chmod", "mtime", "append", "resume"}, sha1: true, setup: jschClient("rsa")},
	{name: "node", steps: []string{"fastput", "rename", "posixrename", "chmod", "mtime", "append", "resume"}, setup: nodeClient},
	{name: "asyncssh", steps: []string{"rename", "posixrename", "chmod", "mtime", "append", "resume"}, preserves: true, setup: asyncsshClient},
	{name: "go-pkg-sftp", steps: []string{"rename", "posixrename", "chmod", "mtime", "append", "resume"}, setup: goClient},
	{name: "paramiko", steps: []string{"rename", "posixrename", "chmod", "mtime", "append", "resume"}, setup: paramikoClient},
	{name: "lftp", steps: []string{"rename", "chmod", "resume", "mirror"}, setup: lftpClient},
	{name: "rclone", steps: []string{"rename", "mtime", "mirror"}, setup: rcloneClient},
}

// TestInteropClients runs the export scenario (runScenario) with every
// client of the table, each as its own organization, against one daemon
// (and one with allow_sha1_rsa on for JSch's RSA key).
func TestInteropClients(t *testing.T) {
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "300ms"}})
	cfg := filepath.Join(t.TempDir(), "rosterd.toml")
	if err := os.WriteFile(cfg, []byte("allow_sha1_rsa = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dSHA1 := startDaemon(t, daemonOpts{Args: []string{"--settle", "300ms", "--config", cfg}})
	for _, c := range interopClients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := d
			if c.sha1 {
				d = dSHA1
			}
			org := "interop-" + c.name
			run := c.setup(t, d, org)
			runScenario(t, d, org, c, run)
		})
	}
	t.Run("jsch-rsa-refused", func(t *testing.T) {
		t.Parallel()
		testJSchRSARefused(t, d)
	})
}

// usersCSV is version v of the export: interopUsers(v) users, E1 to
// E(interopUsers(v)), about 150 KB: several SFTP packets, so that clients
// pipeline and Go's ReadFrom writes concurrently.
func usersCSV(v int) string {
	var b strings.Builder
	b.WriteString("user_id,email,first_name,last_name,job_title\n")
	for i := 1; i <= interopUsers(v); i++ {
		fmt.Fprintf(&b, "E%d,user%d@example.com,Zoë,Núñez %d,\"Engineer, v%d\"\n", i, i, i, v)
	}
	return b.String()
}

// interopUsers is the number of users in version v of the export.
func interopUsers(v int) int { return 2000 + v }

// runScenario is what an export job does, in phases; each phase that
// uploads is checked by its report before the next starts:
//
//  1. list /, upload users.csv;
//  2. upload to users.csv.filepart and rename it over users.csv;
//  3. upload, set times and mode (put -p where the client preserves);
//  4. upload half to a temporary name, resume by append, rename;
//  5. the same, resuming by offset;
//  6. read /reports/latest.txt, fail cleanly writing into /reports/;
//  7. mirror a folder of five files with old times (lftp, rclone).
//
// At the end the organization has one batch per upload phase: setting
// times and modes never made one.
func runScenario(t *testing.T, d *testDaemon, org string, c interopClient, run clientRunner) {
	t.Helper()
	dir := t.TempDir()
	folder := filepath.Join(d.Data, "orgs", org)
	local := func(name, content string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if !mtime.IsZero() {
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	steps := func(steps ...string) string {
		t.Helper()
		out, err := run(t, steps...)
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", c.name, steps, err, out)
		}
		for _, s := range steps {
			want := "ok " + s
			if rest, ok := strings.CutPrefix(s, "!"); ok {
				want = "refused " + rest
			}
			if !strings.Contains(out, want) {
				t.Fatalf("%s output lacks %q:\n%s", c.name, want, out)
			}
		}
		return out
	}
	uploads := 0
	expect := func(v int, files ...string) map[string]any {
		t.Helper()
		uploads++
		users := interopUsers(v)
		rep := waitLatestReport(t, d, org, 60*time.Second, func(rep map[string]any) bool { return countOf(rep, "users") == users })
		if rep["status"] != "applied" {
			t.Errorf("phase of v%d: report status %v; want applied\n%v", v, rep["status"], rep)
		}
		for _, f := range files {
			if !reportHasFile(rep, f) {
				t.Errorf("phase of v%d: report lacks file %s\n%v", v, f, rep["files"])
			}
		}
		var u struct {
			FirstName string `json:"first_name"`
			JobTitle  string `json:"job_title"`
		}
		path := fmt.Sprintf("/v1/organizations/%s/users/E%d", org, users)
		if code := d.API("GET", path, nil, &u); code != 200 || u.FirstName != "Zoë" || u.JobTitle != fmt.Sprintf("Engineer, v%d", v) {
			t.Errorf("GET %s = %d %+v; want the user of v%d", path, code, u, v)
		}
		if got, err := os.ReadFile(filepath.Join(folder, "users.csv")); err != nil || string(got) != usersCSV(v) {
			t.Errorf("users.csv on the server after v%d: %d bytes, %v; want the %d bytes uploaded", v, len(got), err, len(usersCSV(v)))
		}
		return rep
	}
	rename := "rename"
	if c.has("posixrename") {
		rename = "posixrename"
	}

	// 1. List, upload.
	out := steps("ls /", "put "+local("v1.csv", usersCSV(1), time.Time{})+" users.csv")
	if !strings.Contains(out, "ls /: reports\n") {
		t.Errorf("listing of / in a new folder: want only reports\n%s", out)
	}
	expect(1, "users.csv")

	// 2. A temporary name, renamed over the existing users.csv.
	if c.has("rename") {
		put := "put"
		if c.has("fastput") {
			put = "fastput"
		}
		steps(put+" "+local("v2.csv", usersCSV(2), time.Time{})+" users.csv.filepart", "rename users.csv.filepart users.csv")
		expect(2, "users.csv")
	}

	// 3. Times and mode.
	old := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	s := []string{"put " + local("v3.csv", usersCSV(3), old) + " users.csv"}
	if c.has("mtime") {
		s = append(s, fmt.Sprintf("mtime %d users.csv", old.Unix()))
	}
	if c.has("chmod") {
		s = append(s, "chmod 600 users.csv")
	}
	steps(s...)
	expect(3, "users.csv")
	st, err := os.Stat(filepath.Join(folder, "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if (c.preserves || c.has("mtime")) && !st.ModTime().Equal(old) {
		t.Errorf("users.csv mtime = %v; want %v set by the client", st.ModTime().UTC(), old)
	}
	if c.has("chmod") && st.Mode().Perm() != 0o600 {
		t.Errorf("users.csv mode = %v; want 0600 set by chmod", st.Mode().Perm())
	}

	// 4 and 5. Resume an upload cut off half-way, by append and by
	// offset, then rename onto users.csv.
	for i, resume := range []string{"append", "resume"} {
		v := 4 + i
		if !c.has(resume) || !c.has("rename") {
			continue
		}
		full := usersCSV(v)
		part := local(fmt.Sprintf("v%d.part", v), full[:len(full)/2], time.Time{})
		all := local(fmt.Sprintf("v%d.csv", v), full, time.Time{})
		steps("put "+part+" users.csv.filepart", resume+" "+all+" users.csv.filepart", rename+" users.csv.filepart users.csv")
		expect(v, "users.csv")
	}

	// 6. Read the report; writing into /reports/ fails cleanly and the
	// session goes on.
	got := filepath.Join(dir, "latest.txt")
	out = steps("get /reports/latest.txt "+got, "!put "+filepath.Join(dir, "v1.csv")+" /reports/users.csv", "ls /reports")
	want, err := os.ReadFile(filepath.Join(folder, "reports", "latest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(got); err != nil || string(b) != string(want) || !strings.Contains(string(b), "APPLIED") {
		t.Errorf("reports/latest.txt read by %s = %q, %v; want the daemon's APPLIED report", c.name, b, err)
	}
	if !strings.Contains(out, "latest.txt") {
		t.Errorf("ls /reports after the refusal lacks latest.txt:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(folder, "reports", "users.csv")); err == nil {
		t.Errorf("%s wrote reports/users.csv", c.name)
	}
	waitFor(t, 10*time.Second, "the refusal in the log", func() bool {
		return len(logMatches(d, func(m map[string]any) bool {
			f, _ := m["file"].(string)
			return m["event"] == "refused" && m["org"] == org && strings.HasPrefix(f, "reports")
		})) > 0
	})

	// 7. Mirror a folder of five files with old times.
	if c.has("mirror") {
		mdir := filepath.Join(dir, "mirror")
		if err := os.Mkdir(mdir, 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			"users.csv":        usersCSV(6),
			"user_groups.csv":  "group_name,user_id\nEngineering,E1\nEngineering,E2\nSupport,E8\n",
			"groups.csv":       "group_name,description\nEngineering,Builds it\nSupport,Answers\n",
			"notes.txt":        "export of the day\n",
			"users.csv.sha256": "not checked\n",
		}
		times := map[string]time.Time{}
		i := 0
		for name, content := range files {
			times[name] = time.Date(2019, time.Month(1+i), 2+i, 3, 4, 5, 0, time.UTC)
			p := filepath.Join(mdir, name)
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, times[name], times[name])
			i++
		}
		steps("mirror " + mdir)
		rep := expect(6, "users.csv", "user_groups.csv", "groups.csv")
		if countOf(rep, "memberships") != 3 || countOf(rep, "groups") != 2 {
			t.Errorf("mirror report: %d memberships, %d groups; want 3 and 2", countOf(rep, "memberships"), countOf(rep, "groups"))
		}
		for name, mt := range times {
			st, err := os.Stat(filepath.Join(folder, name))
			if err != nil {
				t.Errorf("%s after the mirror: %v", name, err)
				continue
			}
			if !st.ModTime().Equal(mt) {
				t.Errorf("%s mtime after the mirror = %v; want %v", name, st.ModTime().UTC(), mt)
			}
		}
		if _, err := os.Stat(filepath.Join(folder, "reports", "latest.txt")); err != nil {
			t.Errorf("the mirror removed reports/latest.txt: %v", err)
		}
	}

	if bs := d.batches(org); len(bs) != uploads {
		var got []string
		for _, b := range bs {
			got = append(got, fmt.Sprintf("%s %+v", b.Status, b.Changes))
		}
		t.Errorf("%d batches (newest first: %q); want %d, one per upload", len(bs), got, uploads)
	}
}

// exportEnv is the environment of a client run: where to connect, as
// whom, with which key and known_hosts, and a HOME of its own.
func exportEnv(t *testing.T, d *testDaemon, org, key, knownHosts string) []string {
	return append(os.Environ(), "LC_ALL=C", "HOME="+t.TempDir(),
		"EXPORT_HOST=127.0.0.1", "EXPORT_PORT="+d.SFTPPort(), "EXPORT_USER="+org,
		"EXPORT_KEY="+key, "EXPORT_KNOWN_HOSTS="+knownHosts)
}

// commandRunner runs argv with the steps appended and env, under a
// timeout.
func commandRunner(env []string, argv ...string) clientRunner {
	return func(t *testing.T, steps ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(argv[0], append(argv[1:len(argv):len(argv)], steps...)...)
		cmd.Env = env
		out, err := runTimeout(cmd, 2*time.Minute)
		return out, err
	}
}

// runTimeout runs cmd and returns its combined output; it is killed after
// within.
func runTimeout(cmd *exec.Cmd, within time.Duration) (string, error) {
	var out sftptest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(within, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return out.String(), err
}

// addOrgKey creates org with the public key file pub (any form `org add`
// reads).
func addOrgKey(t *testing.T, d *testDaemon, org, pub string) {
	t.Helper()
	if out, code := d.CLI("", "org", "add", org, "--key", pub); code != 0 {
		t.Fatalf("org add %s --key %s = %d %q", org, pub, code, out)
	}
}

// clientsDir is testdata/clients, absolute.
func clientsDir(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "clients"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// puttyClient: PuTTY's psftp or pscp with a .ppk key made by puttygen,
// whose RFC 4716 public key (as PuTTYgen saves it) is registered.
func puttyClient(tool string) func(t *testing.T, d *testDaemon, org string) clientRunner {
	return func(t *testing.T, d *testDaemon, org string) clientRunner {
		sftptest.LookPath(t, tool)
		puttygen := sftptest.LookPath(t, "puttygen")
		dir := t.TempDir()
		ppk, pub, empty := filepath.Join(dir, "export.ppk"), filepath.Join(dir, "export.pub"), filepath.Join(dir, "empty")
		os.WriteFile(empty, nil, 0o600)
		if out, err := sftptest.Run(t, nil, puttygen, "-q", "-t", "ed25519", "-C", "export job", "--new-passphrase", empty, "-o", ppk); err != nil {
			t.Fatalf("puttygen: %v\n%s", err, out)
		}
		if out, err := sftptest.Run(t, nil, puttygen, ppk, "-O", "public", "-o", pub); err != nil {
			t.Fatalf("puttygen -O public: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(pub); !strings.HasPrefix(string(b), "---- BEGIN SSH2 PUBLIC KEY ----") {
			t.Fatalf("puttygen -O public wrote %q; want an RFC 4716 key", b)
		}
		addOrgKey(t, d, org, pub)
		var fps []string
		for _, k := range hostKeys(t, d) {
			fps = append(fps, sftpd.Fingerprint(k))
		}
		env := append(exportEnv(t, d, org, ppk, os.DevNull), "EXPORT_HOSTKEY_FPS="+strings.Join(fps, " "))
		return commandRunner(env, filepath.Join(clientsDir(t), "putty.sh"), tool)
	}
}

// writePEMKey writes priv in the PEM form JSch 0.1.x reads and its public
// key as an authorized_keys line; it returns both paths.
func writePEMKey(t *testing.T, priv any) (key, pub string) {
	t.Helper()
	var block *pem.Block
	var pk ssh.PublicKey
	var err error
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
		pk, err = ssh.NewPublicKey(&k.PublicKey)
	case *rsa.PrivateKey:
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
		pk, err = ssh.NewPublicKey(&k.PublicKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	key = filepath.Join(t.TempDir(), "id_export")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub = key + ".pub"
	if err := os.WriteFile(pub, ssh.MarshalAuthorizedKey(pk), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, pub
}

// jschCommand compiles JSchExport.java with javac (or leaves it to Java's
// source launcher without one) and returns the command that runs it.
func jschCommand(t *testing.T) []string {
	t.Helper()
	java := sftptest.LookPath(t, "java")
	const jar = "/usr/share/java/jsch.jar"
	if _, err := os.Stat(jar); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (libjsch-java) is required under CI=true", jar)
		}
		t.Skipf("JSch not installed: %v", err)
	}
	src := filepath.Join(clientsDir(t), "JSchExport.java")
	javac, err := exec.LookPath("javac")
	if err != nil {
		return []string{java, "-cp", jar, src}
	}
	classes := t.TempDir()
	if out, err := sftptest.Run(t, nil, javac, "-cp", jar, "-d", classes, src); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	return []string{java, "-cp", jar + string(os.PathListSeparator) + classes, "JSchExport"}
}

// jschKnownHosts pins the host keys JSch 0.1.54 knows (ECDSA, RSA).
func jschKnownHosts(t *testing.T, d *testDaemon) string {
	t.Helper()
	var b strings.Builder
	for _, k := range hostKeys(t, d) {
		if k.Type() != ssh.KeyAlgoED25519 {
			fmt.Fprintf(&b, "[127.0.0.1]:%s %s", d.SFTPPort(), ssh.MarshalAuthorizedKey(k))
		}
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// jschClient: Java JSch with a PEM key, ECDSA or RSA (RSA needs
// allow_sha1_rsa: JSch 0.1.54 signs with SHA-1 ssh-rsa).
func jschClient(alg string) func(t *testing.T, d *testDaemon, org string) clientRunner {
	return func(t *testing.T, d *testDaemon, org string) clientRunner {
		cmd := jschCommand(t)
		key, pub := newJSchKey(t, alg)
		addOrgKey(t, d, org, pub)
		return commandRunner(exportEnv(t, d, org, key, jschKnownHosts(t, d)), cmd...)
	}
}

func newJSchKey(t *testing.T, alg string) (key, pub string) {
	t.Helper()
	if alg == "rsa" {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return writePEMKey(t, priv)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writePEMKey(t, priv)
}

// testJSchRSARefused: without allow_sha1_rsa, JSch's SHA-1 RSA signature
// is refused, and the daemon's log says so with the key's fingerprint and
// the setting that would accept it.
func testJSchRSARefused(t *testing.T, d *testDaemon) {
	cmd := jschCommand(t)
	org := "interop-jsch-refused"
	key, pub := newJSchKey(t, "rsa")
	addOrgKey(t, d, org, pub)
	line, _ := os.ReadFile(pub)
	pk, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatal(err)
	}
	out, err := commandRunner(exportEnv(t, d, org, key, jschKnownHosts(t, d)), cmd...)(t, "ls /")
	if err == nil {
		t.Fatalf("JSch logged in with an SHA-1 RSA signature and allow_sha1_rsa off:\n%s", out)
	}
	fp := sftpd.Fingerprint(pk)
	waitFor(t, 10*time.Second, "the refusal in the log", func() bool {
		return len(logMatches(d, func(m map[string]any) bool {
			r, _ := m["err"].(string)
			return m["event"] == "auth.failure" && m["key_fp"] == fp && m["org"] == org && strings.Contains(r, "allow_sha1_rsa")
		})) > 0
	})
}

// nodeClient: Node.js ssh2-sftp-client, installed by `npm ci` in
// testdata/clients/node (.ci/run does it).
func nodeClient(t *testing.T, d *testDaemon, org string) clientRunner {
	node := sftptest.LookPath(t, "node")
	dir := filepath.Join(clientsDir(t), "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ssh2-sftp-client", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ssh2-sftp-client is required under CI=true (npm ci in %s): %v", dir, err)
		}
		t.Skipf("ssh2-sftp-client not installed (run npm ci in %s): %v", dir, err)
	}
	key := newClientKey(t)
	addOrgKey(t, d, org, key+".pub")
	return commandRunner(exportEnv(t, d, org, key, writeKnownHosts(t, d)), node, filepath.Join(dir, "export.js"))
}

// needPython returns /usr/bin/python3 when it imports module; it skips
// without (fails under CI=true).
func needPython(t *testing.T, module string) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if out, err := sftptest.Run(t, nil, py, "-W", "ignore", "-c", "import "+module); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s with %s is required under CI=true: %v\n%s", py, module, err, out)
		}
		t.Skipf("%s lacks %s: %v", py, module, err)
	}
	return py
}

// asyncsshClient: Python asyncssh (Debian's python3-asyncssh).
func asyncsshClient(t *testing.T, d *testDaemon, org string) clientRunner {
	py := needPython(t, "asyncssh")
	key := newClientKey(t)
	addOrgKey(t, d, org, key+".pub")
	return commandRunner(exportEnv(t, d, org, key, writeKnownHosts(t, d)), py, filepath.Join(clientsDir(t), "asyncssh_export.py"))
}

// paramikoClient: paramiko's SSHClient with an unregistered key first and
// the registered one second (issue 11 item 2).
func paramikoClient(t *testing.T, d *testDaemon, org string) clientRunner {
	py := needPython(t, "paramiko")
	other, key := newClientKey(t), newClientKey(t)
	addOrgKey(t, d, org, key+".pub")
	return commandRunner(exportEnv(t, d, org, other+":"+key, writeKnownHosts(t, d)), py, filepath.Join(clientsDir(t), "paramiko_export.py"))
}

// goClient: the Go pkg/sftp client in testdata/clients/gosftp, built with
// this module's pkg/sftp and x/crypto.
func goClient(t *testing.T, d *testDaemon, org string) clientRunner {
	bin := filepath.Join(t.TempDir(), "gosftp")
	build := exec.Command("go", "build", "-o", bin, "./testdata/clients/gosftp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gosftp: %v\n%s", err, out)
	}
	key := newClientKey(t)
	addOrgKey(t, d, org, key+".pub")
	return commandRunner(exportEnv(t, d, org, key, writeKnownHosts(t, d)), bin)
}

// lftpClient: lftp over OpenSSH's ssh.
func lftpClient(t *testing.T, d *testDaemon, org string) clientRunner {
	sftptest.LookPath(t, "lftp")
	sftptest.LookPath(t, "ssh")
	key := newClientKey(t)
	addOrgKey(t, d, org, key+".pub")
	return commandRunner(exportEnv(t, d, org, key, writeKnownHosts(t, d)), filepath.Join(clientsDir(t), "lftp.sh"))
}

// rcloneClient: rclone's sftp backend.
func rcloneClient(t *testing.T, d *testDaemon, org string) clientRunner {
	sftptest.LookPath(t, "rclone")
	key := newClientKey(t)
	addOrgKey(t, d, org, key+".pub")
	return commandRunner(exportEnv(t, d, org, key, writeKnownHosts(t, d)), filepath.Join(clientsDir(t), "rclone.sh"))
}
