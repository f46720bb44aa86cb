package state

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
)

// Group returns a stored group: its name, flags (GroupInFile) and
// directory group JSON.
func (s *SnapshotTx) Group(id []byte) (name string, flags byte, rec []byte, ok bool) {
	v := s.get(iGroups, id)
	if len(v) == 0 {
		return "", 0, nil, false
	}
	name, flags, rec = decodeGroup(v)
	return name, flags, rec, true
}

func decodeGroup(v []byte) (name string, flags byte, rec []byte) {
	n, w := binary.Uvarint(v[1:])
	return string(v[1+w : 1+w+int(n)]), v[0], v[1+w+int(n):]
}

// GroupByName returns the id of the group with the given name.
func (s *SnapshotTx) GroupByName(name string) (string, bool) {
	v := s.get(iNames, []byte(name))
	return string(v), v != nil
}

// PutGroup stores (creates or replaces) a group and keeps the name index:
// a rename frees the old name unless another group already took it.
func (s *SnapshotTx) PutGroup(id []byte, name string, flags byte, rec []byte) error {
	if old := s.get(iGroups, id); old != nil {
		if oldName, _, _ := decodeGroup(old); oldName != name && bytes.Equal(s.get(iNames, []byte(oldName)), id) {
			if err := s.del(iNames, []byte(oldName)); err != nil {
				return err
			}
		}
	} else {
		s.nGroups++
	}
	v := []byte{flags}
	v = binary.AppendUvarint(v, uint64(len(name)))
	v = append(v, name...)
	v = append(v, rec...)
	if err := s.put(iGroups, id, v); err != nil {
		return err
	}
	return s.put(iNames, []byte(name), bytes.Clone(id))
}

// DeleteGroup removes a group (its memberships are the caller's to remove
// first).
func (s *SnapshotTx) DeleteGroup(id []byte) error {
	old := s.get(iGroups, id)
	if old == nil {
		return nil
	}
	s.nGroups--
	if name, _, _ := decodeGroup(old); bytes.Equal(s.get(iNames, []byte(name)), id) {
		if err := s.del(iNames, []byte(name)); err != nil {
			return err
		}
	}
	g := s.groupState(id)
	g.count, g.counted = 0, true
	g.dirty = false // its counter is deleted here
	if err := s.del(iGC, id); err != nil {
		return err
	}
	return s.del(iGroups, id)
}

// ForEachGroup calls fn for every group in id order.
func (s *SnapshotTx) ForEachGroup(fn func(id []byte, name string, flags byte, rec []byte) error) error {
	c := s.cursor(iGroups)
	for k, v := c.first(); k != nil; k, v = c.next() {
		if len(v) == 0 {
			continue
		}
		name, flags, rec := decodeGroup(v)
		if err := fn(k, name, flags, rec); err != nil {
			return err
		}
	}
	return nil
}

// MemberCount returns the number of members of a group.
func (s *SnapshotTx) MemberCount(gid []byte) int { return int(s.memberCount(gid)) }

func (s *SnapshotTx) memberCount(gid []byte) uint64 { return s.countOf(s.groupState(gid), gid) }

// countOf is memberCount of the group g of id gid.
func (s *SnapshotTx) countOf(g *groupState, gid []byte) uint64 {
	if !g.counted {
		g.count, g.counted = s.getUint(iGC, gid), true
	}
	return g.count
}

func (s *SnapshotTx) setMemberCount(gid []byte, n uint64) { s.setCount(s.groupState(gid), n) }

// setCount is setMemberCount of the group g.
func (s *SnapshotTx) setCount(g *groupState, n uint64) {
	g.count, g.counted = n, true
	if !g.dirty {
		g.dirty = true
		s.groups.dirty = append(s.groups.dirty, g)
	}
}

// flushMemberCounts writes the member counts changed since the last flush,
// in key order.
func (s *SnapshotTx) flushMemberCounts() error {
	if s.groups == nil || len(s.groups.dirty) == 0 {
		return nil
	}
	dirty := s.groups.dirty
	slices.SortFunc(dirty, func(a, b *groupState) int { return strings.Compare(a.id, b.id) })
	for _, g := range dirty {
		if !g.dirty {
			continue // deleted since
		}
		g.dirty = false
		var err error
		if g.count == 0 {
			err = s.del(iGC, []byte(g.id))
		} else {
			err = s.putUint(iGC, []byte(g.id), g.count)
		}
		if err != nil {
			return err
		}
	}
	s.groups.dirty = dirty[:0]
	return nil
}
