package ingest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"slices"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// resolvedGroup is what a user_groups.csv group name resolves to, and how
// many memberships of the file name it.
type resolvedGroup struct {
	id  string
	gid []byte
	h   state.GroupSetHash // state.GroupIDHash(gid)
	n   int
	idx []byte // uvarint of its index in differ.groupList
	i   uint32 // its index in differ.groupList
}

// resolve returns the id of the group a user_groups.csv name means: the
// groups.csv group of that name, else the existing group of that name
// (unless groups.csv gives its id to another group), else the derived id.
func (d *differ) resolve(name string) *resolvedGroup {
	if g, ok := d.resolved[name]; ok {
		return g
	}
	id, ok := d.fileNames[name]
	if !ok {
		if sid, found := d.s.GroupByName(name); found && d.fileGroups[sid] == nil {
			id = sid
		} else {
			id = DerivedGroupID(d.org, name)
		}
	}
	if _, ok := d.memNames[id]; !ok {
		d.memNames[id] = name // the first name, in file order, of the group
	}
	g := &resolvedGroup{id: id, gid: []byte(id), h: state.GroupIDHash([]byte(id)), i: uint32(len(d.groupList)), idx: binary.AppendUvarint(nil, uint64(len(d.groupList)))}
	d.groupList = append(d.groupList, g)
	d.resolved[name] = g
	return g
}

// memberKey identifies a membership in d.members. Its top bits are the
// user's hash, so that the memberships of one user share a run of the set
// and the scan of the stored memberships, in user order, finds them in one
// place; the rest are the membership's hashes.
func (d *differ) memberKey(uid, gid []byte) hkey {
	if !bytes.Equal(uid, d.lastUID) { // a user's memberships come together
		d.lastUID = append(d.lastUID[:0], uid...)
		d.lastUIDHash = maphash.Bytes(d.seedA, uid)
	}
	u := d.lastUIDHash
	p := d.pairHash(uid, gid)
	return hkey{a: u&^0xffffffff | p.a&0xffffffff, b: p.b}
}

func (d *differ) readMembers(rd io.Reader, file string) (schema.FileResult, error) {
	return d.r.checker.UserGroups(rd, file, func(m *schema.Membership) error {
		d.uid = append(d.uid[:0], m.UserID...)
		return d.member(d.uid, m.GroupName)
	})
}

// member takes one row of user_groups.csv: user uid in the group named
// name.
func (d *differ) member(uid []byte, name string) error {
	if !d.present(uid) {
		d.r.skippedMembers++ // an inactive user the policy deletes
		return nil
	}
	return d.addMember(uid, name)
}

// addMember takes one membership of the batch of a user that exists
// after it: a row of user_groups.csv or one users.csv gives
// (derivedMembers). The checker lets each through once, whichever gave
// it.
func (d *differ) addMember(uid []byte, name string) error {
	r := d.r
	g := d.resolve(name)
	if d.allNew {
		g.n++
		return r.membersAdded.add(uid, g.gid)
	}
	if d.byHash {
		if !bytes.Equal(uid, d.lastRowUID) {
			d.lastRowUID = append(d.lastRowUID[:0], uid...)
			d.lastRowIdx = d.userIndex(d.hash(uid), &d.nextRow)
		}
		if d.lastRowIdx != noUser { // else the checker has refused the row
			d.setDiff[d.lastRowIdx] = d.setDiff[d.lastRowIdx].Sub(g.h)
		}
		d.rows = append(d.rows, uint64(d.lastRowIdx)<<32|uint64(g.i))
		g.n++
		return nil
	}
	h := d.memberKey(uid, g.gid)
	h.val = uint32(d.fileMembers.Len())
	if h.val >= foundBit {
		return fmt.Errorf("more than %d memberships", foundBit)
	}
	d.members.add(h)
	g.n++
	return d.fileMembers.add(uid, g.idx)
}

// countMembers sums the file's memberships per group id.
func (d *differ) countMembers() {
	for _, g := range d.resolved {
		d.memCount[g.id] += g.n
	}
}

