package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// notification is one sd_notify datagram and what was true when it came.
type notification struct {
	msg            string
	sftpUp, httpUp bool // both listeners accepted a connection at READY=1
	addrFiles      bool // the client commands' address files existed
}

// listenNotify opens a unixgram socket for NOTIFY_SOCKET and returns its
// path and the notifications received. On READY=1 it checks at once that
// both of the daemon's listeners (found through the address files in data)
// accept connections.
func listenNotify(t *testing.T, data string) (string, <-chan notification) {
	t.Helper()
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan notification, 16)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			nt := notification{msg: string(buf[:n])}
			if strings.Contains(nt.msg, "READY=1") {
				h, err1 := os.ReadFile(filepath.Join(data, fileHTTPAddr))
				s, err2 := os.ReadFile(filepath.Join(data, fileSFTPAddr))
				nt.addrFiles = err1 == nil && err2 == nil
				nt.sftpUp = err2 == nil && accepts(strings.TrimSpace(string(s)))
				nt.httpUp = err1 == nil && accepts(strings.TrimSpace(string(h)))
			}
			ch <- nt
		}
	}()
	return path, ch
}

// TestReadinessNotify runs serve with NOTIFY_SOCKET, as systemd's
// Type=notify does: READY=1 comes once, when both the SFTP and the HTTP
// listener accept connections, and STOPPING=1 when SIGTERM starts the
// drain (SPEC §9).
func TestReadinessNotify(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	sock, notes := listenNotify(t, data)
	d := startDaemon(t, daemonOpts{Data: data, Env: []string{"NOTIFY_SOCKET=" + sock}})

	var ready notification
	select {
	case ready = <-notes:
	case <-time.After(10 * time.Second):
		t.Fatalf("no sd_notify datagram within 10s of readiness\n%s", d.Logs())
	}
	if !strings.Contains(ready.msg, "READY=1") {
		t.Fatalf("first notification = %q; want READY=1", ready.msg)
	}
	if !ready.addrFiles || !ready.sftpUp || !ready.httpUp {
		t.Errorf("at READY=1: address files %v, SFTP accepting %v, HTTP accepting %v; want all true", ready.addrFiles, ready.sftpUp, ready.httpUp)
	}

	d.Stop()
	var rest []string
	for _, nt := range collectUntil(notes, "STOPPING=1", 5*time.Second) {
		rest = append(rest, nt.msg)
	}
	joined := strings.Join(rest, "|")
	if strings.Contains(joined, "READY=1") {
		t.Errorf("READY=1 sent more than once: later notifications %q", rest)
	}
	if !strings.Contains(joined, "STOPPING=1") {
		t.Errorf("notifications after SIGTERM = %q; want STOPPING=1", rest)
	}
}

// TestReadinessNotifyUnitCommand starts serve with the ExecStart arguments
// of systemd/rosterd.service (paths moved to a temp dir) and the example
// config, under NOTIFY_SOCKET: the unit's command line and the shipped
// config really start a daemon that reports ready.
func TestReadinessNotifyUnitCommand(t *testing.T) {
	unit := readUnit(t)
	args := strings.Fields(unit.get("Service", "ExecStart")[0])
	if len(args) < 2 || args[1] != "serve" {
		t.Fatalf("ExecStart = %q; want rosterd serve ...", args)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "rosterd.toml")
	example, err := os.ReadFile(filepath.Join(examplesDir(t), "rosterd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The operator's edits: addresses (here free loopback ports) and the
	// log format the journal gets anyway.
	text := strings.NewReplacer(`sftp_addr = "127.0.0.1:2022"`, `sftp_addr = "127.0.0.1:0"`,
		`http_addr = "127.0.0.1:8080"`, `http_addr = "127.0.0.1:0"`, `log_format = "auto"`, `log_format = "json"`).Replace(string(example))
	if err := os.WriteFile(cfg, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	for i, a := range args[2:] {
		switch a {
		case "/etc/rosterd/rosterd.toml":
			args[2+i] = cfg
		case "/var/lib/rosterd":
			args[2+i] = data
		}
	}
	sock, notes := listenNotify(t, data)
	d := startServeArgs(t, data, args[2:], []string{"NOTIFY_SOCKET=" + sock})
	select {
	case nt := <-notes:
		if !strings.Contains(nt.msg, "READY=1") || !nt.sftpUp || !nt.httpUp {
			t.Errorf("first notification %+v; want READY=1 with both listeners up", nt)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no READY=1 within 10s\n%s", d.Logs())
	}
	if st, err := os.Stat(data); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, %v; want mode 0700", st, err)
	}
}

// collectUntil returns the notifications that arrive until one contains
// want, the channel closes, or within passes.
func collectUntil(ch <-chan notification, want string, within time.Duration) []notification {
	var out []notification
	deadline := time.After(within)
	for {
		select {
		case nt, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, nt)
			if strings.Contains(nt.msg, want) {
				return out
			}
		case <-deadline:
			return out
		}
	}
}
