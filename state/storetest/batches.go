package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// fullBatch is a batch record with every field set, times in whole
// microseconds.
func fullBatch(org, id string) state.Batch {
	fin, retry := t0.Add(time.Minute), t0.Add(time.Hour)
	return state.Batch{
		ID: id, Org: org, Status: state.BatchPending, CreatedAt: t0, FinishedAt: &fin,
		Files: []state.BatchFile{{
			Name: "export.zip", Kind: "users", Size: 1 << 40, SHA256: "ab12", Rows: 3, ModTime: t0.Add(-time.Hour),
			CompletedAt: t0.Add(-time.Minute), From: "B0", ArchivePath: "from/B0/export.zip", ChangeTime: t0.Add(-2 * time.Minute),
			Inner: "users.csv", InnerSize: 99, Decoded: "zip, utf-8",
		}},
		Counts:  state.BatchCounts{Users: 3, Groups: 2, Memberships: 1},
		Changes: state.BatchChanges{UsersCreated: 1, UsersUpdated: 2, UsersDeactivated: 3, UsersDeleted: 4, GroupsCreated: 5, GroupsUpdated: 6, GroupsDeleted: 7, MembershipsAdded: 8, MembershipsRemoved: 9},
		Errors:  1, Warnings: 2, Approved: true, SupersededBy: "B9", Reason: "would delete 40 % of users", Effective: "fp:1",
		Ignored:    []state.BatchFile{{Name: "users-old.csv", Kind: "users", Size: 5, CompletedAt: t0.Add(-3 * time.Minute)}},
		Supersedes: []string{"B1", "B2"},
		Attempts:   2, LastError: "write archive: no space left on device", RetryAt: &retry,
	}
}

// batchIDs returns the ids of bs.
func batchIDs(bs []state.Batch) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

// mustBatch returns the stored batch org/id.
func mustBatch(t *testing.T, s Store, org, id string) state.Batch {
	t.Helper()
	b, err := s.Batch(org, id)
	if err != nil {
		t.Fatalf("Batch(%s, %s): %v", org, id, err)
	}
	return b
}

// createBatches creates pending batches of org, then sets each one's
// status (id: status; "" leaves it pending).
func createBatches(t *testing.T, s Store, org string, ids []string, status map[string]string) {
	t.Helper()
	for _, id := range ids {
		if _, err := s.CreateBatch(state.Batch{ID: id, Org: org, Status: state.BatchPending, CreatedAt: t0}); err != nil {
			t.Fatalf("CreateBatch(%s): %v", id, err)
		}
	}
	for _, id := range ids {
		if st := status[id]; st != "" {
			if _, err := s.UpdateBatch(org, id, func(b *state.Batch) error { b.Status = st; return nil }); err != nil {
				t.Fatalf("UpdateBatch(%s): %v", id, err)
			}
		}
	}
}

