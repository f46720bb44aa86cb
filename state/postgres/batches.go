package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// Batches and their reports: rosterd.batches, one row per batch with its
// record as JSON (state.Batch, so that a field added later needs no
// migration), the status and creation time copied out of it for the
// queries, and the report as stored (json keeps its bytes).
//
// Every write to an organization's batch records and completions first
// locks the organization's row of rosterd.batch_heads (lockBatches) and
// holds it until it commits: those writes run one at a time per
// organization, across instances, as under bbolt's single writer, so
// each operation reads what the previous one committed and decides as
// state.DB decides. Reads take no lock.

// lockBatches locks org's batch head until tx ends, creating it on the
// organization's first batch; state.ErrNotFound when the organization
// does not exist. ON CONFLICT DO UPDATE locks the row whether it was
// there or not, in one statement. With Config.Fenced, it then checks the
// organization's batch lease (state.ErrLeaseLost).
func (db *DB) lockBatches(ctx context.Context, tx pgx.Tx, org string) error {
	var got string
	err := tx.QueryRow(ctx, `INSERT INTO rosterd.batch_heads (org) SELECT name FROM rosterd.organizations WHERE name = $1
ON CONFLICT (org) DO UPDATE SET org = excluded.org RETURNING org`, org).Scan(&got)
	if err != nil {
		return notFound(err)
	}
	return db.fence(ctx, tx, state.BatchLease(org))
}

// scanBatch decodes a row's record.
func scanBatch(row pgx.Row) (state.Batch, error) {
	var raw []byte
	if err := row.Scan(&raw); err != nil {
		return state.Batch{}, notFound(err)
	}
	var b state.Batch
	if err := json.Unmarshal(raw, &b); err != nil {
		return state.Batch{}, fmt.Errorf("decode batch: %w", err)
	}
	return b, nil
}

// getBatch returns the stored record of org's batch id, or
// state.ErrNotFound.
func getBatch(ctx context.Context, q querier, org, id string) (state.Batch, error) {
	b, err := scanBatch(q.QueryRow(ctx, "SELECT record FROM rosterd.batches WHERE org = $1 AND id = $2", org, id))
	if err != nil {
		return state.Batch{}, err
	}
	return b, nil
}

// batchExists returns state.ErrExists when org has a batch id.
func batchExists(ctx context.Context, q querier, org, id string) error {
	var n int
	if err := q.QueryRow(ctx, "SELECT count(*) FROM rosterd.batches WHERE org = $1 AND id = $2", org, id).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return state.ErrExists
	}
	return nil
}

// putBatch stores b's record, and report unless it is nil (the stored
// report stays), and notifies ChannelBatches of b's organization at
// commit, in the same statement.
func putBatch(ctx context.Context, q querier, b state.Batch, report []byte) error {
	rec, err := json.Marshal(b)
	if err != nil {
		return err
	}
	var rep any
	if report != nil {
		rep = string(report)
	}
	_, err = q.Exec(ctx, `WITH put AS (
    INSERT INTO rosterd.batches (org, id, status, created_at, record, report) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (org, id) DO UPDATE SET status = excluded.status, created_at = excluded.created_at, record = excluded.record,
        report = COALESCE(excluded.report, rosterd.batches.report)
    RETURNING org)
SELECT pg_notify('`+ChannelBatches+`', org) FROM put`,
		b.Org, b.ID, b.Status, b.CreatedAt, string(rec), rep)
	return err
}

// queryBatches returns the records of the rows sql selects.
func queryBatches(ctx context.Context, q querier, sql string, args ...any) ([]state.Batch, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanBatch)
}

// CreateBatch is state.DB.CreateBatch: it records b and supersedes every
// held batch of the organization newer than its newest applied,
// unchanged or rejected one, returning their ids, newest first.
func (db *DB) CreateBatch(b state.Batch) (superseded []string, err error) {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = db.stamp()
	}
	err = db.tx(func(ctx context.Context, tx pgx.Tx) error {
		superseded = nil
		if err := db.lockBatches(ctx, tx, b.Org); err != nil {
			return err
		}
		if err := batchExists(ctx, tx, b.Org, b.ID); err != nil {
			return err
		}
		held, err := queryBatches(ctx, tx, `SELECT record FROM rosterd.batches WHERE org = $1 AND status = 'held'
AND id > COALESCE((SELECT max(id) FROM rosterd.batches WHERE org = $1 AND status IN ('applied', 'unchanged', 'rejected')), '')
ORDER BY id DESC`, b.Org)
		if err != nil {
			return err
		}
		for _, old := range held {
			now := db.stamp()
			old.Status, old.SupersededBy, old.FinishedAt = state.BatchSuperseded, b.ID, &now
			if err := putBatch(ctx, tx, old, nil); err != nil {
				return err
			}
			superseded = append(superseded, old.ID)
		}
		return putBatch(ctx, tx, b, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("create batch %s: %w", b.ID, err)
	}
	return superseded, nil
}

// UpdateBatch is state.DB.UpdateBatch: fn runs on the stored record, in
// the transaction that stores what it made of it.
func (db *DB) UpdateBatch(org, id string, fn func(*state.Batch) error) (state.Batch, error) {
	var b state.Batch
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := db.lockBatches(ctx, tx, org); err != nil {
			return err
		}
		var err error
		if b, err = getBatch(ctx, tx, org, id); err != nil {
			return err
		}
		if err := fn(&b); err != nil {
			return err
		}
		b.ID, b.Org = id, org
		return putBatch(ctx, tx, b, nil)
	})
	if err != nil {
		return state.Batch{}, fmt.Errorf("update batch %s: %w", id, err)
	}
	return b, nil
}

