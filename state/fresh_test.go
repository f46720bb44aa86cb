package state

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// freshOps is a first upload with everything a new generation's short
// cuts must get right: users in no particular order and ids of several
// lengths (ug's order is not gu's), memberships mostly ascending with
// some out of order, removed, added twice and re-added, deleted users,
// and (readGU) a read of gu in the middle, before buildGU would run.
func freshOps(readGU bool) func(a *ApplyTx) error {
	return func(a *ApplyTx) error {
		rng := rand.New(rand.NewPCG(7, 9))
		ids := make([][]byte, 300)
		for i := range ids {
			ids[i] = []byte(fmt.Sprintf("u%d", i*7%1000))
		}
		step := func(err error) error {
			if err != nil {
				return err
			}
			return a.Checkpoint()
		}
		// members models gu, so that the ops need not read it.
		members := map[string]map[string]bool{}
		add := func(uid []byte, g string) error {
			if members[g] == nil {
				members[g] = map[string]bool{}
			}
			members[g][string(uid)] = true
			return a.AddMember(uid, []byte(g))
		}
		remove := func(uid []byte, g string) error {
			delete(members[g], string(uid))
			return a.RemoveMember(uid, []byte(g))
		}
		for g := range 10 {
			gid := []byte(fmt.Sprintf("g%d", g))
			if err := a.PutGroup(gid, fmt.Sprintf("Group %d", g), GroupInFile, []byte(fmt.Sprintf(`{"id":"g%d"}`, g))); err != nil {
				return err
			}
			if err := step(a.EmitGroup(EventGroupCreated, gid)); err != nil {
				return err
			}
		}
		for _, i := range rng.Perm(len(ids)) {
			if err := a.PutUser(ids[i], i%5 != 0, rec(string(ids[i]), "Engineer")); err != nil {
				return err
			}
			if err := step(a.EmitUser(EventUserCreated, ids[i], nil)); err != nil {
				return err
			}
		}
		for i, uid := range ids {
			if readGU && i == 150 {
				var got []string
				err := a.GroupUserIDs([]byte("g1"), "", func(uid []byte) (bool, error) {
					got = append(got, string(uid))
					return true, nil
				})
				if err != nil {
					return err
				}
				if want := slices.Sorted(maps.Keys(members["g1"])); !slices.Equal(got, want) || len(got) == 0 {
					return fmt.Errorf("GroupUserIDs(g1) in the middle = %q; want %q", got, want)
				}
			}
			for _, g := range []int{i % 10, (i*3 + 1) % 10, 9 - i%7} {
				gid := fmt.Sprintf("g%d", g)
				if err := add(uid, gid); err != nil {
					return err
				}
				if err := step(a.EmitMember(EventGroupUserAdded, uid, []byte(gid))); err != nil {
					return err
				}
			}
			if i%17 == 3 { // a membership of an earlier user, out of order
				if err := step(add(ids[i/2], "g5")); err != nil {
					return err
				}
			}
			if i%23 == 5 {
				if err := step(remove(uid, fmt.Sprintf("g%d", i%10))); err != nil {
					return err
				}
			}
			if i%29 == 7 {
				if err := step(remove(uid, fmt.Sprintf("g%d", i%10))); err != nil {
					return err
				}
				if err := step(add(uid, fmt.Sprintf("g%d", i%10))); err != nil {
					return err
				}
			}
		}
		// g8 loses its members and is deleted; g9 too, and comes back.
		for _, g := range []string{"g8", "g9"} {
			for _, uid := range slices.Sorted(maps.Keys(members[g])) {
				if err := a.EmitMember(EventGroupUserRemoved, []byte(uid), []byte(g)); err != nil {
					return err
				}
				if err := step(remove([]byte(uid), g)); err != nil {
					return err
				}
			}
			if n := a.MemberCount([]byte(g)); n != 0 {
				return fmt.Errorf("MemberCount(%s) = %d after removing its members", g, n)
			}
			if err := a.EmitGroup(EventGroupDeleted, []byte(g)); err != nil {
				return err
			}
			if err := step(a.DeleteGroup([]byte(g))); err != nil {
				return err
			}
		}
		if err := a.PutGroup([]byte("g9"), "Group 9 again", GroupInFile, []byte(`{"id":"g9"}`)); err != nil {
			return err
		}
		for _, uid := range ids[:5] {
			if err := step(add(uid, "g9")); err != nil {
				return err
			}
		}
		for i := 0; i < len(ids); i += 37 {
			for g := range 10 {
				if err := a.RemoveMember(ids[i], []byte(fmt.Sprintf("g%d", g))); err != nil {
					return err
				}
			}
			if err := a.EmitUser(EventUserDeleted, ids[i], nil); err != nil {
				return err
			}
			if err := step(a.DeleteUser(ids[i])); err != nil {
				return err
			}
		}
		return nil
	}
}

