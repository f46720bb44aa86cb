package sftpd

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

func TestOpenSSHSFTP(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	cfg := e.sshConfig(t, "acme", k)
	local := t.TempDir()
	users := "user_id,email,first_name,last_name\n1,a@example.com,A,B\n"
	writeFile(t, filepath.Join(local, "users.csv"), users)
	writeFile(t, filepath.Join(local, "groups.csv"), "group_name\nstaff\n")

	batch := strings.NewReplacer("LOCAL", local).Replace(`
put LOCAL/users.csv users.csv
chmod 600 users.csv
ls -l
get users.csv LOCAL/back.csv
put LOCAL/groups.csv groups.tmp
rename groups.tmp groups.csv
put LOCAL/users.csv copy.csv
rename copy.csv groups.csv
rm groups.csv
df
df -h /
`)
	out, err := sftptest.SFTP(t, cfg, batch)
	if err != nil {
		t.Fatalf("sftp -b: %v\n%s", err, out)
	}
	if got := readFile(t, filepath.Join(local, "back.csv")); got != users {
		t.Errorf("downloaded users.csv = %q; want %q", got, users)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != users {
		t.Errorf("uploaded users.csv = %q; want %q", got, users)
	}
	// ls -l shows the long form with the organization as owner and hides
	// nothing but temporary files.
	mustContain(t, "ls -l", out, "-rw-------", "acme     acme", "users.csv", "reports")
	// df (statvfs) prints a size table.
	mustContain(t, "df", out, "Size", "Avail")
	if _, err := os.Stat(e.orgFile("acme", "groups.csv")); !os.IsNotExist(err) {
		t.Errorf("groups.csv after rm: %v; want it gone", err)
	}
	want := []string{"acme/users.csv", "acme/groups.tmp", "acme/groups.csv", "acme/copy.csv", "acme/groups.csv"}
	if got := e.notes.get(); !slices.Equal(got, want) {
		t.Errorf("notifications = %q; want %q", got, want)
	}
	sum := sha256.Sum256([]byte(users))
	waitFor(t, "session end", func() bool { return strings.Contains(e.logs.String(), `"event":"session.end"`) })
	mustContain(t, "audit log", e.logs.String(), `"event":"upload"`, hex.EncodeToString(sum[:]),
		`"event":"rename"`, `"event":"remove"`, `"event":"session.start"`)
	// No temporary file is left behind.
	for _, n := range dirNames(t, filepath.Join(e.root, "acme")) {
		if strings.HasPrefix(n, TempPrefix) {
			t.Errorf("temporary file %s left in the folder", n)
		}
	}
}

func TestOpenSSHReputResume(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	cfg := e.sshConfig(t, "acme", k)
	local := filepath.Join(t.TempDir(), "big.csv")
	data := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	writeFile(t, local, data)
	// A previous, interrupted upload left the first 300,000 bytes.
	os.MkdirAll(filepath.Join(e.root, "acme"), 0o750)
	writeFile(t, e.orgFile("acme", "big.csv"), data[:300_000])
	out, err := sftptest.SFTP(t, cfg, "reput "+local+" big.csv\n")
	if err != nil {
		t.Fatalf("reput: %v\n%s", err, out)
	}
	if got := readFile(t, e.orgFile("acme", "big.csv")); got != data {
		t.Fatalf("resumed file has %d bytes, equal=%v; want the %d-byte original", len(got), got == data, len(data))
	}
	sum := sha256.Sum256([]byte(data))
	mustContain(t, "audit log", e.logs.String(), hex.EncodeToString(sum[:]))
}

func TestOpenSSHPutPreservesTimes(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	cfg := e.sshConfig(t, "acme", k)
	local := filepath.Join(t.TempDir(), "users.csv")
	writeFile(t, local, "x\n")
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(local, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if out, err := sftptest.SFTP(t, cfg, "put -p -f "+local+" users.csv\n"); err != nil {
		t.Fatalf("put -p -f: %v\n%s", err, out)
	}
	st, err := os.Stat(e.orgFile("acme", "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(mtime) {
		t.Errorf("mtime = %v; want %v (put -p)", st.ModTime(), mtime)
	}
}

func TestOpenSSHSCP(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	cfg := e.sshConfig(t, "acme", k)
	dir := t.TempDir()
	local := filepath.Join(dir, "users.csv")
	writeFile(t, local, "user_id\n42\n")
	if out, err := sftptest.SCP(t, cfg, local, sftptest.HostAlias+":users.csv"); err != nil {
		t.Fatalf("scp upload: %v\n%s", err, out)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "user_id\n42\n" {
		t.Errorf("uploaded = %q", got)
	}
	back := filepath.Join(dir, "back.csv")
	if out, err := sftptest.SCP(t, cfg, sftptest.HostAlias+":users.csv", back); err != nil {
		t.Fatalf("scp download: %v\n%s", err, out)
	}
	if got := readFile(t, back); got != "user_id\n42\n" {
		t.Errorf("downloaded = %q", got)
	}
	if got := e.notes.get(); !slices.Equal(got, []string{"acme/users.csv"}) {
		t.Errorf("notifications = %q", got)
	}
}

// TestOpenSSHLargeChannelPackets: the session channel takes data packets
// of up to 64 KiB (x/crypto patch 0002), so that clients writing 32 KiB
// per SFTP request (paramiko, Go's pkg/sftp) send one SSH packet per
// write instead of two, and OpenSSH sends its 255 KiB writes in four
// packets, not eight. OpenSSH's client logs the maximum it was given.
func TestOpenSSHLargeChannelPackets(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	cfg := e.sshConfig(t, "acme", k)
	local := filepath.Join(t.TempDir(), "big.csv")
	data := strings.Repeat("0123456789abcdef", 3<<16) // 3 MiB: more than the window
	writeFile(t, local, data)
	out, err := sftptest.SFTP(t, cfg, "put "+local+" big.csv\n", "-vv")
	if err != nil {
		t.Fatalf("sftp -vv put: %v\n%s", err, out)
	}
	mustContain(t, "sftp -vv", out, "rmax 65536")
	if got := readFile(t, e.orgFile("acme", "big.csv")); got != data {
		t.Errorf("uploaded %d bytes, equal=%v; want the %d-byte file", len(got), got == data, len(data))
	}
}
