package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// fakeFS is a statfs result the test sets.
type fakeFS struct {
	mu           sync.Mutex
	avail, total uint64
}

func (f *fakeFS) statfs(string) (uint64, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.avail, f.total, nil
}

func (f *fakeFS) set(avail, total uint64) {
	f.mu.Lock()
	f.avail, f.total = avail, total
	f.mu.Unlock()
}

// TestSpaceLowDisk: SPEC §3, uploads are refused below 1 GiB or 5 % free,
// whichever is larger, with the client's message; LowDisk says why.
func TestSpaceLowDisk(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name         string
		avail, total uint64
		minFree      int64
		minPct       float64
		grow         int64
		refused      bool
	}{
		{"plenty", 50 * gib, 100 * gib, 0, 0, 0, false},
		{"small disk, 1 GiB rules", 1*gib + 1, 4 * gib, 0, 0, 0, false},
		{"small disk, under 1 GiB", gib - 1, 4 * gib, 0, 0, 0, true},
		{"big disk, 5 % rules", 40 * gib, 1000 * gib, 0, 0, 0, true},
		{"big disk, over 5 %", 51 * gib, 1000 * gib, 0, 0, 0, false},
		{"the write would cross it", gib + 1<<20, 4 * gib, 0, 0, 2 << 20, true},
		{"configured", 300 << 20, 4 * gib, 256 << 20, -1, 0, false},
		{"configured, under", 200 << 20, 4 * gib, 256 << 20, -1, 0, true},
		{"both off", 0, 4 * gib, -1, -1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &fakeFS{avail: tt.avail, total: tt.total}
			root := t.TempDir()
			s := newSpace(Config{OrgsRoot: root, ArchiveRoot: root, MinFree: tt.minFree, MinFreePercent: tt.minPct, Statfs: fs.statfs},
				func(string) int64 { return 0 })
			err := s.Admit("acme", tt.grow)
			if tt.refused != (err != nil) {
				t.Fatalf("Admit = %v; want refused %v", err, tt.refused)
			}
			if err != nil && err.Error() != "the server is low on disk space; try again later" {
				t.Errorf("Admit = %q; want the client's message", err)
			}
			low := s.LowDisk()
			if tt.grow == 0 && tt.refused != (low != nil) {
				t.Errorf("LowDisk = %v; want low %v", low, tt.refused)
			}
			if low != nil && (!errors.Is(low, ErrLowDisk) || !strings.Contains(low.Error(), "free on the organization folders' file system")) {
				t.Errorf("LowDisk = %q; want the figures", low)
			}
		})
	}
}

// TestSpaceQuota: an organization's folder, reports and archive count
// against its quota in allocated blocks; an admission over it is refused
// with the figures, and what was admitted counts until the folder is
// walked again.
func TestSpaceQuota(t *testing.T) {
	root := t.TempDir()
	orgs, arch := filepath.Join(root, "orgs"), filepath.Join(root, "archive")
	for _, d := range []string{filepath.Join(orgs, "acme", "reports"), filepath.Join(arch, "acme", "B1")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, n int) {
		if err := os.WriteFile(path, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(orgs, "acme", "users.csv"), 3<<20)
	write(filepath.Join(arch, "acme", "B1", "users.csv"), 3<<20)
	// A sparse file costs what it holds.
	f, err := os.Create(filepath.Join(orgs, "acme", "sparse.csv"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("x"), 256<<20)
	f.Close()
	fs := &fakeFS{avail: 1 << 40, total: 2 << 40}
	s := newSpace(Config{OrgsRoot: orgs, ArchiveRoot: arch, Statfs: fs.statfs}, func(string) int64 { return 10 << 20 })
	clock := time.Now()
	s.now = func() time.Time { return clock }

	folder, archive, err := s.Used("acme")
	if err != nil || folder < 3<<20 || folder > 3<<20+64<<10 || archive < 3<<20 || archive > 3<<20+64<<10 {
		t.Fatalf("Used = %d, %d, %v; want about 3 MiB each", folder, archive, err)
	}
	if err := s.Admit("acme", 0); err != nil {
		t.Fatalf("Admit(0) at 6 of 10 MiB = %v", err)
	}
	if err := s.Admit("acme", 2<<20); err != nil {
		t.Fatalf("Admit(2 MiB) at 6 of 10 MiB = %v", err)
	}
	err = s.Admit("acme", 4<<20) // 6 + 2 admitted + 4 > 10
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("Admit(4 MiB) at 8 of 10 MiB = %v; want ErrQuota", err)
	}
	want := "this organization's storage quota of 10 MiB is used up: 8"
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "ask the operator to raise the quota") {
		t.Errorf("quota error = %q; want it to start %q", err, want)
	}
	// The archive copy is pruned: the pipeline says so.
	os.RemoveAll(filepath.Join(arch, "acme", "B1"))
	s.archiveChanged("acme", "B1")
	clock = clock.Add(2 * folderTTL) // the 2 MiB admitted were never written
	if err := s.Admit("acme", 4<<20); err != nil {
		t.Errorf("Admit(4 MiB) at 3 of 10 MiB = %v", err)
	}
}