func testBatchRecord(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	want := fullBatch("acme", "B5")
	if sup, err := s.CreateBatch(want); err != nil || len(sup) != 0 {
		t.Fatalf("CreateBatch(B5) = %v, %v; want nothing superseded", sup, err)
	}
	if diff := cmp.Diff(want, mustBatch(t, s, "acme", "B5")); diff != "" {
		t.Errorf("Batch(B5) mismatch (-want +got):\n%s", diff)
	}
	if _, err := s.CreateBatch(state.Batch{ID: "B5", Org: "acme", Status: state.BatchPending}); !errors.Is(err, state.ErrExists) {
		t.Errorf("CreateBatch(B5) again = %v; want ErrExists", err)
	}
	if _, err := s.CreateBatch(state.Batch{ID: "B1", Org: "none", Status: state.BatchPending}); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("CreateBatch in a missing organization = %v; want ErrNotFound", err)
	}
	for _, tc := range []struct{ org, id string }{{"acme", "B4"}, {"none", "B5"}, {"acme", ""}} {
		if _, err := s.Batch(tc.org, tc.id); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("Batch(%q, %q) = %v; want ErrNotFound", tc.org, tc.id, err)
		}
	}
	// A creation time is given when there is none.
	before := time.Now()
	if _, err := s.CreateBatch(state.Batch{ID: "B6", Org: "acme", Status: state.BatchPending}); err != nil {
		t.Fatal(err)
	}
	b6 := mustBatch(t, s, "acme", "B6")
	within(t, "CreatedAt of B6", b6.CreatedAt, before, time.Now())
	if b6.Files != nil || b6.FinishedAt != nil || b6.Status != state.BatchPending {
		t.Errorf("Batch(B6) = %+v; want pending, no files, not finished", b6)
	}
	// Any text a record holds comes back as it went in: control
	// characters (a NUL in an error message), quotes, line separators.
	odd := "read users.csv: \x00\x01 \"bad\" \\ \u2028 ünïcødé 🙂 <&>"
	if _, err := s.UpdateBatch("acme", "B6", func(b *state.Batch) error { b.LastError, b.Reason = odd, odd; return nil }); err != nil {
		t.Fatalf("UpdateBatch with odd text: %v", err)
	}
	if b := mustBatch(t, s, "acme", "B6"); b.LastError != odd || b.Reason != odd {
		t.Errorf("odd text came back as %q, %q; want %q", b.LastError, b.Reason, odd)
	}
	if _, err := s.BatchReport("acme", "B5"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("BatchReport of a batch without one = %v; want ErrNotFound", err)
	}
}

func testBatchesPaging(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "beta", "empty")
	// Byte order: "B-1" < "B1" < "B2" < "B_1" < "Ba" (a language's
	// collation would differ).
	createBatches(t, s, "acme", []string{"B2", "B_1", "B-1", "Ba", "B1"}, nil)
	createBatches(t, s, "beta", []string{"B0", "B3"}, nil)
	for _, tc := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 0, []string{"Ba", "B_1", "B2", "B1", "B-1"}},
		{"", -1, []string{"Ba", "B_1", "B2", "B1", "B-1"}},
		{"", 2, []string{"Ba", "B_1"}},
		{"B_1", 2, []string{"B2", "B1"}},
		{"B1", 0, []string{"B-1"}},
		{"B10", 1, []string{"B1"}}, // after need not be an id
		{"B-1", 0, nil},
		{"A", 0, nil},
		{"C", 1, []string{"Ba"}},
	} {
		got, err := s.Batches("acme", tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, batchIDs(got)); diff != "" {
			t.Errorf("Batches(acme, %q, %d) mismatch (-want +got):\n%s", tc.after, tc.limit, diff)
		}
	}
	if got, err := s.Batches("empty", "", 0); err != nil || len(got) != 0 {
		t.Errorf("Batches(empty) = %v, %v; want none", batchIDs(got), err)
	}
	if _, err := s.Batches("none", "", 0); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Batches(none) = %v; want ErrNotFound", err)
	}
}

// testCreateBatchSupersedesHeld: a new batch supersedes the held batches
// back to the newest applied, unchanged or rejected one; pending and
// processing ones stay.
func testCreateBatchSupersedesHeld(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "beta")
	createBatches(t, s, "acme", []string{"B0", "B1", "B2", "B3", "B4", "B5"}, map[string]string{
		"B0": state.BatchHeld, "B1": state.BatchApplied, "B2": state.BatchHeld, "B3": state.BatchProcessing,
		"B4": state.BatchHeld, "B5": state.BatchIgnored,
	})
	createBatches(t, s, "beta", []string{"B1"}, map[string]string{"B1": state.BatchHeld})
	before := time.Now()
	sup, err := s.CreateBatch(state.Batch{ID: "B6", Org: "acme", Status: state.BatchPending})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"B4", "B2"}, sup); diff != "" {
		t.Errorf("CreateBatch(B6) superseded (-want +got):\n%s", diff)
	}
	for id, want := range map[string]string{"B0": state.BatchHeld, "B1": state.BatchApplied, "B2": state.BatchSuperseded,
		"B3": state.BatchProcessing, "B4": state.BatchSuperseded, "B5": state.BatchIgnored, "B6": state.BatchPending} {
		b := mustBatch(t, s, "acme", id)
		if b.Status != want {
			t.Errorf("batch %s = %s; want %s", id, b.Status, want)
		}
		if want == state.BatchSuperseded {
			if b.SupersededBy != "B6" || b.FinishedAt == nil {
				t.Errorf("batch %s superseded by %q, finished at %v; want by B6, finished", id, b.SupersededBy, b.FinishedAt)
			} else {
				within(t, "FinishedAt of "+id, *b.FinishedAt, before, time.Now())
			}
		}
	}
	if b := mustBatch(t, s, "beta", "B1"); b.Status != state.BatchHeld {
		t.Errorf("beta's held B1 = %s; want held (another organization)", b.Status)
	}
}

