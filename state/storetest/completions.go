package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// testFormBatch: FormBatch's one transaction: the batch, its completions
// (taken and set aside; not those taken over from another batch), and
// the supersession of older held and unfinished batches with their
// reports, stopping at the newest final one.
func testFormBatch(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	// B1 is older than an applied batch: left alone. B6 is newer than the
	// batch formed: left alone too.
	createBatches(t, s, "acme", []string{"B1", "B2", "B3", "B4", "B4a", "B6"}, map[string]string{
		"B1": state.BatchProcessing, "B2": state.BatchApplied, "B3": state.BatchHeld, "B4": state.BatchProcessing,
		"B4a": state.BatchIgnored, "B6": state.BatchPending,
	})
	if err := s.FinishBatch(state.Batch{ID: "B3", Org: "acme", Status: state.BatchHeld}, []byte(`{"held":true}`)); err != nil {
		t.Fatal(err)
	}
	retry := t0.Add(time.Hour)
	if err := s.RecordFailure(state.Batch{ID: "B4", Org: "acme", Attempts: 1, LastError: "disk full", RetryAt: &retry}, nil); err != nil {
		t.Fatal(err)
	}
	b := state.Batch{ID: "B5", Org: "acme", Status: state.BatchPending, Supersedes: []string{"stale"}, Files: []state.BatchFile{
		{Name: "users_2.csv", Kind: "users", Size: 10, CompletedAt: t0.Add(2 * time.Second)},
		{Name: "groups.csv", Kind: "groups", Size: 5, SHA256: "ab", CompletedAt: t0, From: "B4"},
	}, Ignored: []state.BatchFile{{Name: "users.csv", Kind: "users", Size: 9, CompletedAt: t0.Add(time.Second)}}}
	var asked []string
	before := time.Now()
	sup, err := s.FormBatch(b, func(old state.Batch) []byte {
		asked = append(asked, old.ID)
		return []byte(`{"status":"superseded","was":"` + old.Status + `"}`)
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range sup {
		got = append(got, x.ID+":"+x.Status)
	}
	if diff := cmp.Diff([]string{"B4:processing", "B3:held"}, got); diff != "" {
		t.Errorf("superseded (-want +got):\n%s", diff)
	}
	if !cmp.Equal([]string{"B4"}, asked) {
		t.Errorf("report asked for %v; want B4 only (a held batch keeps its report)", asked)
	}
	if sup[0].LastError != "disk full" {
		t.Errorf("superseded B4 returned as %+v; want it as it was", sup[0])
	}
	b5 := mustBatch(t, s, "acme", "B5")
	if !cmp.Equal(b5.Supersedes, []string{"B3", "B4"}) || b5.Status != state.BatchPending || len(b5.Files) != 2 {
		t.Errorf("B5 = %+v; want pending, its 2 files, superseding [B3 B4]", b5)
	}
	for id, want := range map[string]string{"B1": state.BatchProcessing, "B3": state.BatchSuperseded, "B4": state.BatchSuperseded,
		"B4a": state.BatchIgnored, "B6": state.BatchPending} {
		got := mustBatch(t, s, "acme", id)
		if got.Status != want {
			t.Errorf("batch %s = %s; want %s", id, got.Status, want)
		}
		if want == state.BatchSuperseded {
			if got.SupersededBy != "B5" || got.RetryAt != nil || got.FinishedAt == nil {
				t.Errorf("batch %s = %+v; want superseded by B5, finished, no retry", id, got)
			} else {
				within(t, "FinishedAt of "+id, *got.FinishedAt, before, time.Now())
			}
		}
	}
	for id, want := range map[string]string{"B4": `{"status":"superseded","was":"processing"}`, "B3": `{"held":true}`} {
		if rep, err := s.BatchReport("acme", id); err != nil || string(rep) != want {
			t.Errorf("report of %s = %s, %v; want %s", id, rep, err, want)
		}
	}
	c, err := s.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	want := state.Completions{
		Newest: map[string]state.Completion{
			"users": {Name: "users_2.csv", Kind: "users", Size: 10, CompletedAt: t0.Add(2 * time.Second), Batch: "B5"},
		},
		Files: map[string]state.Completion{
			"users_2.csv": {Name: "users_2.csv", Kind: "users", Size: 10, CompletedAt: t0.Add(2 * time.Second), Batch: "B5"},
			"users.csv":   {Name: "users.csv", Kind: "users", Size: 9, CompletedAt: t0.Add(time.Second), Batch: "B5", Ignored: true},
		},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("completions mismatch (-want +got):\n%s", diff)
	}
	if _, err := s.FormBatch(state.Batch{ID: "B5", Org: "acme"}, nil); !errors.Is(err, state.ErrExists) {
		t.Errorf("FormBatch(B5) again = %v; want ErrExists", err)
	}
	if _, err := s.FormBatch(state.Batch{ID: "B1", Org: "none"}, nil); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("FormBatch in a missing organization = %v; want ErrNotFound", err)
	}
	// A nil report function stores no report for the unfinished batches
	// it supersedes.
	if _, err := s.FormBatch(state.Batch{ID: "B7", Org: "acme", Status: state.BatchPending}, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustBatch(t, s, "acme", "B6"); got.Status != state.BatchSuperseded || got.SupersededBy != "B7" {
		t.Errorf("B6 after forming B7 = %s by %q; want superseded by B7", got.Status, got.SupersededBy)
	}
	if _, err := s.BatchReport("acme", "B6"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("report of B6 = %v; want none", err)
	}
}

// testCompletionOrder: a name keeps its newest completion; a kind's
// newest moves only forward, by completion time and then name.
func testCompletionOrder(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	form := func(id string, files ...state.BatchFile) {
		t.Helper()
		if _, err := s.FormBatch(state.Batch{ID: id, Org: "acme", Status: state.BatchPending, Files: files}, nil); err != nil {
			t.Fatal(err)
		}
	}
	form("B1", state.BatchFile{Name: "b.csv", Kind: "users", CompletedAt: t0.Add(time.Second)})
	// Older than b.csv's completion: recorded under its name, not the
	// newest users.
	form("B2", state.BatchFile{Name: "a.csv", Kind: "users", CompletedAt: t0})
	// The same time as b.csv, a name before it: not newer.
	form("B3", state.BatchFile{Name: "a2.csv", Kind: "users", CompletedAt: t0.Add(time.Second)})
	c, err := s.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Newest["users"]; n.Name != "b.csv" || n.Batch != "B1" {
		t.Errorf("newest users = %+v; want b.csv of B1", n)
	}
	// The same time as b.csv, a name after it: newer.
	form("B4", state.BatchFile{Name: "c.csv", Kind: "users", CompletedAt: t0.Add(time.Second)})
	// An older completion of b.csv does not replace its newer one.
	form("B5", state.BatchFile{Name: "b.csv", Kind: "users", CompletedAt: t0})
	c, err = s.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Newest["users"]; n.Name != "c.csv" || n.Batch != "B4" {
		t.Errorf("newest users = %+v; want c.csv of B4", n)
	}
	if f := c.Files["b.csv"]; f.Batch != "B1" {
		t.Errorf("b.csv's completion = %+v; want B1's, the newer", f)
	}
	if len(c.Files) != 4 {
		t.Errorf("completions of %d names; want 4: %+v", len(c.Files), c.Files)
	}
	// Forgetting names keeps the newest per kind; unknown names and
	// organizations are no error.
	if err := s.ForgetCompletions("acme", []string{"c.csv", "a.csv", "nope.csv"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetCompletions("none", []string{"c.csv"}); err != nil {
		t.Errorf("ForgetCompletions(none) = %v", err)
	}
	if err := s.ForgetCompletions("acme", nil); err != nil {
		t.Errorf("ForgetCompletions(acme, nil) = %v", err)
	}
	c, err = s.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range c.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	if !cmp.Equal([]string{"a2.csv", "b.csv"}, names) || c.Newest["users"].Name != "c.csv" {
		t.Errorf("after ForgetCompletions: names %v, newest %+v; want a2.csv, b.csv and newest c.csv", names, c.Newest["users"])
	}
	if c, err := s.Completions("none"); err != nil || len(c.Files) != 0 || len(c.Newest) != 0 || c.Files == nil || c.Newest == nil {
		t.Errorf("Completions(none) = %+v, %v; want empty maps", c, err)
	}
}

// testRecordFailure: a failed attempt is stored on an unfinished batch
// with its report, and refused on a final one.
func testRecordFailure(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	if _, err := s.FormBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchPending}, nil); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	msg := "write archive: \x00 no space"
	if err := s.RecordFailure(state.Batch{ID: "B1", Org: "acme", Status: state.BatchApplied, Errors: 7, Attempts: 2, LastError: msg, RetryAt: &at}, []byte(`{"r":1}`)); err != nil {
		t.Fatal(err)
	}
	b := mustBatch(t, s, "acme", "B1")
	if b.Status != state.BatchPending || b.Errors != 0 || b.Attempts != 2 || b.LastError != msg || b.RetryAt == nil || !b.RetryAt.Equal(at) {
		t.Errorf("batch after RecordFailure = %+v; want pending with attempts, error and retry only", b)
	}
	if rep, err := s.BatchReport("acme", "B1"); err != nil || string(rep) != `{"r":1}` {
		t.Errorf("report after RecordFailure = %s, %v", rep, err)
	}
	if err := s.RecordFailure(state.Batch{ID: "B1", Org: "acme", Attempts: 3}, nil); err != nil {
		t.Fatal(err)
	}
	if rep, _ := s.BatchReport("acme", "B1"); string(rep) != `{"r":1}` {
		t.Errorf("report after RecordFailure without one = %s; want the previous", rep)
	}
	if b := mustBatch(t, s, "acme", "B1"); b.Attempts != 3 || b.LastError != "" || b.RetryAt != nil {
		t.Errorf("batch after the second RecordFailure = %+v; want 3 attempts, no error, no retry", b)
	}
	if err := s.FinishBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchRejected}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordFailure(state.Batch{ID: "B1", Org: "acme", Attempts: 4}, nil); !errors.Is(err, state.ErrBatchFinished) {
		t.Errorf("RecordFailure on a final batch = %v; want ErrBatchFinished", err)
	}
	if err := s.RecordFailure(state.Batch{ID: "B2", Org: "acme", Attempts: 1}, nil); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("RecordFailure on a missing batch = %v; want ErrNotFound", err)
	}
}

