package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// Organizations and their settings: rosterd.organizations, settings as
// JSON (state.Settings), so that a setting added later needs no migration.

// CreateOrg is state.DB.CreateOrg: it returns state.ErrExists if the name
// is taken.
func (db *DB) CreateOrg(o state.Org) error {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = db.stamp()
	}
	settings, err := json.Marshal(o.Settings)
	if err != nil {
		return fmt.Errorf("create organization %s: %w", o.Name, err)
	}
	ctx, cancel := db.op()
	defer cancel()
	tag, err := db.pool.Exec(ctx, `INSERT INTO rosterd.organizations (name, settings, created_at)
VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, o.Name, settings, o.CreatedAt)
	if err == nil && tag.RowsAffected() == 0 {
		err = state.ErrExists
	}
	if err != nil {
		return fmt.Errorf("create organization %s: %w", o.Name, err)
	}
	return nil
}

const orgColumns = "name, settings, created_at"

func scanOrg(row pgx.Row) (state.Org, error) {
	var o state.Org
	var settings []byte
	if err := row.Scan(&o.Name, &settings, &o.CreatedAt); err != nil {
		return state.Org{}, notFound(err)
	}
	o.CreatedAt = o.CreatedAt.UTC()
	if err := json.Unmarshal(settings, &o.Settings); err != nil {
		return state.Org{}, fmt.Errorf("decode settings: %w", err)
	}
	return o, nil
}

// Org is state.DB.Org: the named organization or state.ErrNotFound.
func (db *DB) Org(name string) (state.Org, error) {
	ctx, cancel := db.op()
	defer cancel()
	o, err := scanOrg(db.pool.QueryRow(ctx, "SELECT "+orgColumns+" FROM rosterd.organizations WHERE name = $1", name))
	if err != nil {
		return state.Org{}, fmt.Errorf("organization %s: %w", name, err)
	}
	return o, nil
}

// Orgs is state.DB.Orgs: up to limit organizations whose names sort after
// after, in name order; limit <= 0 means all.
func (db *DB) Orgs(after string, limit int) ([]state.Org, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+orgColumns+" FROM rosterd.organizations WHERE name > $1 ORDER BY name LIMIT $2",
		after, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	out, err := collect(rows, scanOrg)
	if err != nil {
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	return out, nil
}

// OrgCount is state.DB.OrgCount.
func (db *DB) OrgCount() (int, error) {
	ctx, cancel := db.op()
	defer cancel()
	var n int
	if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM rosterd.organizations").Scan(&n); err != nil {
		return 0, fmt.Errorf("count organizations: %w", err)
	}
	return n, nil
}

// UpdateOrg is state.DB.UpdateOrg: fn runs on the stored organization,
// locked against other writers until the change commits. fn must not
// change the name.
func (db *DB) UpdateOrg(name string, fn func(*state.Org) error) (state.Org, error) {
	var o state.Org
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		o, err = scanOrg(tx.QueryRow(ctx, "SELECT "+orgColumns+" FROM rosterd.organizations WHERE name = $1 FOR UPDATE", name))
		if err != nil {
			return err
		}
		if err := fn(&o); err != nil {
			return err
		}
		o.Name = name
		settings, err := json.Marshal(o.Settings)
		if err != nil {
			return err
		}
		o.CreatedAt = o.CreatedAt.UTC().Truncate(time.Microsecond)
		_, err = tx.Exec(ctx, "UPDATE rosterd.organizations SET settings = $2, created_at = $3 WHERE name = $1", name, settings, o.CreatedAt)
		return err
	})
	if err != nil {
		return state.Org{}, fmt.Errorf("update organization %s: %w", name, err)
	}
	return o, nil
}

// DeleteOrg is state.DB.DeleteOrg: the organization goes with its keys,
// snapshot, batches, completions and audit trail (foreign keys, ON DELETE
// CASCADE) and its setup links; its events stay until retention.
func (db *DB) DeleteOrg(name string) error {
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM rosterd.organizations WHERE name = $1", name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return state.ErrNotFound
		}
		// users and memberships have no foreign key (migration 0003).
		for _, q := range []string{"DELETE FROM rosterd.setup_links WHERE org = $1",
			"DELETE FROM rosterd.users WHERE org = $1", "DELETE FROM rosterd.memberships WHERE org = $1"} {
			if _, err := tx.Exec(ctx, q, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete organization %s: %w", name, err)
	}
	return nil
}

// notFound maps "no rows" to state.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return state.ErrNotFound
	}
	return err
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func isNotFound(err error) bool { return errors.Is(err, state.ErrNotFound) }
