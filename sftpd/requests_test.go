package sftpd

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"golang.org/x/crypto/ssh"
)

// pattern returns n bytes that differ from offset to offset, so a chunk
// written at the wrong place is seen.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

// concurrentClient is a pkg/sftp client that writes concurrently, as
// File.ReadFrom does when asked to.
func (e *env) concurrentClient(t *testing.T, org string, key sftptest.Key) *sftp.Client {
	t.Helper()
	c, err := e.dial(org, ssh.PublicKeys(key.Signer))
	if err != nil {
		t.Fatalf("dial %s: %v", org, err)
	}
	t.Cleanup(func() { c.Close() })
	sc, err := sftp.NewClient(c, sftp.UseConcurrentWrites(true), sftp.MaxPacketUnchecked(32<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

// TestAppendWritesAtEnd: SPEC §3, SSH_FXF_APPEND appends wherever the
// client says it writes (pkg/sftp's client writes at offset 0), in the
// order the client sent the writes, also when they are concurrent.
func TestAppendWritesAtEnd(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	c := e.concurrentClient(t, "acme", k)
	first, second, third := pattern(300, 1), pattern(516, 2), pattern(1<<20+123, 3)
	f, err := c.Create("users.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(first); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = c.OpenFile("users.csv", os.O_WRONLY|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(second); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); len(got) != 816 || got != string(first)+string(second) {
		t.Fatalf("after 300 bytes and 516 appended: %d bytes (equal %v); want 816", len(got), got == string(first)+string(second))
	}
	// Concurrent writes (ReadFrom) on an append handle land in order.
	f, err = c.OpenFile("users.csv", os.O_WRONLY|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(third)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := string(first) + string(second) + string(third)
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != want {
		t.Fatalf("after a concurrent append: %d bytes (equal %v); want %d", len(got), got == want, len(want))
	}
	want3 := []string{"acme/users.csv", "acme/users.csv", "acme/users.csv"}
	if got := e.notes.get(); !slices.Equal(got, want3) {
		t.Errorf("notifications = %q; want %q", got, want3)
	}
}

const asyncsshScript = `
import asyncio, os, sys, asyncssh
host, port, key, known, part, full = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
async def main():
    async with asyncssh.connect(host, port=port, username="acme", client_keys=[key],
                                known_hosts=known, agent_path=None) as conn:
        async with conn.start_sftp_client() as sftp:
            await sftp.put(part, "users.csv.filepart", preserve=True)
            print("preserved", int((await sftp.stat("users.csv.filepart")).mtime))
            with open(full, "rb") as f:
                rest = f.read()[os.path.getsize(part):]
            async with sftp.open("users.csv.filepart", "ab") as f:
                await f.write(rest)
            await sftp.posix_rename("users.csv.filepart", "users.csv")
            print("size", (await sftp.stat("users.csv")).size)
asyncio.run(main())
`

// TestAsyncsshAppendExportFlow is the export flow of issue 11 item 1 with
// Python asyncssh: a partial users.csv.filepart (put with preserve=True),
// the rest appended with open('ab'), then posix-rename onto users.csv.
func TestAsyncsshAppendExportFlow(t *testing.T) {
	py := pythonWith(t, "asyncssh")
	e, k, known, _ := clientSetup(t)
	dir := t.TempDir()
	full := []byte(clientUsers + strings.Repeat("3,c@example.com,E,F\n", 40))
	part, fullPath := filepath.Join(dir, "part.csv"), filepath.Join(dir, "full.csv")
	writeFile(t, part, string(full[:300]))
	writeFile(t, fullPath, string(full))
	old := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := os.Chtimes(part, old, old); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.addr)
	out, err := sftptest.Run(t, nil, py, "-W", "ignore", "-c", asyncsshScript, host, port, k.Path, known, part, fullPath)
	if err != nil {
		t.Fatalf("asyncssh: %v\n%s", err, out)
	}
	mustContain(t, "asyncssh output", out, fmt.Sprintf("preserved %d", old.Unix()), fmt.Sprintf("size %d", len(full)))
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != string(full) {
		t.Errorf("users.csv has %d bytes; want the %d-byte export", len(got), len(full))
	}
	want := []string{"acme/users.csv.filepart", "acme/users.csv.filepart", "acme/users.csv"}
	waitFor(t, "notifications", func() bool { return len(e.notes.get()) >= len(want) })
	if got := e.notes.get(); !slices.Equal(got, want) {
		t.Errorf("notifications = %q; want %q (a setstat signals nothing)", got, want)
	}
}

// pythonWith returns /usr/bin/python3 when it can import module; else it
// skips (fails under CI=true).
func pythonWith(t *testing.T, module string) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = sftptest.LookPath(t, "python3")
	}
	if out, err := sftptest.Run(t, nil, py, "-W", "ignore", "-c", "import "+module); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 module %s is required under CI=true: %s", module, out)
		}
		t.Skipf("python3 module %s not installed: %s", module, out)
	}
	return py
}

