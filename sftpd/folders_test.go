package sftpd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// TestHandleLimit: SPEC §3, at most maxOpenHandles (the number announced
// in limits@openssh.com) handles per session. One more is answered with
// an SFTP failure that says why; the server stays up, and once some are
// closed the session uploads again.
func TestHandleLimit(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	c := e.sftpClient(t, "acme", k)
	var open []*sftp.File
	var refused []error
	for i := range 300 {
		f, err := c.OpenFile(fmt.Sprintf("h%03d.csv", i), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			refused = append(refused, err)
			continue
		}
		open = append(open, f)
	}
	if len(open) != maxOpenHandles || len(refused) != 300-maxOpenHandles {
		t.Fatalf("opened %d handles, %d refused; want %d and %d", len(open), len(refused), maxOpenHandles, 300-maxOpenHandles)
	}
	var se *sftp.StatusError
	if !errors.As(refused[0], &se) || se.FxCode() != sftp.ErrSSHFxFailure || !strings.Contains(se.Error(), "too many open handles") {
		t.Errorf("open beyond the limit = %v; want SSH_FX_FAILURE naming the limit", refused[0])
	}
	// Folder and read handles count too.
	if _, err := c.ReadDir("/"); err == nil {
		t.Errorf("ReadDir with every handle in use succeeded")
	}
	// A second session has its own handles.
	if _, err := e.sftpClient(t, "acme", k).ReadDir("/"); err != nil {
		t.Errorf("ReadDir in another session: %v", err)
	}
	for _, f := range open[:10] {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := c.Create("users.csv")
	if err != nil {
		t.Fatalf("Create after closing handles: %v", err)
	}
	f.Write([]byte(clientUsers))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != clientUsers {
		t.Errorf("users.csv = %q", got)
	}
	mustContain(t, "log", e.logs.String(), `"reason":"handle_limit"`)
}

// TestHandlesFreedAtSessionEnd: the handles a session left open are given
// back when it ends (its uploads discarded), and a new session has all of
// its own.
func TestHandlesFreedAtSessionEnd(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	sc, err := e.dial("acme", sshPublicKeys(k))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sftp.NewClient(sc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxOpenHandles {
		if _, err := c.OpenFile(fmt.Sprintf("h%03d.csv", i), os.O_WRONLY|os.O_CREATE|os.O_TRUNC); err != nil {
			t.Fatal(err)
		}
	}
	sc.Close()
	waitFor(t, "the uploads to be discarded", func() bool {
		return strings.Count(e.logs.String(), `"event":"upload.discarded"`) == maxOpenHandles
	})
	c2 := e.sftpClient(t, "acme", k)
	for i := range maxOpenHandles {
		if _, err := c2.OpenFile(fmt.Sprintf("h%03d.csv", i), os.O_WRONLY|os.O_CREATE|os.O_TRUNC); err != nil {
			t.Fatalf("open %d in a new session: %v", i, err)
		}
	}
}

// TestStaleStagingRemovedAtStart: SPEC §3, staging files a crashed daemon
// left in the organization folders are removed when the server is
// created, each logged with its size; nothing else is touched.
func TestStaleStagingRemovedAtStart(t *testing.T) {
	root := filepath.Join(t.TempDir(), "orgs")
	for _, d := range []string{"acme/reports", "globex"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "acme", TempPrefix+"0123456789abcdef"), strings.Repeat("x", 1234))
	writeFile(t, filepath.Join(root, "globex", TempPrefix+"fedcba9876543210"), "partial")
	writeFile(t, filepath.Join(root, "acme", "users.csv"), "kept\n")
	writeFile(t, filepath.Join(root, "acme", ".in.users.csv"), "a client's own temporary name\n")
	writeFile(t, filepath.Join(root, "acme", "reports", TempPrefix+"x"), "not a staging place\n")
	logs := &sftptest.Buffer{}
	if _, err := New(Config{
		HostKeys: testHostKeys, Root: root, Keys: &keyStore{},
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	}); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, filepath.Join(root, "acme")); !slices.Equal(got, []string{".in.users.csv", "reports", "users.csv"}) {
		t.Errorf("acme = %v; want the staging file gone", got)
	}
	if got := dirNames(t, filepath.Join(root, "globex")); len(got) != 0 {
		t.Errorf("globex = %v; want the staging file gone", got)
	}
	if got := dirNames(t, filepath.Join(root, "acme", "reports")); len(got) != 1 {
		t.Errorf("acme/reports = %v; want it untouched", got)
	}
	mustContain(t, "log", logs.String(), `"org":"acme"`, `"file":".rosterd-upload-0123456789abcdef"`, `"bytes":1234`,
		`"org":"globex"`, `"bytes":7`)
}

