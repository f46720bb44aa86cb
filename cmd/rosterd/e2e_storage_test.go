package main

import (
	"bytes"
	"errors"
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

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// sftpSession opens a pkg/sftp client as org with keyPath.
func sftpSession(t *testing.T, d *testDaemon, org, keyPath string) *sftp.Client {
	t.Helper()
	return sftpSessionHost(t, d, org, keyPath, hostKeys(t, d)[0])
}

// sftpSessionHost is sftpSession with host key hk pinned (dialSSHHost).
func sftpSessionHost(t *testing.T, d *testDaemon, org, keyPath string, hk ssh.PublicKey) *sftp.Client {
	t.Helper()
	c, err := dialSSHHost(t, d, org, keyPath, hk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

// upload writes data as name through sc and returns the first error of
// the writes and the close.
func upload(sc *sftp.Client, name string, data []byte) error {
	f, err := sc.Create(name)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	return errors.Join(werr, f.Close())
}

// diskUse is the allocated size of path.
func diskUse(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// folderNames lists org's folder but reports/.
func folderNames(t *testing.T, d *testDaemon, org string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(d.Data, "orgs", org))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != "reports" {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestE2ESparseUpload: issue 12 case 3. A real SFTP client writes one
// byte at offset 256 MiB and renames the file onto users.csv: 4 KB in the
// folder must stay 4 KB in the archive, and the report says why the file
// is refused.
func TestE2ESparseUpload(t *testing.T) {
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "0s"}})
	key := addOrg(t, d, "acme")
	sc := sftpSession(t, d, "acme", key)
	f, err := sc.OpenFile(".in.users.csv", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("\n"), 256<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.PosixRename(".in.users.csv", "users.csv"); err != nil {
		t.Fatal(err)
	}
	rep := waitLatestReport(t, d, "acme", 30*time.Second, func(map[string]any) bool { return true })
	if rep["status"] != "rejected" {
		t.Errorf("sparse upload: %v; want rejected", rep["status"])
	}
	id, _ := rep["batch_id"].(string)
	if n := diskUse(t, filepath.Join(d.Data, "orgs", "acme", "users.csv")); n > 1<<20 {
		t.Errorf("users.csv takes %d bytes in the folder; want a few KiB", n)
	}
	arch := filepath.Join(d.Data, "archive", "acme", id, "users.csv")
	if n := diskUse(t, arch); n > 1<<20 {
		t.Errorf("the archive copy takes %d bytes; want what the upload took (a few KiB)", n)
	}
	txt, _ := os.ReadFile(filepath.Join(d.Data, "orgs", "acme", "reports", "latest.txt"))
	if !bytes.Contains(txt, []byte("256 MiB of this file were never written")) {
		t.Errorf("report does not explain the hole:\n%s", txt)
	}
}

// TestE2EStorageQuota: SPEC §3, an upload that takes the organization
// over its storage quota is refused with a clear SFTP error seen by the
// client, and nothing half-written is kept.
func TestE2EStorageQuota(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "rosterd.toml")
	os.WriteFile(conf, []byte("[limits]\nstorage_quota = \"16MiB\"\n"), 0o600)
	d := startDaemon(t, daemonOpts{Args: []string{"--config", conf, "--settle", "0s"}})
	key := addOrg(t, d, "acme")
	sc := sftpSession(t, d, "acme", key)
	if err := upload(sc, "old-export.bin", bytes.Repeat([]byte("a"), 5<<20)); err != nil {
		t.Fatalf("5 MiB upload under a 16 MiB quota: %v", err)
	}
	err := upload(sc, "export.bin", bytes.Repeat([]byte("b"), 12<<20))
	want := "this organization's storage quota of 16 MiB is used up"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("12 MiB upload over the quota: %v; want %q", err, want)
	}
	waitFor(t, 10*time.Second, "the refused upload's staged file removed", func() bool {
		names := folderNames(t, d, "acme")
		return len(names) == 1 && names[0] == "old-export.bin"
	})
	waitFor(t, 10*time.Second, "an upload.discarded log line with the quota reason", func() bool {
		logs := logMatches(d, msgPrefix("upload discarded"))
		return len(logs) > 0 && strings.Contains(fmt.Sprint(logs[0]["reason"]), want)
	})
	// Freeing space lets uploads through again.
	if err := sc.Remove("old-export.bin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "an upload after freeing space", func() bool {
		return upload(sc, "export.bin", bytes.Repeat([]byte("b"), 12<<20)) == nil
	})
}