// memberships finds the removed memberships: with a user_groups file, the
// stored ones it does not hold; without one, those of deleted users, and
// those of a group whose name groups.csv now gives to another id (they
// move to that group).
func (d *differ) memberships() error {
	r := d.r
	if d.haveMembers {
		d.countMembers()
	}
	if d.allNew {
		return nil // readMembers has added them all
	}
	if d.byHash {
		return d.changedMemberships()
	}
	if d.haveMembers {
		d.members.seal()
		err := d.s.ForEachMember(func(uid, gid []byte) error {
			if d.members.mark(d.memberKey(uid, gid)) {
				return nil
			}
			return r.membersRemov.add(uid, gid)
		})
		if err != nil {
			return err
		}
		return d.addedMembers()
	}
	deleted := map[string]bool{}
	err := r.usersDeleted.each(func(f [][]byte) error {
		uid := f[0]
		deleted[string(uid)] = true
		return d.s.UserGroupIDs(uid, "", func(gid []byte) (bool, error) {
			d.memDelta[string(gid)]--
			return true, r.membersRemov.add(uid, gid)
		})
	})
	if err != nil || !d.haveGroups {
		return err
	}
	type move struct{ from, to string }
	var moves []move
	err = d.s.ForEachGroup(func(id []byte, name string, _ byte, _ []byte) error {
		if to, ok := d.fileNames[name]; ok && to != string(id) && d.fileGroups[string(id)] == nil {
			moves = append(moves, move{string(id), to})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, mv := range moves {
		from, to := []byte(mv.from), []byte(mv.to)
		err := d.s.GroupUserIDs(from, "", func(uid []byte) (bool, error) {
			if deleted[string(uid)] {
				return true, nil // removed above
			}
			d.memDelta[mv.from]--
			if err := r.membersRemov.add(uid, from); err != nil {
				return false, err
			}
			if d.s.IsMember(uid, to) {
				return true, nil
			}
			d.memDelta[mv.to]++
			return true, r.membersAdded.add(uid, to)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// noGroupSetHashes turns the group-set hash path off (tests compare the
// two paths).
var noGroupSetHashes = false

// noUser is userIndex's answer for a user the users file lacks.
const noUser = ^uint32(0)

// userIndex returns the index in setDiff of the user of hash k, or noUser
// when the users file lacks it. The files usually list users in the same
// order: *next, the index after the last one found, is tried first, which
// saves a random lookup in users.
func (d *differ) userIndex(k hkey, next *uint32) uint32 {
	if n := *next; int(n) < len(d.userA) && d.userA[n] == k.a {
		*next = n + 1
		return n
	}
	d.waitSealed()
	if i, ok := d.users.get(k); ok {
		*next = i + 1
		return i
	}
	return noUser
}

// waitSealed waits until the user set is sorted, when diff sorts it on a
// goroutine of its own.
func (d *differ) waitSealed() {
	if d.sealed != nil {
		<-d.sealed
	}
}

// changedUsers is deletedUsers for the group-set hash path. A scan of the
// stored memberships adds each user's group-set hash to its setDiff (the
// file's hashes were subtracted as user_groups.csv was read); then the
// scan of the stored users that lists the deleted users also collects the
// ids of the users whose group set changed (d.dirty), for
// changedMemberships.
func (d *differ) changedUsers() error {
	r := d.r
	d.waitSealed()
	if !d.allNew {
		err := d.s.ForEachGroupSet(func(uid []byte, h state.GroupSetHash) error {
			if i := d.userIndex(d.hash(uid), &d.nextSet); i != noUser {
				d.setDiff[i] = d.setDiff[i].Add(h)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	d.dirty = make([]bool, len(d.setDiff))
	for i, h := range d.setDiff {
		d.dirty[i] = h != (state.GroupSetHash{})
	}
	d.dirtyIDs = map[uint32][]byte{}
	return d.eachStored(func(id []byte, active bool, i uint32) error {
		if i != noUser {
			if d.dirty[i] {
				id := bytes.Clone(id) // valid only in the transaction's pages
				d.cmp = append(d.cmp, id)
				d.dirtyIDs[i] = id
			}
			return nil
		}
		if active {
			r.activeLost++
		}
		d.cmp = append(d.cmp, bytes.Clone(id))
		return r.usersDeleted.add(id)
	})
}

// changedMemberships finds the added and removed memberships through the
// group-set hashes. Only the users whose stored hash differs from the
// file's and the deleted users (changedUsers) are compared membership by
// membership, with their stored memberships, in the order a scan of all
// the stored memberships would meet them; the added memberships follow
// file order.
func (d *differ) changedMemberships() error {
	r := d.r
	if d.allNew {
		return nil // readMembers has added them all
	}
	// The created users among the changed ones: the scan of the stored
	// users did not meet them.
	err := r.usersCreated.each(func(f [][]byte) error {
		if i, ok := d.users.get(d.hash(f[0])); ok && d.dirty[i] {
			d.dirtyIDs[i] = bytes.Clone(f[0])
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The file's memberships of the changed users, in file order.
	var (
		sel []uint64 // rows of changed users
		set hashSet  // their memberships, val = index in sel
	)
	for _, rw := range d.rows {
		i := uint32(rw >> 32)
		if i == noUser || !d.dirty[i] {
			continue
		}
		k := d.memberKey(d.dirtyIDs[i], d.groupList[uint32(rw)].gid)
		k.val = uint32(len(sel))
		set.add(k)
		sel = append(sel, rw)
	}
	set.seal()
	slices.SortFunc(d.cmp, state.MemberOrder)
	for _, uid := range d.cmp {
		err := d.s.UserGroupIDs(uid, "", func(gid []byte) (bool, error) {
			if set.mark(d.memberKey(uid, gid)) {
				return true, nil
			}
			return true, r.membersRemov.add(uid, gid)
		})
		if err != nil {
			return err
		}
	}
	var recs []uint32
	for _, k := range set.keys {
		if k.val&foundBit == 0 {
			recs = append(recs, k.val)
		}
	}
	slices.Sort(recs)
	for _, n := range recs {
		rw := sel[n]
		if err := r.membersAdded.add(d.dirtyIDs[uint32(rw>>32)], d.groupList[uint32(rw)].gid); err != nil {
			return err
		}
	}
	return nil
}

// addedMembers lists, in file order, the memberships of the user_groups
// file that the scan of the stored ones did not find.
func (d *differ) addedMembers() error {
	var recs []uint32
	for _, k := range d.members.keys {
		if k.val&foundBit == 0 {
			recs = append(recs, k.val)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	slices.Sort(recs)
	i, n := 0, uint32(0)
	return d.fileMembers.each(func(f [][]byte) error {
		for i < len(recs) && recs[i] == n {
			i++
			g, _ := binary.Uvarint(f[1])
			if err := d.r.membersAdded.add(f[0], d.groupList[g].gid); err != nil {
				return err
			}
		}
		n++
		return nil
	})
}
