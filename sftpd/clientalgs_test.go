package sftpd

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

// sessionAlgs are the algorithms of a "session start" log line.
type sessionAlgs struct {
	Client  string `json:"client"`
	Kex     string `json:"kex"`
	Cipher  string `json:"cipher"`
	MAC     string `json:"mac"`
	HostKey string `json:"host_key"`
}

// lastSession returns the algorithms of the newest "session start" line.
func (e *env) lastSession(t *testing.T) sessionAlgs {
	t.Helper()
	var got sessionAlgs
	found := false
	for line := range strings.Lines(e.logs.String()) {
		if !strings.Contains(line, `"msg":"session start"`) {
			continue
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("session start line %q: %v", line, err)
		}
		found = true
	}
	if !found {
		t.Fatalf("no session start line in the log:\n%s", e.logs)
	}
	return got
}

// fast reports whether a session has an AEAD cipher or an ETM MAC, the
// algorithms SPEC §3 prefers.
func (a sessionAlgs) fast() bool {
	return strings.Contains(a.Cipher, "gcm") || strings.Contains(a.Cipher, "chacha20-poly1305") ||
		strings.HasSuffix(a.MAC, "-etm@openssh.com")
}

// puttyKey makes an ed25519 key with puttygen (.ppk) and registers its
// RFC 4716 public key, as PuTTYgen's "Save public key" writes it, for org.
func (e *env) puttyKey(t *testing.T, org string) string {
	t.Helper()
	puttygen := sftptest.LookPath(t, "puttygen")
	dir := t.TempDir()
	ppk := filepath.Join(dir, "export.ppk")
	empty := filepath.Join(dir, "passphrase")
	writeFile(t, empty, "")
	if out, err := sftptest.Run(t, nil, puttygen, "-q", "-t", "ed25519", "-C", "export job", "--new-passphrase", empty, "-o", ppk); err != nil {
		t.Fatalf("puttygen: %v\n%s", err, out)
	}
	pub, err := sftptest.Run(t, nil, puttygen, ppk, "-O", "public")
	if err != nil || !strings.HasPrefix(pub, "---- BEGIN SSH2 PUBLIC KEY ----") {
		t.Fatalf("puttygen -O public = %q, %v; want an RFC 4716 key", pub, err)
	}
	keys, err := ParseKeys([]byte(pub))
	if err != nil || len(keys) != 1 {
		t.Fatalf("ParseKeys(puttygen's public key) = %v, %v", keys, err)
	}
	e.keys.add(org, keys[0].Key)
	return ppk
}

// puttyHostKeys returns PuTTY's -hostkey arguments pinning the host keys.
func puttyHostKeys(e *env) []string {
	var args []string
	for _, k := range e.hostPublicKeys() {
		args = append(args, "-hostkey", Fingerprint(k))
	}
	return args
}

// TestPuTTYFastAlgorithms is issue 11 item 4: psftp and pscp (and WinSCP,
// which shares PuTTY's SSH code) list aes256-ctr and hmac-sha2-256 first;
// the server reads their KEXINIT and gives them AES-GCM or an ETM MAC.
func TestPuTTYFastAlgorithms(t *testing.T) {
	psftp := sftptest.LookPath(t, "psftp")
	pscp := sftptest.LookPath(t, "pscp")
	e, _, _, local := clientSetup(t)
	ppk := e.puttyKey(t, "acme")
	_, port, _ := net.SplitHostPort(e.addr)

	script := filepath.Join(t.TempDir(), "batch")
	writeFile(t, script, fmt.Sprintf("put %s users.csv.filepart\nmv users.csv.filepart users.csv\nls\n", local))
	args := append([]string{"-batch", "-P", port, "-i", ppk, "-b", script}, puttyHostKeys(e)...)
	out, err := sftptest.Run(t, nil, psftp, append(args, "acme@127.0.0.1")...)
	if err != nil {
		t.Fatalf("psftp: %v\n%s", err, out)
	}
	checkUploaded(t, e, "users.csv", "acme/users.csv.filepart", "acme/users.csv")
	if a := e.lastSession(t); !a.fast() || !strings.HasPrefix(a.Client, "SSH-2.0-PuTTY") {
		t.Errorf("psftp session: %+v; want an AEAD cipher or an ETM MAC", a)
	}

	args = append([]string{"-sftp", "-batch", "-q", "-p", "-P", port, "-i", ppk}, puttyHostKeys(e)...)
	out, err = sftptest.Run(t, nil, pscp, append(args, local, "acme@127.0.0.1:groups.csv")...)
	if err != nil {
		t.Fatalf("pscp -sftp: %v\n%s", err, out)
	}
	if got := readFile(t, e.orgFile("acme", "groups.csv")); got != clientUsers {
		t.Errorf("groups.csv = %q; want the uploaded file", got)
	}
	if a := e.lastSession(t); !a.fast() {
		t.Errorf("pscp session: %+v; want an AEAD cipher or an ETM MAC", a)
	}
}

