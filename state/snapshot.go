package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// An organization's snapshot lives in snapshots/ORG/:
//
//	ptr     the current generation: base bucket name, overlay bucket name
//	NAME/   a generation (the base) or an overlay, with nested buckets:
//	  users   user id -> state byte ('a' active, 'i' inactive) + user record
//	  groups  group id -> flags byte + uvarint len(name) + name + directory group JSON
//	  names   group name -> group id (every existing group; names are unique)
//	  ug      uvarint len(user id) + user id + group id -> "" (a user's groups);
//	          a snapshot written by an older rosterd may also hold
//	          uvarint len(user id) + user id -> 16 bytes (a group-set hash
//	          it kept): no longer written, nor read, every reader skips it
//	  gu      uvarint len(group id) + group id + user id -> "" (a group's users)
//	  gc      group id -> uint64 member count (big endian)
//	  meta    "users", "active", "memberships", "groups" -> uint64 counters
//
// A user record is either the directory user JSON (it starts with '{') or
// the compact encoding of UserRecord; reads render the JSON of SPEC §6.
//
// Generations make a large apply possible in bounded memory (bbolt keeps
// every page a transaction dirties in memory until it commits). A staged
// apply writes into a bucket that ptr does not name, in many small
// transactions, so readers never see it:
//
//   - onto an empty snapshot, a whole new generation (fresh.go);
//   - onto a non-empty one, an overlay: the same buckets, each value
//     prefixed with opPut or opDel, read over the base.
//
// One small transaction then points ptr at it (with the batch's events and
// record, see apply.go): a new generation replaces the base, an overlay is
// read over the base until MergeOverlay has copied it into the base in
// small transactions and ptr drops it (the caller merges after the batch;
// the organization's next apply merges first if it has not). Readers see
// base+overlay throughout the merge, so they see the same snapshot
// before, during and after it; reads through an overlay cost a second
// lookup each. A bucket in snapshots/ORG/ that ptr does not name is a
// staging leftover and is deleted before the organization's next apply.
var (
	snapUsers   = []byte("users")
	snapGroups  = []byte("groups")
	snapNames   = []byte("names")
	snapUG      = []byte("ug")
	snapGU      = []byte("gu")
	snapGC      = []byte("gc")
	snapMeta    = []byte("meta")
	snapBuckets = [][]byte{snapUsers, snapGroups, snapNames, snapUG, snapGU, snapGC, snapMeta}

	keyPtr = []byte("ptr")

	metaUsers       = []byte("users")
	metaActive      = []byte("active")
	metaMemberships = []byte("memberships")
	metaGroups      = []byte("groups")
)

// Indexes into SnapshotTx.base and .over.
const (
	iUsers = iota
	iGroups
	iNames
	iUG
	iGU
	iGC
	iMeta
	nSnap
)

