package ingest

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rosterd/rosterd/state"
)

// TestArchiveCopyReplacedWhole: archiving a file again over an existing
// copy (a stalled instance redoing a batch another took over) replaces
// the copy whole: a reader that had the old copy open reads it to its
// end, untruncated, and nothing written aside is left behind.
func TestArchiveCopyReplacedWhole(t *testing.T) {
	db := testDB(t, "acme")
	orgs := filepath.Join(t.TempDir(), "orgs")
	if err := os.MkdirAll(filepath.Join(orgs, "acme"), 0o700); err != nil {
		t.Fatal(err)
	}
	upload := "user_id,email\nu1,u1@example.com\n"
	if err := os.WriteFile(filepath.Join(orgs, "acme", "users.csv"), []byte(upload), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{DB: db, OrgsRoot: orgs})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old := "user_id,email\nold,old@example.com\n"
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	reader, err := os.Open(filepath.Join(dir, "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	f, err := p.archiveFile("acme", state.BatchFile{Name: "users.csv"}, dir)
	if err != nil {
		t.Fatalf("archiveFile: %v", err)
	}
	if f.Size != int64(len(upload)) {
		t.Errorf("archived size %d; want %d", f.Size, len(upload))
	}
	if got, err := io.ReadAll(reader); err != nil || string(got) != old {
		t.Errorf("the open old copy reads %q, %v; want %q", got, err, old)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "users.csv")); err != nil || string(got) != upload {
		t.Errorf("the archived copy reads %q, %v; want %q", got, err, upload)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "users.csv" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("archive holds %v; want users.csv alone", names)
	}
}
