package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Org is an organization: one SFTP user, one folder, one snapshot.
type Org struct {
	Name      string    `json:"name"`
	Settings  Settings  `json:"settings"`
	CreatedAt time.Time `json:"created_at"`
}

// Settings are an organization's own choices. A nil or empty field means
// "the daemon's default" ([defaults] in the config), resolved by the
// caller, so that changing a default reaches every organization that did
// not choose otherwise.
type Settings struct {
	// UsersPatterns, UserGroupsPatterns and GroupsPatterns are extra
	// shell-style file name patterns (path.Match, case-insensitive) that
	// count as that kind of file, beside the canonical names (SPEC §3).
	UsersPatterns      []string `json:"users_patterns,omitempty"`
	UserGroupsPatterns []string `json:"user_groups_patterns,omitempty"`
	GroupsPatterns     []string `json:"groups_patterns,omitempty"`
	// DeleteThresholdPercent and DeleteThresholdCount are the deletion
	// guard of SPEC §5: a batch deleting or deactivating more than this
	// share of active users and more than this many users is held.
	DeleteThresholdPercent *float64 `json:"delete_threshold_percent,omitempty"`
	DeleteThresholdCount   *int     `json:"delete_threshold_count,omitempty"`
	// InactiveUsers is "keep" (kept with state inactive) or "delete".
	InactiveUsers string `json:"inactive_users,omitempty"`
	// Settle is the organization's settle window as a Go duration string.
	Settle string `json:"settle,omitempty"`
	// Columns, StatusValues and DateFormat are how the organization's
	// exports are read (SPEC §4, exports as they come): source header to
	// canonical column ("custom:NAME", "drop"), status value to active or
	// inactive, and the date format of employment_start_date. The HTTP
	// API checks them (schema.NewMapping) before they are stored.
	Columns      map[string]string `json:"columns,omitempty"`
	StatusValues map[string]string `json:"status_values,omitempty"`
	DateFormat   string            `json:"date_format,omitempty"`
	// GroupsFromColumns lists the users.csv columns whose values are
	// group memberships (SPEC §4, groups derived from users.csv); the API
	// checks it with the mapping.
	GroupsFromColumns []GroupColumn `json:"groups_from_columns,omitempty"`
	// PGPKeyFile is the path of the organization's OpenPGP private key
	// when the operator keeps it outside the data directory; "" means the
	// key `rosterd org pgp` made in the data directory.
	PGPKeyFile string `json:"pgp_key_file,omitempty"`
	// RequireSignature makes OpenPGP uploads valid only when signed by
	// one of the organization's signing keys.
	RequireSignature bool `json:"require_signature,omitempty"`
	// StorageQuota is the organization's storage quota in bytes (its
	// folder, reports and archive; SPEC §3); nil = the daemon's.
	StorageQuota *int64 `json:"storage_quota,omitempty"`
	// SetupAllKeys lets the admin see and remove, on the setup page, the
	// keys the operator added too (SPEC §10); unset, only those added
	// through setup links.
	SetupAllKeys *bool `json:"setup_all_keys,omitempty"`
}

// CreateOrg stores a new organization. It returns ErrExists if the name is
// taken. The caller validates the name.
func (db *DB) CreateOrg(o Org) error {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = db.now().UTC()
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOrgs)
		if b.Get([]byte(o.Name)) != nil {
			return ErrExists
		}
		return putJSON(b, []byte(o.Name), o)
	})
	if err != nil {
		return fmt.Errorf("create organization %s: %w", o.Name, err)
	}
	return nil
}

// Org returns the named organization or ErrNotFound.
func (db *DB) Org(name string) (Org, error) {
	var o Org
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketOrgs), []byte(name), &o)
	})
	if err != nil {
		return Org{}, fmt.Errorf("organization %s: %w", name, err)
	}
	return o, nil
}

// Orgs returns up to limit organizations whose names sort after after, in
// name order. limit <= 0 means all.
func (db *DB) Orgs(after string, limit int) ([]Org, error) {
	var out []Org
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOrgs).Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && after != "" && bytes.Equal(k, []byte(after)) {
			k, v = c.Next()
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var o Org
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	return out, nil
}

// OrgCount returns the number of organizations.
func (db *DB) OrgCount() (int, error) {
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketOrgs).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count organizations: %w", err)
	}
	return n, nil
}

// UpdateOrg applies fn to the stored organization in one transaction.
// fn must not change the name.
func (db *DB) UpdateOrg(name string, fn func(*Org) error) (Org, error) {
	var o Org
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOrgs)
		if err := getJSON(b, []byte(name), &o); err != nil {
			return err
		}
		if err := fn(&o); err != nil {
			return err
		}
		o.Name = name
		return putJSON(b, []byte(name), o)
	})
	if err != nil {
		return Org{}, fmt.Errorf("update organization %s: %w", name, err)
	}
	return o, nil
}

// DeleteOrg removes the organization with its keys, snapshot, batches,
// audit trail and setup links.
// Its events stay in the feed until retention removes them, so consumers
// still receive what was emitted before the removal.
func (db *DB) DeleteOrg(name string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOrgs)
		if b.Get([]byte(name)) == nil {
			return ErrNotFound
		}
		for _, top := range perOrgBuckets {
			if err := tx.Bucket(top).DeleteBucket([]byte(name)); err != nil && err != bolt.ErrBucketNotFound {
				return err
			}
		}
		if err := deleteSetupLinksTx(tx, name); err != nil {
			return err
		}
		return b.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("delete organization %s: %w", name, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, buf)
}

// getJSON decodes the value at key into v, or returns ErrNotFound. A nil
// bucket counts as empty.
func getJSON(b *bolt.Bucket, key []byte, v any) error {
	if b == nil {
		return ErrNotFound
	}
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	return json.Unmarshal(raw, v)
}
