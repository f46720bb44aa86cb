package schema

import (
	"math"
	"math/bits"
	"slices"
)

// lineSet maps 64-bit key hashes to the line where the key was first
// seen: open addressing with linear probing over one slice of 16-byte
// slots, at most three quarters full. A key's home slot is its top bits
// scaled to the table (key×len/2⁶⁴), so slot order is key order: a batch
// of keys sorted by their top bits sweeps the table front to back (see
// window), and a grow copies it in order. It costs one cache miss per
// lookup-or-insert where a Go map costs up to two, which is most of the
// time of checking a million users (see doc.go).
type lineSet struct {
	slots []lineSlot
	n     int
}

type lineSlot struct {
	key  uint64 // 0 = empty (key 0 is stored as 1)
	line int32  // negative once the line has been reported as a duplicate
	aux  int32  // the set user's: a user's membership list, a group's number
}

// minSlots is the size of a table's first allocation.
const minSlots = 1024

// slotsFor returns the table size that holds n keys at most 3/4 full.
func slotsFor(n int) int { return max(minSlots, n+n/3+1) }

func (s *lineSet) home(key uint64) int {
	hi, _ := bits.Mul64(key, uint64(len(s.slots)))
	return int(hi)
}

// reserve makes room for n keys in all, so that the set does not grow
// before it holds them. A set that must grow at least doubles.
func (s *lineSet) reserve(n int) {
	want := slotsFor(n)
	if want <= len(s.slots) {
		return
	}
	if len(s.slots) > 0 {
		want = max(want, 2*len(s.slots))
	}
	s.resize(want)
}

// insert returns the slot of key and whether key is new; a new key gets
// line (and aux 0). The slot is valid until the next insert.
func (s *lineSet) insert(key uint64, line int32) (*lineSlot, bool) {
	if key == 0 {
		key = 1
	}
	if 4*(s.n+1) > 3*len(s.slots) {
		s.reserve(s.n + 1)
	}
	i := s.home(key)
	for {
		sl := &s.slots[i]
		if sl.key == key {
			return sl, false
		}
		if sl.key == 0 {
			sl.key, sl.line = key, line
			s.n++
			return sl, true
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// put records key at line when it is new and returns nil; otherwise it
// returns the slot of the earlier occurrence.
func (s *lineSet) put(key uint64, line int32) *lineSlot {
	if sl, isNew := s.insert(key, line); !isNew {
		return sl
	}
	return nil
}

// find returns the slot of key, or nil. The slot is valid until the next
// insert.
func (s *lineSet) find(key uint64) *lineSlot {
	if key == 0 {
		key = 1
	}
	if len(s.slots) == 0 {
		return nil
	}
	i := s.home(key)
	for {
		sl := &s.slots[i]
		switch sl.key {
		case key:
			return sl
		case 0:
			return nil
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

func (s *lineSet) len() int { return s.n }

// resize moves the keys to a table of n slots, in slot order.
func (s *lineSet) resize(n int) {
	old := s.slots
	s.slots = make([]lineSlot, n)
	for _, sl := range old {
		if sl.key == 0 {
			continue
		}
		i := s.home(sl.key)
		for s.slots[i].key != 0 {
			if i++; i == len(s.slots) {
				i = 0
			}
		}
		s.slots[i] = sl
	}
}

// window feeds a lineSet in batches: keys (with their line and value) are
// kept until windowSize of them wait, then sorted by their top bits (which
// is table slot order) and put in that order, so the table is swept front
// to back instead of hit at random. On a million users this cuts the
// uniqueness checks from about 0.8 s to a fraction of it (doc.go).
// Duplicates are therefore found up to windowSize rows late.
type window struct {
	set   lineSet
	buf   []pending
	tmp   []pending
	arena []byte

	// When ordered: every key added, in order, the i-th key's slot having
	// aux i; a key seen before is 0 here once flushed (its slot holds the
	// first). The users file's user_ids are so kept for memberSet.
	ordered bool
	order   []uint64
}

const windowSize = 1 << 16

type pending struct {
	key      uint64
	line     int32
	off, end int32 // the value in arena
	idx      int32 // its place in order
}

// add queues key; dup is called from flush for each key seen before.
func (w *window) add(key uint64, line int, value []byte, dup func(value []byte, prev, line int, prevReported bool)) {
	if key == 0 {
		key = 1
	}
	off := len(w.arena)
	w.arena = append(w.arena, value...)
	idx := 0
	if w.ordered {
		idx = len(w.order)
		w.order = append(w.order, key)
	}
	w.buf = append(w.buf, pending{key: key, line: line32(line), off: int32(off), end: int32(len(w.arena)), idx: int32(min(idx, math.MaxInt32))})
	if len(w.buf) >= windowSize || len(w.arena) >= 1<<24 {
		w.flush(dup)
	}
}

// flush puts every queued key into the set, in slot order.
func (w *window) flush(dup func(value []byte, prev, line int, prevReported bool)) {
	s := &w.set
	s.reserve(s.n + len(w.buf))
	// A stable counting sort on the top 12 bits of the key: each bucket's
	// keys land in one small region of the table, in line order.
	const bucketBits = 12
	var count [1<<bucketBits + 1]int32
	for _, p := range w.buf {
		count[p.key>>(64-bucketBits)+1]++
	}
	for i := 1; i < len(count); i++ {
		count[i] += count[i-1]
	}
	w.tmp = slices.Grow(w.tmp[:0], len(w.buf))[:len(w.buf)]
	for _, p := range w.buf {
		b := p.key >> (64 - bucketBits)
		w.tmp[count[b]] = p
		count[b]++
	}
	for _, p := range w.tmp {
		sl, isNew := s.insert(p.key, p.line)
		if isNew {
			sl.aux = p.idx
			continue
		}
		if w.ordered {
			w.order[p.idx] = 0
		}
		prev, reported := sl.line, sl.line < 0
		if reported {
			prev = -prev
		} else {
			sl.line = -sl.line
		}
		dup(w.arena[p.off:p.end], int(prev), int(p.line), reported)
	}
	w.buf = w.buf[:0]
	w.arena = w.arena[:0]
}