// dumpSnapshot returns every key and value of org's snapshot (base and
// overlay, by bucket).
func dumpSnapshot(t *testing.T, db *DB, org string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSnapshots).Bucket([]byte(org))
		p := readPtr(root)
		for _, gen := range []string{p.base, p.overlay} {
			if gen == "" {
				continue
			}
			for _, name := range snapBuckets {
				b := root.Bucket([]byte(gen)).Bucket(name)
				if b == nil {
					continue
				}
				b.ForEach(func(k, v []byte) error {
					out[string(name)] = append(out[string(name)], fmt.Sprintf("%q=%x", k, v))
					return nil
				})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	eventIdentity = regexp.MustCompile(`"id":"evt_[0-9A-Z]+","event":"([a-z._]+)","organization_id":"[a-z]+","batch_id":"[A-Za-z0-9]+","created_at":"[^"]*"`)
	eventOrg      = regexp.MustCompile(`"organization_id":"[a-z]+"`)
)

// feedOf returns org's events without their ids, organization, batch
// and time.
func feedOf(t *testing.T, db *DB, org string) []string {
	t.Helper()
	var out []string
	err := db.ForEachEventJSON(org, "", 0, func(_ string, raw []byte) error {
		e := eventIdentity.ReplaceAllString(string(raw), `"event":"$1"`)
		out = append(out, eventOrg.ReplaceAllString(e, `"organization_id":"ORG"`))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFreshGenerationMatchesDirectApply applies the same first upload in
// one transaction (the snapshot's own buckets, key by key) and staged
// into a new generation (lookups skipped by key order, gu built at the
// end, in several passes and transactions): the snapshots, byte for
// byte, and the event feeds must be the same.
func TestFreshGenerationMatchesDirectApply(t *testing.T) {
	defer func(p, tx int) { guPassBytes, guTxBytes = p, tx }(guPassBytes, guTxBytes)
	guPassBytes, guTxBytes = 200, 300
	db, _ := openTest(t)
	for _, org := range []string{"direct", "staged", "midread"} {
		if err := db.CreateOrg(Org{Name: org}); err != nil {
			t.Fatal(err)
		}
		b := newBatch(t, db, org, "B"+org)
		b.Status = BatchApplied
		var err error
		switch org {
		case "direct":
			err = db.ApplyBatch(b, nil, freshOps(false))
		case "staged":
			err = db.ApplyBatchStaged(b, nil, 7, freshOps(false))
		case "midread":
			err = db.ApplyBatchStaged(b, nil, 7, freshOps(true))
		}
		if err != nil {
			t.Fatalf("apply %s: %v", org, err)
		}
	}
	want, wantFeed := dumpSnapshot(t, db, "direct"), feedOf(t, db, "direct")
	if len(want["gu"]) < 500 || len(wantFeed) < 1000 {
		t.Fatalf("direct apply: %d gu keys, %d events; want a real test", len(want["gu"]), len(wantFeed))
	}
	for _, org := range []string{"staged", "midread"} {
		if diff := cmp.Diff(want, dumpSnapshot(t, db, org)); diff != "" {
			t.Errorf("snapshot of %s differs from the direct apply's (-direct +%s):\n%s", org, org, diff)
		}
		if diff := cmp.Diff(wantFeed, feedOf(t, db, org)); diff != "" {
			t.Errorf("events of %s differ from the direct apply's (-direct +%s):\n%s", org, org, diff)
		}
		if got := leftovers(t, db, org); len(got) != 0 {
			t.Errorf("leftovers of %s: %v", org, got)
		}
	}
}

// TestFreshBucketsMatchDirectApply: an organization whose users came
// first (its groups and memberships empty) gets them in a later batch,
// applied in one transaction, and staged, which writes the empty buckets
// fresh and moves them into the base at the flip (the rest an overlay):
// after the merge, the snapshots, byte for byte, and the event feeds must
// be the same, and a reader during the staging sees the snapshot before.
func TestFreshBucketsMatchDirectApply(t *testing.T) {
	defer func(p, tx int) { guPassBytes, guTxBytes = p, tx }(guPassBytes, guTxBytes)
	guPassBytes, guTxBytes = 200, 300
	db, _ := openTest(t)
	usersOnly := func(a *ApplyTx) error {
		for i := range 300 {
			id := []byte(fmt.Sprintf("u%d", i*7%1000))
			if err := a.PutUser(id, i%5 != 0, rec(string(id), "Engineer")); err != nil {
				return err
			}
			if err := a.EmitUser(EventUserCreated, id, nil); err != nil {
				return err
			}
		}
		return nil
	}
	for _, org := range []string{"direct", "staged", "midread"} {
		if err := db.CreateOrg(Org{Name: org}); err != nil {
			t.Fatal(err)
		}
		b := newBatch(t, db, org, "A"+org)
		b.Status = BatchApplied
		if err := db.ApplyBatch(b, nil, usersOnly); err != nil {
			t.Fatal(err)
		}
	}
	before := dumpSnapshot(t, db, "staged")
	for _, org := range []string{"direct", "staged", "midread"} {
		b := newBatch(t, db, org, "B"+org)
		b.Status = BatchApplied
		var err error
		switch org {
		case "direct":
			err = db.ApplyBatch(b, nil, freshOps(false))
		case "staged":
			err = db.ApplyBatchStaged(b, nil, 7, func(a *ApplyTx) error {
				if a.gen == nil || a.gen.whole || !a.gen.on[iUG] || a.gen.on[iUsers] {
					return fmt.Errorf("staging writes fresh %+v; want the empty buckets", a.gen)
				}
				if err := freshOps(false)(a); err != nil {
					return err
				}
				if got := dumpSnapshot(t, db, org); !cmp.Equal(before, got) {
					return fmt.Errorf("a reader during the staging sees %d ug keys; want the snapshot before", len(got["ug"]))
				}
				return nil
			})
		case "midread":
			err = db.ApplyBatchStaged(b, nil, 7, freshOps(true))
		}
		if err != nil {
			t.Fatalf("apply %s: %v", org, err)
		}
		if err := db.MergeOverlay(org); err != nil {
			t.Fatal(err)
		}
	}
	want, wantFeed := dumpSnapshot(t, db, "direct"), feedOf(t, db, "direct")
	if len(want["gu"]) < 500 || len(wantFeed) < 1000 {
		t.Fatalf("direct apply: %d gu keys, %d events; want a real test", len(want["gu"]), len(wantFeed))
	}
	for _, org := range []string{"staged", "midread"} {
		if diff := cmp.Diff(want, dumpSnapshot(t, db, org)); diff != "" {
			t.Errorf("snapshot of %s differs from the direct apply's (-direct +%s):\n%s", org, org, diff)
		}
		if diff := cmp.Diff(wantFeed, feedOf(t, db, org)); diff != "" {
			t.Errorf("events of %s differ from the direct apply's (-direct +%s):\n%s", org, org, diff)
		}
		if got := leftovers(t, db, org); len(got) != 0 {
			t.Errorf("leftovers of %s: %v", org, got)
		}
	}
}

// BenchmarkFirstUpload stages a first upload of 100,000 users in three
// groups each (of 112 groups), with their events, as ingest applies it:
// groups, then users in id order, then memberships in user order.
func BenchmarkFirstUpload(b *testing.B) {
	const users = 100_000
	recs := make([][]byte, users)
	for i := range recs {
		id := fmt.Sprintf("E%07d", i)
		r := UserRecord{ID: id, Email: "ana." + id + "@example.com", FirstName: "Ana", LastName: "Anason", Known: []Attr{
			{"username", fmt.Sprint("ana", i)}, {"display_name", "Ana Anason"}, {"job_title", fmt.Sprint("Title ", i%100)},
			{"employee_type", "Full-time"}, {"employment_start_date", "2019-01-01"}, {"department_name", fmt.Sprint("Dept ", i%100)},
			{"division_name", fmt.Sprint("Division ", i%10)}, {"cost_center_name", fmt.Sprint("CC-", i%10)}, {"manager_id", "M0000000"},
			{"manager_name", "Manager 0"}, {"manager_email", "manager0@example.com"}, {"work_address_locality", fmt.Sprint("City ", i%50)},
			{"work_address_country", "DE"},
		}}
		recs[i] = r.AppendBinary(nil)
	}
	gid := func(g int) []byte { return []byte(fmt.Sprintf("grp_%032x", g*2654435761%(1<<32))) }
	groupsOf := func(i int) [][]byte { // in id order, as ingest adds them
		gs := [][]byte{gid(i % 100), gid(100 + i%10), gid(110 + i%2)}
		slices.SortFunc(gs, bytes.Compare)
		return gs
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		db, _ := openTest(b)
		if err := db.CreateOrg(Org{Name: "bench"}); err != nil {
			b.Fatal(err)
		}
		batch := Batch{ID: "B1", Org: "bench", Status: BatchProcessing}
		if _, err := db.CreateBatch(batch); err != nil {
			b.Fatal(err)
		}
		batch.Status = BatchApplied
		b.StartTimer()
		err := db.ApplyBatchStaged(batch, nil, 0, func(a *ApplyTx) error {
			for g := range 112 {
				if err := a.PutGroup(gid(g), fmt.Sprint("Group ", g), 0, fmt.Appendf(nil, `{"id":%q}`, gid(g))); err != nil {
					return err
				}
				if err := a.EmitGroup(EventGroupCreated, gid(g)); err != nil {
					return err
				}
				if err := a.Checkpoint(); err != nil {
					return err
				}
			}
			for i, r := range recs {
				id := fmt.Appendf(nil, "E%07d", i)
				if err := a.PutUser(id, true, r); err != nil {
					return err
				}
				if err := a.EmitUser(EventUserCreated, id, nil); err != nil {
					return err
				}
				if err := a.Checkpoint(); err != nil {
					return err
				}
			}
			for i := range recs {
				id := fmt.Appendf(nil, "E%07d", i)
				for _, g := range groupsOf(i) {
					if err := a.AddMember(id, g); err != nil {
						return err
					}
					if err := a.EmitMember(EventGroupUserAdded, id, g); err != nil {
						return err
					}
					if err := a.Checkpoint(); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
}
