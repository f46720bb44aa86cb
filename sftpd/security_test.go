package sftpd

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// twoOrgs starts a server with organizations acme and globex; globex holds
// secret.csv, and a file sits next to the organization folders.
func twoOrgs(t *testing.T) (*env, *sftp.Client) {
	t.Helper()
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	for _, d := range []string{"acme/reports", "globex/reports"} {
		if err := os.MkdirAll(filepath.Join(e.root, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, e.orgFile("globex", "secret.csv"), "globex secret\n")
	writeFile(t, filepath.Join(e.root, "outside.txt"), "outside\n")
	writeFile(t, e.orgFile("acme", "users.csv"), "acme users\n")
	writeFile(t, e.orgFile("acme", "reports/latest.txt"), "report\n")
	return e, e.sftpClient(t, "acme", k)
}

// checkUntouched fails if globex's file or the outside file changed.
func checkUntouched(t *testing.T, e *env) {
	t.Helper()
	if got := readFile(t, e.orgFile("globex", "secret.csv")); got != "globex secret\n" {
		t.Errorf("globex/secret.csv = %q; changed", got)
	}
	if names := dirNames(t, filepath.Join(e.root, "globex")); !slices.Equal(names, []string{"reports", "secret.csv"}) {
		t.Errorf("globex folder = %v; changed", names)
	}
	if names := dirNames(t, e.root); !slices.Equal(names, []string{"acme", "globex", "outside.txt"}) {
		t.Errorf("orgs folder = %v; changed", names)
	}
	if got := readFile(t, filepath.Join(e.root, "outside.txt")); got != "outside\n" {
		t.Errorf("outside.txt = %q; changed", got)
	}
}

func TestPathEscapesStayInside(t *testing.T) {
	e, c := twoOrgs(t)
	for _, p := range []string{
		"../globex/secret.csv", "/../globex/secret.csv", "../../outside.txt", "/../outside.txt",
		"//globex/secret.csv", "..//..//outside.txt", "reports/../../globex/secret.csv",
		"./../globex/./secret.csv", "/acme/../../globex/secret.csv", "..\\globex\\secret.csv",
	} {
		if f, err := c.Open(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("Open(%q) succeeded and read %q", p, b)
		}
	}
	// ".." at the root is the root: the listing is acme's own.
	for _, p := range []string{"..", "/..", "//", "/../..", "../globex/.."} {
		infos, err := c.ReadDir(p)
		if err != nil {
			t.Errorf("ReadDir(%q): %v", p, err)
			continue
		}
		var names []string
		for _, fi := range infos {
			names = append(names, fi.Name())
		}
		if !slices.Equal(names, []string{"reports", "users.csv"}) {
			t.Errorf("ReadDir(%q) = %v; want acme's own folder", p, names)
		}
	}
	// Writes through escaping names land inside acme's folder or fail.
	for _, p := range []string{"../escape1.csv", "/../../escape2.csv", "//escape3.csv"} {
		f, err := c.Create(p)
		if err != nil {
			t.Errorf("Create(%q): %v", p, err)
			continue
		}
		f.Write([]byte("x"))
		if err := f.Close(); err != nil {
			t.Errorf("Close(%q): %v", p, err)
		}
	}
	for _, p := range []string{"../globex/new.csv", "/../globex/secret.csv", "../../outside.txt"} {
		if f, err := c.Create(p); err == nil {
			f.Write([]byte("x"))
			f.Close()
		}
	}
	if names := dirNames(t, filepath.Join(e.root, "acme")); !slices.Equal(names,
		[]string{"escape1.csv", "escape2.csv", "escape3.csv", "outside.txt", "reports", "users.csv"}) {
		t.Errorf("acme folder = %v", names)
	}
	if rp, err := c.RealPath("../../.."); err != nil || rp != "/" {
		t.Errorf("RealPath(../../..) = %q, %v; want /", rp, err)
	}
	checkUntouched(t, e)
}

func TestSymlinkHardlinkMkdirRefused(t *testing.T) {
	e, c := twoOrgs(t)
	if err := c.Symlink("users.csv", "link.csv"); !errors.Is(err, os.ErrPermission) {
		t.Errorf("Symlink = %v; want permission denied", err)
	}
	if err := c.Symlink("../globex/secret.csv", "link.csv"); !errors.Is(err, os.ErrPermission) {
		t.Errorf("Symlink outside = %v; want permission denied", err)
	}
	if err := c.Link("users.csv", "hard.csv"); !errors.Is(err, os.ErrPermission) {
		t.Errorf("Link = %v; want permission denied", err)
	}
	if err := c.Mkdir("sub"); !errors.Is(err, os.ErrPermission) {
		t.Errorf("Mkdir = %v; want permission denied", err)
	}
	if err := c.RemoveDirectory("reports"); !errors.Is(err, os.ErrPermission) {
		t.Errorf("RemoveDirectory(reports) = %v; want permission denied", err)
	}
	if names := dirNames(t, filepath.Join(e.root, "acme")); !slices.Equal(names, []string{"reports", "users.csv"}) {
		t.Errorf("acme folder = %v; want nothing created", names)
	}
	// OpenSSH's sftp gets the refusals too.
	k := e.addOrg(t, "acme")
	out, err := sftptest.SFTP(t, e.sshConfig(t, "acme", k), "-ln -s users.csv link.csv\n-mkdir sub\n")
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	mustContain(t, "sftp output", out, "Permission denied")
	mustContain(t, "log", e.logs.String(), `"reason":"symlink"`, `"reason":"link"`, `"reason":"mkdir"`)
	checkUntouched(t, e)
}

func TestPlantedSymlinkNotFollowed(t *testing.T) {
	e, c := twoOrgs(t)
	acme := filepath.Join(e.root, "acme")
	// Someone with shell access plants links in the folder.
	for name, target := range map[string]string{
		"inside.csv":  "users.csv",
		"outside.csv": "../globex/secret.csv",
		"abs.csv":     e.orgFile("globex", "secret.csv"),
	} {
		if err := os.Symlink(target, filepath.Join(acme, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"inside.csv", "outside.csv", "abs.csv"} {
		if f, err := c.Open(name); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("Open(%s) followed the symlink and read %q", name, b)
		}
		if f, err := c.Create(name); err == nil {
			f.Write([]byte("overwrite"))
			f.Close()
			t.Errorf("Create(%s) succeeded through a symlink", name)
		}
		if err := c.Rename(name, "users2.csv"); err == nil {
			t.Errorf("Rename(%s) of a symlink succeeded", name)
		}
		if fi, err := c.Stat(name); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("Stat(%s) = %v, %v; want the link itself", name, fi, err)
		}
		if _, err := c.ReadLink(name); err == nil {
			t.Errorf("ReadLink(%s) succeeded; want refused", name)
		}
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "acme users\n" {
		t.Errorf("users.csv = %q; changed through a link", got)
	}
	// A reports folder replaced by a symlink is not followed either.
	os.Rename(filepath.Join(acme, "reports"), filepath.Join(acme, "reports.real"))
	if err := os.Symlink("../globex", filepath.Join(acme, "reports")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadDir("reports"); err == nil {
		t.Error("ReadDir(reports) followed a symlinked reports folder")
	}
	if f, err := c.Open("reports/secret.csv"); err == nil {
		f.Close()
		t.Error("Open(reports/secret.csv) followed a symlinked reports folder")
	}
	checkUntouched(t, e)
}

func TestOrgIsolation(t *testing.T) {
	e, c := twoOrgs(t)
	for _, p := range []string{"../globex", "/../globex", "//globex", "globex"} {
		if infos, err := c.ReadDir(p); err == nil {
			for _, fi := range infos {
				if fi.Name() == "secret.csv" {
					t.Errorf("ReadDir(%q) listed globex's files", p)
				}
			}
		}
	}
	for _, p := range []string{"../globex/secret.csv", "/globex/secret.csv", "globex/secret.csv"} {
		if f, err := c.Open(p); err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
		if err := c.Rename("users.csv", p); err == nil {
			t.Errorf("Rename(users.csv, %q) succeeded", p)
		}
		if err := c.PosixRename("users.csv", p); err == nil {
			t.Errorf("PosixRename(users.csv, %q) succeeded", p)
		}
		if err := c.Rename(p, "stolen.csv"); err == nil {
			t.Errorf("Rename(%q, stolen.csv) succeeded", p)
		}
		if err := c.Remove(p); err == nil {
			t.Errorf("Remove(%q) succeeded", p)
		}
		if err := c.Chmod(p, 0o600); err == nil {
			t.Errorf("Chmod(%q) succeeded", p)
		}
	}
	checkUntouched(t, e)
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "acme users\n" {
		t.Errorf("acme users.csv = %q", got)
	}
}

func TestReportsReadOnly(t *testing.T) {
	e, c := twoOrgs(t)
	infos, err := c.ReadDir("/reports")
	if err != nil || len(infos) != 1 || infos[0].Name() != "latest.txt" {
		t.Fatalf("ReadDir(/reports) = %v, %v; want latest.txt", infos, err)
	}
	f, err := c.Open("/reports/latest.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "report\n" {
		t.Errorf("reports/latest.txt = %q", b)
	}
	checks := map[string]error{}
	if f, err := c.Create("reports/new.txt"); err == nil {
		f.Close()
		checks["create"] = errors.New("succeeded")
	} else {
		checks["create"] = err
	}
	if f, err := c.OpenFile("reports/latest.txt", os.O_WRONLY); err == nil {
		f.Close()
		checks["open for write"] = errors.New("succeeded")
	} else {
		checks["open for write"] = err
	}
	checks["rename out"] = c.Rename("reports/latest.txt", "x.txt")
	checks["rename in"] = c.Rename("users.csv", "reports/latest.txt")
	checks["posix-rename in"] = c.PosixRename("users.csv", "reports/users.csv")
	checks["rename folder"] = c.Rename("reports", "r2")
	checks["rename onto folder"] = c.PosixRename("users.csv", "reports")
	checks["remove"] = c.Remove("reports/latest.txt")
	checks["remove folder"] = c.Remove("reports")
	checks["chmod"] = c.Chmod("reports/latest.txt", 0o666)
	checks["chtimes"] = c.Chtimes("reports/latest.txt", time.Now(), time.Now())
	for op, err := range checks {
		if !errors.Is(err, os.ErrPermission) {
			t.Errorf("%s in reports/ = %v; want permission denied", op, err)
		}
	}
	if got := readFile(t, e.orgFile("acme", "reports/latest.txt")); got != "report\n" {
		t.Errorf("reports/latest.txt = %q; changed", got)
	}
	if names := dirNames(t, filepath.Join(e.root, "acme", "reports")); !slices.Equal(names, []string{"latest.txt"}) {
		t.Errorf("reports/ = %v; changed", names)
	}
	if len(e.notes.get()) != 0 {
		t.Errorf("notifications = %v; want none", e.notes.get())
	}
}

func TestRenameOverwritesAndFsync(t *testing.T) {
	e, c := twoOrgs(t)
	put := func(name, data string) {
		f, err := c.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(data))
		if err := f.Sync(); err != nil { // fsync@openssh.com
			t.Errorf("Sync: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	put("a.part", "new users\n")
	if err := c.Rename("a.part", "users.csv"); err != nil { // SSH_FXP_RENAME
		t.Fatalf("Rename onto an existing file: %v", err)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "new users\n" {
		t.Errorf("users.csv = %q after rename", got)
	}
	put("b.part", "newer users\n")
	if err := c.PosixRename("b.part", "users.csv"); err != nil {
		t.Fatalf("PosixRename onto an existing file: %v", err)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "newer users\n" {
		t.Errorf("users.csv = %q after posix-rename", got)
	}
	want := []string{"acme/a.part", "acme/users.csv", "acme/b.part", "acme/users.csv"}
	if got := e.notes.get(); !slices.Equal(got, want) {
		t.Errorf("notifications = %q; want %q", got, want)
	}
	if _, err := c.Stat("users.csv"); err != nil {
		t.Errorf("Stat after upload: %v", err)
	}
}

// TestDroppedUploadKeepsOldFile: SPEC §3, an upload cut off by a dropped
// connection never replaces the previous file and is never signalled.
func TestDroppedUploadKeepsOldFile(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	os.MkdirAll(filepath.Join(e.root, "acme"), 0o750)
	writeFile(t, e.orgFile("acme", "users.csv"), "old\n")
	sc, err := e.dial("acme", sshPublicKeys(k))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sftp.NewClient(sc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Create("users.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(strings.Repeat("partial,", 10000))); err != nil {
		t.Fatal(err)
	}
	// The staged file exists while the upload runs; clients do not see it.
	infos, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range infos {
		if strings.HasPrefix(fi.Name(), TempPrefix) {
			t.Errorf("listing shows temporary file %s", fi.Name())
		}
	}
	if fi, err := c.Stat("users.csv"); err != nil || fi.Size() != 80000 {
		t.Errorf("Stat during upload = %v, %v; want the staged size 80000", fi, err)
	}
	sc.Close() // the connection drops mid-upload
	waitFor(t, "the upload to be discarded", func() bool {
		return strings.Contains(e.logs.String(), `"event":"upload.discarded"`)
	})
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "old\n" {
		t.Errorf("users.csv = %q; want the old file", got)
	}
	if names := dirNames(t, filepath.Join(e.root, "acme")); !slices.Equal(names, []string{"reports", "users.csv"}) {
		t.Errorf("folder = %v; want no temporary file left", names)
	}
	if got := e.notes.get(); len(got) != 0 {
		t.Errorf("notifications = %v; want none", got)
	}
}

func TestUploadOverLimitLeavesNothing(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxUploadSize = 64 << 10 })
	k := e.addOrg(t, "acme")
	c := e.sftpClient(t, "acme", k)
	f, err := c.Create("users.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(make([]byte, 100<<10))
	cerr := f.Close()
	if werr == nil && cerr == nil {
		t.Fatal("upload over the limit succeeded")
	}
	if werr != nil && !strings.Contains(werr.Error(), "size limit") {
		t.Errorf("Write error = %v; want the size limit named", werr)
	}
	// OpenSSH's sftp fails as well.
	local := filepath.Join(t.TempDir(), "big.csv")
	writeFile(t, local, strings.Repeat("x", 100<<10))
	out, err := sftptest.SFTP(t, e.sshConfig(t, "acme", k), "put "+local+" big.csv\n")
	if err == nil {
		t.Errorf("sftp put over the limit succeeded:\n%s", out)
	}
	if names := dirNames(t, filepath.Join(e.root, "acme")); !slices.Equal(names, []string{"reports"}) {
		t.Errorf("folder = %v; want nothing left", names)
	}
	if got := e.notes.get(); len(got) != 0 {
		t.Errorf("notifications = %v; want none", got)
	}
	mustContain(t, "log", e.logs.String(), `"event":"upload.discarded"`)
}

func TestShutdownWaitsForUploads(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	c := e.sftpClient(t, "acme", k)
	f, err := c.Create("users.csv")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("in flight\n"))
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(context.Background()) }()
	// Shutdown waits for the open upload; new uploads are refused.
	waitFor(t, "shutdown to start", func() bool {
		e.srv.mu.Lock()
		defer e.srv.mu.Unlock()
		return e.srv.closing
	})
	if g, err := c.Create("other.csv"); err == nil {
		g.Close()
		t.Error("new upload accepted during shutdown")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with an upload in flight", err)
	default:
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close during shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "in flight\n" {
		t.Errorf("users.csv = %q", got)
	}
}

func TestShutdownDeadlineDiscardsUpload(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	c := e.sftpClient(t, "acme", k)
	f, err := c.Create("users.csv")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("never finished\n"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v; want context.Canceled", err)
	}
	waitFor(t, "the upload to be discarded", func() bool {
		return strings.Contains(e.logs.String(), `"event":"upload.discarded"`)
	})
	if _, err := os.Stat(e.orgFile("acme", "users.csv")); !os.IsNotExist(err) {
		t.Errorf("users.csv exists after an aborted upload: %v", err)
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"", "/", ".", "..", "/../..", "//x", "a/../../b", "reports/../../x",
		"reports/a/b", TempPrefix + "x", "/reports", "a\x00b", "\\..\\x", "./reports/./x"} {
		f.Add(s)
	}
	root := "/srv/orgs/acme"
	f.Fuzz(func(t *testing.T, p string) {
		name, k, err := resolve(p)
		if err != nil {
			return
		}
		if name != "." && !filepath.IsLocal(name) {
			t.Fatalf("resolve(%q) = %q; not local", p, name)
		}
		full := filepath.Join(root, name)
		if full != root && !strings.HasPrefix(full, root+"/") {
			t.Fatalf("resolve(%q) = %q; escapes to %s", p, name, full)
		}
		depth := strings.Count(name, "/")
		if depth > 1 || (depth == 1 && k != kindReport) {
			t.Fatalf("resolve(%q) = %q (kind %d); too deep", p, name, k)
		}
		if strings.HasPrefix(filepath.Base(name), TempPrefix) {
			t.Fatalf("resolve(%q) = %q; a temporary name", p, name)
		}
		if k == kindFile && name == reportsDir {
			t.Fatalf("resolve(%q): reports as a file", p)
		}
	})
}
