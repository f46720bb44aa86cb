package sftpd

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/pkg/sftp"
)

// fakeStorage admits up to limit bytes per organization in total and
// refuses everything while full is set, as a disk-space guard would.
type fakeStorage struct {
	mu     sync.Mutex
	full   bool
	limit  int64
	used   map[string]int64
	grows  []int64
	errMsg string
}

func (s *fakeStorage) Admit(org string, grow int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grows = append(s.grows, grow)
	if s.full || s.limit > 0 && s.used[org]+grow > s.limit {
		return errors.New(s.errMsg)
	}
	s.used[org] += grow
	return nil
}

// TestStorageRefusesAtOpen: SPEC §3, while Storage refuses (low disk), an
// upload is refused when it is opened, with Storage's message, and the
// stored file stays as it was.
func TestStorageRefusesAtOpen(t *testing.T) {
	st := &fakeStorage{used: map[string]int64{}, errMsg: "the server is low on disk space; try again later"}
	e := newEnv(t, func(c *Config) { c.Storage = st })
	k := e.addOrg(t, "acme")
	c := e.sftpClient(t, "acme", k)
	writeClient(t, c, "users.csv", []byte("old content\n"))
	st.mu.Lock()
	st.full = true
	st.mu.Unlock()

	_, err := c.Create("users.csv")
	if err == nil || !strings.Contains(err.Error(), "the server is low on disk space; try again later") {
		t.Fatalf("Create while low on disk = %v; want the low-disk message", err)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "old content\n" {
		t.Errorf("users.csv = %q; want the old content", got)
	}
	if names := dirNames(t, e.orgFile("acme", "")); len(names) != 2 { // users.csv, reports
		t.Errorf("folder holds %v; want users.csv and reports only", names)
	}
	mustContain(t, "log", e.logs.String(), "the server is low on disk space")
}

// TestStorageRefusesMidUpload: SPEC §3, an upload that grows past what
// Storage admits (a quota) fails with Storage's message, is discarded,
// and the previous file stays; Storage is asked a chunk at a time, not at
// every write.
func TestStorageRefusesMidUpload(t *testing.T) {
	msg := "this organization's storage quota of 10 MiB is used up"
	st := &fakeStorage{used: map[string]int64{}, limit: 10 << 20, errMsg: msg}
	e := newEnv(t, func(c *Config) { c.Storage = st })
	k := e.addOrg(t, "acme")
	c := e.sftpClient(t, "acme", k)
	writeClient(t, c, "users.csv", []byte("old content\n"))

	f, err := c.Create("users.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(bytes.Repeat([]byte("x"), 20<<20))
	cerr := f.Close()
	if werr == nil && cerr == nil {
		t.Fatal("a 20 MiB upload over a 10 MiB quota succeeded")
	}
	if err := errors.Join(werr, cerr); !strings.Contains(err.Error(), msg) {
		t.Errorf("upload error = %v; want %q", err, msg)
	}
	if got := readFile(t, e.orgFile("acme", "users.csv")); got != "old content\n" {
		t.Errorf("users.csv = %q; want the old content", got)
	}
	waitFor(t, "the staged file removed", func() bool { return len(dirNames(t, e.orgFile("acme", ""))) == 2 })
	st.mu.Lock()
	defer st.mu.Unlock()
	if n := len(st.grows); n > 10 {
		t.Errorf("Storage asked %d times for 20 MiB; want one ask per %d bytes", n, AdmitChunk)
	}
	mustContain(t, "log", e.logs.String(), `"reason":"`+msg)
}

// writeClient uploads data as name through c.
func writeClient(t *testing.T, c *sftp.Client, name string, data []byte) {
	t.Helper()
	f, err := c.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
