package state

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

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
