package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// TestE2ESetstatMakesNoBatch is issue 11 item 8 end to end, with a settle
// window of 0: uploads that keep an old modification time (put -p) and a
// chmod and a time change after each make one batch per upload, never a
// second UNCHANGED one. A last upload with new content is the fence:
// batches of one organization run in order, so every batch the earlier
// steps could cause is listed once the fence's batch is.
func TestE2ESetstatMakesNoBatch(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "0s"}})
	cfg := sftpOrg(t, d, "acme")
	local := filepath.Join(t.TempDir(), "users.csv")
	const uploads = 4
	for i := range uploads {
		users := fmt.Sprintf("user_id,email,first_name,last_name\nE1,ana@acme.test,Ana,A\nE%d,u%d@acme.test,U,%d\n", i+2, i, i)
		if err := os.WriteFile(local, []byte(users), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Date(2020, 1, 1+i, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(local, old, old); err != nil {
			t.Fatal(err)
		}
		batch := fmt.Sprintf("put -p %s users.csv\nchmod 600 users.csv\n", local)
		if out, err := sftptest.SFTP(t, cfg, batch); err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
		waitFor(t, 20*time.Second, fmt.Sprintf("batch %d", i+1), func() bool { return len(d.batches("acme")) >= i+1 })
	}
	fence := "user_id,email,first_name,last_name\nE1,ana@acme.test,Ana,Fence\n"
	os.WriteFile(local, []byte(fence), 0o600)
	if out, err := sftptest.SFTP(t, cfg, fmt.Sprintf("put %s users.csv\n", local)); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "the fence's batch", func() bool {
		bs := d.batches("acme")
		return len(bs) > 0 && bs[0].Changes.UsersUpdated == 1 && bs[0].Status == "applied"
	})
	bs := d.batches("acme")
	if len(bs) != uploads+1 {
		var got []string
		for _, b := range bs {
			got = append(got, fmt.Sprintf("%s %+v", b.Status, b.Changes))
		}
		t.Fatalf("%d batches (newest first: %q); want %d, one per upload", len(bs), got, uploads+1)
	}
}