// TestPipelinedSetstatKeepsTimes sends what lftp sends: writes, then an
// FSETSTAT with mode and times and a CLOSE, all before reading a reply.
// SPEC §3: requests on one handle take effect in the order the client
// sent them, so the times are those of the setstat, and mode and times
// set on the open upload survive the rename at close.
func TestPipelinedSetstatKeepsTimes(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	r := e.rawSFTP(t, "acme", k)
	mtime := time.Date(2019, 5, 6, 7, 8, 9, 0, time.UTC)
	chunk := pattern(32<<10, 7)
	const writes = 48
	for i := range 8 {
		name := fmt.Sprintf("f%d.csv", i)
		h := r.open(name, pfWrite|pfCreat|pfTrunc)
		var ids []uint32
		for w := range writes {
			ids = append(ids, r.write(h, int64(w*len(chunk)), chunk))
		}
		set := r.fsetstat(h, 0o600, uint32(mtime.Unix()), uint32(mtime.Unix()))
		cl := r.close(h)
		for _, id := range ids {
			r.ok(id, "write")
		}
		r.ok(set, "fsetstat")
		r.ok(cl, "close")
		st, err := os.Stat(e.orgFile("acme", name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != writes*int64(len(chunk)) {
			t.Errorf("%s: size %d; want %d", name, st.Size(), writes*len(chunk))
		}
		if !st.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime %v; want %v set by the FSETSTAT behind the writes", name, st.ModTime(), mtime)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v; want 0600 set on the open upload", name, st.Mode().Perm())
		}
	}
}

// TestPipelinedReadSeesEarlierWrite: a read behind a write on the same
// handle sees the write.
func TestPipelinedReadSeesEarlierWrite(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	r := e.rawSFTP(t, "acme", k)
	h := r.open("users.csv", pfRead|pfWrite|pfCreat|pfTrunc)
	data := pattern(64<<10, 9)
	for i := range 20 {
		w := r.write(h, 0, data)
		rd := r.read(h, 0, uint32(len(data)))
		r.ok(w, "write")
		typ, id, body := r.recv()
		if typ != rawData || id != rd {
			t.Fatalf("round %d: reply type %d id %d to the read; want DATA", i, typ, id)
		}
		got, _, _ := takeString(body)
		if !bytes.Equal(got, data) {
			t.Fatalf("round %d: the read behind a write did not see it", i)
		}
		data = pattern(64<<10, byte(10+i))
	}
	r.ok(r.close(h), "close")
}

// TestLftpMirrorKeepsTimes: lftp mirror -R sends FSETSTAT (times) right
// behind its last writes; every file keeps its time (issue 11 item 3).
func TestLftpMirrorKeepsTimes(t *testing.T) {
	bin := sftptest.LookPath(t, "lftp")
	sftptest.LookPath(t, "ssh")
	e, k, known, _ := clientSetup(t)
	host, port, _ := net.SplitHostPort(e.addr)
	sshCmd := fmt.Sprintf("ssh -a -x -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null", k.Path, known)
	want := map[string]time.Time{}
	for round := range 3 {
		dir := t.TempDir()
		for i := range 5 {
			name := fmt.Sprintf("r%d-f%d.csv", round, i)
			p := filepath.Join(dir, name)
			writeFile(t, p, string(pattern(600<<10+i*1000, byte(round*5+i))))
			mt := time.Date(2018, time.Month(1+i), 1+round, 10, 0, 0, 0, time.UTC)
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
			want[name] = mt
		}
		script := fmt.Sprintf(`set sftp:connect-program "%s"; set net:max-retries 1; open -u acme, -p %s sftp://%s; mirror -R %s /`, sshCmd, port, host, dir)
		if out, err := sftptest.Run(t, nil, bin, "-c", script); err != nil {
			t.Fatalf("lftp mirror -R: %v\n%s", err, out)
		}
	}
	for name, mt := range want {
		st, err := os.Stat(e.orgFile("acme", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !st.ModTime().Equal(mt) {
			t.Errorf("%s: mtime %v; want %v (lftp's FSETSTAT lost)", name, st.ModTime(), mt)
		}
	}
}

// TestRcloneSyncExcludeReports: rclone sync of a folder with reports/
// excluded uploads, keeps the modification time and signals each file
// once (rclone's SETSTAT after the upload signals nothing).
func TestRcloneSyncExcludeReports(t *testing.T) {
	bin := sftptest.LookPath(t, "rclone")
	e, k, known, _ := clientSetup(t)
	if err := os.MkdirAll(e.orgFile("acme", "reports"), 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.orgFile("acme", "reports/latest.txt"), "report\n")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "users.csv"), clientUsers)
	mt := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "users.csv"), mt, mt); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.addr)
	remote := fmt.Sprintf(":sftp,host=%s,port=%s,user=acme,key_file=%s,known_hosts_file=%s:", host, port, k.Path, known)
	out, err := sftptest.Run(t, nil, bin, "--config", "/dev/null", "sync", dir, remote, "--exclude", "reports/**")
	if err != nil {
		t.Fatalf("rclone sync: %v\n%s", err, out)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != clientUsers {
		t.Errorf("users.csv = %q", got)
	}
	if st, err := os.Stat(e.orgFile("acme", "users.csv")); err != nil || !st.ModTime().Equal(mt) {
		t.Errorf("users.csv mtime = %v, %v; want %v", st.ModTime(), err, mt)
	}
	if got := readFile(t, e.orgFile("acme", "reports/latest.txt")); got != "report\n" {
		t.Errorf("reports/latest.txt = %q; want it untouched", got)
	}
	waitFor(t, "notification", func() bool { return slices.Contains(e.notes.get(), "acme/users.csv") })
	var n int
	for _, s := range e.notes.get() {
		if s == "acme/users.csv" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("notifications = %q; want users.csv once", e.notes.get())
	}
}

