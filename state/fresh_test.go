package state

import (
	"fmt"
	"math/rand/v2"
	"regexp"
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
				if len(got) == 0 {
					return fmt.Errorf("GroupUserIDs(g1) in the middle found no members")
				}
			}
			for _, g := range []int{i % 10, (i*3 + 1) % 10, 9 - i%7} {
				gid := []byte(fmt.Sprintf("g%d", g))
				if err := a.AddMember(uid, gid); err != nil {
					return err
				}
				if err := step(a.EmitMember(EventGroupUserAdded, uid, gid)); err != nil {
					return err
				}
			}
			if i%17 == 3 { // a membership of an earlier user, out of order
				if err := step(a.AddMember(ids[i/2], []byte("g5"))); err != nil {
					return err
				}
			}
			if i%23 == 5 {
				if err := step(a.RemoveMember(uid, []byte(fmt.Sprintf("g%d", i%10)))); err != nil {
					return err
				}
			}
			if i%29 == 7 {
				if err := step(a.RemoveMember(uid, []byte(fmt.Sprintf("g%d", i%10)))); err != nil {
					return err
				}
				if err := step(a.AddMember(uid, []byte(fmt.Sprintf("g%d", i%10)))); err != nil {
					return err
				}
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