// jsch compiles testdata/JSchUpload.java with javac when there is one and
// returns the java command line that runs it; without javac, Java's
// single-file source launcher runs the source.
func jsch(t *testing.T) []string {
	t.Helper()
	java := sftptest.LookPath(t, "java")
	jar := "/usr/share/java/jsch.jar"
	if _, err := os.Stat(jar); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (libjsch-java) is required under CI=true", jar)
		}
		t.Skipf("JSch not installed: %v", err)
	}
	src, err := filepath.Abs(filepath.Join("testdata", "JSchUpload.java"))
	if err != nil {
		t.Fatal(err)
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		return []string{java, "-cp", jar, src}
	}
	classes := t.TempDir()
	if out, err := sftptest.Run(t, nil, javac, "-cp", jar, "-d", classes, src); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	return []string{java, "-cp", jar + string(os.PathListSeparator) + classes, "JSchUpload"}
}

// writePEM writes a private key in the PEM form JSch 0.1.54 reads (it
// does not read OpenSSH's newer format).
func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// jschKnownHosts pins the ECDSA and RSA host keys, the ones JSch 0.1.54
// knows.
func jschKnownHosts(t *testing.T, e *env) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(e.addr)
	var b strings.Builder
	for _, k := range e.hostPublicKeys() {
		if k.Type() != ssh.KeyAlgoED25519 {
			fmt.Fprintf(&b, "[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(k))
		}
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, path, b.String())
	return path
}

// jschLists returns the cipher and MAC lists JSchUpload printed.
func jschLists(out string) (ciphers, macs []string) {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ciphers "); ok {
			ciphers = strings.Split(v, ",")
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "macs "); ok {
			macs = strings.Split(v, ",")
		}
	}
	return ciphers, macs
}

