package ingest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// shuffleRows shuffles the data rows of a CSV file (keeping the header),
// so that a user's memberships do not come together.
func shuffleRows(rng *rand.Rand, csv string) string {
	lines := strings.Split(strings.TrimSuffix(csv, "\n"), "\n")
	if len(lines) < 3 {
		return csv
	}
	rows := lines[1:]
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	return strings.Join(lines, "\n") + "\n"
}

// checkGroupSets checks the group-set hash ForEachGroupSet gives each
// user against the user's memberships, one by one: every user with
// groups once, in MemberOrder, none without.
func checkGroupSets(t *testing.T, db *state.DB, org string) {
	t.Helper()
	err := db.ViewSnapshot(org, func(s *state.SnapshotTx) error {
		want := map[string]state.GroupSetHash{}
		err := s.ForEachUser(func(id, _ []byte, _ bool) error {
			return s.UserGroupIDs(id, "", func(gid []byte) (bool, error) {
				want[string(id)] = want[string(id)].Add(state.GroupIDHash(gid))
				return true, nil
			})
		})
		if err != nil {
			return err
		}
		var last []byte
		n := 0
		err = s.ForEachGroupSet(func(uid []byte, h state.GroupSetHash) error {
			if last != nil && state.MemberOrder(last, uid) >= 0 {
				t.Errorf("ForEachGroupSet gave %q after %q", uid, last)
			}
			last = append(last[:0], uid...)
			if w, ok := want[string(uid)]; !ok || h != w {
				t.Errorf("user %s: group-set hash %x, memberships give %x (%v)", uid, h, w, ok)
			}
			n++
			return nil
		})
		if n != len(want) {
			t.Errorf("ForEachGroupSet gave %d users; %d have groups", n, len(want))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupSetHashPath applies random sequences of batches, with the
// memberships in random order, once through the group-set hash path and
// once through the full scan, and wants the same events in the same order,
// the same changes and the same snapshot; and stored hashes that match
// the stored memberships.
func TestGroupSetHashPath(t *testing.T) {
	defer func() { noGroupSetHashes, directStageTx = false, 0 }()
	for seed := range uint64(80) {
		rng := rand.New(rand.NewPCG(seed, 99))
		directStageTx = 0
		if seed%2 == 1 { // staged: a fresh generation, then overlays
			directStageTx = 1 + int(seed%5)
		}
		pol := policy{inactiveDelete: seed%3 == 0}
		dbHash, dbScan := testDB(t, "acme"), testDB(t, "acme")
		for day := range 5 {
			files := randomFiles(rng)
			if m, ok := files[schema.UserGroups]; ok && rng.IntN(2) == 0 {
				files[schema.UserGroups] = shuffleRows(rng, m)
			}
			noGroupSetHashes = false
			bh, _ := applyDirect(t, dbHash, "acme", pol, files)
			noGroupSetHashes = true
			bs, _ := applyDirect(t, dbScan, "acme", pol, files)
			where := fmt.Sprintf("seed %d day %d, files %v", seed, day, files)
			if bh.Status != bs.Status || bh.Changes != bs.Changes {
				t.Fatalf("%s: hash path %s %+v, scan %s %+v", where, bh.Status, bh.Changes, bs.Status, bs.Changes)
			}
			evs := func(db *state.DB, batch string) []string {
				var out []string
				for _, e := range batchEvents(t, db, "acme", batch) {
					out = append(out, e.Event+" "+string(e.Data))
				}
				return out
			}
			if diff := cmp.Diff(evs(dbScan, bs.ID), evs(dbHash, bh.ID)); diff != "" {
				t.Fatalf("%s: events differ (-scan +hash):\n%s", where, diff)
			}
			if diff := cmp.Diff(readModel(t, dbScan, "acme"), readModel(t, dbHash, "acme")); diff != "" {
				t.Fatalf("%s: snapshots differ (-scan +hash):\n%s", where, diff)
			}
			checkGroupSets(t, dbHash, "acme")
			checkGroupSets(t, dbScan, "acme")
		}
	}
}
