package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// TestSFTPFloodBeyondDescriptorLimit starts rosterd, lowers its descriptor
// limit with prlimit to a dozen above what it has open, and floods the SFTP
// port with ten times as many idle TCP connections from eleven loopback
// addresses. With the default caps some are dropped at once; those let in
// fill the descriptor table, so accept fails with EMFILE: the daemon must
// log it, back off and keep running (it used to exit). Once the flood is
// gone, OpenSSH's sftp uploads users.csv and the upload gets its report.
func TestSFTPFloodBeyondDescriptorLimit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc")
	}
	prlimit := sftptest.LookPath(t, "prlimit")
	sftptest.LookPath(t, "sftp")
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "0s"}})
	key := addOrg(t, d, "acme")
	pid := d.cmd.Process.Pid

	open, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	limit := len(open) + 12
	if out, err := exec.Command(prlimit, "--pid", strconv.Itoa(pid), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v\n%s", err, out)
	}

	var flood []net.Conn
	closeFlood := func() {
		for _, c := range flood {
			c.Close()
		}
		flood = nil
	}
	defer closeFlood()
	// Eleven connections from each address: the eleventh from the first
	// address is over the per-address cap (10) while descriptors remain,
	// so at least that one is dropped.
	for i := range 120 {
		dialer := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i/11))}}
		c, err := dialer.Dial("tcp", d.SFTPAddr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		flood = append(flood, c)
	}
	acceptErrors := func() []map[string]any {
		return logMatches(d, func(m map[string]any) bool {
			e, _ := m["err"].(string)
			return strings.Contains(e, "too many open files") && strings.Contains(fmt.Sprint(m["msg"]), "accept")
		})
	}
	waitFor(t, 30*time.Second, "an accept error logged with EMFILE", func() bool {
		select {
		case <-d.done:
			t.Fatalf("rosterd exited under the flood: %v\n%s", d.cmd.ProcessState, tail(d.Logs(), 20))
		default:
		}
		return len(acceptErrors()) > 0
	})
	if dropped := logMatches(d, msgPrefix("connection dropped")); len(dropped) == 0 {
		t.Errorf("no connection of the flood was dropped by the unauthenticated-connection caps\n%s", tail(d.Logs(), 20))
	}
	t.Logf("descriptor limit %d; accept error lines %d: %v", limit, len(acceptErrors()), acceptErrors()[0]["err"])
	closeFlood()

	src := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(src, []byte(exportUsers), 0o644)
	var out string
	waitFor(t, 60*time.Second, "an upload after the flood", func() bool {
		select {
		case <-d.done:
			t.Fatalf("rosterd exited after the flood: %v\n%s", d.cmd.ProcessState, tail(d.Logs(), 20))
		default:
		}
		var ok bool
		out, ok = sftpBatch(t, d, key, "acme", "put "+src+" users.csv\n")
		return ok
	})
	rep := waitLatestReport(t, d, "acme", 30*time.Second, nil)
	if rep["status"] != "applied" || countOf(rep, "users") != 3 {
		t.Errorf("report after the flood: status %v, users %d; want applied, 3\n%v\n%s", rep["status"], countOf(rep, "users"), rep, out)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