// TestJSch drives Java JSch (Debian's libjsch-java, 0.1.54) with an ECDSA
// key and an RSA key. JSch 0.1.54 signs RSA keys with SHA-1 ssh-rsa only:
// with allow_sha1_rsa it logs in; without, the refusal is logged with the
// key's fingerprint and the allow_sha1_rsa hint and counted (issue 11 item
// 5). It knows no ETM MAC and no AEAD cipher, so it gets the fastest
// algorithms it lists (aes128-ctr and hmac-sha2-256); a client listing
// faster ones would get those (item 4).
func TestJSch(t *testing.T) {
	cmd := jsch(t)
	run := func(t *testing.T, e *env, key string) (string, error) {
		t.Helper()
		host, port, _ := net.SplitHostPort(e.addr)
		local := filepath.Join(t.TempDir(), "users.csv")
		writeFile(t, local, clientUsers)
		args := append(cmd[1:], host, port, "acme", key, jschKnownHosts(t, e), local, "users.csv")
		return sftptest.Run(t, nil, cmd[0], args...)
	}
	checkAlgorithms := func(t *testing.T, e *env, out string) {
		t.Helper()
		ciphers, macs := jschLists(out)
		a := e.lastSession(t)
		if !strings.HasPrefix(a.Client, "SSH-2.0-JSCH") {
			t.Fatalf("session client = %q; want JSch", a.Client)
		}
		// The server's choice from the lists JSch offers.
		wantCipher, wantMAC := algorithmsFor(clientHello{ciphers: ciphers, macs: macs})
		if len(wantCipher) != 1 || a.Cipher != wantCipher[0] {
			t.Errorf("JSch cipher = %s; want %v (JSch lists %v)", a.Cipher, wantCipher, ciphers)
		}
		if !aeadCipher(a.Cipher) && (len(wantMAC) != 1 || a.MAC != wantMAC[0]) {
			t.Errorf("JSch MAC = %s; want %v (JSch lists %v)", a.MAC, wantMAC, macs)
		}
		listsFast := slices.ContainsFunc(append(ciphers, macs...), func(s string) bool {
			return strings.Contains(s, "gcm") || strings.Contains(s, "chacha20") || strings.HasSuffix(s, "-etm@openssh.com")
		})
		if listsFast && !a.fast() {
			t.Errorf("JSch lists an AEAD cipher or an ETM MAC but got %+v", a)
		}
		t.Logf("JSch negotiated %s, %s, %s, host key %s", a.Kex, a.Cipher, a.MAC, a.HostKey)
	}

	t.Run("ecdsa", func(t *testing.T) {
		e := newEnv(t, nil)
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(t.TempDir(), "id_ecdsa")
		writePEM(t, key, "EC PRIVATE KEY", der)
		pub, _ := ssh.NewPublicKey(&priv.PublicKey)
		e.keys.add("acme", pub)
		out, err := run(t, e, key)
		if err != nil {
			t.Fatalf("JSch with an ECDSA key: %v\n%s", err, out)
		}
		mustContain(t, "JSch output", out, "listing", "users.csv", "reports")
		checkAlgorithms(t, e, out)
		// SPEC §3: no SHA-1 host key signature by default; JSch 0.1.54
		// knows no ed25519 and no rsa-sha2 and takes the ECDSA host key.
		if a := e.lastSession(t); a.HostKey != ssh.KeyAlgoECDSA256 {
			t.Errorf("JSch host key algorithm = %s; want %s", a.HostKey, ssh.KeyAlgoECDSA256)
		}
	})

	rsaKey := func(t *testing.T, e *env) (string, ssh.PublicKey) {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(t.TempDir(), "id_rsa")
		writePEM(t, key, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv))
		pub, _ := ssh.NewPublicKey(&priv.PublicKey)
		e.keys.add("acme", pub)
		return key, pub
	}
	t.Run("rsa allow_sha1_rsa", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.AllowSHA1RSA = true })
		key, _ := rsaKey(t, e)
		out, err := run(t, e, key)
		if err != nil {
			t.Fatalf("JSch with an RSA key and allow_sha1_rsa: %v\n%s", err, out)
		}
		mustContain(t, "JSch output", out, "listing", "users.csv")
		checkAlgorithms(t, e, out)
	})
	t.Run("rsa refused", func(t *testing.T) {
		e := newEnv(t, nil)
		key, pub := rsaKey(t, e)
		out, err := run(t, e, key)
		if err == nil {
			t.Fatalf("JSch signed with ssh-rsa (SHA-1) and logged in without allow_sha1_rsa:\n%s", out)
		}
		waitFor(t, "the refusal in the log", func() bool {
			return strings.Contains(e.logs.String(), `"event":"auth.failure"`)
		})
		mustContain(t, "log", e.logs.String(), `"key_fp":"`+Fingerprint(pub)+`"`, "allow_sha1_rsa", `"org":"acme"`)
		if got := testutil.ToFloat64(e.srv.metrics.authFailures); got < 1 {
			t.Errorf("rosterd_sftp_auth_failures_total = %v; want the refusal counted", got)
		}
	})
}

// TestOpenSSHHostKeyAlgorithmSSHRSA is issue 11 item 7 with the OpenSSH
// client: `-o HostKeyAlgorithms=ssh-rsa` finds no host key algorithm
// unless the operator allowed SHA-1.
func TestOpenSSHHostKeyAlgorithmSSHRSA(t *testing.T) {
	for _, allow := range []bool{false, true} {
		e := newEnv(t, func(c *Config) { c.AllowSHA1RSA = allow })
		k := e.addOrg(t, "acme")
		out, err := sftptest.SFTP(t, e.sshConfig(t, "acme", k), "ls\n", "-o", "HostKeyAlgorithms=ssh-rsa")
		if !allow {
			if err == nil {
				t.Errorf("allow_sha1_rsa off: sftp -o HostKeyAlgorithms=ssh-rsa logged in:\n%s", out)
			}
			// The client may see the connection closed before it reads
			// the server's KEXINIT; the server's log says why.
			waitFor(t, "the refused handshake in the log", func() bool {
				return strings.Contains(e.logs.String(), "no common algorithm for host key")
			})
			continue
		}
		if err != nil {
			t.Fatalf("allow_sha1_rsa on: sftp -o HostKeyAlgorithms=ssh-rsa: %v\n%s", err, out)
		}
		if a := e.lastSession(t); a.HostKey != ssh.KeyAlgoRSA {
			t.Errorf("host key algorithm = %q; want ssh-rsa", a.HostKey)
		}
	}
}

