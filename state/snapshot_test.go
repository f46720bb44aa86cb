package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func newBatch(t *testing.T, db *DB, org, id string) Batch {
	t.Helper()
	b := Batch{ID: id, Org: org, Status: BatchProcessing}
	if _, err := db.CreateBatch(b); err != nil {
		t.Fatalf("CreateBatch(%s): %v", id, err)
	}
	return b
}

func user(id string) []byte { return []byte(fmt.Sprintf(`{"id":%q}`, id)) }

func rawStrings(rs []json.RawMessage) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func TestSnapshotReadAPI(t *testing.T) {
	db := openTestOrg(t, "acme")
	if got, err := db.Users("acme", "", "", 10); err != nil || len(got) != 0 {
		t.Fatalf("Users of a new org = %v, %v; want none", got, err)
	}
	b := newBatch(t, db, "acme", "B1")
	b.Status = BatchApplied
	err := db.ApplyBatch(b, []byte(`{}`), func(a *ApplyTx) error {
		for _, id := range []string{"u1", "u2", "u3", "u10"} {
			if err := a.PutUser([]byte(id), id != "u2", user(id)); err != nil {
				return err
			}
		}
		for _, g := range []string{"g1", "g2"} {
			if err := a.PutGroup([]byte(g), "name-"+g, GroupInFile, []byte(fmt.Sprintf(`{"id":%q}`, g))); err != nil {
				return err
			}
		}
		for _, m := range [][2]string{{"u1", "g1"}, {"u1", "g2"}, {"u2", "g1"}, {"u10", "g1"}, {"u1", "g1"}} {
			if err := a.AddMember([]byte(m[0]), []byte(m[1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := db.Users("acme", "", "", 0)
	if diff := cmp.Diff([]string{`{"id":"u1"}`, `{"id":"u10"}`, `{"id":"u2"}`, `{"id":"u3"}`}, rawStrings(got)); diff != "" {
		t.Errorf("Users mismatch (-want +got):\n%s", diff)
	}
	got, _ = db.Users("acme", "active", "u1", 2)
	if diff := cmp.Diff([]string{`{"id":"u10"}`, `{"id":"u3"}`}, rawStrings(got)); diff != "" {
		t.Errorf("Users(active, after u1, 2) mismatch (-want +got):\n%s", diff)
	}
	got, _ = db.Users("acme", "inactive", "", 0)
	if diff := cmp.Diff([]string{`{"id":"u2"}`}, rawStrings(got)); diff != "" {
		t.Errorf("Users(inactive) mismatch (-want +got):\n%s", diff)
	}
	got, _ = db.UserGroups("acme", "u1", "", 0)
	if diff := cmp.Diff([]string{`{"id":"g1"}`, `{"id":"g2"}`}, rawStrings(got)); diff != "" {
		t.Errorf("UserGroups(u1) mismatch (-want +got):\n%s", diff)
	}
	got, _ = db.UserGroups("acme", "u1", "g1", 0)
	if diff := cmp.Diff([]string{`{"id":"g2"}`}, rawStrings(got)); diff != "" {
		t.Errorf("UserGroups(u1, after g1) mismatch (-want +got):\n%s", diff)
	}
	got, _ = db.GroupUsers("acme", "g1", "", 2)
	if diff := cmp.Diff([]string{`{"id":"u1"}`, `{"id":"u10"}`}, rawStrings(got)); diff != "" {
		t.Errorf("GroupUsers(g1, 2) mismatch (-want +got):\n%s", diff)
	}
	if _, err := db.User("acme", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(nope) = %v; want ErrNotFound", err)
	}
	if _, err := db.GroupUsers("acme", "nope", "", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("GroupUsers(nope) = %v; want ErrNotFound", err)
	}
	if _, err := db.Users("other", "", "", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Users(other org) = %v; want ErrNotFound", err)
	}
	c, _ := db.SnapshotCounts("acme")
	if want := (SnapshotCounts{Users: 4, Active: 3, Groups: 2, Memberships: 4}); c != want {
		t.Errorf("SnapshotCounts = %+v; want %+v", c, want)
	}

	// A rename keeps the name index right, even when two groups swap names.
	b2 := newBatch(t, db, "acme", "B2")
	b2.Status = BatchApplied
	err = db.ApplyBatch(b2, nil, func(a *ApplyTx) error {
		if err := a.PutGroup([]byte("g1"), "name-g2", GroupInFile, []byte(`{"id":"g1"}`)); err != nil {
			return err
		}
		if err := a.PutGroup([]byte("g2"), "name-g1", GroupInFile, []byte(`{"id":"g2"}`)); err != nil {
			return err
		}
		if err := a.RemoveMember([]byte("u1"), []byte("g1")); err != nil {
			return err
		}
		if err := a.RemoveMember([]byte("u1"), []byte("g1")); err != nil {
			return err
		}
		if err := a.RemoveMember([]byte("u2"), []byte("g1")); err != nil {
			return err
		}
		return a.DeleteUser([]byte("u2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.ViewSnapshot("acme", func(s *SnapshotTx) error {
		if id, _ := s.GroupByName("name-g1"); id != "g2" {
			t.Errorf("GroupByName(name-g1) = %q; want g2", id)
		}
		if id, _ := s.GroupByName("name-g2"); id != "g1" {
			t.Errorf("GroupByName(name-g2) = %q; want g1", id)
		}
		if n := s.MemberCount([]byte("g1")); n != 1 {
			t.Errorf("MemberCount(g1) = %d; want 1", n)
		}
		if c := s.Counts(); c != (SnapshotCounts{Users: 3, Active: 3, Groups: 2, Memberships: 2}) {
			t.Errorf("Counts = %+v", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestApplyBatchIsAtomicAndOnce(t *testing.T) {
	db := openTestOrg(t, "acme")
	b := newBatch(t, db, "acme", "B1")
	b.Status = BatchApplied
	boom := errors.New("boom")
	err := db.ApplyBatch(b, []byte(`{"r":1}`), func(a *ApplyTx) error {
		a.PutUser([]byte("u1"), true, user("u1"))
		a.Emit(EventUserCreated, user("u1"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("ApplyBatch = %v; want boom", err)
	}
	if us, _ := db.Users("acme", "", "", 0); len(us) != 0 {
		t.Errorf("users after a failed apply = %d; want 0", len(us))
	}
	if id, _ := db.LastEventID(); id != "" {
		t.Errorf("LastEventID after a failed apply = %q; want none", id)
	}
	if got, _ := db.Batch("acme", "B1"); got.Status != BatchProcessing {
		t.Errorf("status after a failed apply = %q; want processing", got.Status)
	}
	apply := func(a *ApplyTx) error {
		if err := a.PutUser([]byte("u1"), true, user("u1")); err != nil {
			return err
		}
		_, err := a.Emit(EventUserCreated, user("u1"))
		return err
	}
	if err := db.ApplyBatch(b, []byte(`{"r":1}`), apply); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyBatch(b, []byte(`{"r":1}`), apply); !errors.Is(err, ErrBatchFinished) {
		t.Fatalf("second ApplyBatch = %v; want ErrBatchFinished", err)
	}
	evs, _ := db.Events("acme", "", 0)
	if len(evs) != 1 || evs[0].BatchID != "B1" || evs[0].Event != EventUserCreated || string(evs[0].Data) != `{"id":"u1"}` {
		t.Errorf("Events = %+v; want one user.created of B1", evs)
	}
	rep, err := db.BatchReport("acme", "B1")
	if err != nil || string(rep) != `{"r":1}` {
		t.Errorf("BatchReport = %s, %v", rep, err)
	}
}

func TestBatchesSupersedeAndList(t *testing.T) {
	db := openTestOrg(t, "acme")
	b1 := newBatch(t, db, "acme", "B1")
	b1.Status = BatchHeld
	if err := db.FinishBatch(b1, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if un, _ := db.UnfinishedBatches(); len(un) != 0 {
		t.Errorf("UnfinishedBatches = %v; want none (held is not interrupted)", un)
	}
	sup, err := db.CreateBatch(Batch{ID: "B2", Org: "acme", Status: BatchPending})
	if err != nil || !cmp.Equal(sup, []string{"B1"}) {
		t.Fatalf("CreateBatch(B2) superseded %v, %v; want [B1]", sup, err)
	}
	if got, _ := db.Batch("acme", "B1"); got.Status != BatchSuperseded || got.SupersededBy != "B2" {
		t.Errorf("B1 = %+v; want superseded by B2", got)
	}
	if un, _ := db.UnfinishedBatches(); len(un) != 1 || un[0].ID != "B2" {
		t.Errorf("UnfinishedBatches = %v; want [B2]", un)
	}
	newBatch(t, db, "acme", "B3")
	list, _ := db.Batches("acme", "", 2)
	if len(list) != 2 || list[0].ID != "B3" || list[1].ID != "B2" {
		t.Errorf("Batches(first page) = %v; want B3, B2", list)
	}
	list, _ = db.Batches("acme", "B2", 2)
	if len(list) != 1 || list[0].ID != "B1" {
		t.Errorf("Batches(after B2) = %v; want B1", list)
	}
	if _, err := db.Batches("nope", "", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Batches(nope) = %v; want ErrNotFound", err)
	}
}

func TestEventsOrderAndFeed(t *testing.T) {
	db, _ := openTest(t)
	for _, o := range []string{"a", "b"} {
		if err := db.CreateOrg(Org{Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	// A clock that steps back must not break the order.
	clock := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	var all []string
	for i := range 6 {
		org := []string{"a", "b"}[i%2]
		b := newBatch(t, db, org, fmt.Sprintf("B%d", i))
		b.Status = BatchApplied
		at := clock.Add(time.Duration(-i) * time.Minute)
		b.FinishedAt = &at
		err := db.ApplyBatch(b, nil, func(a *ApplyTx) error {
			for j := range 3 {
				id, err := a.Emit(EventUserCreated, []byte(fmt.Sprintf(`{"n":%d}`, j)))
				if err != nil {
					return err
				}
				all = append(all, id)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("event id %s after %s does not sort later", all[i], all[i-1])
		}
	}
	got := pagedEventIDs(t, db, "", 4)
	if diff := cmp.Diff(all, got); diff != "" {
		t.Errorf("paged feed mismatch (-want +got):\n%s", diff)
	}
	evs, _ := db.Events("b", "", 0)
	if len(evs) != 9 {
		t.Fatalf("Events(b) = %d events; want 9", len(evs))
	}
	for _, e := range evs {
		if e.OrganizationID != "b" || !strings.HasPrefix(e.ID, "evt_") {
			t.Errorf("Events(b) holds %+v", e)
		}
	}
	if last, _ := db.LastEventID(); last != all[len(all)-1] {
		t.Errorf("LastEventID = %s; want %s", last, all[len(all)-1])
	}
	e, err := db.Event(all[0])
	if err != nil || e.CreatedAt != clock || string(e.Data) != `{"n":0}` {
		t.Errorf("Event(first) = %+v, %v", e, err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error { return deleteEventTx(tx, []byte(all[3])) })
	if err != nil {
		t.Fatal(err)
	}
	if evs, _ := db.Events("b", "", 0); len(evs) != 8 {
		t.Errorf("Events(b) after deleting one = %d; want 8", len(evs))
	}
}

func TestEventIDOrder(t *testing.T) {
	ms := uint64(time.Now().UnixMilli())
	ids := []string{eventID(ms, 1, 0), eventID(ms, 1, 1), eventID(ms, 1, 1<<31), eventID(ms, 2, 0), eventID(ms+1, 3, 0)}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Errorf("eventID %s <= %s", ids[i], ids[i-1])
		}
	}
	seq, idx, ok := parseEventID(ids[2])
	if !ok || seq != 1 || idx != 1<<31 {
		t.Errorf("parseEventID(%s) = %d, %d, %v; want 1, 2^31, true", ids[2], seq, idx, ok)
	}
}

func TestUserLookup(t *testing.T) {
	db := openTestOrg(t, "acme")
	b := newBatch(t, db, "acme", "B1")
	b.Status = BatchApplied
	err := db.ApplyBatch(b, nil, func(a *ApplyTx) error {
		for i := 0; i < 300; i += 2 {
			id := fmt.Sprintf("u%03d", i)
			if err := a.PutUser([]byte(id), i%3 != 0, user(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 320 {
		ids = append(ids, fmt.Sprintf("u%03d", i)) // ascending, every other one missing, past the end
	}
	for i := 319; i >= 0; i -= 7 {
		ids = append(ids, fmt.Sprintf("u%03d", i)) // descending
	}
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("u%03d", (i*97)%320), "a", "z") // scattered
	}
	err = db.ViewSnapshot("acme", func(s *SnapshotTx) error {
		look := s.UserLookup()
		for _, id := range ids {
			rec, active, ok := look([]byte(id))
			wrec, wactive, wok := s.User([]byte(id))
			if ok != wok || active != wactive || !bytes.Equal(rec, wrec) {
				t.Errorf("lookup(%s) = %s, %v, %v; want %s, %v, %v", id, rec, active, ok, wrec, wactive, wok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Changes to the group index wait for the flush; they must keep their
// order, and reads inside the transaction must see them.
func TestMemberChangesKeepOrder(t *testing.T) {
	db := openTestOrg(t, "acme")
	b := newBatch(t, db, "acme", "B1")
	b.Status = BatchApplied
	err := db.ApplyBatch(b, nil, func(a *ApplyTx) error {
		for _, id := range []string{"u1", "u2"} {
			if err := a.PutUser([]byte(id), true, user(id)); err != nil {
				return err
			}
		}
		steps := []struct {
			add      bool
			uid, gid string
		}{{true, "u1", "g"}, {true, "u2", "g"}, {false, "u1", "g"}, {true, "u1", "g"}, {false, "u2", "g"}, {true, "u2", "h"}}
		for _, st := range steps {
			var err error
			if st.add {
				err = a.AddMember([]byte(st.uid), []byte(st.gid))
			} else {
				err = a.RemoveMember([]byte(st.uid), []byte(st.gid))
			}
			if err != nil {
				return err
			}
		}
		var got []string
		err := a.GroupUserIDs([]byte("g"), "", func(uid []byte) (bool, error) {
			got = append(got, string(uid))
			return true, nil
		})
		if err != nil || len(got) != 1 || got[0] != "u1" {
			t.Errorf("members of g inside the apply = %v, %v; want [u1]", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.ViewSnapshot("acme", func(s *SnapshotTx) error {
		for gid, want := range map[string]string{"g": "u1", "h": "u2"} {
			var got []string
			s.GroupUserIDs([]byte(gid), "", func(uid []byte) (bool, error) {
				got = append(got, string(uid))
				return true, nil
			})
			if len(got) != 1 || got[0] != want || s.MemberCount([]byte(gid)) != 1 {
				t.Errorf("members of %s = %v (count %d); want [%s] (1)", gid, got, s.MemberCount([]byte(gid)), want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReplaceBatchReport replaces the stored report of a finished batch,
// and refuses a batch that has none.
func TestReplaceBatchReport(t *testing.T) {
	db := openTestOrg(t, "acme")
	b := Batch{ID: "B1", Org: "acme", Status: BatchProcessing}
	if _, err := db.CreateBatch(b); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceBatchReport("acme", "B1", []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReplaceBatchReport without a report = %v; want ErrNotFound", err)
	}
	b.Status = BatchHeld
	if err := db.FinishBatch(b, []byte(`{"status":"held"}`)); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceBatchReport("acme", "B1", []byte(`{"status":"superseded"}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := db.BatchReport("acme", "B1"); err != nil || string(got) != `{"status":"superseded"}` {
		t.Errorf("BatchReport = %s, %v; want the replacement", got, err)
	}
}

// TestMemberOrderIsForEachMembers: sorting user ids with MemberOrder gives
// the order ForEachMember meets them, ids of 128 bytes and more included
// (their length takes two bytes of the index's key).
func TestMemberOrderIsForEachMembers(t *testing.T) {
	db := openTestOrg(t, "acme")
	ids := []string{"b", "a", "zz", "u10", "u9", strings.Repeat("x", 127), strings.Repeat("a", 128), strings.Repeat("b", 129), strings.Repeat("c", 300)}
	b := newBatch(t, db, "acme", "B1")
	b.Status = BatchApplied
	err := db.ApplyBatch(b, []byte(`{}`), func(a *ApplyTx) error {
		if err := a.PutGroup([]byte("g"), "g", GroupInFile, []byte(`{"id":"g"}`)); err != nil {
			return err
		}
		for _, id := range ids {
			if err := a.PutUser([]byte(id), true, user(id)); err != nil {
				return err
			}
			if err := a.AddMember([]byte(id), []byte("g")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var met [][]byte
	err = db.ViewSnapshot("acme", func(s *SnapshotTx) error {
		return s.ForEachMember(func(uid, _ []byte) error {
			met = append(met, bytes.Clone(uid))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	sorted := make([][]byte, len(ids))
	for i, id := range ids {
		sorted[i] = []byte(id)
	}
	slices.SortFunc(sorted, MemberOrder)
	if !slices.EqualFunc(met, sorted, bytes.Equal) {
		t.Errorf("MemberOrder sorts %q, ForEachMember meets %q", sorted, met)
	}
}

// TestForEachGroupSetSumsMemberships: ForEachGroupSet gives each user
// with groups the sum of its groups' GroupIDHash, read through an
// overlay that adds and removes memberships, in MemberOrder; a user
// whose groups were all removed is not given; and the group-set hash
// keys an older rosterd stored in ug are skipped by every reader.
func TestForEachGroupSetSumsMemberships(t *testing.T) {
	db := openTestOrg(t, "acme")
	seed(t, db, "acme", 5) // u000 … u004 in g0
	// An older rosterd's stored hashes, beside the memberships, stale.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSnapshots).Bucket([]byte("acme"))
		ug := root.Bucket([]byte(readPtr(root).base)).Bucket(snapUG)
		for _, id := range []string{"u000", "u001", "u003"} {
			if err := ug.Put(pairKey([]byte(id), nil), bytes.Repeat([]byte{7}, 16)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b := newBatch(t, db, "acme", "B2")
	b.Status = BatchApplied
	err = db.ApplyBatchStaged(b, []byte(`{}`), 1, func(a *ApplyTx) error {
		if err := a.PutGroup([]byte("g1"), "Group 1", GroupInFile, []byte(`{"id":"g1"}`)); err != nil {
			return err
		}
		for _, m := range []struct {
			uid, gid string
			add      bool
		}{{"u001", "g1", true}, {"u002", "g0", false}, {"u003", "g1", true}, {"u003", "g0", false}} {
			var err error
			if m.add {
				err = a.AddMember([]byte(m.uid), []byte(m.gid))
			} else {
				err = a.RemoveMember([]byte(m.uid), []byte(m.gid))
			}
			if err != nil {
				return err
			}
			if err := a.Checkpoint(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	g0, g1 := GroupIDHash([]byte("g0")), GroupIDHash([]byte("g1"))
	want := []string{
		fmt.Sprintf("u000 %x", g0),
		fmt.Sprintf("u001 %x", g0.Add(g1)),
		fmt.Sprintf("u003 %x", g1),
		fmt.Sprintf("u004 %x", g0),
	}
	read := func() (sets, members []string) {
		err := db.ViewSnapshot("acme", func(s *SnapshotTx) error {
			err := s.ForEachGroupSet(func(uid []byte, h GroupSetHash) error {
				sets = append(sets, fmt.Sprintf("%s %x", uid, h))
				return nil
			})
			if err != nil {
				return err
			}
			return s.ForEachMember(func(uid, gid []byte) error {
				members = append(members, string(uid)+" "+string(gid))
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return sets, members
	}
	wantMembers := []string{"u000 g0", "u001 g0", "u001 g1", "u003 g1", "u004 g0"}
	if pending, _ := db.PendingMerge("acme"); !pending {
		t.Fatal("no overlay to read through; the test checks less than it says")
	}
	sets, members := read()
	if !slices.Equal(sets, want) || !slices.Equal(members, wantMembers) {
		t.Errorf("through the overlay: group sets %q, memberships %q; want %q, %q", sets, members, want, wantMembers)
	}
	if err := db.MergeOverlay("acme"); err != nil {
		t.Fatal(err)
	}
	sets, members = read()
	if !slices.Equal(sets, want) || !slices.Equal(members, wantMembers) {
		t.Errorf("merged: group sets %q, memberships %q; want %q, %q", sets, members, want, wantMembers)
	}
	if groups, err := db.UserGroups("acme", "u001", "", 0); err != nil || len(groups) != 2 {
		t.Errorf("UserGroups(u001) = %d groups, %v; want 2", len(groups), err)
	}
}