func testUpdateBatch(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	createBatches(t, s, "acme", []string{"B1"}, nil)
	got, err := s.UpdateBatch("acme", "B1", func(b *state.Batch) error {
		if b.ID != "B1" || b.Status != state.BatchPending {
			t.Errorf("UpdateBatch's fn got %+v; want the stored B1", b)
		}
		b.Status, b.Errors = state.BatchProcessing, 3
		b.ID, b.Org = "other", "other" // ignored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "B1" || got.Org != "acme" || got.Status != state.BatchProcessing || got.Errors != 3 {
		t.Errorf("UpdateBatch returned %+v; want B1 of acme, processing, 3 errors", got)
	}
	if diff := cmp.Diff(got, mustBatch(t, s, "acme", "B1")); diff != "" {
		t.Errorf("stored B1 differs from UpdateBatch's result (-returned +stored):\n%s", diff)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateBatch("acme", "B1", func(b *state.Batch) error { b.Errors = 9; return boom }); !errors.Is(err, boom) {
		t.Errorf("UpdateBatch with a failing fn = %v; want its error", err)
	}
	if b := mustBatch(t, s, "acme", "B1"); b.Errors != 3 {
		t.Errorf("a failed UpdateBatch changed B1: %d errors; want 3", b.Errors)
	}
	for _, tc := range []struct{ org, id string }{{"acme", "B2"}, {"none", "B1"}} {
		if _, err := s.UpdateBatch(tc.org, tc.id, func(*state.Batch) error { return nil }); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("UpdateBatch(%s, %s) = %v; want ErrNotFound", tc.org, tc.id, err)
		}
	}
}

func testFinishBatch(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	createBatches(t, s, "acme", []string{"B1"}, nil)
	held := fullBatch("acme", "B1")
	held.Status, held.FinishedAt = state.BatchHeld, nil
	before := time.Now()
	if err := s.FinishBatch(held, []byte(`{"status":"held"}`)); err != nil {
		t.Fatal(err)
	}
	got := mustBatch(t, s, "acme", "B1")
	if got.FinishedAt == nil {
		t.Fatalf("FinishBatch left FinishedAt nil")
	}
	within(t, "FinishedAt", *got.FinishedAt, before, time.Now())
	held.FinishedAt = got.FinishedAt
	if diff := cmp.Diff(held, got); diff != "" {
		t.Errorf("Batch after FinishBatch mismatch (-want +got):\n%s", diff)
	}
	// Held is not final: approving finishes it; a nil report keeps the
	// stored one.
	if err := s.FinishBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchApplied, Approved: true}, nil); err != nil {
		t.Fatalf("FinishBatch(applied) of a held batch = %v", err)
	}
	if rep, err := s.BatchReport("acme", "B1"); err != nil || string(rep) != `{"status":"held"}` {
		t.Errorf("report after FinishBatch with none = %s, %v; want the held report", rep, err)
	}
	if err := s.FinishBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchRejected}, []byte(`{}`)); !errors.Is(err, state.ErrBatchFinished) {
		t.Errorf("FinishBatch of a final batch = %v; want ErrBatchFinished", err)
	}
	if b := mustBatch(t, s, "acme", "B1"); b.Status != state.BatchApplied || !b.Approved {
		t.Errorf("B1 = %s, approved %v; want applied, approved", b.Status, b.Approved)
	}
	for _, tc := range []struct{ org, id string }{{"acme", "B2"}, {"none", "B1"}} {
		if err := s.FinishBatch(state.Batch{ID: tc.id, Org: tc.org, Status: state.BatchRejected}, []byte(`{}`)); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("FinishBatch(%s, %s) = %v; want ErrNotFound", tc.org, tc.id, err)
		}
	}
}