// TestKexinitClientThatWaits: a client that waits for the server's KEXINIT
// before sending its own (RFC 4253 allows it) gets it after kexinitWait,
// with the full lists.
func TestKexinitClientThatWaits(t *testing.T) {
	old := kexinitWait
	kexinitWait = 50 * time.Millisecond
	t.Cleanup(func() { kexinitWait = old })
	e := newEnv(t, nil)
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "SSH-2.0-WaitsForServer_1.0\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	line, err := r.ReadString('\n')
	if err != nil || line != serverVersion+"\r\n" {
		t.Fatalf("server identification = %q, %v", line, err)
	}
	pkt, err := readFirstPacket(r)
	if err != nil {
		t.Fatalf("server KEXINIT: %v", err)
	}
	padding := int(pkt[4])
	payload := pkt[5 : len(pkt)-padding]
	if payload[0] != 20 {
		t.Fatalf("server's first packet has type %d; want KEXINIT (20)", payload[0])
	}
	_, ciphers, macs := parseKexinit(payload)
	if !slices.Equal(ciphers, cipherAlgorithms) || !slices.Equal(macs, macAlgorithms) {
		t.Errorf("server offered ciphers %v, MACs %v; want the full lists %v, %v", ciphers, macs, cipherAlgorithms, macAlgorithms)
	}
}

// TestAlgorithmsFor: SPEC §3's fast algorithms for every client that lists
// them (AES-GCM, else AES-CTR with an SHA-2 ETM MAC, else
// chacha20-poly1305), chosen from the client's own lists as its KEXINIT
// gives them (recorded from the real clients).
func TestAlgorithmsFor(t *testing.T) {
	split := func(s string) []string { return strings.Split(s, ",") }
	tests := []struct {
		name             string
		ciphers, macs    string
		wantCipher, want string // want: the MAC, "" when the cipher is AEAD
	}{
		{"OpenSSH 9.2",
			"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
			"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
			ssh.CipherAES128GCM, ""},
		{"PuTTY 0.78",
			"aes256-ctr,aes256-cbc,rijndael-cbc@lysator.liu.se,aes192-ctr,aes192-cbc,aes128-ctr,aes128-cbc,chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,3des-ctr,3des-cbc,blowfish-ctr,blowfish-cbc,arcfour256,arcfour128",
			"hmac-sha2-256,hmac-sha1,hmac-sha1-96,hmac-md5,hmac-sha2-256-etm@openssh.com,hmac-sha1-etm@openssh.com,hmac-sha1-96-etm@openssh.com,hmac-md5-etm@openssh.com",
			ssh.CipherAES128GCM, ""},
		{"paramiko 2.12",
			"aes128-ctr,aes192-ctr,aes256-ctr,aes128-cbc,aes192-cbc,aes256-cbc,3des-cbc",
			"hmac-sha2-256,hmac-sha2-512,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1,hmac-md5,hmac-sha1-96,hmac-md5-96",
			ssh.CipherAES128CTR, ssh.HMACSHA256ETM},
		{"JSch 0.1.54",
			"aes128-ctr,aes128-cbc,3des-ctr,3des-cbc,blowfish-cbc,aes192-ctr,aes192-cbc,aes256-ctr,aes256-cbc",
			"hmac-md5,hmac-sha1,hmac-sha2-256,hmac-sha1-96,hmac-md5-96",
			ssh.CipherAES128CTR, ssh.HMACSHA256},
		{"CTR and chacha20, no ETM MAC",
			"aes256-ctr,chacha20-poly1305@openssh.com",
			"hmac-sha2-256,hmac-sha1",
			ssh.CipherChaCha20Poly1305, ssh.HMACSHA256},
	}
	for _, tt := range tests {
		ciphers, macs := algorithmsFor(clientHello{ciphers: split(tt.ciphers), macs: split(tt.macs)})
		if !slices.Equal(ciphers, []string{tt.wantCipher}) {
			t.Errorf("%s: ciphers = %v; want [%s]", tt.name, ciphers, tt.wantCipher)
		}
		if tt.want != "" && !slices.Equal(macs, []string{tt.want}) {
			t.Errorf("%s: MACs = %v; want [%s]", tt.name, macs, tt.want)
		}
	}
	ciphers, macs := algorithmsFor(clientHello{})
	if !slices.Equal(ciphers, cipherAlgorithms) || !slices.Equal(macs, macAlgorithms) {
		t.Errorf("unknown client: %v, %v; want the full lists", ciphers, macs)
	}
}
