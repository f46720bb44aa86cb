package state

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestFormBatch checks FormBatch's one transaction: the batch, its
// completions (taken and set aside; not those taken over from another
// batch), and the supersession of older held and unfinished batches with
// their reports, stopping at the newest final one.
func TestFormBatch(t *testing.T) {
	db := openTestOrg(t, "acme")
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, id := range []string{"B1", "B2", "B3", "B4"} {
		if _, err := db.CreateBatch(Batch{ID: id, Org: "acme", Status: BatchPending}); err != nil {
			t.Fatal(err)
		}
	}
	// B1 is older than an applied batch: left alone.
	for id, status := range map[string]string{"B1": BatchProcessing, "B2": BatchApplied, "B3": BatchHeld, "B4": BatchProcessing} {
		if _, err := db.UpdateBatch("acme", id, func(b *Batch) error { b.Status = status; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	b := Batch{ID: "B5", Org: "acme", Status: BatchPending, Files: []BatchFile{
		{Name: "users_2.csv", Kind: "users", Size: 10, CompletedAt: t0.Add(2 * time.Second)},
		{Name: "groups.csv", Kind: "groups", Size: 5, SHA256: "ab", CompletedAt: t0, From: "B4"},
	}, Ignored: []BatchFile{{Name: "users.csv", Kind: "users", Size: 9, CompletedAt: t0.Add(time.Second)}}}
	sup, err := db.FormBatch(b, func(s Batch) []byte { return []byte(`{"status":"superseded","was":"` + s.Status + `"}`) })
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sup {
		ids = append(ids, s.ID+":"+s.Status)
	}
	if diff := cmp.Diff([]string{"B4:processing", "B3:held"}, ids); diff != "" {
		t.Errorf("superseded (-want +got):\n%s", diff)
	}
	if got, _ := db.Batch("acme", "B5"); !cmp.Equal(got.Supersedes, []string{"B3", "B4"}) {
		t.Errorf("B5 supersedes %v; want [B3 B4]", got.Supersedes)
	}
	for id, want := range map[string]string{"B1": BatchProcessing, "B3": BatchSuperseded, "B4": BatchSuperseded, "B5": BatchPending} {
		got, _ := db.Batch("acme", id)
		if got.Status != want || (want == BatchSuperseded && got.SupersededBy != "B5") {
			t.Errorf("batch %s = %s by %q; want %s", id, got.Status, got.SupersededBy, want)
		}
	}
	if rep, err := db.BatchReport("acme", "B4"); err != nil || string(rep) != `{"status":"superseded","was":"processing"}` {
		t.Errorf("report of B4 = %s, %v", rep, err)
	}
	c, err := db.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Newest["users"].CompletedAt.Equal(t0.Add(2*time.Second)) || c.Newest["groups"].Name != "" || len(c.Files) != 2 || !c.Files["users.csv"].Ignored || c.Files["users_2.csv"].Batch != "B5" {
		t.Errorf("completions = %+v; want users_2.csv taken, users.csv ignored, newest users %v, no groups (taken over)", c, t0.Add(2*time.Second))
	}

	// Archiving fills in the hash of the completion it still records.
	files := b.Files
	files[0].SHA256, files[0].ModTime = "cd", t0
	got, err := db.RecordArchived("acme", "B5", files)
	if err != nil || got.Status != BatchProcessing {
		t.Fatalf("RecordArchived = %s, %v", got.Status, err)
	}
	c, _ = db.Completions("acme")
	if c.Files["users_2.csv"].SHA256 != "cd" {
		t.Errorf("completion after archive = %+v; want its hash", c.Files["users_2.csv"])
	}
	if _, err := db.FormBatch(Batch{ID: "B5", Org: "acme"}, nil); !errors.Is(err, ErrExists) {
		t.Errorf("FormBatch(B5) again = %v; want ErrExists", err)
	}
	if _, err := db.SupersedeBatch("acme", "B1", "B2", []byte(`{}`)); err != nil {
		t.Errorf("SupersedeBatch(B1) = %v", err)
	}
	if _, err := db.SupersedeBatch("acme", "B1", "B2", nil); !errors.Is(err, ErrBatchFinished) {
		t.Errorf("SupersedeBatch of a final batch = %v; want ErrBatchFinished", err)
	}
	if err := db.ForgetCompletions("acme", []string{"users.csv"}); err != nil {
		t.Fatal(err)
	}
	if c, _ = db.Completions("acme"); len(c.Files) != 1 || c.Newest["users"].Name != "users_2.csv" {
		t.Errorf("after ForgetCompletions = %+v; want users_2.csv only, newest kept", c)
	}
}

// TestRecordFailure checks that a failed attempt is stored on an
// unfinished batch with its report, and refused on a final one.
func TestRecordFailure(t *testing.T) {
	db := openTestOrg(t, "acme")
	if _, err := db.FormBatch(Batch{ID: "B1", Org: "acme", Status: BatchPending}, nil); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	if err := db.RecordFailure(Batch{ID: "B1", Org: "acme", Attempts: 2, LastError: "disk full", RetryAt: &at}, []byte(`{"r":1}`)); err != nil {
		t.Fatal(err)
	}
	b, _ := db.Batch("acme", "B1")
	if b.Status != BatchPending || b.Attempts != 2 || b.LastError != "disk full" || b.RetryAt == nil || !b.RetryAt.Equal(at) {
		t.Errorf("batch after RecordFailure = %+v", b)
	}
	if err := db.FinishBatch(Batch{ID: "B1", Org: "acme", Status: BatchRejected}, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordFailure(Batch{ID: "B1", Org: "acme", Attempts: 3}, nil); !errors.Is(err, ErrBatchFinished) {
		t.Errorf("RecordFailure on a final batch = %v; want ErrBatchFinished", err)
	}
}

// TestSeedCompletions opens a database whose batches were recorded
// without completions (as before they existed): Open seeds each name's
// newest archived file and the newest batch's time.
func TestSeedCompletions(t *testing.T) {
	db, path := openTest(t)
	db.CreateOrg(Org{Name: "acme"})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, sha := range []string{"aa", "bb"} {
		b := Batch{ID: "B" + string(rune('1'+i)), Org: "acme", Status: BatchPending, CreatedAt: t0.Add(time.Duration(i) * time.Hour),
			Files: []BatchFile{{Name: "users.csv", Kind: "users", Size: int64(i), SHA256: sha}}}
		if _, err := db.CreateBatch(b); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := db.Completions("acme"); len(c.Files) != 0 {
		t.Fatalf("CreateBatch recorded completions: %+v", c)
	}
	db.Close()
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Newest["users"].CompletedAt.Equal(t0.Add(time.Hour)) || c.Files["users.csv"].SHA256 != "bb" {
		t.Errorf("seeded completions = %+v; want users.csv of B2 and newest %v", c, t0.Add(time.Hour))
	}
}

// TestFaultFailsApply checks that an error from Options.Fault fails an
// apply at each of its points and leaves the batch unfinished, and that the
// database works on afterwards.
func TestFaultFailsApply(t *testing.T) {
	for _, point := range []string{"apply", "change"} {
		t.Run(point, func(t *testing.T) {
			var fail bool
			db, err := Open(t.TempDir()+"/rosterd.db", &Options{NoSync: true, Fault: func(p string) error {
				if fail && p == point {
					return syscall.ENOSPC
				}
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.CreateOrg(Org{Name: "acme"})
			if _, err := db.FormBatch(Batch{ID: "B1", Org: "acme", Status: BatchProcessing}, nil); err != nil {
				t.Fatal(err)
			}
			fail = true
			fn := func(a *ApplyTx) error {
				if err := a.PutUser([]byte("E1"), true, rec("E1", "Engineer")); err != nil {
					return err
				}
				return a.Checkpoint()
			}
			err = db.ApplyBatch(Batch{ID: "B1", Org: "acme", Status: BatchApplied}, nil, fn)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("ApplyBatch with a fault at %s = %v; want ENOSPC", point, err)
			}
			if b, _ := db.Batch("acme", "B1"); b.Status != BatchProcessing {
				t.Errorf("batch after the fault = %s; want processing", b.Status)
			}
			fail = false
			if err := db.ApplyBatch(Batch{ID: "B1", Org: "acme", Status: BatchApplied}, nil, fn); err != nil {
				t.Errorf("ApplyBatch after the fault = %v", err)
			}
		})
	}
}

// TestRecordSetAside: files set aside get an ignored batch with its
// report and are recorded as processed; a waiting batch stays waiting.
func TestRecordSetAside(t *testing.T) {
	db := openTestOrg(t, "acme")
	if _, err := db.FormBatch(Batch{ID: "B1", Org: "acme", Status: BatchPending}, nil); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	b := Batch{ID: "B2", Org: "acme", Ignored: []BatchFile{{Name: "Users.CSV", Kind: "users", Size: 3, CompletedAt: t0}}}
	if err := db.RecordSetAside(b, []byte(`{"status":"ignored"}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Batch("acme", "B2"); got.Status != BatchIgnored || got.FinishedAt == nil {
		t.Errorf("B2 = %+v; want ignored and finished", got)
	}
	if got, _ := db.Batch("acme", "B1"); got.Status != BatchPending {
		t.Errorf("B1 = %s; want still pending", got.Status)
	}
	if c, _ := db.Completions("acme"); !c.Files["Users.CSV"].Ignored || !c.Newest["users"].CompletedAt.Equal(t0) {
		t.Errorf("completions = %+v; want Users.CSV recorded as ignored", c)
	}
	if err := db.RecordSetAside(b, nil); !errors.Is(err, ErrExists) {
		t.Errorf("RecordSetAside twice = %v; want ErrExists", err)
	}
}

// TestRecordArchivedZipMembers: a zip upload is one completion; once the
// batch is archived its members, files of other kinds, make that
// completion the newest of each of their kinds too.
func TestRecordArchivedZipMembers(t *testing.T) {
	db := openTestOrg(t, "acme")
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	zipFile := BatchFile{Name: "export.zip", Kind: "zip", Size: 300, CompletedAt: t0}
	if _, err := db.FormBatch(Batch{ID: "B1", Org: "acme", Status: BatchPending, Files: []BatchFile{zipFile}}, nil); err != nil {
		t.Fatal(err)
	}
	var members []BatchFile
	for _, k := range []string{"users", "user_groups"} {
		m := zipFile
		m.Kind, m.SHA256, m.ChangeTime, m.Inner = k, "ab", t0, k+".csv"
		members = append(members, m)
	}
	if _, err := db.RecordArchived("acme", "B1", members); err != nil {
		t.Fatal(err)
	}
	c, err := db.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"zip", "users", "user_groups"} {
		if got := c.Newest[k]; got.Name != "export.zip" || !got.CompletedAt.Equal(t0) {
			t.Errorf("newest %s = %+v; want export.zip at %v", k, got, t0)
		}
	}
	if got := c.Files["export.zip"]; got.Kind != "zip" || got.SHA256 != "ab" || !got.ChangeTime.Equal(t0) {
		t.Errorf("export.zip's completion = %+v; want the zip's, archived", got)
	}
	if _, ok := c.Newest["groups"]; ok {
		t.Errorf("newest groups = %+v; want none (the zip holds no groups.csv)", c.Newest["groups"])
	}
}
