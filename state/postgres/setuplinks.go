package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// Setup links (SPEC §10): rosterd.setup_links, keyed by the token's
// SHA-256 as state.DB keys them; the token itself is never stored.

const linkColumns = "token_sha256, id, org, create_org, org_created_at, created_at, expires_at, revoked_at, last_used_at, uses"

func scanLink(row pgx.Row) (state.SetupLink, error) {
	var l state.SetupLink
	err := row.Scan(&l.TokenSHA256, &l.ID, &l.Org, &l.CreateOrg, &l.OrgCreatedAt, &l.CreatedAt, &l.ExpiresAt,
		&l.RevokedAt, &l.LastUsedAt, &l.Uses)
	if err != nil {
		return state.SetupLink{}, notFound(err)
	}
	l.CreatedAt, l.ExpiresAt = l.CreatedAt.UTC(), l.ExpiresAt.UTC()
	l.OrgCreatedAt, l.RevokedAt, l.LastUsedAt = utcPtr(l.OrgCreatedAt), utcPtr(l.RevokedAt), utcPtr(l.LastUsedAt)
	return l, nil
}

// CreateSetupLink is state.DB.CreateSetupLink: state.ErrNotFound when the
// organization does not exist and l.CreateOrg is not set, state.ErrExists
// when the token hash is taken.
func (db *DB) CreateSetupLink(l state.SetupLink) error {
	if l.CreatedAt.IsZero() {
		l.CreatedAt = db.stamp()
	}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if !l.CreateOrg {
			if err := lockOrg(ctx, tx, l.Org); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, "INSERT INTO rosterd.setup_links ("+linkColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
			l.TokenSHA256, l.ID, l.Org, l.CreateOrg, l.OrgCreatedAt, l.CreatedAt, l.ExpiresAt, l.RevokedAt, l.LastUsedAt, l.Uses)
		if err == nil && tag.RowsAffected() == 0 {
			err = state.ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create setup link %s for %s: %w", l.ID, l.Org, err)
	}
	return nil
}

// SetupLinks is state.DB.SetupLinks: org's links, newest first, revoked
// and expired ones included.
func (db *DB) SetupLinks(org string) ([]state.SetupLink, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+linkColumns+" FROM rosterd.setup_links WHERE org = $1 ORDER BY created_at DESC, id", org)
	if err != nil {
		return nil, fmt.Errorf("setup links of %s: %w", org, err)
	}
	out, err := collect(rows, scanLink)
	if err != nil {
		return nil, fmt.Errorf("setup links of %s: %w", org, err)
	}
	return out, nil
}

// RevokeSetupLink is state.DB.RevokeSetupLink: a link revoked before keeps
// its first revocation time.
func (db *DB) RevokeSetupLink(org, id string) (state.SetupLink, error) {
	ctx, cancel := db.op()
	defer cancel()
	l, err := scanLink(db.pool.QueryRow(ctx, `UPDATE rosterd.setup_links SET revoked_at = COALESCE(revoked_at, $3)
WHERE org = $1 AND id = $2 RETURNING `+linkColumns, org, id, db.stamp()))
	if err != nil {
		return state.SetupLink{}, fmt.Errorf("revoke setup link %s of %s: %w", id, org, err)
	}
	return l, nil
}

// UseSetupLink is state.DB.UseSetupLink: it counts a use of the link whose
// token hashes to tokenSHA256 and, at a first use with CreateOrg, creates
// its organization, in one transaction that holds the link's row. A
// refused use changes nothing.
func (db *DB) UseSetupLink(tokenSHA256 string) (l state.SetupLink, created bool, err error) {
	now := db.stamp()
	err = db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		l, err = scanLink(tx.QueryRow(ctx, "SELECT "+linkColumns+" FROM rosterd.setup_links WHERE token_sha256 = $1 FOR UPDATE", tokenSHA256))
		if err != nil {
			return err
		}
		switch {
		case l.RevokedAt != nil:
			return state.ErrLinkRevoked
		case !now.Before(l.ExpiresAt):
			return state.ErrLinkExpired
		}
		switch err := lockOrg(ctx, tx, l.Org); {
		case errors.Is(err, state.ErrNotFound):
			if !l.CreateOrg || l.OrgCreatedAt != nil {
				return state.ErrOrgGone
			}
			tag, err := tx.Exec(ctx, `INSERT INTO rosterd.organizations (name, settings, created_at)
VALUES ($1, '{}', $2) ON CONFLICT DO NOTHING`, l.Org, now)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				l.OrgCreatedAt, created = &now, true
			} else {
				// Another instance created it meanwhile: as if it had been there.
				l.CreateOrg = false
			}
		case err == nil:
			if l.OrgCreatedAt == nil {
				// The organization was there at the first use: the link
				// creates nothing, then or after a removal.
				l.CreateOrg = false
			}
		default:
			return err
		}
		l.Uses++
		l.LastUsedAt = &now
		_, err = tx.Exec(ctx, `UPDATE rosterd.setup_links SET create_org = $2, org_created_at = $3, uses = $4, last_used_at = $5
WHERE token_sha256 = $1`, tokenSHA256, l.CreateOrg, l.OrgCreatedAt, l.Uses, l.LastUsedAt)
		return err
	})
	if err != nil {
		return l, false, fmt.Errorf("use setup link: %w", err)
	}
	return l, created, nil
}
