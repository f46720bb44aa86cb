package ingest

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
	defer func(p int) { noGroupSetHashes, directStageTx, probeLimit, readStoredFirst = false, 0, p, false }(probeLimit)
	for seed := range uint64(80) {
		rng := rand.New(rand.NewPCG(seed, 99))
		// The stored users read before users.csv, after a few rows
		// compared one by one, or not at all (a small file).
		readStoredFirst, probeLimit = seed%3 == 0, []int{4096, 20, 4096}[seed%3]
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

// TestProbeReadsStoredUsers: a users.csv in the snapshot's key order is
// compared by looking its users up (the stored users are never read);
// the same users shuffled make the differ read the stored users a few
// rows in, and compare the rest by hash; and both give the changes and
// events of reading the stored users first.
func TestProbeReadsStoredUsers(t *testing.T) {
	defer func(p int) { probeLimit, readStoredFirst = p, false }(probeLimit)
	probeLimit = 40
	const n = 300
	day := func(version int, rng *rand.Rand) map[schema.Kind]string {
		var u, m strings.Builder
		u.WriteString("user_id,email,first_name,last_name,job_title\n")
		m.WriteString("group_name,user_id\n")
		ids := make([]int, n)
		for i := range ids {
			ids[i] = i
		}
		if rng != nil {
			rng.Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		}
		for _, i := range ids {
			if version > 0 && i%17 == 3 {
				continue // left
			}
			title := "Engineer"
			if version > 0 && i%11 == 5 {
				title = "Manager"
			}
			fmt.Fprintf(&u, "u%04d,u%04d@acme.test,F,L,%s\n", i, i, title)
			fmt.Fprintf(&m, "G%d,u%04d\n", (i+version*(i%7/6))%5, i)
		}
		return map[schema.Kind]string{schema.Users: u.String(), schema.UserGroups: m.String()}
	}
	steps := func(r *diffResult) (names []string) {
		for _, s := range r.steps {
			names = append(names, s.name)
		}
		return names
	}
	events := func(db *state.DB, batch string) (out []string) {
		for _, e := range batchEvents(t, db, "acme", batch) {
			out = append(out, e.Event+" "+string(e.Data))
		}
		return out
	}
	pol := policy{}
	for _, shuffled := range []bool{false, true} {
		var rng *rand.Rand
		if shuffled {
			rng = rand.New(rand.NewPCG(5, 6))
		}
		two := day(1, rng)
		probe, first := testDB(t, "acme"), testDB(t, "acme")
		applyDirect(t, probe, "acme", pol, day(0, nil))
		applyDirect(t, first, "acme", pol, day(0, nil))
		readStoredFirst = false
		bp, rp := applyDirect(t, probe, "acme", pol, two)
		readStoredFirst = true
		bf, _ := applyDirect(t, first, "acme", pol, two)
		readStoredFirst = false
		if read := slices.Contains(steps(rp), "read_stored"); read != shuffled {
			t.Errorf("shuffled %v: the stored users were read: %v (steps %v)", shuffled, read, steps(rp))
		}
		if bp.Status != state.BatchApplied || bp.Changes != bf.Changes || bp.Changes.UsersUpdated == 0 || bp.Changes.UsersDeleted == 0 {
			t.Fatalf("shuffled %v: probing gave %s %+v, reading first %s %+v", shuffled, bp.Status, bp.Changes, bf.Status, bf.Changes)
		}
		if diff := cmp.Diff(events(first, bf.ID), events(probe, bp.ID)); diff != "" {
			t.Errorf("shuffled %v: events differ (-read first +probing):\n%s", shuffled, diff)
		}
	}
}
