package state

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestMmapFlagsPopulatesWhatMemoryHolds(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.db")
	if err := os.WriteFile(small, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mmapFlags(small); got != syscall.MAP_POPULATE {
		t.Errorf("mmapFlags(64 KiB file) = %#x, want MAP_POPULATE", got)
	}
	if got := mmapFlags(filepath.Join(dir, "new.db")); got != syscall.MAP_POPULATE {
		t.Errorf("mmapFlags(missing file) = %#x, want MAP_POPULATE", got)
	}
	// A sparse file larger than the machine's memory is mapped lazily.
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.db")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(uint64(si.Totalram) * uint64(si.Unit))); err != nil {
		t.Skipf("cannot make a sparse file as large as memory: %v", err)
	}
	f.Close()
	if got := mmapFlags(big); got != 0 {
		t.Errorf("mmapFlags(file as large as memory) = %#x, want 0", got)
	}
}