// testBatchReports: a report is stored and replaced byte for byte.
func testBatchReports(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	createBatches(t, s, "acme", []string{"B1", "B2"}, nil)
	if err := s.ReplaceBatchReport("acme", "B1", []byte(`{}`)); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("ReplaceBatchReport of a batch without a report = %v; want ErrNotFound", err)
	}
	rep := `{"z": 1,  "a": [1, 2], "a": "dup", "s": "\u0000\u00e9"}` + "\n"
	if err := s.FinishBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchHeld}, []byte(rep)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.BatchReport("acme", "B1"); err != nil || string(got) != rep {
		t.Errorf("BatchReport(B1) = %q, %v; want %q verbatim", got, err, rep)
	}
	rep2 := `{"status":"superseded"}`
	if err := s.ReplaceBatchReport("acme", "B1", []byte(rep2)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.BatchReport("acme", "B1"); err != nil || string(got) != rep2 {
		t.Errorf("BatchReport(B1) after replacing = %q, %v; want %q", got, err, rep2)
	}
	for _, tc := range []struct{ org, id string }{{"acme", "B2"}, {"acme", "B3"}, {"none", "B1"}} {
		if _, err := s.BatchReport(tc.org, tc.id); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("BatchReport(%s, %s) = %v; want ErrNotFound", tc.org, tc.id, err)
		}
		if err := s.ReplaceBatchReport(tc.org, tc.id, []byte(`{}`)); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("ReplaceBatchReport(%s, %s) = %v; want ErrNotFound", tc.org, tc.id, err)
		}
	}
}

// testRecordIgnored: an ignored upload's record leaves a held batch
// held, and a newer batch still supersedes the held one across it.
func testRecordIgnored(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	createBatches(t, s, "acme", []string{"B1"}, nil)
	if err := s.FinishBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchHeld, CreatedAt: t0}, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	ign := state.Batch{ID: "B2", Org: "acme", Status: state.BatchIgnored, CreatedAt: t0, Files: []state.BatchFile{{Name: "users-1.csv"}}}
	before := time.Now()
	if err := s.RecordIgnored(ign, []byte(`{"status":"ignored"}`)); err != nil {
		t.Fatal(err)
	}
	if b := mustBatch(t, s, "acme", "B2"); b.Status != state.BatchIgnored || b.FinishedAt == nil || len(b.Files) != 1 {
		t.Errorf("ignored record = %+v; want ignored, finished, its file", b)
	} else {
		within(t, "FinishedAt of the ignored record", *b.FinishedAt, before, time.Now())
	}
	if err := s.RecordIgnored(ign, []byte(`{}`)); !errors.Is(err, state.ErrExists) {
		t.Errorf("RecordIgnored twice = %v; want ErrExists", err)
	}
	if b := mustBatch(t, s, "acme", "B1"); b.Status != state.BatchHeld {
		t.Fatalf("held batch is %s after an ignored record", b.Status)
	}
	if rep, err := s.BatchReport("acme", "B2"); err != nil || string(rep) != `{"status":"ignored"}` {
		t.Errorf("ignored report = %s, %v", rep, err)
	}
	sup, err := s.CreateBatch(state.Batch{ID: "B3", Org: "acme", Status: state.BatchPending, CreatedAt: t0})
	if err != nil || !cmp.Equal([]string{"B1"}, sup) {
		t.Errorf("CreateBatch after an ignored record superseded %v, %v; want [B1]", sup, err)
	}
	if err := s.RecordIgnored(state.Batch{ID: "B4", Org: "acme", Status: state.BatchApplied}, []byte(`{}`)); err == nil {
		t.Error("RecordIgnored of an applied batch = nil; want an error")
	}
	if _, err := s.Batch("acme", "B4"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Batch(B4) after a refused RecordIgnored = %v; want ErrNotFound", err)
	}
	if err := s.RecordIgnored(state.Batch{ID: "B1", Org: "none", Status: state.BatchIgnored}, []byte(`{}`)); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("RecordIgnored in a missing organization = %v; want ErrNotFound", err)
	}
}

