package ingest

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

var (
	derivedBenchUsers  = flag.Int("derived-users", 1000000, "users in BenchmarkDerivedDiff's export")
	derivedBenchRounds = flag.Int("derived-rounds", 1, "rounds of BenchmarkDerivedDiff's four cases, interleaved")
)

// BenchmarkDerivedDiff measures the diff of an HR export whose groups
// come from its department, location and a ;-separated teams column
// (derivingPolicy), against the same export with the memberships in a
// user_groups.csv: onto an empty organization (first) and onto the
// snapshot the first upload made, with 2% of the users moved to another
// department (day2). The apply is the same for both: it is not measured.
// The cases run in turn, -derived-rounds times, so that the machine's
// drift weighs on all alike. Run it alone, under the shared lock:
//
//	flock /work/wt/bench.lock go test ./ingest -run '^$' -bench BenchmarkDerivedDiff -benchtime 1x -derived-rounds 5
func BenchmarkDerivedDiff(b *testing.B) {
	n := *derivedBenchUsers
	dir := b.TempDir()
	day1 := writeHRExport(b, filepath.Join(dir, "day1"), n, 0)
	day2 := writeHRExport(b, filepath.Join(dir, "day2"), n, 0.02)
	db, err := state.Open(filepath.Join(dir, "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, org := range []string{"acme", "fresh"} {
		if err := db.CreateOrg(state.Org{Name: org}); err != nil {
			b.Fatal(err)
		}
	}
	// Day 1 onto acme, through the hand-made files.
	applyFiles(b, db, "acme", policy{}, day1, true)
	cases := []struct {
		name    string
		org     string
		files   string
		derived bool
	}{
		{"first/user_groups", "fresh", day1, false}, {"first/derived", "fresh", day1, true},
		{"day2/user_groups", "acme", day2, false}, {"day2/derived", "acme", day2, true},
	}
	for round := range *derivedBenchRounds * len(cases) {
		tc := cases[round%len(cases)]
		b.Run(tc.name, func(b *testing.B) {
			pol := policy{}
			if tc.derived {
				pol = derivingPolicy(b)
			}
			var size int64
			for _, in := range hrInputs(tc.files, !tc.derived) {
				fi, _ := os.Stat(filepath.Join(tc.files, in.name))
				size += fi.Size()
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				err := db.ViewSnapshot(tc.org, func(s *state.SnapshotTx) error {
					r, err := diff(s, pol, schema.Limits{}, hrInputs(tc.files, !tc.derived), b.TempDir())
					if err != nil {
						return err
					}
					defer r.close()
					if r.errors() > 0 {
						return fmt.Errorf("%d errors: %v", r.errors(), r.checker.Issues())
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// hrInputs are the inputs of an export written by writeHRExport: users.csv,
// and user_groups.csv when members.
func hrInputs(dir string, members bool) []input {
	kinds := []schema.Kind{schema.Users}
	if members {
		kinds = append(kinds, schema.UserGroups)
	}
	var out []input
	for _, k := range kinds {
		path := filepath.Join(dir, string(k)+".csv")
		out = append(out, input{kind: k, name: string(k) + ".csv", open: func() (io.ReadCloser, error) { return os.Open(path) }})
	}
	return out
}

// applyFiles diffs and applies the export in dir onto org, staged.
func applyFiles(tb testing.TB, db *state.DB, org string, pol policy, dir string, members bool) {
	tb.Helper()
	var r *diffResult
	err := db.ViewSnapshot(org, func(s *state.SnapshotTx) error {
		var err error
		r, err = diff(s, pol, schema.Limits{}, hrInputs(dir, members), tb.TempDir())
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer r.close()
	b := state.Batch{ID: ulid.Make().String(), Org: org, Status: state.BatchProcessing}
	if _, err := db.CreateBatch(b); err != nil {
		tb.Fatal(err)
	}
	b.Status, b.Changes = state.BatchApplied, r.changes
	if err := db.ApplyBatchStaged(b, nil, 0, r.apply); err != nil {
		tb.Fatal(err)
	}
	if err := db.MergeOverlay(org); err != nil {
		tb.Fatal(err)
	}
}

// writeHRExport writes, into dir, users.csv of n people with a
// department (one of 40), a location (one of 25) and one to three teams
// (of 300) in a ;-separated column, and user_groups.csv with the
// memberships derivingPolicy derives from them, in the users' order. A
// share moved of the people have another department, as on a later day.
func writeHRExport(tb testing.TB, dir string, n int, moved float64) string {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	moves := rand.New(rand.NewPCG(8, 8))
	uf, err := os.Create(filepath.Join(dir, "users.csv"))
	if err != nil {
		tb.Fatal(err)
	}
	mf, err := os.Create(filepath.Join(dir, "user_groups.csv"))
	if err != nil {
		tb.Fatal(err)
	}
	u, m := bufio.NewWriterSize(uf, 1<<20), bufio.NewWriterSize(mf, 1<<20)
	u.WriteString("user_id,email,first_name,last_name,job_title,department_name,work_address_locality,groups\n")
	m.WriteString("group_name,user_id\n")
	for i := range n {
		id := fmt.Sprintf("%08x-%04x", rng.Uint32(), i&0xffff)
		dept, other := fmt.Sprintf("Department %d", rng.IntN(40)), rng.IntN(5)
		if moves.Float64() < moved {
			dept = fmt.Sprintf("Department %d", 40+other)
		}
		site := fmt.Sprintf("Site %d", rng.IntN(25))
		teams := make([]string, 1+rng.IntN(3))
		for j := range teams {
			teams[j] = fmt.Sprintf("Team %d", rng.IntN(300))
		}
		fmt.Fprintf(u, "%s,person%d@acme.example,First%d,Last%d,Engineer,%s,%s,%s\n", id, i, i%997, i%1013, dept, site, strings.Join(teams, "; "))
		seen := map[string]bool{}
		for _, g := range append([]string{"Department: " + dept, site}, teams...) {
			if !seen[g] {
				seen[g] = true
				fmt.Fprintf(m, "%s,%s\n", g, id)
			}
		}
	}
	for _, f := range []struct {
		w *bufio.Writer
		f *os.File
	}{{u, uf}, {m, mf}} {
		if err := f.w.Flush(); err != nil {
			tb.Fatal(err)
		}
		if err := f.f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
