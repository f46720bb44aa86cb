package ingest

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestHashSet(t *testing.T) {
	h := newHasher()
	for _, n := range []int{0, 1, 4, 5, 100, 10000} {
		var s hashSet
		in := map[hkey]bool{}
		for i := range n {
			k := h.key(fmt.Appendf(nil, "u%d", i))
			k.val = uint32(i)
			s.add(k)
			in[hkey{a: k.a, b: k.b}] = true
			if i%7 == 0 { // a repeated key
				k.val = uint32(n + i)
				s.add(k)
			}
		}
		s.seal()
		for i := 1; i < s.len(); i++ {
			if less(s.keys[i], s.keys[i-1]) {
				t.Fatalf("n=%d: keys not sorted at %d", n, i)
			}
		}
		for k := range in {
			if !s.has(k) {
				t.Errorf("n=%d: has(%v) = false; want true", n, k)
			}
		}
		for i := range 1000 {
			k := h.key(fmt.Appendf(nil, "x%d", i))
			if s.has(k) {
				t.Errorf("n=%d: has(x%d) = true; want false", n, i)
			}
		}
		// mark marks every copy of a key and nothing else.
		marked := 0
		for i := 0; i < n; i += 3 {
			if !s.mark(h.key(fmt.Appendf(nil, "u%d", i))) {
				t.Errorf("n=%d: mark(u%d) = false; want true", n, i)
			}
			marked++
			if i%7 == 0 {
				marked++
			}
		}
		got := 0
		for _, k := range s.keys {
			if k.val&foundBit != 0 {
				got++
			}
		}
		if got != marked {
			t.Errorf("n=%d: %d keys marked; want %d", n, got, marked)
		}
	}
}

func TestHashSetSkewed(t *testing.T) {
	// Keys crowded into few runs still sort and match.
	var s hashSet
	r := rand.New(rand.NewPCG(1, 2))
	var keys []hkey
	for range 5000 {
		k := hkey{a: r.Uint64() >> 60 << 60, b: r.Uint32()}
		keys = append(keys, k)
		s.add(k)
	}
	s.seal()
	for _, k := range keys {
		if !s.has(k) {
			t.Fatalf("has(%v) = false; want true", k)
		}
	}
}