// testUnfinishedAndOpenBatches: every organization's batches, per
// organization in id order.
func testUnfinishedAndOpenBatches(t *testing.T, h Harness, s Store) {
	for _, f := range []func() ([]state.Batch, error){s.UnfinishedBatches, s.OpenBatches} {
		if got, err := f(); err != nil || len(got) != 0 {
			t.Errorf("on an empty store: %v, %v; want none", batchIDs(got), err)
		}
	}
	mustCreateOrg(t, s, "beta", "acme", "acme-2")
	all := map[string]string{"B1": state.BatchApplied, "B2": state.BatchPending, "B3": state.BatchHeld, "B4": state.BatchProcessing,
		"B5": state.BatchRejected, "B6": state.BatchSuperseded, "B7": state.BatchIgnored, "B8": state.BatchUnchanged}
	ids := []string{"B8", "B7", "B6", "B5", "B4", "B3", "B2", "B1"}
	createBatches(t, s, "beta", ids, all)
	createBatches(t, s, "acme", ids, all)
	createBatches(t, s, "acme-2", []string{"B9"}, nil)
	key := func(bs []state.Batch) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.Org+"/"+b.ID+":"+b.Status)
		}
		return out
	}
	unfinished, err := s.UnfinishedBatches()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"acme/B2:pending", "acme/B4:processing", "acme-2/B9:pending", "beta/B2:pending", "beta/B4:processing"}
	if diff := cmp.Diff(want, key(unfinished)); diff != "" {
		t.Errorf("UnfinishedBatches() mismatch (-want +got):\n%s", diff)
	}
	open, err := s.OpenBatches()
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"acme/B2:pending", "acme/B3:held", "acme/B4:processing", "acme-2/B9:pending",
		"beta/B2:pending", "beta/B3:held", "beta/B4:processing"}
	if diff := cmp.Diff(want, key(open)); diff != "" {
		t.Errorf("OpenBatches() mismatch (-want +got):\n%s", diff)
	}
}

// testBatchesGoWithOrg: a removed organization's batches, reports and
// completions go with it; a new one of the same name starts without.
func testBatchesGoWithOrg(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	b := state.Batch{ID: "B1", Org: "acme", Status: state.BatchPending,
		Files: []state.BatchFile{{Name: "users.csv", Kind: "users", CompletedAt: t0}}}
	if _, err := s.FormBatch(b, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchHeld}, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOrg("acme"); err != nil {
		t.Fatal(err)
	}
	mustCreateOrg(t, s, "acme")
	if bs, err := s.Batches("acme", "", 0); err != nil || len(bs) != 0 {
		t.Errorf("Batches of the new acme = %v, %v; want none", batchIDs(bs), err)
	}
	if _, err := s.BatchReport("acme", "B1"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("BatchReport of the old acme's batch = %v; want ErrNotFound", err)
	}
	if c, err := s.Completions("acme"); err != nil || len(c.Files) != 0 || len(c.Newest) != 0 {
		t.Errorf("Completions of the new acme = %+v, %v; want none", c, err)
	}
	if open, err := s.OpenBatches(); err != nil || len(open) != 0 {
		t.Errorf("OpenBatches() = %v, %v; want none", batchIDs(open), err)
	}
}