// Overlay value prefixes.
const (
	opDel byte = 0
	opPut byte = 1
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

// snapPtr is the ptr record: which buckets of snapshots/ORG/ hold the
// current snapshot.
type snapPtr struct{ base, overlay string }

func readPtr(root *bolt.Bucket) snapPtr {
	if root == nil {
		return snapPtr{}
	}
	v := root.Get(keyPtr)
	if len(v) == 0 {
		return snapPtr{}
	}
	n, w := binary.Uvarint(v)
	return snapPtr{base: string(v[w : w+int(n)]), overlay: string(v[w+int(n):])}
}

func writePtr(root *bolt.Bucket, p snapPtr) error {
	v := binary.AppendUvarint(nil, uint64(len(p.base)))
	v = append(v, p.base...)
	v = append(v, p.overlay...)
	return root.Put(keyPtr, v)
}

// SnapshotTx is an organization's snapshot inside one bbolt transaction:
// read-only under ViewSnapshot, writable inside ApplyBatch. Byte slices it
// returns are valid only until the transaction ends (or, in a staged
// apply, until the next ApplyTx.Checkpoint); a writable SnapshotTx keeps
// the counters in step with every change.
type SnapshotTx struct {
	org                                    string
	base, over                             [nSnap]*bolt.Bucket
	writable                               bool
	nUsers, nActive, nMemberships, nGroups int
	// groups caches what the transaction knows of each group it met
	// (groupcache.go), dirty lists the groups whose member count changed
	// since the last flush.
	groups *groupCache
	// deferCounts: the member counts of changed groups are written once,
	// before the last commit of a staged apply, not at every commit. A
	// staging transaction of memberships in user order changes the count
	// of nearly every group: at every commit, they cost as many puts as
	// the memberships of a million-user first upload. They stay in
	// groups, which outlives the staging transactions, until then.
	deferCounts bool
	// guOps are the changes to gu not written yet, in the order made.
	// Memberships come in user order; bbolt inserts a group's members
	// several times faster together, so flush writes them in key order.
	guOps []guOp
	// fresh is set in a staged apply that writes a new generation
	// (fresh.go), nil otherwise.
	fresh *freshGen
	// lastPutID's value is lastPutVal, as PutUser wrote it: the batch's
	// copy of a user just written needs no lookup.
	lastPutID, lastPutVal []byte
	// kbuf is a scratch key (bbolt copies the keys it stores).
	kbuf []byte
}

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

func subBuckets(parent *bolt.Bucket, create bool) ([nSnap]*bolt.Bucket, error) {
	var bs [nSnap]*bolt.Bucket
	if parent == nil {
		return bs, nil
	}
	for i, name := range snapBuckets {
		b := parent.Bucket(name)
		if b == nil && create {
			var err error
			if b, err = parent.CreateBucket(name); err != nil {
				return bs, err
			}
		}
		bs[i] = b
	}
	return bs, nil
}

// snapRoot returns snapshots/ORG/, created in a writable tx.
func snapRoot(tx *bolt.Tx, org string) (*bolt.Bucket, error) {
	top := tx.Bucket(bucketSnapshots)
	root := top.Bucket([]byte(org))
	if root == nil && tx.Writable() {
		return top.CreateBucket([]byte(org))
	}
	return root, nil
}

// openSnapshot returns org's current snapshot in tx. In a writable tx the
// base is created when missing, and an overlay still being merged is an
// error (the caller merges first). In a read-only tx with no snapshot yet,
// every read answers "empty".
func openSnapshot(tx *bolt.Tx, org string) (*SnapshotTx, error) {
	s := &SnapshotTx{org: org, writable: tx.Writable()}
	root, err := snapRoot(tx, org)
	if err != nil || root == nil {
		return s, err
	}
	p := readPtr(root)
	if s.writable {
		if p.overlay != "" {
			return nil, fmt.Errorf("snapshot of %s: an overlay is still being merged", org)
		}
		if p.base == "" {
			p.base = "g"
			if err := writePtr(root, p); err != nil {
				return nil, err
			}
		}
		base, err := root.CreateBucketIfNotExists([]byte(p.base))
		if err != nil {
			return nil, err
		}
		if s.base, err = subBuckets(base, true); err != nil {
			return nil, err
		}
	} else {
		if p.base != "" {
			s.base, _ = subBuckets(root.Bucket([]byte(p.base)), false)
		}
		if p.overlay != "" {
			s.over, _ = subBuckets(root.Bucket([]byte(p.overlay)), false)
		}
	}
	s.loadCounts()
	return s, nil
}

// appendFill is the FillPercent of buckets written mostly in key order
// and seldom changed after: a new generation (a first upload, its users
// in file order, memberships by user and, per group, appended) and a
// batch's copies of users and groups. bbolt splits a page that outgrows
// itself at FillPercent, 0.5 by default, which leaves pages written in
// key order half empty for ever. At 0.9 a million-user first upload
// takes 1.6 GB instead of 2.2 GB, its users 79,000 pages instead of
// 143,000, and the day-2 lookups that walk them fault in a third fewer
// pages; the day-2 merge dirties 45,000 pages instead of 51,000 (updates
// fit in the 10 % left; an insert into a full page splits it in two).
// Later applies and merges use bbolt's default.
const appendFill = 0.9

// openStaging returns a writable SnapshotTx whose writes go to the staging
// bucket name: each bucket gen writes fresh (fresh.go), the whole
// generation when gen says so, is written there as it will be; the others
// as an overlay over the current base.
func openStaging(tx *bolt.Tx, org, name string, gen *freshGen) (*SnapshotTx, error) {
	s := &SnapshotTx{org: org, writable: true}
	root, err := snapRoot(tx, org)
	if err != nil {
		return nil, err
	}
	st, err := root.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, err
	}
	staged, err := subBuckets(st, true)
	if err != nil {
		return nil, err
	}
	var base [nSnap]*bolt.Bucket
	if gen == nil || !gen.whole {
		base, _ = subBuckets(root.Bucket([]byte(readPtr(root).base)), false)
	}
	for i := range staged {
		if gen != nil && gen.on[i] {
			s.base[i] = staged[i]
			s.base[i].FillPercent = appendFill
		} else {
			s.base[i], s.over[i] = base[i], staged[i]
		}
	}
	s.loadCounts()
	return s, nil
}

func (s *SnapshotTx) loadCounts() {
	s.nUsers = int(s.getUint(iMeta, metaUsers))
	s.nActive = int(s.getUint(iMeta, metaActive))
	s.nMemberships = int(s.getUint(iMeta, metaMemberships))
	s.nGroups = int(s.getUint(iMeta, metaGroups))
}

