package storetest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// Apply applies batches (SPEC §6): a diff reads the snapshot and returns
// the outcome, whose Write streams the changes and events into the
// store's state.Writer.
type Apply interface {
	Apply(org string, diff func(*state.SnapshotTx) (state.Outcome, error)) (state.Applied, error)
	ViewSnapshot(org string, fn func(*state.SnapshotTx) error) error
}

// op is one call of a Write stream.
type op func(w state.Writer) error

func putGroup(id, name, doc string) op {
	return func(w state.Writer) error { return w.PutGroup([]byte(id), name, state.GroupInFile, []byte(doc)) }
}

func putUser(u SnapUser) op {
	return func(w state.Writer) error { return w.PutUser([]byte(u.Rec.ID), u.Active, u.Rec.AppendBinary(nil)) }
}

func emitUser(typ, id, prev string) op {
	return func(w state.Writer) error {
		var p []byte
		if prev != "" {
			p = []byte(prev)
		}
		return w.EmitUser(typ, []byte(id), p)
	}
}

func emitGroup(typ, id string) op {
	return func(w state.Writer) error { return w.EmitGroup(typ, []byte(id)) }
}

func emitMember(typ, uid, gid string) op {
	return func(w state.Writer) error { return w.EmitMember(typ, []byte(uid), []byte(gid)) }
}

func addMember(uid, gid string) op {
	return func(w state.Writer) error { return w.AddMember([]byte(uid), []byte(gid)) }
}

func removeMember(uid, gid string) op {
	return func(w state.Writer) error { return w.RemoveMember([]byte(uid), []byte(gid)) }
}

func deleteUser(id string) op { return func(w state.Writer) error { return w.DeleteUser([]byte(id)) } }

func deleteGroup(id string) op {
	return func(w state.Writer) error { return w.DeleteGroup([]byte(id)) }
}

// stream is a Write of ops, each followed by a Checkpoint.
func stream(ops ...op) func(state.Writer) error {
	return func(w state.Writer) error {
		for _, o := range ops {
			if err := o(w); err != nil {
				return err
			}
			if err := w.Checkpoint(); err != nil {
				return err
			}
		}
		return nil
	}
}

var (
	reID      = regexp.MustCompile(`^\{"id":"(evt_[0-9A-Z]{26})",`)
	reCreated = regexp.MustCompile(`"created_at":"[^"]*"`)
)

