package ingest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// zipOf returns a zip archive of the files, in the order given.
func zipOf(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < len(files); i += 2 {
		w, err := zw.Create(files[i])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// batchesAfter returns the organization's batches newer than id, oldest
// first.
func (e *env) batchesAfter(id string) []state.Batch {
	e.t.Helper()
	bs, err := e.db.Batches(e.org, "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []state.Batch
	for _, b := range bs {
		if b.ID > id {
			out = append(out, b)
		}
	}
	slices.Reverse(out)
	return out
}

// archivedSHA256 hashes the archived copy of a batch's file.
func (e *env) archivedSHA256(batch string, f state.BatchFile) string {
	e.t.Helper()
	data, err := os.ReadFile(archivedFile(e.p.archiveDir(e.org, batch), f))
	if err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestZipNotRetakenAfterRestart: the files found in a zip upload are
// recorded with the zip's completion, so that the scan at a restart
// recognizes the zip as processed (SPEC §5: a completion is processed
// once), as it recognizes a plain file.
func TestZipNotRetakenAfterRestart(t *testing.T) {
	e, _ := newFaultEnv(t, state.Settings{}, settled, nil)
	e.upload("export.zip", zipOf(t, "users.csv", string(titledUsersCSV("A", "E1", "E2")), "user_groups.csv", "group_name,user_id\nEng,E1\n"))
	a := e.waitBatch("", 10*time.Second)
	if a.Status != state.BatchApplied || len(a.Files) != 2 || a.Files[0].Inner != "users.csv" || a.Files[1].Inner != "user_groups.csv" {
		t.Fatalf("zip batch = %s %+v; want applied with both members", a.Status, a.Files)
	}
	done, err := e.db.Completions(e.org)
	if err != nil {
		t.Fatal(err)
	}
	rec := done.Files["export.zip"]
	for _, f := range a.Files {
		if !rec.CompletedAt.Equal(f.CompletedAt) || !rec.ChangeTime.Equal(f.ChangeTime) || rec.SHA256 != f.SHA256 || rec.Size != f.Size {
			t.Errorf("completion of export.zip = %+v; want the archived zip's (member %s: %+v)", rec, f.Inner, f)
		}
		if last := done.Newest[f.Kind]; !last.CompletedAt.Equal(f.CompletedAt) {
			t.Errorf("newest %s completion = %+v; want the zip's (%v): its member is the newest file of the kind", f.Kind, last, f.CompletedAt)
		}
	}
	for range 2 {
		e.stop()
		e.start(settled)
	}
	// A file placed while the daemon is down: the scan takes it, in the
	// same pass that must leave export.zip alone.
	e.stop()
	os.WriteFile(filepath.Join(e.orgDir, "groups.csv"), []byte("group_name\nEng\n"), 0o600)
	e.start(settled)
	g := e.waitBatch(a.ID, 10*time.Second)
	if bs := e.batchesAfter(a.ID); len(bs) != 1 || len(g.Files) != 1 || g.Files[0].Name != "groups.csv" || len(g.Ignored) != 0 {
		t.Errorf("batches after the restarts = %+v; want one, of groups.csv only", bs)
	}
	if e.title("E1") != "A" {
		t.Errorf("E1's job_title = %q; want A", e.title("E1"))
	}
}

// TestZipReuploadWhileWaiting: a batch of export.zip waits for a retry
// (its apply failed); the next export.zip, under the same name, forms a
// batch that supersedes it. Its own members win, the waiting batch's
// member of a kind the new zip lacks is taken over, and the waiting
// batch's archived zip is left as it was: the two zips of one name are
// two archive copies, not one file written through a hard link.
func TestZipReuploadWhileWaiting(t *testing.T) {
	e, f := newFaultEnv(t, state.Settings{}, settled, retryIn(time.Hour, time.Hour))
	e.upload("export.zip", zipOf(t, "users.csv", string(titledUsersCSV("A", "E1", "E2")), "user_groups.csv", "group_name,user_id\nEng,E1\n"))
	a := e.waitBatch("", 10*time.Second)
	f.set(failAt("apply"))
	e.upload("export.zip", zipOf(t, "users.csv", string(titledUsersCSV("B", "E1", "E2")), "user_groups.csv", "group_name,user_id\nEng,E2\n"))
	b := e.waitAttempt(1)
	if b.Status != state.BatchProcessing || len(b.Files) != 2 {
		t.Fatalf("waiting batch = %s %+v; want processing with both members", b.Status, b.Files)
	}
	f.set(nil)
	e.upload("export.zip", zipOf(t, "users.csv", string(titledUsersCSV("C", "E1", "E2"))))
	c := e.waitBatch(b.ID, 10*time.Second)
	if c.Status != state.BatchApplied || len(c.Files) != 2 {
		t.Fatalf("C = %s %+v; want applied with two files", c.Status, c.Files)
	}
	if u := c.Files[0]; u.Kind != "users" || u.From != "" || u.Inner != "users.csv" {
		t.Errorf("C's users file = %+v; want the new zip's member", u)
	}
	if g := c.Files[1]; g.Kind != "user_groups" || g.From != b.ID || g.Inner != "user_groups.csv" {
		t.Errorf("C's user_groups file = %+v; want B's member, taken over", g)
	}
	if e.title("E1") != "C" {
		t.Errorf("E1's job_title = %q; want C", e.title("E1"))
	}
	if got, _ := e.db.UserGroups(e.org, "E2", "", 10); len(got) != 1 {
		t.Errorf("E2's groups = %v; want Eng, from B's user_groups.csv", got)
	}
	for _, bf := range b.Files {
		if got := e.archivedSHA256(b.ID, bf); got != bf.SHA256 {
			t.Errorf("B's archived %s = %s; want %s as archived", bf.Name, got, bf.SHA256)
		}
	}
	for _, cf := range c.Files {
		if got := e.archivedSHA256(c.ID, cf); got != cf.SHA256 {
			t.Errorf("C's archived %s (%s) = %s; want %s", cf.Name, cf.Kind, got, cf.SHA256)
		}
	}
	if sb, _ := e.db.Batch(e.org, b.ID); sb.Status != state.BatchSuperseded || len(e.batchEvents(b.ID)) != 0 {
		t.Errorf("B = %s with %d events; want superseded, none", sb.Status, len(e.batchEvents(b.ID)))
	}
	_ = a
}

// TestZipTakenOverBesideNewZip: a batch of export1.zip fails before its
// zip is read (pending, waiting for a retry); export2.zip, holding only
// users.csv, supersedes it. Which kinds export1.zip holds is not known
// yet, so it is taken over beside export2.zip: export2.zip's users.csv
// wins, export1.zip's user_groups.csv, which nothing newer replaces, is
// applied (SPEC §5: the newest file of each kind goes on).
func TestZipTakenOverBesideNewZip(t *testing.T) {
	e, f := newFaultEnv(t, state.Settings{}, settled, retryIn(time.Hour, time.Hour))
	e.upload("users.csv", titledUsersCSV("A", "E1", "E2"))
	a := e.waitBatch("", 10*time.Second)
	f.set(failAt("archived"))
	e.upload("export1.zip", zipOf(t, "users.csv", string(titledUsersCSV("B", "E1", "E2")), "user_groups.csv", "group_name,user_id\nEng,E2\n"))
	b := e.waitAttempt(1)
	if b.Status != state.BatchPending || len(b.Files) != 1 || b.Files[0].Kind != string(kindZip) {
		t.Fatalf("waiting batch = %s %+v; want pending with the zip unread", b.Status, b.Files)
	}
	f.set(nil)
	e.upload("export2.zip", zipOf(t, "users.csv", string(titledUsersCSV("C", "E1", "E2"))))
	c := e.waitBatch(b.ID, 10*time.Second)
	var got []string
	for _, cf := range c.Files {
		got = append(got, cf.Kind+":"+fileLabel(cf)+":"+cf.From)
	}
	want := []string{"users:users.csv in export2.zip:", "user_groups:user_groups.csv in export1.zip:" + b.ID}
	if c.Status != state.BatchApplied || !slices.Equal(got, want) {
		t.Fatalf("C = %s %v; want applied with %v", c.Status, got, want)
	}
	if e.title("E1") != "C" {
		t.Errorf("E1's job_title = %q; want C", e.title("E1"))
	}
	if groups, _ := e.db.UserGroups(e.org, "E2", "", 10); len(groups) != 1 {
		t.Errorf("E2's groups = %s; want Eng, from export1.zip", groups)
	}
	if rep, _ := e.db.BatchReport(e.org, c.ID); !bytes.Contains(rep, []byte("users.csv in export1.zip was ignored")) {
		t.Errorf("C's report does not say export1.zip's users.csv was ignored:\n%s", rep)
	}
	_ = a
}
