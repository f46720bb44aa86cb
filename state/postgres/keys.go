package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// AddKey is state.DB.AddKey: state.ErrNotFound when the organization does
// not exist, state.ErrExists when it already holds the key.
func (db *DB) AddKey(org string, k state.Key) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = db.stamp()
	}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		// FOR KEY SHARE: the organization cannot go before the key is in.
		if err := lockOrg(ctx, tx, org); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO rosterd.keys (org, fingerprint, type, comment, public_key, created_at, added_by, setup_link)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
			org, k.Fingerprint, k.Type, k.Comment, k.PublicKey, k.CreatedAt, k.AddedBy, k.SetupLink)
		if err == nil && tag.RowsAffected() == 0 {
			err = state.ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("add key %s to %s: %w", k.Fingerprint, org, err)
	}
	return nil
}

// lockOrg returns state.ErrNotFound when org does not exist, and keeps it
// from being removed until tx ends. It locks the row (a write): readers
// use orgExists.
func lockOrg(ctx context.Context, q querier, org string) error {
	var one int
	return notFound(q.QueryRow(ctx, "SELECT 1 FROM rosterd.organizations WHERE name = $1 FOR KEY SHARE", org).Scan(&one))
}

// orgExists returns state.ErrNotFound when org does not exist.
func orgExists(ctx context.Context, q querier, org string) error {
	var one int
	return notFound(q.QueryRow(ctx, "SELECT 1 FROM rosterd.organizations WHERE name = $1", org).Scan(&one))
}

const keyColumns = "fingerprint, type, comment, public_key, created_at, added_by, setup_link"

func scanKey(r pgx.Row) (state.Key, error) {
	var k state.Key
	err := r.Scan(&k.Fingerprint, &k.Type, &k.Comment, &k.PublicKey, &k.CreatedAt, &k.AddedBy, &k.SetupLink)
	k.CreatedAt = k.CreatedAt.UTC()
	return k, err
}

// Keys is state.DB.Keys: org's keys in fingerprint order, never nil;
// state.ErrNotFound when the organization does not exist.
func (db *DB) Keys(org string) ([]state.Key, error) {
	out := []state.Key{}
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT "+keyColumns+" FROM rosterd.keys WHERE org = $1 ORDER BY fingerprint", org)
		if err != nil {
			return err
		}
		keys, err := collect(rows, scanKey)
		out = append(out, keys...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys of %s: %w", org, err)
	}
	return out, nil
}

// RemoveKey is state.DB.RemoveKey.
func (db *DB) RemoveKey(org, fingerprint string) error {
	ctx, cancel := db.op()
	defer cancel()
	tag, err := db.pool.Exec(ctx, "DELETE FROM rosterd.keys WHERE org = $1 AND fingerprint = $2", org, fingerprint)
	if err == nil && tag.RowsAffected() == 0 {
		err = state.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("remove key %s from %s: %w", fingerprint, org, err)
	}
	return nil
}

// HasKey is state.DB.HasKey: whether org exists and holds the key (a key
// row implies its organization, by the foreign key). It is on the login
// path: one indexed lookup.
func (db *DB) HasKey(org, fingerprint string) (bool, error) {
	ctx, cancel := db.op()
	defer cancel()
	var ok bool
	err := db.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM rosterd.keys WHERE org = $1 AND fingerprint = $2)", org, fingerprint).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check key of %s: %w", org, err)
	}
	return ok, nil
}