// batchEvents returns the JSON of org's events after after, their ids
// checked and blanked, their times blanked; and the last id.
func batchEvents(t *testing.T, s Store, org, after string) ([]string, string) {
	t.Helper()
	var out []string
	err := s.ForEachEventJSON(org, after, 0, func(id string, raw []byte) error {
		m := reID.FindSubmatch(raw)
		if m == nil || string(m[1]) != id || id <= after {
			t.Errorf("event %s after %s: %s", id, after, raw)
		}
		after = id
		s := reID.ReplaceAllString(string(raw), `{"id":"evt",`)
		out = append(out, reCreated.ReplaceAllString(s, `"created_at":"T"`))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, after
}

// wantEvent is an event's JSON as batchEvents returns it.
func wantEvent(typ, org, batch, data string) string {
	return fmt.Sprintf(`{"id":"evt","event":%q,"organization_id":%q,"batch_id":%q,"created_at":"T","data":%s}`, typ, org, batch, data)
}

// applyBatch records batch id of org as processing and applies it with
// ops, after checking that the diff reads counts.
func applyBatch(t *testing.T, s Store, org, id string, counts state.SnapshotCounts, ops ...op) state.Applied {
	t.Helper()
	if _, err := s.CreateBatch(state.Batch{ID: id, Org: org, Status: state.BatchProcessing}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Apply(org, func(snap *state.SnapshotTx) (state.Outcome, error) {
		if c := snap.Counts(); c != counts {
			t.Errorf("batch %s: the diff reads counts %+v; want %+v", id, c, counts)
		}
		b, err := s.Batch(org, id)
		if err != nil {
			return state.Outcome{}, err
		}
		b.Status = state.BatchApplied
		return state.Outcome{Batch: b, Report: []byte(`{"batch_id":"` + id + `"}`), Write: stream(ops...), Changes: len(ops)}, nil
	})
	if err != nil {
		t.Fatalf("Apply(%s): %v", id, err)
	}
	return got
}

// testApplyEvents applies three batches with every event of SPEC §6 and
// checks the events byte for byte, the snapshot the reads see, the
// counts, and what the next diff reads.
func testApplyEvents(t *testing.T, _ Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	fx := snapshotFixture()
	u1, u2, u3 := fx.Users[1], fx.Users[2], fx.Users[0] // u2 inactive
	g1 := `{"object":"directory_group","id":"g1","organization_id":"acme","name":"Eng","attributes":{"description":"Builds"}}`
	g1b := `{"object":"directory_group","id":"g1","organization_id":"acme","name":"Eng","attributes":{"description":"Builds and ships"}}`
	g2 := `{"object":"directory_group","id":"g2","organization_id":"acme","name":"Sales","attributes":{}}`
	uj := func(u SnapUser) string { return userJSON("acme", u) }
	member := func(u SnapUser, g string) string { return `{"user":` + uj(u) + `,"group":` + g + `}` }

	// B1: groups, users, memberships created.
	got := applyBatch(t, s, "acme", "B1", state.SnapshotCounts{},
		putGroup("g1", "Eng", g1), emitGroup(state.EventGroupCreated, "g1"),
		putGroup("g2", "Sales", g2), emitGroup(state.EventGroupCreated, "g2"),
		putUser(u1), emitUser(state.EventUserCreated, "u1", ""),
		putUser(u2), emitUser(state.EventUserCreated, "u2", ""),
		addMember("u1", "g1"), emitMember(state.EventGroupUserAdded, "u1", "g1"),
		addMember("u2", "g1"), emitMember(state.EventGroupUserAdded, "u2", "g1"),
	)
	if got.Emitted != 6 {
		t.Errorf("B1 emitted %d events; want 6", got.Emitted)
	}
	evs, last := batchEvents(t, s, "acme", "")
	want := []string{
		wantEvent(state.EventGroupCreated, "acme", "B1", g1),
		wantEvent(state.EventGroupCreated, "acme", "B1", g2),
		wantEvent(state.EventUserCreated, "acme", "B1", uj(u1)),
		wantEvent(state.EventUserCreated, "acme", "B1", uj(u2)),
		wantEvent(state.EventGroupUserAdded, "acme", "B1", member(u1, g1)),
		wantEvent(state.EventGroupUserAdded, "acme", "B1", member(u2, g1)),
	}
	if d := cmp.Diff(want, evs); d != "" {
		t.Errorf("B1 events (-want +got):\n%s", d)
	}
	if b, err := s.Batch("acme", "B1"); err != nil || b.Status != state.BatchApplied || b.FinishedAt == nil {
		t.Errorf("Batch(B1) = %+v, %v; want applied and finished", b, err)
	}
	if rep, err := s.BatchReport("acme", "B1"); err != nil || string(rep) != `{"batch_id":"B1"}` {
		t.Errorf("BatchReport(B1) = %s, %v", rep, err)
	}

	// B2: g1 updated, u2 activated with a title (previous_attributes),
	// u3 created and added, u1 leaves g1 and is deleted.
	u2a := u2
	u2a.Active = true
	u2a.Rec.Known = []state.Attr{{Name: "job_title", Value: "Lead"}}
	got = applyBatch(t, s, "acme", "B2", state.SnapshotCounts{Users: 2, Active: 1, Groups: 2, Memberships: 2},
		putGroup("g1", "Eng", g1b), emitGroup(state.EventGroupUpdated, "g1"),
		putUser(u3), emitUser(state.EventUserCreated, "u3", ""),
		putUser(u2a), emitUser(state.EventUserUpdated, "u2", `{"state":"inactive","job_title":null}`),
		addMember("u3", "g1"), emitMember(state.EventGroupUserAdded, "u3", "g1"),
		emitMember(state.EventGroupUserRemoved, "u2", "g1"), removeMember("u2", "g1"),
		emitMember(state.EventGroupUserRemoved, "u1", "g1"), removeMember("u1", "g1"),
		emitUser(state.EventUserDeleted, "u1", ""), deleteUser("u1"),
	)
	evs, last = batchEvents(t, s, "acme", last)
	upd := func(u SnapUser, prev string) string {
		return strings.TrimSuffix(uj(u), "}") + `,"previous_attributes":` + prev + `}`
	}
	want = []string{
		wantEvent(state.EventGroupUpdated, "acme", "B2", g1b),
		wantEvent(state.EventUserCreated, "acme", "B2", uj(u3)),
		wantEvent(state.EventUserUpdated, "acme", "B2", upd(u2a, `{"state":"inactive","job_title":null}`)),
		wantEvent(state.EventGroupUserAdded, "acme", "B2", member(u3, g1b)),
		wantEvent(state.EventGroupUserRemoved, "acme", "B2", member(u2a, g1b)),
		wantEvent(state.EventGroupUserRemoved, "acme", "B2", member(u1, g1b)),
		wantEvent(state.EventUserDeleted, "acme", "B2", uj(u1)),
	}
	if d := cmp.Diff(want, evs); d != "" {
		t.Errorf("B2 events (-want +got):\n%s", d)
	}
	if got.Emitted != len(want) {
		t.Errorf("B2 emitted %d events; want %d", got.Emitted, len(want))
	}

	// B3: g1 and its last member's membership go, then g1.
	applyBatch(t, s, "acme", "B3", state.SnapshotCounts{Users: 2, Active: 2, Groups: 2, Memberships: 1},
		emitMember(state.EventGroupUserRemoved, "u3", "g1"), removeMember("u3", "g1"),
		emitGroup(state.EventGroupDeleted, "g1"), deleteGroup("g1"),
	)
	evs, _ = batchEvents(t, s, "acme", last)
	want = []string{
		wantEvent(state.EventGroupUserRemoved, "acme", "B3", member(u3, g1b)),
		wantEvent(state.EventGroupDeleted, "acme", "B3", g1b),
	}
	if d := cmp.Diff(want, evs); d != "" {
		t.Errorf("B3 events (-want +got):\n%s", d)
	}

	// The snapshot as the API reads it, and as the next diff reads it.
	if us, err := s.Users("acme", "", "", 0); err != nil || !cmp.Equal([]string{uj(u2a), uj(u3)}, rawStrings(us)) {
		t.Errorf("Users(acme) = %q, %v; want u2 (active), u3", rawStrings(us), err)
	}
	if gs, err := s.Groups("acme", "", 0); err != nil || !cmp.Equal([]string{g2}, rawStrings(gs)) {
		t.Errorf("Groups(acme) = %q, %v; want g2", rawStrings(gs), err)
	}
	if c, err := s.SnapshotCounts("acme"); err != nil || c != (state.SnapshotCounts{Users: 2, Active: 2, Groups: 1}) {
		t.Errorf("SnapshotCounts(acme) = %+v, %v", c, err)
	}
	err := s.ViewSnapshot("acme", func(snap *state.SnapshotTx) error {
		if _, _, ok := snap.User([]byte("u1")); ok {
			t.Error("the snapshot still holds u1")
		}
		if rec, active, ok := snap.User([]byte("u2")); !ok || !active || string(state.AppendUserJSON(nil, "acme", active, rec)) != uj(u2a) {
			t.Errorf("the snapshot's u2: %q, %v, %v", rec, active, ok)
		}
		if snap.IsMember([]byte("u3"), []byte("g1")) || snap.MemberCount([]byte("g1")) != 0 {
			t.Error("the snapshot still holds u3 in g1")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testApplyOutcomes: a held batch is recorded without changes or events;
// a final batch is not applied again; an apply with no events commits
// none.
func testApplyOutcomes(t *testing.T, _ Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	fx := snapshotFixture()
	applyBatch(t, s, "acme", "B1", state.SnapshotCounts{}, putUser(fx.Users[1]), emitUser(state.EventUserCreated, "u1", ""))
	_, last := batchEvents(t, s, "acme", "")

	if _, err := s.CreateBatch(state.Batch{ID: "B2", Org: "acme", Status: state.BatchProcessing}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply("acme", func(*state.SnapshotTx) (state.Outcome, error) {
		b := state.Batch{ID: "B2", Org: "acme", Status: state.BatchHeld, Reason: "too many deletions"}
		return state.Outcome{Batch: b, Report: []byte(`{"held":true}`)}, nil
	})
	if err != nil {
		t.Fatalf("Apply(B2 held): %v", err)
	}
	if b, err := s.Batch("acme", "B2"); err != nil || b.Status != state.BatchHeld || b.Reason != "too many deletions" {
		t.Errorf("Batch(B2) = %+v, %v; want held", b, err)
	}
	if rep, err := s.BatchReport("acme", "B2"); err != nil || string(rep) != `{"held":true}` {
		t.Errorf("BatchReport(B2) = %s, %v", rep, err)
	}

	// B1 again: refused, nothing changes.
	_, err = s.Apply("acme", func(*state.SnapshotTx) (state.Outcome, error) {
		b := state.Batch{ID: "B1", Org: "acme", Status: state.BatchApplied}
		return state.Outcome{Batch: b, Write: stream(putUser(fx.Users[0]), emitUser(state.EventUserCreated, "u3", "")), Changes: 1}, nil
	})
	if !errors.Is(err, state.ErrBatchFinished) {
		t.Errorf("Apply(B1) again = %v; want ErrBatchFinished", err)
	}
	// A diff that fails changes nothing.
	boom := errors.New("boom")
	if _, err := s.Apply("acme", func(*state.SnapshotTx) (state.Outcome, error) { return state.Outcome{}, boom }); !errors.Is(err, boom) {
		t.Errorf("Apply with a failing diff = %v; want boom", err)
	}
	// A Write that fails midway changes nothing either.
	if _, err := s.CreateBatch(state.Batch{ID: "B3", Org: "acme", Status: state.BatchProcessing}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Apply("acme", func(*state.SnapshotTx) (state.Outcome, error) {
		b := state.Batch{ID: "B3", Org: "acme", Status: state.BatchApplied}
		return state.Outcome{Batch: b, Write: stream(putUser(fx.Users[0]), emitUser(state.EventUserCreated, "u3", ""),
			func(state.Writer) error { return boom }), Changes: 2}, nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("Apply with a failing Write = %v; want boom", err)
	}
	if b, err := s.Batch("acme", "B3"); err != nil || b.Status != state.BatchProcessing {
		t.Errorf("Batch(B3) after a failed apply = %+v, %v; want processing", b, err)
	}
	// B3 again, with no events: applied, nothing emitted.
	got, err := s.Apply("acme", func(snap *state.SnapshotTx) (state.Outcome, error) {
		if _, _, ok := snap.User([]byte("u3")); ok {
			t.Error("the failed apply left u3 in the snapshot")
		}
		b := state.Batch{ID: "B3", Org: "acme", Status: state.BatchApplied}
		return state.Outcome{Batch: b, Write: stream(putUser(fx.Users[0])), Changes: 1}, nil
	})
	if err != nil || got.Emitted != 0 {
		t.Errorf("Apply(B3) = %+v, %v; want applied, no events", got, err)
	}
	if evs, _ := batchEvents(t, s, "acme", last); len(evs) != 0 {
		t.Errorf("events after B1: %q; want none", evs)
	}
	if c, err := s.SnapshotCounts("acme"); err != nil || c != (state.SnapshotCounts{Users: 2, Active: 2}) {
		t.Errorf("SnapshotCounts(acme) = %+v, %v; want 2 users", c, err)
	}
	// Another organization's name in the outcome is refused.
	mustCreateOrg(t, s, "beta")
	_, err = s.Apply("acme", func(*state.SnapshotTx) (state.Outcome, error) {
		return state.Outcome{Batch: state.Batch{ID: "B9", Org: "beta", Status: state.BatchApplied}}, nil
	})
	if err == nil {
		t.Error("Apply(acme) of beta's batch succeeded")
	}
}
