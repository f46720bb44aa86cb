package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// Snapshot reads: rosterd.users, groups, memberships and snapshot_counts,
// paged by id (keyset pagination: WHERE id > after ORDER BY id LIMIT n),
// each read in one repeatable-read transaction, as state.DB reads one
// bbolt View. A user's JSON is rendered here from its columns through
// state's own renderer (UserRecord, AppendUserJSON), so it is byte for
// byte what state.DB returns; a group's is stored as rendered.

// knownNames is the order of a user's known optional columns in its JSON.
var knownNames = state.KnownNames()

const userColumns = "id, active, email, first_name, last_name, known::text, custom::text"

// scanUserJSON renders a row of userColumns as org's directory user.
func scanUserJSON(org string) func(row pgx.Row) (json.RawMessage, error) {
	return func(row pgx.Row) (json.RawMessage, error) {
		r, active, err := scanUserRecord(row)
		if err != nil {
			return nil, err
		}
		return state.AppendUserJSON(nil, org, active, r.AppendBinary(nil)), nil
	}
}

func scanDoc(row pgx.Row) (json.RawMessage, error) {
	var doc string
	if err := row.Scan(&doc); err != nil {
		return nil, notFound(err)
	}
	return json.RawMessage(doc), nil
}

// readSnapshot runs fn in a read-only snapshot after checking that org
// exists (state.ErrNotFound, naming it, as state.DB.ViewSnapshot).
func (db *DB) readSnapshot(org string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return db.read(func(ctx context.Context, tx pgx.Tx) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return fmt.Errorf("organization %s: %w", org, err)
		}
		return fn(ctx, tx)
	})
}

// queryJSON returns the JSON of each row sql selects.
func queryJSON(ctx context.Context, tx pgx.Tx, scan func(pgx.Row) (json.RawMessage, error), sql string, args ...any) ([]json.RawMessage, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scan)
}

// Users is state.DB.Users: up to limit (<= 0: all) directory users of
// org whose ids sort after after, in id order; stateFilter "active" or
// "inactive" keeps the users in that state.
func (db *DB) Users(org, stateFilter, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.readSnapshot(org, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = queryJSON(ctx, tx, scanUserJSON(org), "SELECT "+userColumns+` FROM rosterd.users
WHERE org = $1 AND id > $2 AND ($3 <> 'active' OR active) AND ($3 <> 'inactive' OR NOT active)
ORDER BY id LIMIT $4`, org, after, stateFilter, limitArg(limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// User is state.DB.User: one directory user, or state.ErrNotFound.
func (db *DB) User(org, id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.readSnapshot(org, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = scanUserJSON(org)(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM rosterd.users WHERE org = $1 AND id = $2", org, id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return out, nil
}

// UserGroups is state.DB.UserGroups: up to limit directory groups of a
// user, in group id order after after; state.ErrNotFound when the user
// does not exist.
func (db *DB) UserGroups(org, userID, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.readSnapshot(org, func(ctx context.Context, tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM rosterd.users WHERE org = $1 AND id = $2", org, userID).Scan(&one); err != nil {
			return notFound(err)
		}
		var err error
		out, err = queryJSON(ctx, tx, scanDoc, `SELECT g.doc::text FROM rosterd.memberships m
JOIN rosterd.groups g ON g.org = m.org AND g.id = m.group_id
WHERE m.org = $1 AND m.user_id = $2 AND m.group_id > $3 ORDER BY m.group_id LIMIT $4`, org, userID, after, limitArg(limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("groups of user %s: %w", userID, err)
	}
	return out, nil
}

// Groups is state.DB.Groups: up to limit directory groups in id order
// after after.
func (db *DB) Groups(org, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.readSnapshot(org, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = queryJSON(ctx, tx, scanDoc, "SELECT doc::text FROM rosterd.groups WHERE org = $1 AND id > $2 ORDER BY id LIMIT $3",
			org, after, limitArg(limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// Group is state.DB.Group: one directory group, or state.ErrNotFound.
func (db *DB) Group(org, id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.readSnapshot(org, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = scanDoc(tx.QueryRow(ctx, "SELECT doc::text FROM rosterd.groups WHERE org = $1 AND id = $2", org, id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", id, err)
	}
	return out, nil
}

// GroupUsers is state.DB.GroupUsers: up to limit directory users of a
// group, in user id order after after; state.ErrNotFound when the group
// does not exist.
func (db *DB) GroupUsers(org, groupID, after string, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := db.readSnapshot(org, func(ctx context.Context, tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM rosterd.groups WHERE org = $1 AND id = $2", org, groupID).Scan(&one); err != nil {
			return notFound(err)
		}
		var err error
		out, err = queryJSON(ctx, tx, scanUserJSON(org), `SELECT u.id, u.active, u.email, u.first_name, u.last_name, u.known::text, u.custom::text
FROM rosterd.memberships m JOIN rosterd.users u ON u.org = m.org AND u.id = m.user_id
WHERE m.org = $1 AND m.group_id = $2 AND m.user_id > $3 ORDER BY m.user_id LIMIT $4`, org, groupID, after, limitArg(limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("users of group %s: %w", groupID, err)
	}
	return out, nil
}

// SnapshotCounts is state.DB.SnapshotCounts: org's snapshot totals (zero
// before its first batch).
func (db *DB) SnapshotCounts(org string) (state.SnapshotCounts, error) {
	var c state.SnapshotCounts
	err := db.readSnapshot(org, func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT users, active, groups, memberships FROM rosterd.snapshot_counts WHERE org = $1", org).
			Scan(&c.Users, &c.Active, &c.Groups, &c.Memberships)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	return c, err
}