// Batch is state.DB.Batch: one batch record, or state.ErrNotFound.
func (db *DB) Batch(org, id string) (state.Batch, error) {
	ctx, cancel := db.op()
	defer cancel()
	b, err := getBatch(ctx, db.pool, org, id)
	if err != nil {
		return state.Batch{}, fmt.Errorf("batch %s: %w", id, err)
	}
	return b, nil
}

// BatchReport is state.DB.BatchReport: the stored report, byte for byte,
// or state.ErrNotFound when the batch has none.
func (db *DB) BatchReport(org, id string) (json.RawMessage, error) {
	ctx, cancel := db.op()
	defer cancel()
	var rep *string
	err := db.pool.QueryRow(ctx, "SELECT report::text FROM rosterd.batches WHERE org = $1 AND id = $2", org, id).Scan(&rep)
	if err == nil && rep == nil {
		err = state.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("report of batch %s: %w", id, notFound(err))
	}
	return json.RawMessage(*rep), nil
}

// ReplaceBatchReport is state.DB.ReplaceBatchReport: state.ErrNotFound
// when the batch has no report.
func (db *DB) ReplaceBatchReport(org, id string, report []byte) error {
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := db.lockBatches(ctx, tx, org); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE rosterd.batches SET report = $3 WHERE org = $1 AND id = $2 AND report IS NOT NULL",
			org, id, string(report))
		if err == nil && tag.RowsAffected() == 0 {
			err = state.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("replace report of batch %s: %w", id, err)
	}
	return nil
}

// Batches is state.DB.Batches: up to limit (<= 0: all) batches of org,
// newest first, older than after ("": from the newest);
// state.ErrNotFound when the organization does not exist.
func (db *DB) Batches(org, after string, limit int) ([]state.Batch, error) {
	var out []state.Batch
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		var err error
		out, err = queryBatches(ctx, tx, `SELECT record FROM rosterd.batches WHERE org = $1 AND ($2 = '' OR id < $2)
ORDER BY id DESC LIMIT $3`, org, after, limitArg(limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list batches of %s: %w", org, err)
	}
	return out, nil
}

// UnfinishedBatches is state.DB.UnfinishedBatches: every pending or
// processing batch, by organization, then oldest first.
func (db *DB) UnfinishedBatches() ([]state.Batch, error) {
	ctx, cancel := db.op()
	defer cancel()
	out, err := queryBatches(ctx, db.pool, "SELECT record FROM rosterd.batches WHERE status IN ('pending', 'processing') ORDER BY org, id")
	if err != nil {
		return nil, fmt.Errorf("list unfinished batches: %w", err)
	}
	return out, nil
}

// OpenBatches is state.DB.OpenBatches: every batch that is not final
// (pending, processing, held), by organization, then oldest first. The
// index batches_open holds just those.
func (db *DB) OpenBatches() ([]state.Batch, error) {
	ctx, cancel := db.op()
	defer cancel()
	out, err := queryBatches(ctx, db.pool, "SELECT record FROM rosterd.batches WHERE status IN ('pending', 'processing', 'held') ORDER BY org, id")
	if err != nil {
		return nil, fmt.Errorf("list open batches: %w", err)
	}
	return out, nil
}

// finishable returns the stored record of b's batch: state.ErrNotFound
// when there is none, state.ErrBatchFinished when it is final.
func (db *DB) finishable(ctx context.Context, tx pgx.Tx, org, id string) (state.Batch, error) {
	if err := db.lockBatches(ctx, tx, org); err != nil {
		return state.Batch{}, err
	}
	stored, err := getBatch(ctx, tx, org, id)
	if err != nil {
		return state.Batch{}, err
	}
	if state.BatchFinished(stored.Status) {
		return state.Batch{}, state.ErrBatchFinished
	}
	return stored, nil
}

// FinishBatch is state.DB.FinishBatch: it stores b's final record and,
// unless report is nil, its report; state.ErrBatchFinished when the
// stored batch is already final.
func (db *DB) FinishBatch(b state.Batch, report []byte) error {
	if b.FinishedAt == nil {
		now := db.stamp()
		b.FinishedAt = &now
	}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := db.finishable(ctx, tx, b.Org, b.ID); err != nil {
			return err
		}
		return putBatch(ctx, tx, b, report)
	})
	if err != nil {
		return fmt.Errorf("apply batch %s: %w", b.ID, err)
	}
	return nil
}

// RecordIgnored is state.DB.RecordIgnored: an ignored upload's final
// record and report, superseding nothing.
func (db *DB) RecordIgnored(b state.Batch, report []byte) error {
	if b.Status != state.BatchIgnored {
		return fmt.Errorf("record ignored upload %s: status %q is not %q", b.ID, b.Status, state.BatchIgnored)
	}
	if b.FinishedAt == nil {
		now := db.stamp()
		b.FinishedAt = &now
	}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := db.lockBatches(ctx, tx, b.Org); err != nil {
			return err
		}
		if err := batchExists(ctx, tx, b.Org, b.ID); err != nil {
			return err
		}
		return putBatch(ctx, tx, b, report)
	})
	if err != nil {
		return fmt.Errorf("record ignored upload %s: %w", b.ID, err)
	}
	return nil
}