// TestSpaceArchiveLinksCountOnce: a file taken over from a superseded
// batch is a hard link to its archive copy (order.go), under from/ in the
// new batch's folder (or, recorded before there was a from/, under its
// name): the archive counts its blocks once, at the walk and as batches
// change, and still counts them while one link remains.
func TestSpaceArchiveLinksCountOnce(t *testing.T) {
	root := t.TempDir()
	orgs, arch := filepath.Join(root, "orgs"), filepath.Join(root, "archive")
	b1, b2, b3 := filepath.Join(arch, "acme", "B1"), filepath.Join(arch, "acme", "B2"), filepath.Join(arch, "acme", "B3")
	for _, d := range []string{filepath.Join(orgs, "acme"), b1, filepath.Join(b2, "from", "B1"), b3} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(b1, "users.csv"), make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b2, "groups.csv"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{filepath.Join(b2, "from", "B1", "users.csv"), filepath.Join(b3, "users.csv")} {
		if err := os.Link(filepath.Join(b1, "users.csv"), link); err != nil {
			t.Fatal(err)
		}
	}
	fs := &fakeFS{avail: 1 << 40, total: 2 << 40}
	s := newSpace(Config{OrgsRoot: orgs, ArchiveRoot: arch, Statfs: fs.statfs}, func(string) int64 { return 1 << 30 })
	near := func(what string, got, want int64) {
		t.Helper()
		if got < want || got > want+64<<10 {
			t.Errorf("%s: archive = %d; want about %d", what, got, want)
		}
	}
	_, archive, err := s.Used("acme")
	if err != nil {
		t.Fatal(err)
	}
	near("at the first walk", archive, 5<<20)
	s.archiveChanged("acme", "B2") // a report written into B2, say
	s.archiveChanged("acme", "B1")
	_, archive, _ = s.Used("acme")
	near("after both are counted again", archive, 5<<20)
	os.RemoveAll(b1) // pruned: B2's link keeps the blocks
	s.archiveChanged("acme", "B1")
	_, archive, _ = s.Used("acme")
	near("after B1 is pruned", archive, 5<<20)
	os.RemoveAll(b2)
	s.archiveChanged("acme", "B2")
	_, archive, _ = s.Used("acme")
	near("after B2 is pruned", archive, 4<<20)
	os.RemoveAll(b3)
	s.archiveChanged("acme", "B3")
	_, archive, _ = s.Used("acme")
	near("after all are pruned", archive, 0)
}

// TestArchiveRetention: archive copies are kept while among the newest
// ArchiveBatches or younger than ArchiveKeep.
func TestArchiveRetention(t *testing.T) {
	e := newEnvWith(t, "acme", state.Settings{}, DefaultDefaults, func(c *Config) {
		c.ArchiveKeep, c.ArchiveBatches = time.Nanosecond, 3
		c.Defaults.Settle = 0
	})
	var prev string
	for i := 1; i <= 5; i++ {
		e.upload("users.csv", usersCSV(1, 10+i, nil))
		prev = e.waitBatch(prev, 10*time.Second).ID
	}
	var ents []os.DirEntry
	deadline := time.Now().Add(5 * time.Second) // pruned after the report
	for time.Now().Before(deadline) {
		ents, _ = os.ReadDir(filepath.Join(e.root, "archive", "acme"))
		if len(ents) == 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(ents) != 3 || ents[2].Name() != prev {
		t.Errorf("archive holds %d batches (%v); want the newest 3", len(ents), ents)
	}
}

// TestArchivePrunedToQuota: when the archive takes an organization over
// its quota, its oldest copies go early, so that the operator's archive
// never locks the organization out of uploading; the current batch's
// copy stays.
func TestArchivePrunedToQuota(t *testing.T) {
	e := newEnvWith(t, "acme", state.Settings{}, DefaultDefaults, func(c *Config) {
		c.StorageQuota = 300 << 10
		c.Defaults.Settle = 0
	})
	big := usersCSV(1, 2000, nil) // about 90 KB, archived with each batch
	var prev string
	for i := range 4 {
		e.upload("users.csv", append(big, usersCSV(3000+i, 3000+i, nil)[len("user_id,email,first_name,last_name,status\n"):]...))
		prev = e.waitBatch(prev, 10*time.Second).ID
	}
	waitFor := func(cond func() bool) bool {
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(5 * time.Millisecond)
		}
		return true
	}
	ok := waitFor(func() bool {
		folder, archive, err := e.p.space.Used("acme")
		return err == nil && folder+archive <= 300<<10
	})
	folder, archive, _ := e.p.space.Used("acme")
	if !ok {
		t.Errorf("usage %d + %d stays over the 300 KiB quota", folder, archive)
	}
	if _, err := os.Stat(filepath.Join(e.root, "archive", "acme", prev, "users.csv")); err != nil {
		t.Errorf("the current batch's archive copy: %v", err)
	}
	if err := e.p.space.Admit("acme", 0); err != nil {
		t.Errorf("Admit after pruning = %v", err)
	}
}

// TestOrgQuotaSetting: an organization's storage_quota setting wins over
// the daemon's.
func TestOrgQuotaSetting(t *testing.T) {
	small := int64(1 << 20)
	e := newEnvWith(t, "acme", state.Settings{StorageQuota: &small}, DefaultDefaults, func(c *Config) { c.StorageQuota = 1 << 40 })
	if err := e.p.Space().Admit("acme", 2<<20); !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "quota of 1 MiB") {
		t.Errorf("Admit(2 MiB) under a 1 MiB organization quota = %v; want ErrQuota naming 1 MiB", err)
	}
	if err := e.p.Space().Admit("acme", 512<<10); err != nil {
		t.Errorf("Admit(512 KiB) under a 1 MiB organization quota = %v", err)
	}
}
