package state

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Key is one of an organization's public keys. Parsing and type checks are
// the SFTP side's job; state stores what it is given.
type Key struct {
	// Fingerprint is the SHA256 fingerprint as ssh-keygen -lf prints it
	// ("SHA256:..."): the key's identity.
	Fingerprint string `json:"fingerprint"`
	Type        string `json:"type"`
	Comment     string `json:"comment"`
	// PublicKey is the key in authorized_keys form, without comment.
	PublicKey string    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
	// AddedBy says who added the key: KeyAddedByOperator (also what ""
	// means, in records written before the field existed) or
	// KeyAddedBySetupLink, the organization's admin on the setup page.
	AddedBy string `json:"added_by,omitempty"`
	// SetupLink is the id of the setup link the admin used.
	SetupLink string `json:"setup_link,omitempty"`
}

// Who added a key (Key.AddedBy).
const (
	KeyAddedByOperator  = "operator"
	KeyAddedBySetupLink = "setup_link"
)

// AddKey adds k to org's keys. It returns ErrNotFound when the organization
// does not exist and ErrExists when it already holds the key.
func (db *DB) AddKey(org string, k Key) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = db.now().UTC()
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOrgs).Get([]byte(org)) == nil {
			return ErrNotFound
		}
		b, err := tx.Bucket(bucketKeys).CreateBucketIfNotExists([]byte(org))
		if err != nil {
			return err
		}
		if b.Get([]byte(k.Fingerprint)) != nil {
			return ErrExists
		}
		return putJSON(b, []byte(k.Fingerprint), k)
	})
	if err != nil {
		return fmt.Errorf("add key %s to %s: %w", k.Fingerprint, org, err)
	}
	return nil
}

// Keys returns org's keys in fingerprint order. It returns ErrNotFound when
// the organization does not exist.
func (db *DB) Keys(org string) ([]Key, error) {
	out := []Key{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOrgs).Get([]byte(org)) == nil {
			return ErrNotFound
		}
		b := orgBucket(tx, bucketKeys, org)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var key Key
			if err := json.Unmarshal(v, &key); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, key)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("keys of %s: %w", org, err)
	}
	return out, nil
}

// RemoveKey removes the key with the given fingerprint from org.
func (db *DB) RemoveKey(org, fingerprint string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := orgBucket(tx, bucketKeys, org)
		if b == nil || b.Get([]byte(fingerprint)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(fingerprint))
	})
	if err != nil {
		return fmt.Errorf("remove key %s from %s: %w", fingerprint, org, err)
	}
	return nil
}

// HasKey reports whether org exists and holds the key with the given
// fingerprint. It is on the login path: one read transaction, no decoding.
func (db *DB) HasKey(org, fingerprint string) (bool, error) {
	var ok bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := orgBucket(tx, bucketKeys, org)
		ok = b != nil && tx.Bucket(bucketOrgs).Get([]byte(org)) != nil && b.Get([]byte(fingerprint)) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("check key of %s: %w", org, err)
	}
	return ok, nil
}
