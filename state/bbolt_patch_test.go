package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestFreshGenerationAppend checks the patched bbolt (third_party/
// go.etcd.io/bbolt/PATCHES.md): Puts in key order append to the
// rightmost leaf without a search, which must leave the same keys, in
// order, and a tree bbolt's own check accepts, whatever comes between
// them: keys out of order, existing keys overwritten, deletes of the
// last keys, nested buckets, several transactions, and writes that
// span pages of several levels; with writes of consecutive pages in
// one call (patch 0002) and pages larger than a run.
func TestFreshGenerationAppend(t *testing.T) {
	db, _ := openTest(t)
	want := map[string]string{}
	rng := rand.New(rand.NewPCG(1, 2))
	key := func(i int) []byte { return fmt.Appendf(nil, "k%09d", i) }
	val := func(i, round int) []byte {
		n := 10 + i%50
		if i%20011 == 0 {
			n = 3 << 20 // larger than a write run (1 MiB): an overflow page of its own
		}
		return bytes.Repeat([]byte{byte('a' + (i+round)%26)}, n)
	}
	next := 0
	for round := range 6 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("t"))
			if err != nil {
				return err
			}
			b.FillPercent = 0.9
			for range 20000 {
				switch r := rng.IntN(100); {
				case r < 85 || next == 0: // the next key, in order
					if err := b.Put(key(next), val(next, round)); err != nil {
						return err
					}
					want[string(key(next))] = string(val(next, round))
					next++
				case r < 92: // an earlier key, overwritten
					i := rng.IntN(next)
					if err := b.Put(key(i), val(i, round+1)); err != nil {
						return err
					}
					want[string(key(i))] = string(val(i, round+1))
				case r < 97: // one of the last keys, deleted
					i := max(0, next-1-rng.IntN(3))
					if err := b.Delete(key(i)); err != nil {
						return err
					}
					delete(want, string(key(i)))
				default: // a nested bucket among the keys
					name := fmt.Appendf(nil, "k%09d-b", next-1)
					if _, err := b.CreateBucketIfNotExists(name); err != nil {
						return err
					}
					want[string(name)] = "<bucket>"
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		var got []string
		c := tx.Bucket([]byte("t")).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			w, ok := want[string(k)]
			switch {
			case !ok:
				t.Errorf("key %s: not written, or deleted", k)
			case v == nil && w != "<bucket>", v != nil && string(v) != w:
				t.Errorf("key %s: value of %d bytes, want %d", k, len(v), len(w))
			}
			got = append(got, string(k))
		}
		if !slices.IsSorted(got) {
			t.Errorf("keys out of order")
		}
		if len(got) != len(want) {
			t.Errorf("%d keys, want %d", len(got), len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
