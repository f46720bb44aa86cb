package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// An organization's snapshot lives in snapshots/ORG/ as nested buckets:
//
//	users   user id -> state byte ('a' active, 'i' inactive) + directory user JSON
//	groups  group id -> flags byte + uvarint len(name) + name + directory group JSON
//	names   group name -> group id (every existing group; names are unique)
//	ug      uvarint len(user id) + user id + group id -> "" (a user's groups)
//	gu      uvarint len(group id) + group id + user id -> "" (a group's users)
//	gc      group id -> uint64 member count (big endian)
//	meta    "users", "active", "memberships" -> uint64 counters
//
// Records are stored as the JSON the API and the events show, so reads and
// events copy bytes instead of encoding; the caller (ingest) renders them
// deterministically so that equal content means equal bytes.
var (
	snapUsers   = []byte("users")
	snapGroups  = []byte("groups")
	snapNames   = []byte("names")
	snapUG      = []byte("ug")
	snapGU      = []byte("gu")
	snapGC      = []byte("gc")
	snapMeta    = []byte("meta")
	snapBuckets = [][]byte{snapUsers, snapGroups, snapNames, snapUG, snapGU, snapGC, snapMeta}

	metaUsers       = []byte("users")
	metaActive      = []byte("active")
	metaMemberships = []byte("memberships")
)

// GroupInFile flags a group that groups.csv defines (as opposed to one that
// exists only because user_groups.csv names it).
const GroupInFile byte = 1

// SnapshotCounts are an organization's snapshot totals.
type SnapshotCounts struct {
	Users       int `json:"users"`
	Active      int `json:"active"`
	Groups      int `json:"groups"`
	Memberships int `json:"memberships"`
}

// SnapshotTx is an organization's snapshot inside one bbolt transaction:
// read-only under ViewSnapshot, writable inside ApplyBatch. Byte slices it
// returns are valid only until the transaction ends; a writable SnapshotTx
// keeps the counters in step with every change.
type SnapshotTx struct {
	org                                    string
	users, groups, names, ug, gu, gc, meta *bolt.Bucket
	nUsers, nActive, nMemberships          int
	writable                               bool
}

// openSnapshot returns org's snapshot in tx; in a writable tx the buckets
// are created. In a read-only tx with no snapshot yet, the buckets are nil
// and every read answers "empty".
func openSnapshot(tx *bolt.Tx, org string) (*SnapshotTx, error) {
	s := &SnapshotTx{org: org, writable: tx.Writable()}
	top := tx.Bucket(bucketSnapshots)
	root := top.Bucket([]byte(org))
	if root == nil && s.writable {
		var err error
		if root, err = top.CreateBucket([]byte(org)); err != nil {
			return nil, err
		}
	}
	if root == nil {
		return s, nil
	}
	bs := make([]*bolt.Bucket, len(snapBuckets))
	for i, name := range snapBuckets {
		b := root.Bucket(name)
		if b == nil && s.writable {
			var err error
			if b, err = root.CreateBucket(name); err != nil {
				return nil, err
			}
		}
		bs[i] = b
	}
	s.users, s.groups, s.names, s.ug, s.gu, s.gc, s.meta = bs[0], bs[1], bs[2], bs[3], bs[4], bs[5], bs[6]
	if s.users != nil && s.writable {
		// Ids are mostly inserted in order on a first upload.
		s.users.FillPercent = 0.9
	}
	s.nUsers = int(getUint(s.meta, metaUsers))
	s.nActive = int(getUint(s.meta, metaActive))
	s.nMemberships = int(getUint(s.meta, metaMemberships))
	return s, nil
}

func getUint(b *bolt.Bucket, k []byte) uint64 {
	if b == nil {
		return 0
	}
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, k []byte, n uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, n))
}

// flush stores the counters. ApplyBatch calls it before commit.
func (s *SnapshotTx) flush() error {
	if !s.writable {
		return nil
	}
	for _, kv := range []struct {
		k []byte
		n int
	}{{metaUsers, s.nUsers}, {metaActive, s.nActive}, {metaMemberships, s.nMemberships}} {
		if err := putUint(s.meta, kv.k, uint64(kv.n)); err != nil {
			return err
		}
	}
	return nil
}