// TestE2ELowDisk: SPEC §3, below the free-space threshold uploads are
// refused at open and while they grow, /readyz answers not ready with the
// reason, and rosterd_disk_free_bytes gives the free space. The data
// directory is a 64 MiB tmpfs mounted by the test (root only).
func TestE2ELowDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestE2ELowDisk mounts a tmpfs and must run as root in CI")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	conf := filepath.Join(t.TempDir(), "rosterd.toml")
	os.WriteFile(conf, []byte("[limits]\nmin_free_space = \"32MiB\"\nmin_free_percent = 0\n"), 0o600)
	d := startDaemon(t, daemonOpts{Data: filepath.Join(mnt, "data"), Args: []string{"--config", conf, "--settle", "0s"}})
	key := addOrg(t, d, "acme")
	sc := sftpSession(t, d, "acme", key)

	// 64 MiB, less what the daemon holds: a 10 MiB upload crosses 32 MiB
	// free once 20 MiB are taken.
	fill := filepath.Join(mnt, "fill")
	if err := os.WriteFile(fill, make([]byte, 20<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	err := upload(sc, "users.csv", bytes.Repeat([]byte("x"), 10<<20))
	const msg = "the server is low on disk space; try again later"
	if err == nil || !strings.Contains(err.Error(), msg) {
		t.Fatalf("upload across the threshold: %v; want %q", err, msg)
	}
	waitFor(t, 10*time.Second, "the refused upload's staged file removed", func() bool { return len(folderNames(t, d, "acme")) == 0 })

	if err := os.WriteFile(fill, make([]byte, 40<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Create("users.csv"); err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("open below the threshold: %v; want %q", err, msg)
	}
	resp, err := http.Get("http://" + d.HTTPAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("low disk space")) || !bytes.Contains(body, []byte("below the 32 MiB kept free")) {
		t.Errorf("/readyz below the threshold = %d %s; want 503 with the reason", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + d.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte(`rosterd_disk_free_bytes{fs="orgs"}`)) || !bytes.Contains(metrics, []byte(`rosterd_disk_min_free_bytes{fs="orgs"} 3.3554432e+07`)) {
		t.Errorf("/metrics lacks the disk gauges:\n%s", grepLines(metrics, "rosterd_disk"))
	}

	os.Remove(fill)
	if err := upload(sc, "users.csv", []byte(exportUsers)); err != nil {
		t.Errorf("upload after freeing space: %v", err)
	}
	waitFor(t, 10*time.Second, "/readyz ready again", func() bool {
		resp, err := http.Get("http://" + d.HTTPAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestE2EIgnoredNameReport: issue 12 case 4, through the real binary and
// OpenSSH sftp. users-2026-12-03.csv with no pattern for it gets an
// ignored report in /reports/, listed by the batches API, once a day.
func TestE2EIgnoredNameReport(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "0s"}})
	cfg := sftpOrg(t, d, "acme")
	local := t.TempDir()
	os.WriteFile(filepath.Join(local, "users-2026-12-03.csv"), []byte(exportUsers), 0o600)
	if out, err := sftptest.SFTP(t, cfg, fmt.Sprintf("put %s/users-2026-12-03.csv\n", local)); err != nil {
		t.Fatalf("sftp put: %v\n%s", err, out)
	}
	var ignored e2eBatch
	waitFor(t, 20*time.Second, "an ignored batch", func() bool {
		bs := d.batches("acme")
		if len(bs) > 0 && bs[0].Status == "ignored" {
			ignored = bs[0]
			return true
		}
		return false
	})
	if len(ignored.Files) != 1 || ignored.Files[0].Name != "users-2026-12-03.csv" {
		t.Errorf("ignored batch files = %+v", ignored.Files)
	}
	// The report is in /reports/, readable over SFTP.
	got := filepath.Join(local, "report.txt")
	var txt []byte
	waitFor(t, 20*time.Second, "the ignored report over SFTP", func() bool {
		out, _ := sftptest.SFTP(t, cfg, "ls -1 reports\n")
		for _, l := range strings.Fields(out) {
			if strings.HasSuffix(l, ignored.ID+".txt") {
				os.Remove(got)
				sftptest.SFTP(t, cfg, fmt.Sprintf("-get %s %s\n", l, got))
				txt, _ = os.ReadFile(got)
				return len(txt) > 0
			}
		}
		return false
	})
	for _, want := range []string{"IGNORED:", "users-2026-12-03.csv", "users.csv, user_groups.csv, groups.csv", "add the pattern users-*.csv"} {
		if !bytes.Contains(txt, []byte(want)) {
			t.Errorf("ignored report lacks %q:\n%s", want, txt)
		}
	}
	// Once a day: the same upload again gives no second notice.
	if out, err := sftptest.SFTP(t, cfg, fmt.Sprintf("put %s/users-2026-12-03.csv\nput %s/users-2026-12-03.csv users.csv\n", local, local)); err != nil {
		t.Fatalf("sftp put: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "the users.csv batch", func() bool {
		bs := d.batches("acme")
		return len(bs) > 1 && bs[0].Status == "applied"
	})
	n := 0
	for _, b := range d.batches("acme") {
		if b.Status == "ignored" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d ignored batches; want 1 (once per name per day)", n)
	}
}