// get reads key k of bucket i: the overlay's entry when it has one, else
// the base's. A nil result means absent.
func (s *SnapshotTx) get(i int, k []byte) []byte {
	if s.fresh != nil && s.fresh.absent(i, k) {
		return nil
	}
	if o := s.over[i]; o != nil {
		if v := o.Get(k); v != nil {
			if len(v) == 0 || v[0] == opDel {
				return nil
			}
			return v[1:]
		}
	}
	if s.base[i] == nil {
		return nil
	}
	return s.base[i].Get(k)
}

func (s *SnapshotTx) put(i int, k, v []byte) error {
	if s.over[i] != nil { // staging an overlay
		ov := make([]byte, 1+len(v))
		ov[0] = opPut
		copy(ov[1:], v)
		return s.over[i].Put(k, ov)
	}
	if s.fresh != nil {
		s.fresh.wrote(i, k)
	}
	return s.base[i].Put(k, v)
}

func (s *SnapshotTx) del(i int, k []byte) error {
	if s.over[i] != nil {
		return s.over[i].Put(k, []byte{opDel})
	}
	return s.base[i].Delete(k)
}

func (s *SnapshotTx) getUint(i int, k []byte) uint64 {
	v := s.get(i, k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (s *SnapshotTx) putUint(i int, k []byte, n uint64) error {
	return s.put(i, k, binary.BigEndian.AppendUint64(nil, n))
}

// cursor returns a merged cursor over bucket i.
func (s *SnapshotTx) cursor(i int) *mcursor { return newMcursor(s.base[i], s.over[i]) }

// flush stores the counters. ApplyBatch calls it before each commit;
// in a staged apply (deferCounts), the groups' member counts are stored
// only by the last one (flushMemberCounts).
func (s *SnapshotTx) flush() error {
	if !s.writable {
		return nil
	}
	if !s.deferCounts {
		if err := s.flushMemberCounts(); err != nil {
			return err
		}
	}
	if err := s.flushGU(); err != nil {
		return err
	}
	for _, kv := range []struct {
		k []byte
		n int
	}{{metaUsers, s.nUsers}, {metaActive, s.nActive}, {metaMemberships, s.nMemberships}, {metaGroups, s.nGroups}} {
		if err := s.putUint(iMeta, kv.k, uint64(kv.n)); err != nil {
			return err
		}
	}
	return nil
}

// Org returns the organization's name.
func (s *SnapshotTx) Org() string { return s.org }

// Counts returns the snapshot's totals as of now in the transaction.
func (s *SnapshotTx) Counts() SnapshotCounts {
	return SnapshotCounts{Users: s.nUsers, Active: s.nActive, Groups: s.nGroups, Memberships: s.nMemberships}
}

// userValue returns the stored value of a user: state byte + record.
func (s *SnapshotTx) userValue(id []byte) []byte {
	if s.lastPutID != nil && bytes.Equal(id, s.lastPutID) {
		return s.lastPutVal
	}
	v := s.get(iUsers, id)
	if len(v) == 0 {
		return nil
	}
	return v
}

// User returns the stored record of id (the directory user JSON or the
// compact UserRecord encoding, see UserJSON) and whether it is active.
func (s *SnapshotTx) User(id []byte) (rec []byte, active, ok bool) {
	v := s.userValue(id)
	if v == nil {
		return nil, false, false
	}
	return v[1:], v[0] == 'a', true
}

// UserLookup returns a function that answers like User, valid as long as
// s is and while nothing writes to it. When successive ids ascend, as in a file sorted by user id, it steps
// a cursor forward instead of searching the tree from its root for each
// id; other orders cost what User costs.
func (s *SnapshotTx) UserLookup() func(id []byte) (rec []byte, active, ok bool) {
	if s.over[iUsers] != nil || s.base[iUsers] == nil {
		return s.User
	}
	sk := &seeker{c: s.base[iUsers].Cursor()}
	return func(id []byte) ([]byte, bool, bool) {
		v, ok := sk.find(id)
		if !ok || len(v) == 0 {
			return nil, false, false
		}
		return v[1:], v[0] == 'a', true
	}
}

// seeker finds keys of one bucket through one cursor. When keys are asked
// for in ascending order it steps the cursor forward a few keys instead of
// searching the tree from its root each time; otherwise it seeks.
type seeker struct {
	c    *bolt.Cursor
	k, v []byte
}

// find returns the value of key, valid while the transaction is.
func (s *seeker) find(key []byte) ([]byte, bool) {
	if s.k != nil && bytes.Compare(key, s.k) >= 0 {
		for range 8 {
			if bytes.Compare(s.k, key) >= 0 {
				break
			}
			if s.k, s.v = s.c.Next(); s.k == nil {
				break
			}
		}
	} else {
		s.k = nil
	}
	if s.k == nil || bytes.Compare(s.k, key) < 0 {
		s.k, s.v = s.c.Seek(key)
	}
	if s.k == nil || !bytes.Equal(s.k, key) {
		return nil, false
	}
	return s.v, true
}

// UserJSON returns the directory user JSON of id (SPEC §6).
func (s *SnapshotTx) UserJSON(id []byte) ([]byte, bool) {
	v := s.userValue(id)
	if v == nil {
		return nil, false
	}
	return appendUserJSON(nil, s.org, v), true
}

// PutUser stores (creates or replaces) a user. rec is the directory user
// JSON or an encoded UserRecord; it must stay unchanged until the
// transaction ends.
func (s *SnapshotTx) PutUser(id []byte, active bool, rec []byte) error {
	if old := s.userValue(id); old != nil {
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
	if err := s.put(iUsers, id, v); err != nil {
		return err
	}
	s.lastPutID, s.lastPutVal = append(s.lastPutID[:0], id...), v
	return nil
}

// DeleteUser removes a user. Its memberships are the caller's to remove
// first (RemoveMember).
func (s *SnapshotTx) DeleteUser(id []byte) error {
	old := s.userValue(id)
	if old == nil {
		return nil
	}
	s.nUsers--
	if old[0] == 'a' {
		s.nActive--
	}
	s.lastPutID, s.lastPutVal = nil, nil
	return s.del(iUsers, id)
}

// ForEachUser calls fn for every user in id order with its stored record.
func (s *SnapshotTx) ForEachUser(fn func(id, rec []byte, active bool) error) error {
	c := s.cursor(iUsers)
	for k, v := c.first(); k != nil; k, v = c.next() {
		if len(v) == 0 {
			continue
		}
		if err := fn(k, v[1:], v[0] == 'a'); err != nil {
			return err
		}
	}
	return nil
}

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

// mcursor walks a base bucket with an overlay over it: an overlay entry
// replaces the base entry of the same key, and an opDel entry hides it.
// Either bucket may be nil.
type mcursor struct {
	b, o         *bolt.Cursor
	bk, bv       []byte
	ok, ov       []byte
	fromB, fromO bool
}

func newMcursor(base, over *bolt.Bucket) *mcursor {
	m := &mcursor{}
	if base != nil {
		m.b = base.Cursor()
	}
	if over != nil {
		m.o = over.Cursor()
	}
	return m
}

func (m *mcursor) first() ([]byte, []byte) {
	if m.b != nil {
		m.bk, m.bv = m.b.First()
	}
	if m.o != nil {
		m.ok, m.ov = m.o.First()
	}
	return m.pick()
}

func (m *mcursor) seek(k []byte) ([]byte, []byte) {
	if m.b != nil {
		m.bk, m.bv = m.b.Seek(k)
	}
	if m.o != nil {
		m.ok, m.ov = m.o.Seek(k)
	}
	return m.pick()
}

func (m *mcursor) next() ([]byte, []byte) {
	if m.fromB {
		m.bk, m.bv = m.b.Next()
	}
	if m.fromO {
		m.ok, m.ov = m.o.Next()
	}
	return m.pick()
}

func (m *mcursor) pick() ([]byte, []byte) {
	for {
		m.fromB, m.fromO = false, false
		if m.ok == nil {
			if m.bk == nil {
				return nil, nil
			}
			m.fromB = true
			return m.bk, m.bv
		}
		c := 1
		if m.bk != nil {
			c = bytes.Compare(m.bk, m.ok)
		}
		if c < 0 {
			m.fromB = true
			return m.bk, m.bv
		}
		m.fromO, m.fromB = true, c == 0
		if len(m.ov) > 0 && m.ov[0] == opPut {
			return m.ok, m.ov[1:]
		}
		m.ok, m.ov = m.o.Next() // a deletion: skip the key in both
		if m.fromB {
			m.bk, m.bv = m.b.Next()
		}
	}
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
		c := s.cursor(iUsers)
		k, v := c.seek([]byte(after))
		if k != nil && after != "" && string(k) == after {
			k, v = c.next()
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.next() {
			if len(v) == 0 || (stateFilter == "active" && v[0] != 'a') || (stateFilter == "inactive" && v[0] != 'i') {
				continue
			}
			out = append(out, appendUserJSON(nil, org, v))
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
		rec, ok := s.UserJSON([]byte(id))
		if !ok {
			return ErrNotFound
		}
		out = rec
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
		c := s.cursor(iGroups)
		k, v := c.seek([]byte(after))
		if k != nil && after != "" && string(k) == after {
			k, v = c.next()
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.next() {
			if len(v) == 0 {
				continue
			}
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
			if rec, ok := s.UserJSON(uid); ok {
				out = append(out, rec)
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
