package sftpd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

func TestParseStartups(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Startups
		err  string
	}{
		{in: "10:30:100", want: Startups{10, 30, 100}},
		{in: "0:50:20", want: Startups{0, 50, 20}},
		{in: " 3 : 100 : 3 ", want: Startups{3, 100, 3}},
		{in: "5", want: Startups{5, 100, 5}},
		{in: "", err: "not start:rate:full"},
		{in: "10:30", err: "not start:rate:full"},
		{in: "a:b:c", err: "not start:rate:full"},
		{in: "-1:30:100", err: "not start:rate:full"},
		{in: "0", err: "full must be at least 1"},
		{in: "101:30:100", err: "start must not be above full"},
		{in: "10:0:100", err: "rate is a percentage"},
		{in: "10:101:100", err: "rate is a percentage"},
	} {
		got, err := ParseStartups(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseStartups(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseStartups(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParseStartups(got.String()); back != got {
			t.Errorf("ParseStartups(%q.String()) = %v; want %v", got, back, got)
		}
	}
}

// TestMaxStartupsDropRule is sshd's should_drop_connection: no drop below
// start, rate% at start, rising linearly (integer division) to 100% at
// full, 100% beyond.
func TestMaxStartupsDropRule(t *testing.T) {
	for _, tc := range []struct {
		m       Startups
		n, want int
	}{
		{DefaultStartups, 0, 0},
		{DefaultStartups, 9, 0},
		{DefaultStartups, 10, 30},
		{DefaultStartups, 11, 30}, // 70*1/90 rounds down
		{DefaultStartups, 12, 31},
		{DefaultStartups, 55, 65},
		{DefaultStartups, 99, 99},
		{DefaultStartups, 100, 100},
		{DefaultStartups, 500, 100},
		{Startups{5, 100, 5}, 4, 0},
		{Startups{5, 100, 5}, 5, 100},
		{Startups{3, 30, 3}, 3, 100},
		{Startups{2, 100, 8}, 2, 100},
		{Startups{0, 50, 10}, 0, 50},
		{Startups{0, 50, 10}, 5, 75},
	} {
		if got := tc.m.dropPercent(tc.n); got != tc.want {
			t.Errorf("%v.dropPercent(%d) = %d; want %d", tc.m, tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n, r int
		want bool
	}{
		{9, 0, false},
		{10, 29, true},
		{10, 30, false},
		{55, 64, true},
		{55, 65, false},
		{100, 99, true},
	} {
		if got := DefaultStartups.drop(tc.n, tc.r); got != tc.want {
			t.Errorf("%v.drop(%d, %d) = %v; want %v", DefaultStartups, tc.n, tc.r, got, tc.want)
		}
	}
}

// dialFrom opens a TCP connection to addr from the loopback address from
// (127.0.0.x on Linux).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// banner reads the server's identification line, or returns "" when the
// connection is closed without one.
func banner(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no banner and no close within 10s")
	}
	return strings.TrimSpace(line)
}

// TestMaxStartupsCaps holds connections that never authenticate: beyond
// the total cap (a hard 2 here) and the per-address cap, new connections
// are closed before the banner; an authenticated connection no longer
// counts, and a slot that frees lets the next connection in.
func TestMaxStartupsCaps(t *testing.T) {
	rec := &auditRecorder{}
	e := newEnv(t, func(c *Config) {
		c.Audit = rec
		c.Limits.MaxStartups = Startups{2, 100, 2}
		c.Limits.MaxStartupsPerAddress = 1
	})
	k := e.addOrg(t, "acme")

	// An authenticated connection from 127.0.0.1 does not count.
	client, err := e.dial("acme", ssh.PublicKeys(k.Signer))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitFor(t, "the login to leave the unauthenticated count", func() bool {
		e.srv.mu.Lock()
		defer e.srv.mu.Unlock()
		return e.srv.startups.total == 0
	})

	a := dialFrom(t, "127.0.0.1", e.addr)
	if b := banner(t, a); !strings.HasPrefix(b, "SSH-2.0-") {
		t.Fatalf("first unauthenticated connection: banner %q; want SSH-2.0-", b)
	}
	if b := banner(t, dialFrom(t, "127.0.0.1", e.addr)); b != "" {
		t.Errorf("second unauthenticated connection from one address (cap 1): banner %q; want a close", b)
	}
	if b := banner(t, dialFrom(t, "127.0.0.2", e.addr)); !strings.HasPrefix(b, "SSH-2.0-") {
		t.Errorf("connection from another address: banner %q; want SSH-2.0-", b)
	}
	if b := banner(t, dialFrom(t, "127.0.0.3", e.addr)); b != "" {
		t.Errorf("third unauthenticated connection (cap 2): banner %q; want a close", b)
	}
	mustContain(t, "log", e.logs.String(), `"reason":"max_startups_per_address"`)

	a.Close()
	waitFor(t, "a slot freed by a closed connection", func() bool {
		c := dialFrom(t, "127.0.0.4", e.addr)
		defer c.Close()
		return banner(t, c) != ""
	})
	if _, err := client.NewSession(); err != nil {
		t.Errorf("the authenticated connection: %v", err)
	}
}

// TestLoginGraceTime: a connection that does not authenticate within the
// grace time is closed, whether it stays silent or stalls in the key
// exchange; an authenticated one outlives it.
func TestLoginGraceTime(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.LoginGraceTime = 300 * time.Millisecond })
	k := e.addOrg(t, "acme")

	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	silent := dialFrom(t, "127.0.0.1", e.addr)
	if !closedByServer(silent) {
		t.Error("a silent connection is open 10s after a 300ms grace time")
	}
	stalled := dialFrom(t, "127.0.0.1", e.addr)
	io.WriteString(stalled, "SSH-2.0-OpenSSH_9.2p1\r\n")
	if !closedByServer(stalled) {
		t.Error("a connection stalled after its banner is open 10s after a 300ms grace time")
	}
	mustContain(t, "log", e.logs.String(), `"reason":"login_grace_time"`)

	sc := e.sftpClient(t, "acme", k)
	for start := time.Now(); time.Since(start) < time.Second; {
		if _, err := sc.Stat("/"); err != nil {
			t.Fatalf("authenticated session after %v (grace 300ms): %v", time.Since(start), err)
		}
	}
}

// flakyListener fails its first fails accepts with EMFILE, as a process
// out of descriptors does.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsAreRetried: Serve used to return on EMFILE, which
// stopped the daemon. It logs the error, backs off and goes on.
func TestAcceptErrorsAreRetried(t *testing.T) {
	keys := &keyStore{keys: map[string][]ssh.PublicKey{}}
	k := sftptest.GenerateKey(t, t.TempDir(), "id")
	keys.add("acme", k.Public)
	logs := &sftptest.Buffer{}
	srv, err := New(Config{HostKeys: testHostKeys, Root: filepath.Join(t.TempDir(), "orgs"), Keys: keys,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner}
	ln.fails.Store(5)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	c, err := ssh.Dial("tcp", inner.Addr().String(), &ssh.ClientConfig{
		User: "acme", Auth: []ssh.AuthMethod{ssh.PublicKeys(k.Signer)},
		HostKeyCallback: ssh.FixedHostKey(testHostKeys[0].PublicKey()), HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("login after 5 accept errors: %v\n%s", err, logs)
	}
	c.Close()
	mustContain(t, "log", logs.String(), "sftp accept failed; retrying", "too many open files")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v; want ErrServerClosed", err)
	}
}
