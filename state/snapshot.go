package state

import (
	"encoding/binary"
	"fmt"

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
// record, see apply.go): a new generation replaces the base, an overlay
// is read over the base until MergeOverlay (merge.go) has copied it into
// the base in small transactions and ptr drops it (the caller merges
// after the batch; the organization's next apply merges first if it has
// not). Readers see base+overlay throughout the merge, so they see the
// same snapshot before, during and after it; reads through an overlay
// cost a second lookup each. A bucket in snapshots/ORG/ that ptr does not
// name is a staging leftover and is deleted before the organization's
// next apply.
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
// and memberships in key order and, per group, appended). bbolt splits a
// page that outgrows itself at FillPercent, 0.5 by default, which leaves
// pages written in key order half empty for ever. At 0.9 a million-user
// first upload takes about a quarter less space than at 0.5, the day-2
// lookups that walk it fault in a third fewer pages, and the day-2 merge
// dirties a tenth fewer (updates fit in the 10 % left; an insert into a
// full page splits it in two). Later applies and merges use bbolt's
// default.
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