// Org returns the organization's name.
func (s *SnapshotTx) Org() string { return s.org }

// Counts returns the snapshot's totals as of now in the transaction.
func (s *SnapshotTx) Counts() SnapshotCounts {
	c := SnapshotCounts{Users: s.nUsers, Active: s.nActive, Memberships: s.nMemberships}
	if s.groups != nil {
		c.Groups = s.groups.Stats().KeyN
	}
	return c
}

// User returns the stored directory user JSON of id and whether it is
// active.
func (s *SnapshotTx) User(id []byte) (rec []byte, active, ok bool) {
	if s.users == nil {
		return nil, false, false
	}
	v := s.users.Get(id)
	if len(v) == 0 {
		return nil, false, false
	}
	return v[1:], v[0] == 'a', true
}

// PutUser stores (creates or replaces) a user. rec must stay unchanged
// until the transaction ends.
func (s *SnapshotTx) PutUser(id []byte, active bool, rec []byte) error {
	old := s.users.Get(id)
	if old != nil {
		s.nUsers--
		if old[0] == 'a' {
			s.nActive--
		}
	}
	v := make([]byte, 1+len(rec))
	v[0] = 'i'
	if active {
		v[0] = 'a'
		s.nActive++
	}
	copy(v[1:], rec)
	s.nUsers++
	return s.users.Put(id, v)
}

// DeleteUser removes a user. Its memberships are the caller's to remove
// first (RemoveMember).
func (s *SnapshotTx) DeleteUser(id []byte) error {
	old := s.users.Get(id)
	if old == nil {
		return nil
	}
	s.nUsers--
	if old[0] == 'a' {
		s.nActive--
	}
	return s.users.Delete(id)
}

// ForEachUser calls fn for every user in id order.
func (s *SnapshotTx) ForEachUser(fn func(id, rec []byte, active bool) error) error {
	if s.users == nil {
		return nil
	}
	c := s.users.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v[1:], v[0] == 'a'); err != nil {
			return err
		}
	}
	return nil
}

// Group returns a stored group: its name, flags (GroupInFile) and
// directory group JSON.
func (s *SnapshotTx) Group(id []byte) (name string, flags byte, rec []byte, ok bool) {
	if s.groups == nil {
		return "", 0, nil, false
	}
	v := s.groups.Get(id)
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
	if s.names == nil {
		return "", false
	}
	v := s.names.Get([]byte(name))
	return string(v), v != nil
}

// PutGroup stores (creates or replaces) a group and keeps the name index:
// a rename frees the old name unless another group already took it.
func (s *SnapshotTx) PutGroup(id []byte, name string, flags byte, rec []byte) error {
	if old := s.groups.Get(id); old != nil {
		if oldName, _, _ := decodeGroup(old); oldName != name && bytes.Equal(s.names.Get([]byte(oldName)), id) {
			if err := s.names.Delete([]byte(oldName)); err != nil {
				return err
			}
		}
	}
	v := []byte{flags}
	v = binary.AppendUvarint(v, uint64(len(name)))
	v = append(v, name...)
	v = append(v, rec...)
	if err := s.groups.Put(id, v); err != nil {
		return err
	}
	return s.names.Put([]byte(name), bytes.Clone(id))
}

// DeleteGroup removes a group (its memberships are the caller's to remove
// first).
func (s *SnapshotTx) DeleteGroup(id []byte) error {
	old := s.groups.Get(id)
	if old == nil {
		return nil
	}
	if name, _, _ := decodeGroup(old); bytes.Equal(s.names.Get([]byte(name)), id) {
		if err := s.names.Delete([]byte(name)); err != nil {
			return err
		}
	}
	if err := s.gc.Delete(id); err != nil {
		return err
	}
	return s.groups.Delete(id)
}

