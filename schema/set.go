package schema

import "slices"

// lineSet maps 64-bit key hashes to the line where the key was first
// seen: open addressing with linear probing over one slice of 16-byte
// slots, at most half full. It costs one cache miss per lookup-or-insert
// where a Go map costs up to two, which is most of the time of checking a
// million users (see doc.go).
type lineSet struct {
	slots []lineSlot
	n     int
}

type lineSlot struct {
	key  uint64 // 0 = empty (key 0 is stored as 1)
	line int32  // negative once the line has been reported as a duplicate
}

// put records key at line when it is new and returns nil; otherwise it
// returns the slot of the earlier occurrence.
func (s *lineSet) put(key uint64, line int32) *lineSlot {
	if key == 0 {
		key = 1
	}
	if s.n >= len(s.slots)/2 {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.key == key {
			return sl
		}
		if sl.key == 0 {
			sl.key, sl.line = key, line
			s.n++
			return nil
		}
	}
}

// has reports whether key is in the set.
func (s *lineSet) has(key uint64) bool {
	if key == 0 {
		key = 1
	}
	if len(s.slots) == 0 {
		return false
	}
	mask := uint64(len(s.slots) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		switch s.slots[i].key {
		case key:
			return true
		case 0:
			return false
		}
	}
}

func (s *lineSet) len() int { return s.n }

func (s *lineSet) grow() {
	old := s.slots
	s.slots = make([]lineSlot, max(2*len(old), 1024))
	mask := uint64(len(s.slots) - 1)
	for _, sl := range old {
		if sl.key == 0 {
			continue
		}
		i := sl.key & mask
		for s.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = sl
	}
}

// window feeds a lineSet in batches: keys (with their line and value) are
// kept until windowSize of them wait, then sorted by table slot and put in
// that order, so the table is swept front to back instead of hit at random.
// On a million users this cuts the uniqueness checks from about 0.8 s to
// a fraction of it (doc.go). Duplicates are therefore found up to
// windowSize rows late.
type window struct {
	set   lineSet
	buf   []pending
	tmp   []pending
	arena []byte
}

const windowSize = 1 << 16

type pending struct {
	key      uint64
	line     int32
	off, end int32 // the value in arena
}

// add queues key; dup is called from flush for each key seen before.
func (w *window) add(key uint64, line int, value []byte, dup func(value []byte, prev, line int, prevReported bool)) {
	if key == 0 {
		key = 1
	}
	off := len(w.arena)
	w.arena = append(w.arena, value...)
	w.buf = append(w.buf, pending{key: key, line: line32(line), off: int32(off), end: int32(len(w.arena))})
	if len(w.buf) >= windowSize || len(w.arena) >= 1<<24 {
		w.flush(dup)
	}
}

// flush puts every queued key into the set, in slot order.
func (w *window) flush(dup func(value []byte, prev, line int, prevReported bool)) {
	s := &w.set
	for s.n+len(w.buf) > len(s.slots)/2 {
		s.grow()
	}
	// A stable counting sort on the top bits of the slot index: each
	// bucket's keys land in one small region of the table, in line order.
	mask := uint64(len(s.slots) - 1)
	bits := uint(0)
	for 1<<bits < len(s.slots) {
		bits++
	}
	shift := uint(0)
	if bits > 12 {
		shift = bits - 12
	}
	var count [1<<12 + 1]int32
	for _, p := range w.buf {
		count[(p.key&mask)>>shift+1]++
	}
	for i := 1; i < len(count); i++ {
		count[i] += count[i-1]
	}
	w.tmp = slices.Grow(w.tmp[:0], len(w.buf))[:len(w.buf)]
	for _, p := range w.buf {
		b := (p.key & mask) >> shift
		w.tmp[count[b]] = p
		count[b]++
	}
	for _, p := range w.tmp {
		sl := s.put(p.key, p.line)
		if sl == nil {
			continue
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
