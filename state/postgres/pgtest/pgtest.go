// Package pgtest runs a temporary PostgreSQL server for tests: one per
// test binary, started by the first test that asks for it and stopped by
// Main (from TestMain), on a Unix socket in a temporary directory (no TCP
// port), with a new database per test.
//
// It finds initdb and postgres on PATH or under /usr/lib/postgresql (the
// newest version there), as Debian's postgresql package installs them.
// PostgreSQL refuses to run as root, so under root (as in CI) the server
// runs as the user "postgres" when it exists (the package creates it),
// else "nobody". The server is the test binary's child and dies with it
// (Linux: the parent-death signal), so a killed test run leaves no server
// behind.
//
// When the programs are missing, the tests that ask for a database skip,
// or fail under CI=true, as every test needing an external program does.
// The server runs with fsync off: it is for tests, not for data.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is the superuser of the test cluster.
const User = "rosterd"

// Cluster is a running test server.
type Cluster struct {
	dir  string // the socket directory; data/ and server.log inside
	cmd  *exec.Cmd
	done chan error
	n    atomic.Int64
}

var (
	once     sync.Once
	current  *Cluster
	startErr error // why current is nil
	missing  bool  // the programs are not installed
	inMain   atomic.Bool
)

// Main runs the tests and then stops the server if a test started it.
// Use it as `func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }`,
// or in place of m.Run() in a TestMain of its own.
func Main(m *testing.M) int {
	inMain.Store(true)
	code := m.Run()
	if current != nil {
		current.Stop()
	}
	return code
}

// binDir returns the directory holding initdb and postgres.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir := filepath.Dir(real)
			if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb and postgres not found on PATH nor in /usr/lib/postgresql/*/bin (Debian package postgresql)")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initializes a cluster in a new temporary directory and starts its
// server.
func Start() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		missing = true
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rosterd-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, done: make(chan error, 1)}
	if err := c.start(bin); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(bin string) error {
	cred, err := credential()
	if err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(c.dir, "data")
	// The databases' default collation is ICU's en-US, where "a" sorts
	// before "B" and "_" before digits, so that a query that forgets the
	// byte order (COLLATE "C") that state's keys have fails a test.
	// PostgreSQL before 15, or without ICU, gets the C locale.
	args := []string{"-D", data, "-U", User, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"}
	out, err := initdbRun(bin, cred, append(args, "--locale-provider=icu", "--icu-locale=en-US"))
	if err != nil {
		os.RemoveAll(data)
		out, err = initdbRun(bin, cred, args)
	}
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	logf, err := os.Create(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", c.dir,
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = procAttr(cred)
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case werr := <-c.done:
			c.done <- werr
			return fmt.Errorf("postgres exited: %v\n%s", werr, c.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 60s: %v\n%s", err, c.log())
		}
	}
}

func initdbRun(bin string, cred *syscall.Credential, args []string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(bin, "initdb"), args...)
	cmd.SysProcAttr = procAttr(cred)
	return cmd.CombinedOutput()
}

// credential returns the user to run the server as when running as
// root, nil otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and neither user postgres nor nobody exists to run PostgreSQL")
}

func (c *Cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop stops the server (fast shutdown) and removes the cluster.
func (c *Cluster) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	os.RemoveAll(c.dir)
}

// URL returns the postgres:// URL of database db, on the cluster's
// socket.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&sslmode=disable", User, url.PathEscape(db), url.QueryEscape(c.dir))
}

// Require returns the running cluster, or skips t (fails it under
// CI=true) when PostgreSQL is not installed; it fails t when the server
// did not start.
func Require(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() {
		current, startErr = Start()
		if startErr == nil && !inMain.Load() {
			startErr = errors.New("pgtest.Main is not in the package's TestMain, which would leave the server behind")
			current.Stop()
			current = nil
		}
	})
	if current != nil {
		return current
	}
	switch {
	case missing && os.Getenv("CI") != "true":
		t.Skipf("PostgreSQL not installed: %v", startErr)
	case missing:
		t.Fatalf("PostgreSQL is required under CI=true: %v", startErr)
	}
	t.Fatalf("PostgreSQL test server: %v", startErr)
	return nil
}

// NewDatabase creates an empty database for t and returns its connection
// string. The database goes with the cluster.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return Require(t).NewDatabase(t, "")
}

// NewDatabase creates a database for t, a copy of template when it is not
// "", and returns its connection string.
func (c *Cluster) NewDatabase(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", c.n.Add(1), sanitize(t.Name()))
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		q += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if err := c.Exec("postgres", q); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return c.URL(name)
}

// Exec runs sql in database db.
func (c *Cluster) Exec(db, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// sanitize keeps a database name short and plain.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.ToLower(s)
}
