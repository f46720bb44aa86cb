package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// GroupSetHash is an order-independent hash of a set of group ids: the
// sum, lane by lane modulo 2^64, of the first 16 bytes of the SHA-256 of
// each id (GroupIDHash). The empty set hashes to zero. Equal sets give
// equal hashes; different sets an equal one with a chance of about 2^-128.
type GroupSetHash [2]uint64

// Add returns h with the group of hash g added.
func (h GroupSetHash) Add(g GroupSetHash) GroupSetHash { return GroupSetHash{h[0] + g[0], h[1] + g[1]} }

// Sub returns h with the group of hash g removed.
func (h GroupSetHash) Sub(g GroupSetHash) GroupSetHash { return GroupSetHash{h[0] - g[0], h[1] - g[1]} }

// GroupIDHash is the hash of one group id in a GroupSetHash.
func GroupIDHash(gid []byte) GroupSetHash {
	sum := sha256.Sum256(gid)
	return GroupSetHash{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])}
}

// ForEachGroupSet calls fn for every user with groups, in MemberOrder of
// the user ids, with the group-set hash of the user's groups. It sums the
// hashes as it reads the index of memberships from end to end (a user's
// memberships are together there, each group hashed once): at a million
// users a sequential scan, where a lookup per user in random order would
// cost a search of the tree each. Nothing stores the hashes, so no change
// of memberships costs a write for them. uid is valid only during fn.
func (s *SnapshotTx) ForEachGroupSet(fn func(uid []byte, h GroupSetHash) error) error {
	hashes := map[string]GroupSetHash{}
	var (
		cur  []byte
		sum  GroupSetHash
		have bool
	)
	each := func(k []byte) error {
		n, w := binary.Uvarint(k)
		if w+int(n) >= len(k) {
			return nil // a group-set hash an older rosterd stored
		}
		uid, gid := k[w:w+int(n)], k[w+int(n):]
		if !have || !bytes.Equal(uid, cur) {
			if have {
				if err := fn(cur, sum); err != nil {
					return err
				}
			}
			cur, sum, have = append(cur[:0], uid...), GroupSetHash{}, true
		}
		h, ok := hashes[string(gid)]
		if !ok {
			h = GroupIDHash(gid)
			hashes[string(gid)] = h
		}
		sum = sum.Add(h)
		return nil
	}
	if s.over[iUG] == nil && s.base[iUG] != nil { // no overlay: the plain cursor is faster
		c := s.base[iUG].Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := each(k); err != nil {
				return err
			}
		}
	} else {
		c := s.cursor(iUG)
		for k, _ := c.first(); k != nil; k, _ = c.next() {
			if err := each(k); err != nil {
				return err
			}
		}
	}
	if !have {
		return nil
	}
	return fn(cur, sum)
}

type guOp struct {
	key []byte
	seq int // changes to one key keep their order
	del bool
}

// flushGU writes the pending changes to gu in key order.
func (s *SnapshotTx) flushGU() error {
	if len(s.guOps) == 0 {
		return nil
	}
	slices.SortFunc(s.guOps, func(a, b guOp) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	for _, op := range s.guOps {
		var err error
		if op.del {
			err = s.del(iGU, op.key)
		} else {
			err = s.put(iGU, op.key, []byte{})
		}
		if err != nil {
			return err
		}
	}
	s.guOps = s.guOps[:0]
	return nil
}

func pairKey(a, b []byte) []byte {
	return appendPairKey(make([]byte, 0, binary.MaxVarintLen64+len(a)+len(b)), a, b)
}

func appendPairKey(k, a, b []byte) []byte {
	k = binary.AppendUvarint(k, uint64(len(a)))
	k = append(k, a...)
	return append(k, b...)
}

// IsMember reports whether the user is a member of the group.
func (s *SnapshotTx) IsMember(uid, gid []byte) bool {
	return s.get(iUG, pairKey(uid, gid)) != nil
}

// AddMember adds a membership; adding an existing one is a no-op.
func (s *SnapshotTx) AddMember(uid, gid []byte) error {
	s.kbuf = appendPairKey(s.kbuf[:0], uid, gid) // bbolt copies keys
	k := s.kbuf
	if s.get(iUG, k) != nil {
		return nil
	}
	g := s.groupState(gid) // once: a user's groups alternate
	if err := s.put(iUG, k, []byte{}); err != nil {
		return err
	}
	if s.fresh != nil && s.fresh.guDeferred {
		g.guBytes += memberSize(uid)
	} else {
		s.guOps = append(s.guOps, guOp{key: pairKey(gid, uid), seq: len(s.guOps)})
	}
	s.nMemberships++
	s.setCount(g, s.countOf(g, gid)+1)
	return nil
}

// AddMembers adds memberships (uids[i], gids[i]), inserting both indexes
// in key order: bbolt keeps a transaction's new keys in unsplit nodes
// until commit, so many keys in random order would cost a memmove each
// over a huge node. Existing memberships are skipped.
func (s *SnapshotTx) AddMembers(uids, gids [][]byte) error {
	if err := s.flushGU(); err != nil { // keep the order of the changes
		return err
	}
	type pair struct{ ug, gu []byte }
	pairs := make([]pair, 0, len(uids))
	counts := map[string]uint64{}
	for i := range uids {
		k := pairKey(uids[i], gids[i])
		if s.get(iUG, k) != nil {
			continue
		}
		pairs = append(pairs, pair{k, pairKey(gids[i], uids[i])})
		counts[string(gids[i])]++
	}
	slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.ug, b.ug) })
	pairs = slices.CompactFunc(pairs, func(a, b pair) bool { return bytes.Equal(a.ug, b.ug) })
	for _, p := range pairs {
		if err := s.put(iUG, p.ug, []byte{}); err != nil {
			return err
		}
	}
	if s.fresh != nil && s.fresh.guDeferred {
		for _, p := range pairs {
			n, w := binary.Uvarint(p.ug)
			uid, gid := p.ug[w:w+int(n)], p.ug[w+int(n):]
			s.groupState(gid).guBytes += memberSize(uid)
		}
	} else {
		slices.SortFunc(pairs, func(a, b pair) int { return bytes.Compare(a.gu, b.gu) })
		for _, p := range pairs {
			if err := s.put(iGU, p.gu, []byte{}); err != nil {
				return err
			}
		}
	}
	s.nMemberships += len(pairs)
	if len(pairs) != len(uids) { // duplicates in the call: count again
		clear(counts)
		for _, p := range pairs {
			n, w := binary.Uvarint(p.gu)
			counts[string(p.gu[w:w+int(n)])]++
		}
	}
	gidsSorted := make([]string, 0, len(counts))
	for g := range counts {
		gidsSorted = append(gidsSorted, g)
	}
	slices.Sort(gidsSorted)
	for _, gid := range gidsSorted {
		s.setMemberCount([]byte(gid), s.memberCount([]byte(gid))+counts[gid])
	}
	return nil
}

