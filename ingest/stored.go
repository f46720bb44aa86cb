package ingest

import "hash/maphash"

// storedUsers is what the differ reads of the stored users once it has
// seen that users.csv is not in the snapshot's key order (probeOrder), or
// before user_groups.csv without users.csv: for each stored user,
// in the snapshot's key order (its index), the hash of its id (set), the
// hash of its stored value, state byte and record (rec, with a users file
// only), and the index in the users file of the row with its id (file,
// set as the file is read; noUser for none).
//
// Reading them in one scan of the snapshot, in key order, is what makes
// the comparison independent of the order of the file's rows. A file in
// random order (ids that sort in no useful way, rows by last name)
// costs a search of the tree from its root for every row otherwise, each
// a few cache misses over the whole mapped database: at a million users
// about two thirds of a day-2 batch's CPU
// time. With the scan, a row is compared by hash in memory; only the rows
// whose record changed look the stored user up. The scan that lists the
// deleted users afterwards meets the users in the same order and finds
// each one's row through file, without hashing.
//
// Memory: 28 bytes per stored user (16 in set, 8 in rec, 4 in file), 28
// MB at a million users.
type storedUsers struct {
	set  hashSet
	rec  []uint64
	file []uint32
	seed maphash.Seed
}

// readStored scans the stored users of s. Without a users file it keeps
// only their ids' hashes (exists).
func (d *differ) readStored(n int) error {
	st := &storedUsers{seed: maphash.MakeSeed()}
	st.set.keys = make([]hkey, 0, n)
	if d.haveUsers {
		st.rec = make([]uint64, 0, n)
	}
	err := d.s.ForEachUser(func(id, rec []byte, active bool) error {
		k := d.hash(id)
		k.val = uint32(len(st.set.keys))
		st.set.add(k)
		if d.haveUsers {
			st.rec = append(st.rec, st.recordHash(active, rec))
		}
		return nil
	})
	if err != nil {
		return err
	}
	st.set.seal()
	st.file = make([]uint32, len(st.set.keys))
	for i := range st.file {
		st.file[i] = noUser
	}
	d.stored = st
	return nil
}

// recordHash is the hash of a stored user's value as PutUser stores it:
// the state byte and the record.
func (st *storedUsers) recordHash(active bool, rec []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(st.seed)
	if active {
		h.Write(stateActive)
	} else {
		h.Write(stateInactive)
	}
	h.Write(rec)
	return h.Sum64()
}

// find returns the index of the stored user of id hash k and records
// that the file's row fileIdx holds it.
func (st *storedUsers) find(k hkey, fileIdx uint32) (uint32, bool) {
	i, ok := st.set.get(k)
	if ok {
		st.file[i] = fileIdx
	}
	return i, ok
}

// unchanged reports whether the stored user i has the value that the
// state byte of active and the encoded record rec make.
func (st *storedUsers) unchanged(i uint32, active bool, rec []byte) bool {
	return st.rec[i] == st.recordHash(active, rec)
}

// eachStored calls fn for every stored user in key order, as ForEachUser,
// with the index in the users file of the row that holds it, or noUser.
func (d *differ) eachStored(fn func(id []byte, active bool, fileIdx uint32) error) error {
	i := 0
	return d.s.ForEachUser(func(id, _ []byte, active bool) error {
		j := noUser
		if st := d.stored; st != nil && i < len(st.file) {
			j = st.file[i]
		} else if idx, ok := d.users.get(d.hash(id)); ok {
			j = idx
		}
		i++
		return fn(id, active, j)
	})
}