// TestStaleStagingSharedRoot: with several instances on one shared folder
// (SPEC §11), a server starting removes only the staging files not
// written for longer than the idle timeout: a fresh one may be another
// instance's upload in progress and stays, an old one goes.
func TestStaleStagingSharedRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "orgs")
	if err := os.MkdirAll(filepath.Join(root, "acme"), 0o750); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(root, "acme", TempPrefix+"fresh0000000000")
	old := filepath.Join(root, "acme", TempPrefix+"old0000000000000")
	writeFile(t, fresh, "being written by another instance")
	writeFile(t, old, "left by an instance that died")
	idle := time.Minute
	// Just inside the idle timeout, and just past it.
	if err := os.Chtimes(fresh, time.Now(), time.Now().Add(-idle+10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(old, time.Now(), time.Now().Add(-idle-10*time.Second)); err != nil {
		t.Fatal(err)
	}
	logs := &sftptest.Buffer{}
	if _, err := New(Config{
		HostKeys: testHostKeys, Root: root, Keys: &keyStore{}, SharedRoot: true, Limits: Limits{IdleTimeout: idle},
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	}); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, filepath.Join(root, "acme")); !slices.Equal(got, []string{filepath.Base(fresh)}) {
		t.Errorf("acme = %v; want the fresh staging file only", got)
	}
	mustContain(t, "log", logs.String(), `"msg":"stale upload removed"`, `"file":"`+filepath.Base(old)+`"`,
		`"msg":"staging file kept"`, `"file":"`+filepath.Base(fresh)+`"`)

	// A server alone on its folder (no SharedRoot) removes every one.
	if _, err := New(Config{HostKeys: testHostKeys, Root: root, Keys: &keyStore{}, Limits: Limits{IdleTimeout: idle}}); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, filepath.Join(root, "acme")); len(got) != 0 {
		t.Errorf("acme = %v; want no staging file left by a server alone on its folder", got)
	}
}

// TestHardLinkNeverServed: SPEC §3 and issue 11 item 12. A hard link to a
// file outside the organization folder (the data directory's api_token)
// planted in it is never read, written, renamed or chmod-ed through; the
// refusal is logged.
func TestHardLinkNeverServed(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	if err := os.MkdirAll(e.orgFile("acme", "reports"), 0o750); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(filepath.Dir(e.root), "api_token")
	writeFile(t, token, "secret-token\n")
	if err := os.Chmod(token, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(token, e.orgFile("acme", "users.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(token, e.orgFile("acme", "reports/latest.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.orgFile("acme", "other.csv"), "other\n")
	c := e.sftpClient(t, "acme", k)
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("%s = %v; want permission denied", what, err)
		}
	}
	for _, name := range []string{"users.csv", "reports/latest.txt"} {
		if f, err := c.Open(name); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("Open(%s) succeeded and read %q", name, b)
		} else {
			denied("Open("+name+")", err)
		}
	}
	denied("Chmod", c.Chmod("users.csv", 0o644))
	_, err := c.OpenFile("users.csv", os.O_WRONLY|os.O_APPEND)
	denied("OpenFile(append)", err)
	_, err = c.OpenFile("users.csv", os.O_WRONLY|os.O_TRUNC)
	denied("OpenFile(truncate)", err)
	denied("Rename from", c.Rename("users.csv", "x.csv"))
	denied("PosixRename over", c.PosixRename("other.csv", "users.csv"))
	st, err := os.Stat(token)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || readFile(t, token) != "secret-token\n" {
		t.Errorf("api_token changed: mode %v, %q", st.Mode().Perm(), readFile(t, token))
	}
	if linkCount(st) != 3 {
		t.Errorf("api_token has %d links; want the 3 planted ones untouched", linkCount(st))
	}
	if got := e.notes.get(); len(got) != 0 {
		t.Errorf("notifications = %q; want none", got)
	}
	mustContain(t, "log", e.logs.String(), `"event":"refused"`, "more than one link")
	// Removing the planted name is allowed: it is how the admin gets rid
	// of it, and it leaves the target alone.
	if err := c.Remove("users.csv"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if readFile(t, token) != "secret-token\n" {
		t.Errorf("api_token changed by the removal")
	}
}

// TestSymlinkedOrgFolderNotServed: an organization folder that is itself a
// symlink (here to another organization's folder) is never served.
func TestSymlinkedOrgFolderNotServed(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	other := filepath.Join(e.root, "globex")
	if err := os.MkdirAll(other, 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(other, "secret.csv"), "globex secret\n")
	if err := os.Symlink(other, filepath.Join(e.root, "acme")); err != nil {
		t.Fatal(err)
	}
	sc, err := e.dial("acme", sshPublicKeys(k))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if c, err := sftp.NewClient(sc); err == nil {
		if _, err := c.ReadDir("/"); err == nil {
			t.Errorf("ReadDir through a symlinked organization folder succeeded")
		}
		c.Close()
	}
	if got := dirNames(t, other); !slices.Equal(got, []string{"secret.csv"}) {
		t.Errorf("globex = %v; want nothing created through the link", got)
	}
	mustContain(t, "log", e.logs.String(), `"event":"refused"`, "symbolic link")
}