// ForEachGroup calls fn for every group in id order.
func (s *SnapshotTx) ForEachGroup(fn func(id []byte, name string, flags byte, rec []byte) error) error {
	if s.groups == nil {
		return nil
	}
	c := s.groups.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		name, flags, rec := decodeGroup(v)
		if err := fn(k, name, flags, rec); err != nil {
			return err
		}
	}
	return nil
}

// MemberCount returns the number of members of a group.
func (s *SnapshotTx) MemberCount(gid []byte) int { return int(getUint(s.gc, gid)) }

func pairKey(a, b []byte) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(a)+len(b))
	k = binary.AppendUvarint(k, uint64(len(a)))
	k = append(k, a...)
	return append(k, b...)
}

func prefixKey(a []byte) []byte {
	return binary.AppendUvarint(nil, uint64(len(a))) // followed by a
}

// IsMember reports whether the user is a member of the group.
func (s *SnapshotTx) IsMember(uid, gid []byte) bool {
	return s.ug != nil && s.ug.Get(pairKey(uid, gid)) != nil
}

// AddMember adds a membership; adding an existing one is a no-op.
func (s *SnapshotTx) AddMember(uid, gid []byte) error {
	k := pairKey(uid, gid)
	if s.ug.Get(k) != nil {
		return nil
	}
	if err := s.ug.Put(k, []byte{}); err != nil {
		return err
	}
	if err := s.gu.Put(pairKey(gid, uid), []byte{}); err != nil {
		return err
	}
	s.nMemberships++
	return putUint(s.gc, gid, getUint(s.gc, gid)+1)
}

// AddMembers adds memberships (uids[i], gids[i]), new ones expected,
// inserting both indexes in key order: bbolt keeps a transaction's new
// keys in unsplit nodes until commit, so a first upload's millions of
// memberships in file order would cost a memmove each over a huge node.
func (s *SnapshotTx) AddMembers(uids, gids [][]byte) error {
	keys := make([][]byte, 0, len(uids))
	counts := map[string]uint64{}
	for i := range uids {
		k := pairKey(uids[i], gids[i])
		if s.ug.Get(k) != nil {
			continue
		}
		keys = append(keys, k)
		counts[string(gids[i])]++
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		if err := s.ug.Put(k, []byte{}); err != nil {
			return err
		}
	}
	keys = keys[:0]
	for i := range uids {
		keys = append(keys, pairKey(gids[i], uids[i]))
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		if s.gu.Get(k) != nil {
			continue
		}
		if err := s.gu.Put(k, []byte{}); err != nil {
			return err
		}
	}
	for gid, n := range counts {
		s.nMemberships += int(n)
		if err := putUint(s.gc, []byte(gid), getUint(s.gc, []byte(gid))+n); err != nil {
			return err
		}
	}
	return nil
}

// RemoveMember removes a membership; removing a missing one is a no-op.
func (s *SnapshotTx) RemoveMember(uid, gid []byte) error {
	k := pairKey(uid, gid)
	if s.ug.Get(k) == nil {
		return nil
	}
	if err := s.ug.Delete(k); err != nil {
		return err
	}
	if err := s.gu.Delete(pairKey(gid, uid)); err != nil {
		return err
	}
	s.nMemberships--
	n := getUint(s.gc, gid)
	if n <= 1 {
		return s.gc.Delete(gid)
	}
	return putUint(s.gc, gid, n-1)
}

// ForEachMember calls fn for every membership, ordered by user id length
// then user id, then group id.
func (s *SnapshotTx) ForEachMember(fn func(uid, gid []byte) error) error {
	if s.ug == nil {
		return nil
	}
	c := s.ug.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n, w := binary.Uvarint(k)
		if err := fn(k[w:w+int(n)], k[w+int(n):]); err != nil {
			return err
		}
	}
	return nil
}

// UserGroupIDs calls fn with the id of each group of the user, in id order,
// starting after after ("" = from the first).
func (s *SnapshotTx) UserGroupIDs(uid []byte, after string, fn func(gid []byte) (more bool, err error)) error {
	return forEachPair(s.ug, uid, after, fn)
}

