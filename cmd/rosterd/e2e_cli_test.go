package main

// End-to-end tests of the command line against the real binary and a
// real daemon: what an operator types and reads.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecondDaemonOnSameData starts a second `serve` on a data directory
// that a daemon already runs on: it must say so in one line and exit 1,
// leaving the running daemon and its files alone.
func TestSecondDaemonOnSameData(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	addrBefore, _ := os.ReadFile(filepath.Join(d.Data, fileHTTPAddr))
	out, code := runBinary(t, "", "serve", "--data", d.Data, "--sftp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	want := "rosterd: another rosterd is using " + d.Data
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("second serve on %s = exit %d\n%s\nwant exit 1 and %q", d.Data, code, out, want)
	}
	if strings.Contains(out, "timeout") || strings.Contains(out, `"host key"`) {
		t.Errorf("second serve output = %q; want no bare timeout and nothing done before the lock", out)
	}
	if addr, _ := os.ReadFile(filepath.Join(d.Data, fileHTTPAddr)); string(addr) != string(addrBefore) {
		t.Errorf("http_addr after the second serve = %q; want the running daemon's %q", addr, addrBefore)
	}
	if out, code := d.CLI("", "org", "list"); code != 0 {
		t.Errorf("org list after the second serve = %d %q; want the running daemon to answer", code, out)
	}
}
