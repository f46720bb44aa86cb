package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// Webhook delivery state: rosterd.endpoints, rosterd.delivery_cursors
// (one row per endpoint and organization, the retry state in its
// columns) and rosterd.delivery_failed.

const endpointColumns = "id, url, start, first_seen, disabled, disabled_at, disabled_reason"

func scanEndpoint(row pgx.Row) (state.EndpointState, error) {
	var st state.EndpointState
	var disabledAt *time.Time
	err := row.Scan(&st.ID, &st.URL, &st.Start, &st.FirstSeen, &st.Disabled, &disabledAt, &st.DisabledReason)
	if err != nil {
		return state.EndpointState{}, notFound(err)
	}
	st.FirstSeen, st.DisabledAt = st.FirstSeen.UTC(), derefTime(disabledAt)
	return st, nil
}

// RegisterEndpoint is state.DB.RegisterEndpoint: the stored state of
// endpoint id, created with Start at the current last event id when new;
// a changed url is stored and enables the endpoint again.
func (db *DB) RegisterEndpoint(id, url string) (state.EndpointState, error) {
	var st state.EndpointState
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		start, err := lastEventID(ctx, tx)
		if err != nil {
			return err
		}
		// Two instances registering the same endpoint at once: the second
		// insert does nothing and both read the first one's row.
		_, err = tx.Exec(ctx, `INSERT INTO rosterd.endpoints (id, url, start, first_seen)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, id, url, start, db.stamp())
		if err != nil {
			return err
		}
		st, err = scanEndpoint(tx.QueryRow(ctx, "SELECT "+endpointColumns+" FROM rosterd.endpoints WHERE id = $1 FOR UPDATE", id))
		if err != nil || st.URL == url {
			return err
		}
		st.URL, st.Disabled, st.DisabledAt, st.DisabledReason = url, false, time.Time{}, ""
		_, err = tx.Exec(ctx, `UPDATE rosterd.endpoints SET url = $2, disabled = false, disabled_at = NULL, disabled_reason = ''
WHERE id = $1`, id, url)
		return err
	})
	if err != nil {
		return state.EndpointState{}, fmt.Errorf("register endpoint %s: %w", id, err)
	}
	return st, nil
}

// Endpoints is state.DB.Endpoints: every endpoint ever registered, in id
// order.
func (db *DB) Endpoints() ([]state.EndpointState, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+endpointColumns+" FROM rosterd.endpoints ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	out, err := collect(rows, scanEndpoint)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// Endpoint is state.DB.Endpoint.
func (db *DB) Endpoint(id string) (state.EndpointState, error) {
	ctx, cancel := db.op()
	defer cancel()
	st, err := scanEndpoint(db.pool.QueryRow(ctx, "SELECT "+endpointColumns+" FROM rosterd.endpoints WHERE id = $1", id))
	if err != nil {
		return state.EndpointState{}, fmt.Errorf("endpoint %s: %w", id, err)
	}
	return st, nil
}

// SetEndpointDisabled is state.DB.SetEndpointDisabled.
func (db *DB) SetEndpointDisabled(id string, disabled bool, reason string) (state.EndpointState, error) {
	var at *time.Time
	if disabled {
		now := db.stamp()
		at = &now
	} else {
		reason = ""
	}
	ctx, cancel := db.op()
	defer cancel()
	st, err := scanEndpoint(db.pool.QueryRow(ctx, `UPDATE rosterd.endpoints SET disabled = $2, disabled_at = $3, disabled_reason = $4
WHERE id = $1 RETURNING `+endpointColumns, id, disabled, at, reason))
	if err != nil {
		return state.EndpointState{}, fmt.Errorf("set endpoint %s disabled: %w", id, err)
	}
	return st, nil
}

const cursorColumns = "after, retry_event, retry_attempts, retry_next_at, retry_last_status, retry_last_error"

func scanCursor(row pgx.Row, org *string) (state.Cursor, error) {
	var c state.Cursor
	var event *string
	var r state.Retry
	var next *time.Time
	dest := []any{&c.After, &event, &r.Attempts, &next, &r.LastStatus, &r.LastError}
	if org != nil {
		dest = append([]any{org}, dest...)
	}
	if err := row.Scan(dest...); err != nil {
		return state.Cursor{}, notFound(err)
	}
	if event != nil {
		r.EventID, r.NextAt = *event, derefTime(next)
		c.Retry = &r
	}
	return c, nil
}

// Cursors is state.DB.Cursors: endpoint id's cursors by organization;
// state.ErrNotFound when the endpoint was never registered.
func (db *DB) Cursors(id string) (map[string]state.Cursor, error) {
	out := map[string]state.Cursor{}
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		if err := endpointExists(ctx, tx, id); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT org, "+cursorColumns+" FROM rosterd.delivery_cursors WHERE endpoint = $1", id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var org string
			c, err := scanCursor(rows, &org)
			if err != nil {
				return err
			}
			out[org] = c
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("cursors of endpoint %s: %w", id, err)
	}
	return out, nil
}

func endpointExists(ctx context.Context, q querier, id string) error {
	var one int
	return notFound(q.QueryRow(ctx, "SELECT 1 FROM rosterd.endpoints WHERE id = $1", id).Scan(&one))
}

// Cursor is state.DB.Cursor: endpoint id's cursor for org, {After: the
// endpoint's Start} when none is stored.
func (db *DB) Cursor(id, org string) (state.Cursor, error) {
	ctx, cancel := db.op()
	defer cancel()
	c, err := scanCursor(db.pool.QueryRow(ctx, `SELECT COALESCE(c.after, e.start), c.retry_event, COALESCE(c.retry_attempts, 0),
       c.retry_next_at, COALESCE(c.retry_last_status, 0), COALESCE(c.retry_last_error, '')
FROM rosterd.endpoints e
LEFT JOIN rosterd.delivery_cursors c ON c.endpoint = e.id AND c.org = $2
WHERE e.id = $1`, id, org), nil)
	if err != nil {
		return state.Cursor{}, fmt.Errorf("cursor of endpoint %s for %s: %w", id, org, err)
	}
	return c, nil
}

// SaveCursors is state.DB.SaveCursors: several cursors in one transaction.
// Cursors only move forward: an update whose After sorts before the
// stored one is ignored; one at the stored position replaces the retry
// state.
func (db *DB) SaveCursors(updates ...state.CursorUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		for _, u := range updates {
			if err := db.saveCursor(ctx, tx, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save delivery cursors: %w", err)
	}
	return nil
}

// saveCursor stores one cursor update; with Config.Fenced, under the
// delivery lease of its endpoint and organization.
func (db *DB) saveCursor(ctx context.Context, tx pgx.Tx, u state.CursorUpdate) error {
	c := u.Cursor
	if c.Retry != nil && c.Retry.EventID <= c.After {
		c.Retry = nil
	}
	var (
		event          *string
		attempts, stat int
		next           *time.Time
		lastErr        string
	)
	if r := c.Retry; r != nil {
		event, attempts, next, stat, lastErr = &r.EventID, r.Attempts, nullTime(r.NextAt), r.LastStatus, r.LastError
	}
	// The insert names the endpoint through the foreign key; check first
	// for a clear error.
	if err := endpointExists(ctx, tx, u.Endpoint); err != nil {
		return fmt.Errorf("endpoint %s: %w", u.Endpoint, err)
	}
	if err := db.fence(ctx, tx, state.DeliveryLease(u.Endpoint, u.Org)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO rosterd.delivery_cursors (endpoint, org, `+cursorColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (endpoint, org) DO UPDATE SET after = excluded.after, retry_event = excluded.retry_event,
    retry_attempts = excluded.retry_attempts, retry_next_at = excluded.retry_next_at,
    retry_last_status = excluded.retry_last_status, retry_last_error = excluded.retry_last_error
WHERE delivery_cursors.after <= excluded.after`,
		u.Endpoint, u.Org, c.After, event, attempts, next, stat, lastErr)
	return err
}

// MarkFailed is state.DB.MarkFailed: f is recorded as failed and the
// cursor moves past it, in one transaction.
func (db *DB) MarkFailed(f state.FailedDelivery) error {
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := db.saveCursor(ctx, tx, state.CursorUpdate{Endpoint: f.Endpoint, Org: f.Org, Cursor: state.Cursor{After: f.EventID}}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO rosterd.delivery_failed (`+failedColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (endpoint, event_id) DO UPDATE SET event = excluded.event, org = excluded.org, attempts = excluded.attempts,
    last_status = excluded.last_status, last_error = excluded.last_error, failed_at = excluded.failed_at`,
			f.Endpoint, f.EventID, f.Event, f.Org, f.Attempts, f.LastStatus, f.LastError, f.FailedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark event %s failed for endpoint %s: %w", f.EventID, f.Endpoint, err)
	}
	return nil
}

const failedColumns = "endpoint, event_id, event, org, attempts, last_status, last_error, failed_at"

func scanFailed(row pgx.Row) (state.FailedDelivery, error) {
	var f state.FailedDelivery
	err := row.Scan(&f.Endpoint, &f.EventID, &f.Event, &f.Org, &f.Attempts, &f.LastStatus, &f.LastError, &f.FailedAt)
	if err != nil {
		return state.FailedDelivery{}, notFound(err)
	}
	f.FailedAt = f.FailedAt.UTC()
	return f, nil
}

// FailedDeliveries is state.DB.FailedDeliveries: up to limit (<= 0: all)
// of endpoint id's failed deliveries whose event ids sort after after, in
// event order.
func (db *DB) FailedDeliveries(id, after string, limit int) ([]state.FailedDelivery, error) {
	var out []state.FailedDelivery
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		if err := endpointExists(ctx, tx, id); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT "+failedColumns+` FROM rosterd.delivery_failed
WHERE endpoint = $1 AND event_id > $2 ORDER BY event_id LIMIT $3`, id, after, limitArg(limit))
		if err != nil {
			return err
		}
		out, err = collect(rows, scanFailed)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("failed deliveries of endpoint %s: %w", id, err)
	}
	return out, nil
}

// FailedDelivery is state.DB.FailedDelivery.
func (db *DB) FailedDelivery(id, event string) (state.FailedDelivery, error) {
	ctx, cancel := db.op()
	defer cancel()
	f, err := scanFailed(db.pool.QueryRow(ctx, "SELECT "+failedColumns+" FROM rosterd.delivery_failed WHERE endpoint = $1 AND event_id = $2", id, event))
	if err != nil {
		return state.FailedDelivery{}, fmt.Errorf("failed delivery %s of endpoint %s: %w", event, id, err)
	}
	return f, nil
}

// ClearFailed is state.DB.ClearFailed: clearing an absent entry is not an
// error; an endpoint never registered is state.ErrNotFound. It is not
// fenced (Config.Fenced): it follows a redelivery, which any instance
// sends when the API asks it to, whoever holds the delivery lease, and
// it moves no cursor.
func (db *DB) ClearFailed(id, event string) error {
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := endpointExists(ctx, tx, id); err != nil {
			return err
		}
		var org string
		err := tx.QueryRow(ctx, "SELECT org FROM rosterd.delivery_failed WHERE endpoint = $1 AND event_id = $2 FOR UPDATE", id, event).Scan(&org)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM rosterd.delivery_failed WHERE endpoint = $1 AND event_id = $2", id, event)
		return err
	})
	if err != nil {
		return fmt.Errorf("clear failed delivery %s of endpoint %s: %w", event, id, err)
	}
	return nil
}

// CountFailed is state.DB.CountFailed: 0 for an endpoint never
// registered.
func (db *DB) CountFailed(id string) (int, error) {
	ctx, cancel := db.op()
	defer cancel()
	var n int
	if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM rosterd.delivery_failed WHERE endpoint = $1", id).Scan(&n); err != nil {
		return 0, fmt.Errorf("count failed deliveries of endpoint %s: %w", id, err)
	}
	return n, nil
}
