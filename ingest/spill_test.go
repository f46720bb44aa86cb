package ingest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSpill checks that a spill gives back its records: each in the order
// added (unkeyed) or all of them (keyed), and sorted in key order, records
// of equal keys in the order added; whether they stay in memory or go to
// a file in one run or many.
func TestSpill(t *testing.T) {
	defer func(r, m int) { runBytes, spillMemory = r, m }(runBytes, spillMemory)
	for _, size := range []int{1 << 20, 300, 40} {
		runBytes, spillMemory = size, size
		for _, fields := range []int{1, 2, 3, 4} {
			rng := rand.New(rand.NewPCG(uint64(size), uint64(fields)))
			type rec struct {
				key []byte
				f   []string
			}
			var want []rec
			keyed, plain := newKeyedSpill(t.TempDir(), fields), newSpill(t.TempDir(), fields)
			for i := range 2000 {
				f := make([][]byte, fields)
				strs := make([]string, fields)
				for j := range f {
					// Ids of several lengths, with repeats; now and then
					// a long one (a key length of two bytes).
					strs[j] = fmt.Sprintf("%0*d", 1+rng.IntN(12), rng.IntN(300))
					if rng.IntN(50) == 0 {
						strs[j] += string(bytes.Repeat([]byte("é"), 100))
					}
					if j == fields-1 && fields != 2 {
						strs[j] = fmt.Sprint(i) // tells equal keys apart
					}
					f[j] = []byte(strs[j])
				}
				for _, s := range []*spill{keyed, plain} {
					if err := s.add(f...); err != nil {
						t.Fatal(err)
					}
				}
				want = append(want, rec{appendKeyOf(nil, f), strs})
			}
			collect := func(each func(func([][]byte) error) error) [][]string {
				var got [][]string
				if err := each(func(f [][]byte) error {
					var strs []string
					for _, x := range f {
						strs = append(strs, string(x))
					}
					got = append(got, strs)
					return nil
				}); err != nil {
					t.Fatalf("%d bytes, %d fields: %v", size, fields, err)
				}
				return got
			}
			check := func(what string, got [][]string, want []rec) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%d bytes, %d fields, %s: %d records; want %d", size, fields, what, len(got), len(want))
				}
				for i := range want {
					if !slices.Equal(got[i], want[i].f) {
						t.Fatalf("%d bytes, %d fields, %s: record %d = %q; want %q", size, fields, what, i, got[i], want[i].f)
					}
				}
			}
			check("each of an unkeyed spill", collect(plain.each), want)
			check("each of an unkeyed spill, again", collect(plain.each), want)
			byKey := slices.Clone(want)
			slices.SortStableFunc(byKey, func(a, b rec) int { return bytes.Compare(a.key, b.key) })
			check("sorted", collect(keyed.sorted), byKey)
			all := collect(keyed.each)
			slices.SortStableFunc(all, func(a, b []string) int { return slices.Compare(a, b) })
			wantAll := slices.Clone(want)
			slices.SortStableFunc(wantAll, func(a, b rec) int { return slices.Compare(a.f, b.f) })
			check("each of a keyed spill, sorted", all, wantAll)
			keyed.close()
			plain.close()
		}
	}
}
