package state

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// A staged apply onto an empty snapshot writes a whole new generation,
// which no reader sees before the flip. A staged apply onto a snapshot
// writes each of its buckets that is empty (users.csv uploaded first:
// no groups, no memberships yet) the same way, and the flip moves those
// buckets into the base in place of the empty ones; the other buckets get
// an overlay. A bucket written fresh starts empty, so the apply can skip
// work it must do on an overlay:
//
//   - a key that sorts after every key written so far to its bucket (the
//     apply writes users and memberships in key order) is absent without
//     a lookup: freshGen.tail;
//   - the group index gu is not written change by change, which touches
//     the last page of every group in every staging transaction, but once
//     at the end, from ug, group by group in key order (buildGU): each of
//     its pages is written once, full;
//   - nothing is merged after the batch: an overlay of a million-user
//     batch of memberships is written twice (overlay, then base) and read
//     over the base until then.
//
// The same holds for a batch's copies of users (event_batches' u), which
// every staged or direct apply starts empty: ApplyTx.duTail.

// guPassBytes bounds the member ids buildGU holds at a time: more than
// that, and it reads ug once for each slice of the groups (a million
// users in three groups each, with 8-byte ids: 36 MB, one pass).
var guPassBytes = 48 << 20

// guTxBytes bounds the keys (and their 16-byte page headers) one buildGU
// transaction writes: bbolt holds each new key in memory, about 110 bytes
// beside the key (more while its list of keys grows), until the
// transaction commits: at 6 MB, about 30 MB.
var guTxBytes = 6 << 20

// freshGen is what a staged apply knows of the new generation it writes.
// It outlives the staging transactions (ApplyTx keeps it across binds).
type freshGen struct {
	whole bool          // a new generation: every bucket fresh
	on    [nSnap]bool   // the buckets written fresh
	tail  [nSnap][]byte // the greatest key written to each bucket so far
	// guDeferred: gu stays empty until buildGU writes it from ug (each
	// group's groupState.guBytes says the memory its member ids take
	// there).
	guDeferred bool
}

// newFreshGen returns what a staged apply knows of the buckets it writes
// fresh: every one (whole), or those of the snapshot's buckets that are
// empty. It returns nil when none is.
func newFreshGen(whole bool, empty [nSnap]bool) *freshGen {
	f := &freshGen{whole: whole}
	any := false
	for i := range f.on {
		f.on[i] = whole || (empty[i] && i != iMeta)
		any = any || f.on[i]
	}
	if !any {
		return nil
	}
	// gu is built from ug at the end when both start empty (they always
	// empty together).
	f.guDeferred = f.on[iUG] && f.on[iGU]
	return f
}

// absent reports whether bucket i is written fresh and k sorts after
// every key written to it, which is then known not to hold k.
func (f *freshGen) absent(i int, k []byte) bool {
	return f.on[i] && (f.tail[i] == nil || bytes.Compare(k, f.tail[i]) > 0)
}

func (f *freshGen) wrote(i int, k []byte) {
	if f.absent(i, k) {
		f.tail[i] = append(f.tail[i][:0], k...)
	}
}

// memberSize is what a member id takes in buildGU's lists.
func memberSize(uid []byte) int { return len(uid) + 4 }

// buildGU writes gu, the members of each group in key order, from ug,
// after a fresh generation's memberships are all written (or, with a nil
// commit, in the middle of the apply when something reads gu). commit,
// when not nil, ends the staging transaction and begins the next, which
// rebinds s; buildGU calls it every guTxBytes.
func (s *SnapshotTx) buildGU(commit func() error) error {
	f := s.fresh
	f.guDeferred = false
	sizes := map[string]int{}
	if s.groups != nil {
		for id, g := range s.groups.m {
			if g.guBytes > 0 {
				sizes[id] = g.guBytes
			}
			g.guBytes = 0
		}
	}
	gids := make([]string, 0, len(sizes))
	for g := range sizes {
		gids = append(gids, g)
	}
	// In gu's order: a key starts with the uvarint of the id's length.
	slices.SortFunc(gids, func(a, b string) int { return MemberOrder([]byte(a), []byte(b)) })
	empty := []byte{}
	var key []byte
	written := 0
	for lo := 0; lo < len(gids); {
		hi, size := lo, 0
		for hi < len(gids) && (hi == lo || size+sizes[gids[hi]] <= guPassBytes) {
			size += sizes[gids[hi]]
			hi++
		}
		lists, err := s.readMembers(gids[lo:hi], sizes)
		if err != nil {
			return err
		}
		for j, gid := range gids[lo:hi] {
			l := &lists[j]
			l.sort()
			prefix := append(binary.AppendUvarint(key[:0], uint64(len(gid))), gid...)
			for m := range l.len() {
				key = append(prefix, l.at(m)...)
				if err := s.put(iGU, key, empty); err != nil {
					return err
				}
				prefix = key[:len(prefix)]
				if written += len(key) + 16; commit != nil && written >= guTxBytes {
					if err := commit(); err != nil {
						return err
					}
					written = 0
				}
			}
			lists[j] = memberList{}
		}
		lo = hi
	}
	return nil
}

// readMembers returns the member ids, from ug, of the groups gids, each
// list allocated at the size that sizes and the member count say.
func (s *SnapshotTx) readMembers(gids []string, sizes map[string]int) ([]memberList, error) {
	idx := make(map[string]int, len(gids))
	lists := make([]memberList, len(gids))
	for i, g := range gids {
		idx[g] = i
		n := int(s.memberCount([]byte(g)))
		lists[i].starts = make([]uint32, 0, n)
		lists[i].buf = make([]byte, 0, max(0, sizes[g]-4*n))
	}
	c := s.base[iUG].Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n, w := binary.Uvarint(k)
		if w+int(n) >= len(k) {
			continue // a group-set hash an older rosterd stored
		}
		uid, gid := k[w:w+int(n)], k[w+int(n):]
		if i, ok := idx[string(gid)]; ok {
			lists[i].add(uid)
		}
	}
	return lists, nil
}

// memberList is a group's member ids, appended to one buffer.
type memberList struct {
	buf    []byte
	starts []uint32
}

func (l *memberList) add(uid []byte) {
	l.starts = append(l.starts, uint32(len(l.buf)))
	l.buf = append(l.buf, uid...)
}

func (l *memberList) len() int { return len(l.starts) }

func (l *memberList) at(i int) []byte {
	end := uint32(len(l.buf))
	if i+1 < len(l.starts) {
		end = l.starts[i+1]
	}
	return l.buf[l.starts[i]:end]
}

// sort puts the ids in byte order (gu's), which ug's order (length
// first) already is when the ids have one length.
func (l *memberList) sort() {
	sorted := true
	for i := 1; i < l.len() && sorted; i++ {
		sorted = bytes.Compare(l.at(i-1), l.at(i)) < 0
	}
	if sorted {
		return
	}
	ids := make([][]byte, l.len())
	for i := range ids {
		ids[i] = l.at(i)
	}
	slices.SortFunc(ids, bytes.Compare)
	var nl memberList
	nl.buf = make([]byte, 0, len(l.buf))
	nl.starts = make([]uint32, 0, len(ids))
	for _, id := range ids {
		nl.add(id)
	}
	*l = nl
}
