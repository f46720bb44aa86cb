package state

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SetupLink is a link that lets an organization's admin set up its sync
// from a web page (SPEC §10): read the file requirements and the
// connection, add and rotate public keys, check files, follow batches.
// The link's token is never stored, only its SHA-256, so a copy of the
// database does not open any setup page.
type SetupLink struct {
	// ID names the link in the API and the audit trail ("sl_" and 16 hex
	// digits); it is not a secret and opens nothing.
	ID  string `json:"id"`
	Org string `json:"organization_id"`
	// TokenSHA256 is the lower-case hex SHA-256 of the token: the key the
	// link is stored under.
	TokenSHA256 string `json:"token_sha256"`
	// CreateOrg makes the first use of the link create the organization
	// when it does not exist yet; OrgCreatedAt is set when it did. A first
	// use that finds the organization clears CreateOrg: a link never
	// brings a removed organization back.
	CreateOrg    bool       `json:"create_organization,omitempty"`
	OrgCreatedAt *time.Time `json:"organization_created_at,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt   *time.Time `json:"last_used_at,omitempty"`
	// Uses counts the requests made with the link.
	Uses int `json:"uses"`
}

// Layout: setup_links/ token SHA-256 (hex) -> SetupLink (JSON). Links are
// few (a handful per organization), so listing and revoking by id scan
// the bucket.

// CreateSetupLink stores a new link. It returns ErrNotFound when the
// organization does not exist and l.CreateOrg is not set, ErrExists when
// the token hash is taken. The caller makes the token and the ID.
func (db *DB) CreateSetupLink(l SetupLink) error {
	if l.CreatedAt.IsZero() {
		l.CreatedAt = db.now().UTC()
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if !l.CreateOrg && tx.Bucket(bucketOrgs).Get([]byte(l.Org)) == nil {
			return ErrNotFound
		}
		b := tx.Bucket(bucketSetupLinks)
		if b.Get([]byte(l.TokenSHA256)) != nil {
			return ErrExists
		}
		return putJSON(b, []byte(l.TokenSHA256), l)
	})
	if err != nil {
		return fmt.Errorf("create setup link %s for %s: %w", l.ID, l.Org, err)
	}
	return nil
}

// SetupLinks returns org's links, newest first (revoked and expired ones
// included). An organization that does not exist has no links unless
// one would create it.
func (db *DB) SetupLinks(org string) ([]SetupLink, error) {
	var out []SetupLink
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return forEachSetupLink(tx, func(_ []byte, l SetupLink) error {
			if l.Org == org {
				out = append(out, l)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("setup links of %s: %w", org, err)
	}
	slices.SortFunc(out, func(a, b SetupLink) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// RevokeSetupLink marks org's link id revoked (a link revoked before
// keeps its first revocation time) and returns it. ErrNotFound when org
// has no such link.
func (db *DB) RevokeSetupLink(org, id string) (SetupLink, error) {
	var found SetupLink
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		var key []byte
		err := forEachSetupLink(tx, func(k []byte, l SetupLink) error {
			if l.Org == org && l.ID == id {
				key, found = k, l
			}
			return nil
		})
		if err != nil {
			return err
		}
		if key == nil {
			return ErrNotFound
		}
		if found.RevokedAt == nil {
			now := db.now().UTC()
			found.RevokedAt = &now
		}
		return putJSON(tx.Bucket(bucketSetupLinks), key, found)
	})
	if err != nil {
		return SetupLink{}, fmt.Errorf("revoke setup link %s of %s: %w", id, org, err)
	}
	return found, nil
}

// UseSetupLink looks up the link whose token hashes to tokenSHA256 and,
// when it may be used, counts the use and returns it. In the same
// transaction, the first use of a link with CreateOrg creates its
// organization; created says so (the caller then makes its folder).
//
// It returns ErrNotFound for an unknown token, ErrLinkRevoked or
// ErrLinkExpired (with the link, so the page can say when), and
// ErrOrgGone when the organization was removed after the link created
// it. A refused use changes nothing.
func (db *DB) UseSetupLink(tokenSHA256 string) (l SetupLink, created bool, err error) {
	now := db.now().UTC()
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSetupLinks)
		if err := getJSON(b, []byte(tokenSHA256), &l); err != nil {
			return err
		}
		switch {
		case l.RevokedAt != nil:
			return ErrLinkRevoked
		case !now.Before(l.ExpiresAt):
			return ErrLinkExpired
		}
		orgs := tx.Bucket(bucketOrgs)
		if orgs.Get([]byte(l.Org)) == nil {
			if !l.CreateOrg || l.OrgCreatedAt != nil {
				return ErrOrgGone
			}
			if err := putJSON(orgs, []byte(l.Org), Org{Name: l.Org, CreatedAt: now}); err != nil {
				return err
			}
			l.OrgCreatedAt, created = &now, true
		} else if l.OrgCreatedAt == nil {
			// The organization was there at the first use: the link
			// creates nothing, then or after a removal.
			l.CreateOrg = false
		}
		l.Uses++
		l.LastUsedAt = &now
		return putJSON(b, []byte(tokenSHA256), l)
	})
	if err != nil {
		return l, false, fmt.Errorf("use setup link: %w", err)
	}
	return l, created, nil
}

// deleteSetupLinksTx removes org's links: a removed organization's links
// must not open an organization created later under the same name.
func deleteSetupLinksTx(tx *bolt.Tx, org string) error {
	var keys [][]byte
	err := forEachSetupLink(tx, func(k []byte, l SetupLink) error {
		if l.Org == org {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketSetupLinks)
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// forEachSetupLink calls fn with a copy of each key and its decoded link.
func forEachSetupLink(tx *bolt.Tx, fn func(k []byte, l SetupLink) error) error {
	return tx.Bucket(bucketSetupLinks).ForEach(func(k, v []byte) error {
		var l SetupLink
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("decode setup link %s: %w", k, err)
		}
		return fn(slices.Clone(k), l)
	})
}
