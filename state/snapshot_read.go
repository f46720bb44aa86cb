package state

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

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
