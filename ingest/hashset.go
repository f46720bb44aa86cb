package ingest

import (
	"hash/maphash"
	"math/bits"
)

// hkey identifies a user id or a membership in the differ's sets: 96 bits
// of two independent hashes, so that a collision (a deletion missed, or a
// membership taken as already stored) is far less likely than a disk
// returning wrong bytes (about 2^-50 for three million memberships), and a
// 32-bit value beside it.
type hkey struct {
	a   uint64
	b   uint32
	val uint32
}

// hashSet is a set of hkeys built in two steps: add every key, then seal,
// which sorts them in place by their top bits (a radix sort, no second
// array) and indexes where each run of equal top bits starts, so that a
// lookup reads the index and one short run: about two cache misses, where
// a binary search over millions of keys takes twenty. Its memory is 16
// bytes per key and about 2 bytes per key for the index.
type hashSet struct {
	keys  []hkey
	start []uint32 // len 1<<bits + 1: keys[start[i]:start[i+1]] have top bits i
	shift uint
}

type hasher struct{ seedA, seedB maphash.Seed }

func newHasher() hasher { return hasher{maphash.MakeSeed(), maphash.MakeSeed()} }

func (h hasher) key(b []byte) hkey {
	return hkey{a: maphash.Bytes(h.seedA, b), b: uint32(maphash.Bytes(h.seedB, b))}
}

func (s *hashSet) add(k hkey) { s.keys = append(s.keys, k) }

func (s *hashSet) len() int { return len(s.keys) }

// seal sorts the keys and builds the index; add must not be called after.
func (s *hashSet) seal() {
	n := len(s.keys)
	nb := 1
	if n > 4 {
		nb = bits.Len(uint(n)) - 2 // about 2 to 4 keys per run
	}
	nb = min(nb, 24)
	s.shift = uint(64 - nb)
	buckets := 1 << nb
	s.start = make([]uint32, buckets+1)
	for _, k := range s.keys {
		s.start[(k.a>>s.shift)+1]++
	}
	for i := 1; i <= buckets; i++ {
		s.start[i] += s.start[i-1]
	}
	// American flag sort: move each key into its run, in place.
	next := make([]uint32, buckets)
	copy(next, s.start[:buckets])
	for b := range buckets {
		end := s.start[b+1]
		for next[b] < end {
			k := s.keys[next[b]]
			kb := int(k.a >> s.shift)
			for kb != b {
				s.keys[next[kb]], k = k, s.keys[next[kb]]
				next[kb]++
				kb = int(k.a >> s.shift)
			}
			s.keys[next[b]] = k
			next[b]++
		}
	}
	// Each run is short: insertion sort, so that equal keys are adjacent
	// and the order is the same whatever order they were added in.
	for b := range buckets {
		run := s.keys[s.start[b]:s.start[b+1]]
		for i := 1; i < len(run); i++ {
			for j := i; j > 0 && less(run[j], run[j-1]); j-- {
				run[j], run[j-1] = run[j-1], run[j]
			}
		}
	}
}

func less(x, y hkey) bool {
	if x.a != y.a {
		return x.a < y.a
	}
	if x.b != y.b {
		return x.b < y.b
	}
	return x.val < y.val
}

// run returns the keys with k's top bits.
func (s *hashSet) run(k hkey) []hkey {
	if len(s.keys) == 0 {
		return nil
	}
	b := k.a >> s.shift
	return s.keys[s.start[b]:s.start[b+1]]
}

func (s *hashSet) has(k hkey) bool {
	for _, e := range s.run(k) {
		if e.a == k.a && e.b == k.b {
			return true
		}
	}
	return false
}

// get returns the val of a key equal to k (the first, when several are).
func (s *hashSet) get(k hkey) (uint32, bool) {
	for _, e := range s.run(k) {
		if e.a == k.a && e.b == k.b {
			return e.val, true
		}
	}
	return 0, false
}

// foundBit marks, in val, a key that mark found.
const foundBit = 1 << 31

// mark sets foundBit on every key equal to k and reports whether there was
// one.
func (s *hashSet) mark(k hkey) bool {
	found := false
	r := s.run(k)
	for i := range r {
		if r[i].a == k.a && r[i].b == k.b {
			r[i].val |= foundBit
			found = true
		}
	}
	return found
}