// TestSetstatSignalsNothing: issue 11 item 8. Mode and time changes never
// signal a completion, whether by path or through a handle, and a handle
// opened for writing that only sets attributes (what touch does over
// sshfs) leaves the content and signals nothing.
func TestSetstatSignalsNothing(t *testing.T) {
	e := newEnv(t, nil)
	k := e.addOrg(t, "acme")
	c := e.sftpClient(t, "acme", k)
	f, err := c.Create("users.csv")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(clientUsers))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(e.orgFile("acme", "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := c.Chtimes("users.csv", mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := c.Chmod("users.csv", 0o600); err != nil {
		t.Fatal(err)
	}
	// touch over sshfs: open for writing, set the times, close.
	r := e.rawSFTP(t, "acme", k)
	mt2 := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	h := r.open("users.csv", pfWrite)
	r.ok(r.fsetstat(h, 0o640, uint32(mt2.Unix()), uint32(mt2.Unix())), "fsetstat")
	r.ok(r.close(h), "close")
	// Opened for reading and writing, only read.
	h = r.open("users.csv", pfRead|pfWrite)
	rd := r.read(h, 0, 10)
	if typ, id, _ := r.recv(); typ != rawData || id != rd {
		t.Fatalf("read through a read-write handle: reply type %d", typ)
	}
	r.ok(r.close(h), "close")

	after, err := os.Stat(e.orgFile("acme", "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != clientUsers {
		t.Errorf("users.csv = %q; want it unchanged", got)
	}
	if !after.ModTime().Equal(mt2) || after.Mode().Perm() != 0o640 {
		t.Errorf("after touch: mtime %v mode %v; want %v and 0640", after.ModTime(), after.Mode().Perm(), mt2)
	}
	if !os.SameFile(before, after) {
		t.Errorf("users.csv was replaced by a handle that wrote nothing")
	}
	if got := e.notes.get(); !slices.Equal(got, []string{"acme/users.csv"}) {
		t.Errorf("notifications = %q; want only the upload", got)
	}
	for _, n := range dirNames(t, filepath.Join(e.root, "acme")) {
		if strings.HasPrefix(n, TempPrefix) {
			t.Errorf("staging file %s left behind", n)
		}
	}
	// A handle that truncates, or creates a file, changes it: signalled.
	h = r.open("users.csv", pfWrite|pfTrunc)
	r.ok(r.close(h), "close")
	h = r.open("new.csv", pfWrite|pfCreat)
	r.ok(r.close(h), "close")
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "" {
		t.Errorf("users.csv after an open with truncation = %q; want empty", got)
	}
	want := []string{"acme/users.csv", "acme/users.csv", "acme/new.csv"}
	if got := e.notes.get(); !slices.Equal(got, want) {
		t.Errorf("notifications = %q; want %q", got, want)
	}
	if fi, err := os.Stat(e.orgFile("acme", "new.csv")); err != nil || fi.Size() != 0 || !fi.Mode().IsRegular() {
		t.Errorf("new.csv = %v, %v; want an empty file", fi, err)
	}
}