// GroupUserIDs calls fn with the id of each member of the group, in id
// order, starting after after.
func (s *SnapshotTx) GroupUserIDs(gid []byte, after string, fn func(uid []byte) (more bool, err error)) error {
	return forEachPair(s.gu, gid, after, fn)
}

func forEachPair(b *bolt.Bucket, a []byte, after string, fn func([]byte) (bool, error)) error {
	if b == nil {
		return nil
	}
	prefix := append(prefixKey(a), a...)
	c := b.Cursor()
	k, _ := c.Seek(append(bytes.Clone(prefix), after...))
	if k != nil && after != "" && string(k[len(prefix):]) == after && bytes.HasPrefix(k, prefix) {
		k, _ = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		more, err := fn(k[len(prefix):])
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// ViewSnapshot runs fn on org's snapshot in a read-only transaction: a
// consistent view, never blocked by writers. It returns ErrNotFound when
// the organization does not exist.
func (db *DB) ViewSnapshot(org string, fn func(*SnapshotTx) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOrgs).Get([]byte(org)) == nil {
			return fmt.Errorf("organization %s: %w", org, ErrNotFound)
		}
		s, err := openSnapshot(tx, org)
		if err != nil {
			return err
		}
		return fn(s)
	})
}

// Users returns up to limit directory users of org (SPEC §6 user objects)
// whose ids sort after after, in id order. stateFilter "active" or
// "inactive" keeps only users in that state; "" keeps all.
func (db *DB) Users(org, stateFilter, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		if s.users == nil {
			return nil
		}
		c := s.users.Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && after != "" && string(k) == after {
			k, v = c.Next()
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			if (stateFilter == "active" && v[0] != 'a') || (stateFilter == "inactive" && v[0] != 'i') {
				continue
			}
			out = append(out, bytes.Clone(v[1:]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// User returns one directory user, or ErrNotFound.
func (db *DB) User(org, id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		rec, _, ok := s.User([]byte(id))
		if !ok {
			return ErrNotFound
		}
		out = bytes.Clone(rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return out, nil
}

// UserGroups returns up to limit directory groups of a user, in group id
// order after after; ErrNotFound when the user does not exist.
func (db *DB) UserGroups(org, userID, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		if _, _, ok := s.User([]byte(userID)); !ok {
			return ErrNotFound
		}
		return s.UserGroupIDs([]byte(userID), after, func(gid []byte) (bool, error) {
			if _, _, rec, ok := s.Group(gid); ok {
				out = append(out, bytes.Clone(rec))
			}
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("groups of user %s: %w", userID, err)
	}
	return out, nil
}

// Groups returns up to limit directory groups in id order after after.
func (db *DB) Groups(org, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		if s.groups == nil {
			return nil
		}
		c := s.groups.Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && after != "" && string(k) == after {
			k, v = c.Next()
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			_, _, rec := decodeGroup(v)
			out = append(out, bytes.Clone(rec))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// Group returns one directory group, or ErrNotFound.
func (db *DB) Group(org, id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		_, _, rec, ok := s.Group([]byte(id))
		if !ok {
			return ErrNotFound
		}
		out = bytes.Clone(rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", id, err)
	}
	return out, nil
}

// GroupUsers returns up to limit directory users of a group, in user id
// order after after; ErrNotFound when the group does not exist.
func (db *DB) GroupUsers(org, groupID, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		if _, _, _, ok := s.Group([]byte(groupID)); !ok {
			return ErrNotFound
		}
		return s.GroupUserIDs([]byte(groupID), after, func(uid []byte) (bool, error) {
			if rec, _, ok := s.User(uid); ok {
				out = append(out, bytes.Clone(rec))
			}
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("users of group %s: %w", groupID, err)
	}
	return out, nil
}

// SnapshotCounts returns org's snapshot totals.
func (db *DB) SnapshotCounts(org string) (SnapshotCounts, error) {
	var c SnapshotCounts
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		c = s.Counts()
		return nil
	})
	return c, err
}
