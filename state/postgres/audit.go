package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// The audit trail: rosterd.audit, one row per record, and
// rosterd.audit_heads, one row per organization with its record count and
// the time and sequence of its last id. An id is state.DB's: 32 hex
// digits, the record's time in Unix nanoseconds (raised so that ids never
// go back in time) and the organization's sequence number. An append locks
// the organization's head row, so ids are drawn in commit order and a
// reader paging oldest-first never misses a record appended later, across
// instances too.

// AppendAudit is state.DB.AppendAudit: records of organizations that do
// not exist are skipped; each organization keeps its newest keep records
// (keep <= 0: state.AuditKeep).
func (db *DB) AppendAudit(recs []state.AuditRecord, keep int) error {
	if keep <= 0 {
		keep = state.AuditKeep
	}
	byOrg := map[string][]state.AuditRecord{}
	for _, r := range recs {
		if r.Org != "" {
			byOrg[r.Org] = append(byOrg[r.Org], r)
		}
	}
	if len(byOrg) == 0 {
		return nil
	}
	// Head rows are locked in name order, so two appends naming the same
	// organizations never deadlock.
	orgs := make([]string, 0, len(byOrg))
	for o := range byOrg {
		orgs = append(orgs, o)
	}
	slices.Sort(orgs)
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		for _, org := range orgs {
			if err := appendAuditTx(ctx, tx, org, byOrg[org], keep); err != nil {
				return fmt.Errorf("%s: %w", org, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

func appendAuditTx(ctx context.Context, tx pgx.Tx, org string, recs []state.AuditRecord, keep int) error {
	// The head row exists only for an existing organization (foreign
	// key): inserted from the organizations row, it is absent otherwise.
	_, err := tx.Exec(ctx, `INSERT INTO rosterd.audit_heads (org, seq, last_ns, count)
SELECT name, 0, 0, 0 FROM rosterd.organizations WHERE name = $1 ON CONFLICT DO NOTHING`, org)
	if err != nil {
		return err
	}
	var seq, last, count int64
	err = tx.QueryRow(ctx, "SELECT seq, last_ns, count FROM rosterd.audit_heads WHERE org = $1 FOR UPDATE", org).Scan(&seq, &last, &count)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // no such organization
	}
	if err != nil {
		return err
	}
	rows := make([][]any, len(recs))
	for i, r := range recs {
		seq++
		t := max(r.Time.UnixNano(), last)
		last = t
		rows[i] = []any{org, auditID(t, uint64(seq)), r.Time, r.Event, r.RemoteAddr, r.KeyFP, r.Session, r.File, r.Target,
			r.Bytes, r.SHA256, int64(r.Duration), r.Reason, r.SetupLink}
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"rosterd", "audit"}, []string{"org", "id", "time", "event", "remote_addr", "key_fp",
		"session", "file", "target", "bytes", "sha256", "duration_ns", "reason", "setup_link"}, pgx.CopyFromRows(rows))
	if err != nil {
		return err
	}
	count += int64(len(recs))
	if count > int64(keep) {
		tag, err := tx.Exec(ctx, `DELETE FROM rosterd.audit WHERE org = $1 AND id IN
(SELECT id FROM rosterd.audit WHERE org = $1 ORDER BY id LIMIT $2)`, org, count-int64(keep))
		if err != nil {
			return err
		}
		count -= tag.RowsAffected()
	}
	_, err = tx.Exec(ctx, "UPDATE rosterd.audit_heads SET seq = $2, last_ns = $3, count = $4 WHERE org = $1", org, seq, last, count)
	return err
}

func auditID(nanos int64, seq uint64) string {
	return fmt.Sprintf("%016x%016x", uint64(nanos), seq)
}

const auditColumns = "id, time, event, remote_addr, key_fp, session, file, target, bytes, sha256, duration_ns, reason, setup_link"

// scanAudit reads a row of auditColumns as one of org's records.
func scanAudit(org string) func(r pgx.Row) (state.AuditRecord, error) {
	return func(r pgx.Row) (state.AuditRecord, error) {
		a := state.AuditRecord{Org: org}
		var dur int64
		err := r.Scan(&a.ID, &a.Time, &a.Event, &a.RemoteAddr, &a.KeyFP, &a.Session, &a.File, &a.Target, &a.Bytes,
			&a.SHA256, &dur, &a.Reason, &a.SetupLink)
		a.Time, a.Duration = a.Time.UTC(), time.Duration(dur)
		return a, err
	}
}

// AuditRecords is state.DB.AuditRecords: up to limit of org's records
// (limit <= 0: all) in the given order, starting after the id after ("":
// from the start; it need not be a stored id).
func (db *DB) AuditRecords(org, after string, limit int, order state.AuditOrder) ([]state.AuditRecord, error) {
	var out []state.AuditRecord
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		q := "SELECT " + auditColumns + " FROM rosterd.audit WHERE org = $1 "
		switch {
		case order == state.OldestFirst:
			q += "AND id > $2 ORDER BY id"
		case after == "":
			q += "AND $2 = '' ORDER BY id DESC"
		default:
			q += "AND id < $2 ORDER BY id DESC"
		}
		rows, err := tx.Query(ctx, q+" LIMIT $3", org, after, limitArg(limit))
		if err != nil {
			return err
		}
		out, err = collect(rows, scanAudit(org))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit of %s: %w", org, err)
	}
	return out, nil
}