// RemoveMember removes a membership; removing a missing one is a no-op.
func (s *SnapshotTx) RemoveMember(uid, gid []byte) error {
	k := pairKey(uid, gid)
	if s.get(iUG, k) == nil {
		return nil
	}
	if err := s.del(iUG, k); err != nil {
		return err
	}
	g := s.groupState(gid)
	if s.fresh != nil && s.fresh.guDeferred {
		g.guBytes -= memberSize(uid)
	} else {
		s.guOps = append(s.guOps, guOp{key: pairKey(gid, uid), seq: len(s.guOps), del: true})
	}
	s.nMemberships--
	s.setCount(g, max(s.countOf(g, gid), 1)-1)
	return nil
}

// ForEachMember calls fn for every membership, in MemberOrder of the user
// ids, then by group id.
func (s *SnapshotTx) ForEachMember(fn func(uid, gid []byte) error) error {
	each := func(k []byte) error {
		n, w := binary.Uvarint(k)
		if w+int(n) == len(k) {
			return nil // a group-set hash an older rosterd stored
		}
		return fn(k[w:w+int(n)], k[w+int(n):])
	}
	if s.over[iUG] == nil && s.base[iUG] != nil { // no overlay: the plain cursor is faster
		c := s.base[iUG].Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := each(k); err != nil {
				return err
			}
		}
		return nil
	}
	c := s.cursor(iUG)
	for k, _ := c.first(); k != nil; k, _ = c.next() {
		if err := each(k); err != nil {
			return err
		}
	}
	return nil
}

// MemberOrder compares two user ids in the order in which ForEachMember
// meets their memberships: the order of the index's keys, each the
// uvarint of the id's length and then the id (for ids under 128 bytes,
// shorter ids first, then byte order).
func MemberOrder(a, b []byte) int {
	var pa, pb [binary.MaxVarintLen64]byte
	// A uvarint is no prefix of another: unequal ones decide.
	if c := bytes.Compare(binary.AppendUvarint(pa[:0], uint64(len(a))), binary.AppendUvarint(pb[:0], uint64(len(b)))); c != 0 {
		return c
	}
	return bytes.Compare(a, b)
}

// UserGroupIDs calls fn with the id of each group of the user, in id order,
// starting after after ("" = from the first).
func (s *SnapshotTx) UserGroupIDs(uid []byte, after string, fn func(gid []byte) (more bool, err error)) error {
	return forEachPair(s.cursor(iUG), uid, after, fn)
}

// GroupUserIDs calls fn with the id of each member of the group, in id
// order, starting after after.
func (s *SnapshotTx) GroupUserIDs(gid []byte, after string, fn func(uid []byte) (more bool, err error)) error {
	if s.fresh != nil && s.fresh.guDeferred {
		if err := s.buildGU(nil); err != nil {
			return err
		}
	}
	if err := s.flushGU(); err != nil {
		return err
	}
	return forEachPair(s.cursor(iGU), gid, after, fn)
}

func forEachPair(c *mcursor, a []byte, after string, fn func([]byte) (bool, error)) error {
	prefix := pairKey(a, nil)
	k, _ := c.seek(append(bytes.Clone(prefix), after...))
	if k != nil && after != "" && string(k[len(prefix):]) == after && bytes.HasPrefix(k, prefix) {
		k, _ = c.next()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.next() {
		if len(k) == len(prefix) {
			continue // in ug, a group-set hash an older rosterd stored
		}
		more, err := fn(k[len(prefix):])
		if err != nil || !more {
			return err
		}
	}
	return nil
}
