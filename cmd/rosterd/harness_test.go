package main

// The end-to-end harness: TestMain builds the real rosterd binary once,
// startDaemon runs it on loopback ports in a temp data directory, and the
// helpers talk to it over its HTTP API. Every e2e test in this package
// (the ingest, webhook and operations tests too) uses it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

// rosterdBin is the binary built by TestMain.
var rosterdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rosterd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rosterdBin = filepath.Join(dir, "rosterd")
	// Built without -race even under go test -race: the e2e tests drive
	// big uploads and crash loops; the packages' own tests run raced.
	build := exec.Command("go", "build", "-o", rosterdBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rosterd:", err)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// testDaemon is a running rosterd process.
type testDaemon struct {
	t        *testing.T
	Data     string
	SFTPAddr string
	HTTPAddr string
	Token    string
	cmd      *exec.Cmd
	logs     *sftptest.Buffer
	stdout   *sftptest.Buffer
	done     chan struct{}
	args     []string
	env      []string
	shared   bool
}

// daemonOpts are extra arguments and environment for startDaemon.
type daemonOpts struct {
	Data string   // reuse a data directory (restart); "" = a new temp dir
	Args []string // extra serve flags
	Env  []string // extra environment
	// Shared: other daemons (a fleet's instances) use the data directory
	// too. Their address files there are not this daemon's: its addresses
	// come from its own log ("rosterd listening"), and the files are left
	// alone.
	Shared bool
}

// startDaemon starts `rosterd serve` on 127.0.0.1:0 ports and waits until
// /readyz answers 200. The process is stopped when the test ends.
func startDaemon(t *testing.T, o daemonOpts) *testDaemon {
	t.Helper()
	if o.Data == "" {
		o.Data = filepath.Join(t.TempDir(), "data")
	}
	d := &testDaemon{t: t, Data: o.Data, args: o.Args, env: o.Env, shared: o.Shared}
	d.start()
	t.Cleanup(func() { d.Stop() })
	return d
}

func (d *testDaemon) start() {
	t := d.t
	t.Helper()
	if !d.shared {
		os.Remove(filepath.Join(d.Data, fileHTTPAddr))
		os.Remove(filepath.Join(d.Data, fileSFTPAddr))
	}
	args := append([]string{"serve", "--data", d.Data, "--sftp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json"}, d.args...)
	d.cmd = exec.Command(rosterdBin, args...)
	d.cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET="), d.env...)
	d.logs, d.stdout = &sftptest.Buffer{}, &sftptest.Buffer{}
	d.cmd.Stderr, d.cmd.Stdout = d.logs, d.stdout
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start rosterd: %v", err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-d.done:
			t.Fatalf("rosterd exited at start: %v\n%s", d.cmd.ProcessState, d.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rosterd not ready after 30s:\n%s", d.logs)
		}
		if d.readAddrs() {
			resp, err := http.Get("http://" + d.HTTPAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(d.Data, fileAPIToken))
	if err != nil {
		t.Fatalf("read api token: %v", err)
	}
	d.Token = strings.TrimSpace(string(tok))
}

func (d *testDaemon) readAddrs() bool {
	if d.shared {
		return d.logAddrs()
	}
	h, err1 := os.ReadFile(filepath.Join(d.Data, fileHTTPAddr))
	s, err2 := os.ReadFile(filepath.Join(d.Data, fileSFTPAddr))
	if err1 != nil || err2 != nil {
		return false
	}
	d.HTTPAddr, d.SFTPAddr = strings.TrimSpace(string(h)), strings.TrimSpace(string(s))
	return d.HTTPAddr != "" && d.SFTPAddr != ""
}

// logAddrs takes the addresses from the daemon's "rosterd listening" log
// line, for a daemon that shares its data directory.
func (d *testDaemon) logAddrs() bool {
	ls := d.logLines("rosterd listening")
	if len(ls) == 0 {
		return false
	}
	h, _ := ls[0]["http_addr"].(string)
	s, _ := ls[0]["sftp_addr"].(string)
	d.HTTPAddr, d.SFTPAddr = h, s
	return h != "" && s != ""
}

// SFTPPort returns the SFTP port as a string.
func (d *testDaemon) SFTPPort() string {
	return d.SFTPAddr[strings.LastIndex(d.SFTPAddr, ":")+1:]
}

// Stop sends SIGTERM and waits for a clean exit; it fails the test if the
// daemon does not exit 0 within 40 s. Stopping twice is fine.
func (d *testDaemon) Stop() {
	d.t.Helper()
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			d.t.Errorf("rosterd exited %d after SIGTERM; want 0\n%s", code, d.logs)
		}
	case <-time.After(40 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("rosterd did not stop within 40s of SIGTERM\n%s", d.logs)
	}
}

// Kill ends the daemon with SIGKILL, as a crash would.
func (d *testDaemon) Kill() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Kill()
	<-d.done
}

// Restart stops the daemon (SIGTERM) and starts it again on the same data
// directory; the ports change.
func (d *testDaemon) Restart() {
	d.t.Helper()
	d.Stop()
	d.start()
}

// Logs returns what the daemon has logged so far.
func (d *testDaemon) Logs() string { return d.logs.String() }

// Stdout returns what the daemon printed on standard output.
func (d *testDaemon) Stdout() string { return d.stdout.String() }

// API sends a request to the daemon's API with the token and decodes a
// JSON answer into out (if not nil). It returns the status code.
func (d *testDaemon) API(method, path string, body any, out any) int {
	d.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			d.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+d.HTTPAddr+path, r)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			d.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// CLI runs a client subcommand of the real binary against this daemon
// (with --data appended) and returns its combined output and exit code.
func (d *testDaemon) CLI(stdin string, args ...string) (string, int) {
	d.t.Helper()
	args = append(args[:len(args):len(args)], "--data", d.Data)
	return runBinary(d.t, stdin, args...)
}

// runBinary runs the built rosterd with args and returns its combined
// output and exit code.
func runBinary(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rosterdBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run rosterd %v: %v", args, err)
		}
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// waitFor polls cond until it returns true or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logLines returns the daemon's JSON log lines whose msg is msg.
func (d *testDaemon) logLines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(d.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}
