package ingest

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rosterd/rosterd/state"
)

// fakeInfo is a regular file with a given size, modification time and
// change time (ctime).
type fakeInfo struct {
	size         int64
	mtime, ctime time.Time
}

func (f fakeInfo) Name() string       { return "users.csv" }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) Mode() fs.FileMode  { return 0o644 }
func (f fakeInfo) ModTime() time.Time { return f.mtime }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any {
	return &syscall.Stat_t{Nlink: 1, Ctim: syscall.NsecToTimespec(f.ctime.UnixNano())}
}

// TestWatcherNoteOfUploadWithOldTimes is issue 11 item 8: with a settle
// window of 0, an upload whose client set an old modification time (pscp
// -p, put -p, rclone) made two batches. sftpd's rename at close is seen by
// the watcher (a Create event) before sftpd's Notify arrives; the file
// looked still at once because stillness was judged by the modification
// time, which a client can set. Judged by the change time (which the
// rename sets to now and no client can set), the watcher's note waits,
// the completion joins it, and one batch runs.
func TestWatcherNoteOfUploadWithOldTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var batches [][]pendingFile
		renamed := time.Now()
		l := newOrgLoop("acme", &Pipeline{})
		l.settle = func() time.Duration { return 0 }
		l.stat = func(string) (os.FileInfo, error) {
			return fakeInfo{size: 100, mtime: time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), ctime: renamed}, nil
		}
		l.process = func(_ context.Context, files []pendingFile) {
			mu.Lock()
			batches = append(batches, files)
			mu.Unlock()
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { l.run(ctx); close(done) }()

		l.add("users.csv", false) // the watcher's Create event
		time.Sleep(10 * time.Millisecond)
		l.add("users.csv", true) // sftpd's Notify
		time.Sleep(5 * time.Second)
		synctest.Wait()
		mu.Lock()
		if len(batches) != 1 || len(batches[0]) != 1 || !batches[0][0].trusted {
			t.Errorf("batches = %+v; want one, of the completed upload", batches)
		}
		mu.Unlock()
		cancel()
		<-done
	})
}

// TestLinksNeverIngested: SPEC §3 and issue 11 item 12. A file with more
// than one hard link (a link to the data directory's api_token planted in
// an organization folder) is neither noted by the scan nor archived, and
// an organization folder that is a symlink is neither scanned nor read.
func TestLinksNeverIngested(t *testing.T) {
	root := t.TempDir()
	db, err := state.Open(filepath.Join(root, "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, org := range []string{"acme", "globex"} {
		if err := db.CreateOrg(state.Org{Name: org}); err != nil {
			t.Fatal(err)
		}
	}
	orgs := filepath.Join(root, "orgs")
	token := filepath.Join(root, "api_token")
	if err := os.WriteFile(token, []byte("secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(orgs, "acme"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(token, filepath.Join(orgs, "acme", "users.csv")); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(root, "elsewhere")
	if err := os.MkdirAll(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(elsewhere, "users.csv"), []byte("user_id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(orgs, "globex")); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{DB: db, OrgsRoot: orgs})
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"acme", "globex"} {
		p.scan(org)
		p.mu.Lock()
		l := p.loops[org]
		p.mu.Unlock()
		if l != nil {
			l.mu.Lock()
			if len(l.pending) > 0 {
				t.Errorf("scan of %s noted %v; want nothing", org, l.pending)
			}
			l.mu.Unlock()
		}
		dir := t.TempDir()
		if _, err := p.archiveFile(org, state.BatchFile{Name: "users.csv"}, dir); err == nil {
			t.Errorf("archiveFile(%s, users.csv) succeeded", org)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("archive of %s holds %v; want nothing", org, ents)
		}
	}
}