// testSupersedeBatch: an unfinished or held batch is superseded by any
// batch named, with its report; a final one is not.
func testSupersedeBatch(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	createBatches(t, s, "acme", []string{"B1", "B2", "B3"}, map[string]string{"B2": state.BatchHeld, "B3": state.BatchApplied})
	at := t0.Add(time.Hour)
	if err := s.RecordFailure(state.Batch{ID: "B1", Org: "acme", Attempts: 1, RetryAt: &at}, nil); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	got, err := s.SupersedeBatch("acme", "B1", "B3", []byte(`{"by":"B3"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != state.BatchSuperseded || got.SupersededBy != "B3" || got.RetryAt != nil || got.FinishedAt == nil || got.Attempts != 1 {
		t.Fatalf("SupersedeBatch(B1) = %+v; want superseded by B3, finished, no retry", got)
	}
	within(t, "FinishedAt", *got.FinishedAt, before, time.Now())
	if diff := cmp.Diff(got, mustBatch(t, s, "acme", "B1")); diff != "" {
		t.Errorf("stored B1 differs from SupersedeBatch's result (-returned +stored):\n%s", diff)
	}
	if rep, err := s.BatchReport("acme", "B1"); err != nil || string(rep) != `{"by":"B3"}` {
		t.Errorf("report of B1 = %s, %v", rep, err)
	}
	if _, err := s.SupersedeBatch("acme", "B2", "B9", nil); err != nil {
		t.Errorf("SupersedeBatch of a held batch = %v", err)
	}
	if _, err := s.BatchReport("acme", "B2"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("report of B2 superseded without one = %v; want none", err)
	}
	for _, id := range []string{"B1", "B3"} {
		if _, err := s.SupersedeBatch("acme", id, "B9", nil); !errors.Is(err, state.ErrBatchFinished) {
			t.Errorf("SupersedeBatch of final %s = %v; want ErrBatchFinished", id, err)
		}
	}
	if _, err := s.SupersedeBatch("acme", "B4", "B9", nil); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("SupersedeBatch of a missing batch = %v; want ErrNotFound", err)
	}
}

// testRecordSetAside: files set aside get an ignored batch with its
// report and are recorded as processed; a waiting batch stays waiting.
func testRecordSetAside(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	if _, err := s.FormBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchPending}, nil); err != nil {
		t.Fatal(err)
	}
	b := state.Batch{ID: "B2", Org: "acme", Status: state.BatchPending, Ignored: []state.BatchFile{{Name: "Users.CSV", Kind: "users", Size: 3, CompletedAt: t0}}}
	before := time.Now()
	if err := s.RecordSetAside(b, []byte(`{"status":"ignored"}`)); err != nil {
		t.Fatal(err)
	}
	got := mustBatch(t, s, "acme", "B2")
	if got.Status != state.BatchIgnored || got.FinishedAt == nil || got.Files == nil || len(got.Files) != 0 || len(got.Ignored) != 1 {
		t.Fatalf("B2 = %+v; want ignored, finished, an empty (not nil) list of files, one set aside", got)
	}
	within(t, "CreatedAt", got.CreatedAt, before, time.Now())
	within(t, "FinishedAt", *got.FinishedAt, before, time.Now())
	if rep, err := s.BatchReport("acme", "B2"); err != nil || string(rep) != `{"status":"ignored"}` {
		t.Errorf("report of B2 = %s, %v", rep, err)
	}
	if got := mustBatch(t, s, "acme", "B1"); got.Status != state.BatchPending {
		t.Errorf("B1 = %s; want still pending", got.Status)
	}
	c, err := s.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	wantC := state.Completion{Name: "Users.CSV", Kind: "users", Size: 3, CompletedAt: t0, Batch: "B2", Ignored: true}
	if diff := cmp.Diff(wantC, c.Files["Users.CSV"]); diff != "" {
		t.Errorf("completion of Users.CSV (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantC, c.Newest["users"]); diff != "" {
		t.Errorf("newest users (-want +got):\n%s", diff)
	}
	if err := s.RecordSetAside(b, []byte(`{}`)); !errors.Is(err, state.ErrExists) {
		t.Errorf("RecordSetAside twice = %v; want ErrExists", err)
	}
	b.Org = "none"
	if err := s.RecordSetAside(b, []byte(`{}`)); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("RecordSetAside in a missing organization = %v; want ErrNotFound", err)
	}
}

// testRecordArchived: archiving fills in the completion the batch still
// holds (size, times, hash), leaves one a later batch took, and makes the
// batch processing with its archived files.
func testRecordArchived(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	users := state.BatchFile{Name: "users.csv", Kind: "users", Size: 10, CompletedAt: t0}
	groups := state.BatchFile{Name: "groups.csv", Kind: "groups", Size: 5, CompletedAt: t0}
	if _, err := s.FormBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchPending, Files: []state.BatchFile{users, groups}}, nil); err != nil {
		t.Fatal(err)
	}
	// groups.csv completed again, taken by B2 (which supersedes B1).
	groups2 := groups
	groups2.CompletedAt = t0.Add(time.Minute)
	if _, err := s.FormBatch(state.Batch{ID: "B2", Org: "acme", Status: state.BatchPending, Files: []state.BatchFile{groups2}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordArchived("acme", "B1", nil); !errors.Is(err, state.ErrBatchFinished) {
		t.Errorf("RecordArchived of superseded B1 = %v; want ErrBatchFinished", err)
	}
	if _, err := s.FormBatch(state.Batch{ID: "B3", Org: "acme", Status: state.BatchPending, Files: []state.BatchFile{users, groups}}, nil); err != nil {
		t.Fatal(err)
	}
	// users.csv was replaced after B3 formed: its change time is after
	// its completion, and the batch holds the newer completion.
	archived := []state.BatchFile{users, groups}
	archived[0].Size, archived[0].SHA256, archived[0].ModTime, archived[0].ChangeTime = 12, "aa", t0.Add(time.Second), t0.Add(2*time.Second)
	archived[1].SHA256, archived[1].ChangeTime = "gg", t0
	got, err := s.RecordArchived("acme", "B3", archived)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != state.BatchProcessing || len(got.Files) != 2 || !got.Files[0].CompletedAt.Equal(t0.Add(2*time.Second)) ||
		!got.Files[1].CompletedAt.Equal(t0) || got.Files[0].SHA256 != "aa" {
		t.Errorf("RecordArchived(B3) = %+v; want processing, users.csv completed at its change time", got)
	}
	if !archived[0].CompletedAt.Equal(t0) {
		t.Errorf("RecordArchived changed its argument")
	}
	if diff := cmp.Diff(got, mustBatch(t, s, "acme", "B3")); diff != "" {
		t.Errorf("stored B3 differs from RecordArchived's result (-returned +stored):\n%s", diff)
	}
	c, err := s.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	wantUsers := state.Completion{Name: "users.csv", Kind: "users", Size: 12, ModTime: t0.Add(time.Second), SHA256: "aa",
		ChangeTime: t0.Add(2 * time.Second), CompletedAt: t0.Add(2 * time.Second), Batch: "B3"}
	wantGroups := state.Completion{Name: "groups.csv", Kind: "groups", Size: 5, CompletedAt: t0.Add(time.Minute), Batch: "B2"}
	want := state.Completions{
		Newest: map[string]state.Completion{"users": wantUsers, "groups": wantGroups},
		Files:  map[string]state.Completion{"users.csv": wantUsers, "groups.csv": wantGroups},
	}
	// B3's groups.csv (completed at t0) is older than B2's record of it:
	// the name keeps B2's, which archiving B3 leaves alone.
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("completions after RecordArchived (-want +got):\n%s", diff)
	}
	if _, err := s.RecordArchived("acme", "B9", nil); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("RecordArchived of a missing batch = %v; want ErrNotFound", err)
	}
}

// testRecordArchivedZipMembers: a zip upload is one completion; once the
// batch is archived its members, files of other kinds, make that
// completion the newest of each of their kinds too.
func testRecordArchivedZipMembers(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	zipFile := state.BatchFile{Name: "export.zip", Kind: "zip", Size: 300, CompletedAt: t0}
	if _, err := s.FormBatch(state.Batch{ID: "B1", Org: "acme", Status: state.BatchPending, Files: []state.BatchFile{zipFile}}, nil); err != nil {
		t.Fatal(err)
	}
	var members []state.BatchFile
	for _, k := range []string{"users", "user_groups"} {
		m := zipFile
		m.Kind, m.SHA256, m.ChangeTime, m.Inner = k, "ab", t0, k+".csv"
		members = append(members, m)
	}
	if _, err := s.RecordArchived("acme", "B1", members); err != nil {
		t.Fatal(err)
	}
	c, err := s.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"zip", "users", "user_groups"} {
		if got := c.Newest[k]; got.Name != "export.zip" || !got.CompletedAt.Equal(t0) || got.Kind != k {
			t.Errorf("newest %s = %+v; want export.zip at %v", k, got, t0)
		}
	}
	// The members' kinds get the archived completion; the zip's kind
	// keeps the one recorded when the batch formed (not after it).
	if c.Newest["users"].SHA256 != "ab" || c.Newest["zip"].SHA256 != "" {
		t.Errorf("newest users %+v, zip %+v; want users archived, zip as formed", c.Newest["users"], c.Newest["zip"])
	}
	if got := c.Files["export.zip"]; got.Kind != "zip" || got.SHA256 != "ab" || !got.ChangeTime.Equal(t0) {
		t.Errorf("export.zip's completion = %+v; want the zip's, archived", got)
	}
	if _, ok := c.Newest["groups"]; ok {
		t.Errorf("newest groups = %+v; want none (the zip holds no groups.csv)", c.Newest["groups"])
	}
}

// testFormBatchConcurrent: batches of one organization formed at once
// (by several instances, for a shared store) are each superseded at
// most once, and the records agree with each other: every batch a
// batch says it supersedes names it as its successor, and the reverse.
func testFormBatchConcurrent(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			b := state.Batch{ID: fmt.Sprintf("B%02d", i), Org: "acme", Status: state.BatchPending,
				Files: []state.BatchFile{{Name: "users.csv", Kind: "users", CompletedAt: t0.Add(time.Duration(i) * time.Second)}}}
			_, errs[i] = s.FormBatch(b, func(state.Batch) []byte { return []byte(`{}`) })
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("FormBatch(B%02d): %v", i, err)
		}
	}
	bs, err := s.Batches("acme", "", 0)
	if err != nil || len(bs) != n {
		t.Fatalf("Batches = %d, %v; want %d", len(bs), err, n)
	}
	by := map[string]string{}
	claimed := map[string]string{}
	for _, b := range bs {
		if b.Status == state.BatchSuperseded {
			by[b.ID] = b.SupersededBy
		} else if b.Status != state.BatchPending {
			t.Errorf("batch %s = %s; want pending or superseded", b.ID, b.Status)
		}
		for _, old := range b.Supersedes {
			if prev, ok := claimed[old]; ok {
				t.Errorf("batch %s superseded by both %s and %s", old, prev, b.ID)
			}
			claimed[old] = b.ID
		}
	}
	if diff := cmp.Diff(by, claimed); diff != "" {
		t.Errorf("SupersededBy and Supersedes disagree (-superseded by +claimed by):\n%s", diff)
	}
	if bs[0].Status != state.BatchPending {
		t.Errorf("newest batch %s = %s; want pending", bs[0].ID, bs[0].Status)
	}
	c, err := s.Completions("acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Newest["users"]; !got.CompletedAt.Equal(t0.Add((n - 1) * time.Second)) {
		t.Errorf("newest users = %+v; want the last completion, at %v", got, t0.Add((n-1)*time.Second))
	}
}
