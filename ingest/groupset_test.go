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

// checkGroupSets checks every user's stored group-set hash against its
// stored memberships.
func checkGroupSets(t *testing.T, db *state.DB, org string) {
	t.Helper()
	err := db.ViewSnapshot(org, func(s *state.SnapshotTx) error {
		if !s.HasGroupSetHashes() {
			t.Fatal("snapshot has no group-set hashes")
		}
		look := s.UserGroupSetLookup()
		return s.ForEachUser(func(id, _ []byte, _ bool) error {
			var want state.GroupSetHash
			s.UserGroupIDs(id, "", func(gid []byte) (bool, error) {
				want = want.Add(state.GroupIDHash(gid))
				return true, nil
			})
			if got := look(id); got != want {
				t.Errorf("user %s: group-set hash %x, memberships give %x", id, got, want)
			}
			return nil
		})
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
