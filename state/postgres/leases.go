package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosterd/rosterd/state"
)

// Leases (state/lease.go): rosterd.leases, one row per lease name with
// its holder, its fencing token and its expiry. Expiry is the server's
// clock (clock_timestamp()), so instances whose clocks differ agree on it.
//
// The row locks make the fencing hold:
//
//   - a write under a lease (Config.Fenced) locks the lease row FOR KEY
//     SHARE in its own transaction and commits only if the row still
//     names this instance and the token it acquired;
//   - an acquisition of a lease that exists locks the row FOR UPDATE
//     NOWAIT, which conflicts with those writes: while one is in flight
//     the lease counts as held (state.ErrLeaseHeld), so a takeover
//     happens after it committed or aborted, never under it, and every
//     later write of the old holder sees the new token and fails
//     (state.ErrLeaseLost);
//   - a renewal is an UPDATE of a non-key column, which takes a lock that
//     FOR KEY SHARE does not conflict with: a holder keeps its lease
//     while a long write under it runs.
//
// The token never goes back: a released lease keeps its row, expired, so
// that the next acquisition's token is greater than every earlier one.

// AcquireLease takes the lease name for ttl (from the server's clock) for
// this instance (Config.Instance) when it is free, expired, or this
// instance's already; every acquisition gets a new, greater token. It
// returns state.ErrLeaseHeld when another instance holds it, or while a
// write under it is in flight.
func (db *DB) AcquireLease(name string, ttl time.Duration) (state.Lease, error) {
	l := state.Lease{Name: name, Holder: db.instance}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO rosterd.leases (name, holder, token, expires_at)
VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond')
ON CONFLICT (name) DO NOTHING RETURNING token, expires_at`, name, db.instance, ttl.Microseconds()).Scan(&l.Token, &l.ExpiresAt)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var holder string
		var until time.Time
		var expired bool
		err = tx.QueryRow(ctx, `SELECT holder, expires_at, expires_at <= clock_timestamp() FROM rosterd.leases
WHERE name = $1 FOR UPDATE NOWAIT`, name).Scan(&holder, &until, &expired)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
			return fmt.Errorf("a write under it is in flight: %w", state.ErrLeaseHeld)
		}
		if err != nil {
			return err
		}
		if holder != db.instance && !expired {
			return fmt.Errorf("held by %s until %s: %w", holder, until.UTC().Format(time.RFC3339Nano), state.ErrLeaseHeld)
		}
		return tx.QueryRow(ctx, `UPDATE rosterd.leases SET holder = $2, token = token + 1,
    expires_at = clock_timestamp() + $3 * interval '1 microsecond'
WHERE name = $1 RETURNING token, expires_at`, name, db.instance, ttl.Microseconds()).Scan(&l.Token, &l.ExpiresAt)
	})
	if err != nil {
		return state.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	l.ExpiresAt = l.ExpiresAt.UTC()
	db.hold(l)
	return l, nil
}

// RenewLease extends l for ttl from now (the server's clock);
// state.ErrLeaseLost when l is no longer this instance's acquisition of
// the lease (taken over, released, or another instance's). A lease that
// expired but that nobody took over is renewed.
func (db *DB) RenewLease(l state.Lease, ttl time.Duration) (state.Lease, error) {
	ctx, cancel := db.op()
	defer cancel()
	err := state.ErrLeaseLost
	if l.Holder == db.instance {
		err = db.pool.QueryRow(ctx, `UPDATE rosterd.leases SET expires_at = clock_timestamp() + $4 * interval '1 microsecond'
WHERE name = $1 AND holder = $2 AND token = $3 RETURNING expires_at`, l.Name, l.Holder, l.Token, ttl.Microseconds()).Scan(&l.ExpiresAt)
		if errors.Is(err, pgx.ErrNoRows) {
			err = state.ErrLeaseLost
		}
	}
	if errors.Is(err, state.ErrLeaseLost) {
		db.forget(l)
	}
	if err != nil {
		return state.Lease{}, fmt.Errorf("renew lease %s: %w", l.Name, err)
	}
	l.ExpiresAt = l.ExpiresAt.UTC()
	return l, nil
}

// ReleaseLease gives l up: the lease is free (no holder, expired now) and
// this instance's writes under it fail from now on. Releasing a lease no
// longer held does nothing.
func (db *DB) ReleaseLease(l state.Lease) error {
	db.forget(l)
	ctx, cancel := db.op()
	defer cancel()
	_, err := db.pool.Exec(ctx, `UPDATE rosterd.leases SET holder = '', expires_at = clock_timestamp()
WHERE name = $1 AND holder = $2 AND token = $3`, l.Name, l.Holder, l.Token)
	if err != nil {
		return fmt.Errorf("release lease %s: %w", l.Name, err)
	}
	return nil
}

// Leases returns every lease (expired ones too), by name: which instance
// runs what, for an operator.
func (db *DB) Leases() ([]state.Lease, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT name, holder, token, expires_at FROM rosterd.leases ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	out, err := collect(rows, func(row pgx.Row) (state.Lease, error) {
		var l state.Lease
		err := row.Scan(&l.Name, &l.Holder, &l.Token, &l.ExpiresAt)
		l.ExpiresAt = l.ExpiresAt.UTC()
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return out, nil
}

// hold remembers l as this instance's acquisition of its lease.
func (db *DB) hold(l state.Lease) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.held[l.Name] = l.Token
}

// forget drops l from the leases this instance holds, unless it was
// acquired again since.
func (db *DB) forget(l state.Lease) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.held[l.Name] == l.Token {
		delete(db.held, l.Name)
	}
}

// fence returns state.ErrLeaseLost unless this instance holds the lease
// name with the token it acquired, checked in tx, whose lock on the lease
// row keeps a takeover out until tx ends. Without Config.Fenced it checks
// nothing.
func (db *DB) fence(ctx context.Context, tx pgx.Tx, name string) error {
	if !db.fenced {
		return nil
	}
	db.mu.Lock()
	token, ok := db.held[name]
	db.mu.Unlock()
	if !ok {
		return fmt.Errorf("lease %s not held: %w", name, state.ErrLeaseLost)
	}
	var holder string
	var cur int64
	err := tx.QueryRow(ctx, "SELECT holder, token FROM rosterd.leases WHERE name = $1 FOR KEY SHARE", name).Scan(&holder, &cur)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && (holder != db.instance || cur != token)) {
		db.forget(state.Lease{Name: name, Token: token})
		return fmt.Errorf("lease %s taken over: %w", name, state.ErrLeaseLost)
	}
	return err
}
