package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// Export is Import's way back (SPEC §11: rosterd store copy, for a
// rollback to the bbolt file): it reads everything this store holds, in
// one repeatable-read transaction (one view of the database, though the
// fleet should be stopped), and writes it through w into a bbolt store:
// organizations and settings, keys, setup links, audit records with
// their ids, batches with their reports, completions, each
// organization's snapshot as rows, events with their ids and commits and
// the event clock, endpoints, cursors and failed deliveries. The secrets
// are Secrets'. ctx bounds it; Config.Timeout does not.
func (db *DB) Export(ctx context.Context, w *state.Importer) (ImportReport, error) {
	rep := ImportReport{Counts: map[string]int{}}
	orgSet := map[string]bool{}
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, db.pool, opts, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT "+orgColumns+" FROM rosterd.organizations ORDER BY name")
		if err != nil {
			return err
		}
		orgs, err := collect(rows, scanOrg)
		if err != nil {
			return err
		}
		for _, o := range orgs {
			orgSet[o.Name] = true
			if err := exportOrg(ctx, tx, w, o, rep.Counts); err != nil {
				return fmt.Errorf("organization %s: %w", o.Name, err)
			}
		}
		rows, err = tx.Query(ctx, "SELECT "+linkColumns+" FROM rosterd.setup_links ORDER BY token_sha256")
		if err != nil {
			return err
		}
		links, err := collect(rows, scanLink)
		if err != nil {
			return err
		}
		for _, l := range links {
			orgSet[l.Org] = true
			if err := w.SetupLink(l); err != nil {
				return fmt.Errorf("setup link %s: %w", l.ID, err)
			}
		}
		rep.Counts["setup_links"] = len(links)
		if err := exportEvents(ctx, tx, w, orgSet, rep.Counts); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		if err := exportDelivery(ctx, tx, w, orgSet, rep.Counts); err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		return nil
	})
	if err != nil {
		return ImportReport{}, fmt.Errorf("export: %w", err)
	}
	rep.Orgs = slices.Sorted(maps.Keys(orgSet))
	return rep, nil
}

// exportOrg writes an organization with its keys, audit trail, batches,
// completions and snapshot.
func exportOrg(ctx context.Context, tx pgx.Tx, w *state.Importer, o state.Org, counts map[string]int) error {
	if err := w.Org(o); err != nil {
		return err
	}
	counts["organization"]++

	rows, err := tx.Query(ctx, "SELECT "+keyColumns+" FROM rosterd.keys WHERE org = $1 ORDER BY fingerprint", o.Name)
	if err != nil {
		return err
	}
	keys, err := collect(rows, scanKey)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := w.Key(o.Name, k); err != nil {
			return fmt.Errorf("key %s: %w", k.Fingerprint, err)
		}
	}
	counts["keys"] += len(keys)

	rows, err = tx.Query(ctx, "SELECT "+auditColumns+" FROM rosterd.audit WHERE org = $1 ORDER BY id", o.Name)
	if err != nil {
		return err
	}
	recs, err := collect(rows, scanAudit(o.Name))
	if err != nil {
		return err
	}
	if err := w.Audit(o.Name, recs); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	counts["audit"] += len(recs)

	rows, err = tx.Query(ctx, "SELECT record, report::text FROM rosterd.batches WHERE org = $1 ORDER BY id", o.Name)
	if err != nil {
		return err
	}
	type batchRow struct {
		b      state.Batch
		report []byte
	}
	bs, err := collect(rows, func(row pgx.Row) (batchRow, error) {
		var rec []byte
		var report *string
		if err := row.Scan(&rec, &report); err != nil {
			return batchRow{}, err
		}
		b, err := scanBatch(rawRow{rec})
		if err != nil || report == nil {
			return batchRow{b: b}, err
		}
		return batchRow{b: b, report: []byte(*report)}, nil
	})
	if err != nil {
		return err
	}
	for _, b := range bs {
		if err := w.Batch(b.b, b.report); err != nil {
			return fmt.Errorf("batch %s: %w", b.b.ID, err)
		}
	}
	counts["batches"] += len(bs)

	var c state.Completions
	if c.Newest, err = completionsIn(ctx, tx, "completions_newest", "kind", o.Name, nil); err != nil {
		return err
	}
	if c.Files, err = completionsIn(ctx, tx, "completion_files", "name", o.Name, nil); err != nil {
		return err
	}
	if err := w.Completions(o.Name, c); err != nil {
		return fmt.Errorf("completions: %w", err)
	}
	counts["completions"] += len(c.Newest) + len(c.Files)

	return exportSnapshot(ctx, tx, w, o.Name, counts)
}

// rawRow is a row of one column already read.
type rawRow struct{ v []byte }

func (r rawRow) Scan(dest ...any) error {
	*(dest[0].(*[]byte)) = r.v
	return nil
}

// exportSnapshot writes an organization's users, groups and memberships;
// the bbolt store counts them as it writes them.
func exportSnapshot(ctx context.Context, tx pgx.Tx, w *state.Importer, org string, counts map[string]int) error {
	return readSnapshot(ctx, tx, org, snapshotSink{
		group: func(id, name string, flags byte, doc []byte) error {
			counts["groups"]++
			return w.Group(org, id, name, flags, doc)
		},
		user: func(r state.UserRecord, active bool) error {
			counts["users"]++
			return w.User(org, r, active)
		},
		member: func(uid, gid string) error {
			counts["memberships"]++
			return w.Member(org, uid, gid)
		},
	})
}

// snapshotSink receives the rows of a snapshot (readSnapshot).
type snapshotSink struct {
	group  func(id, name string, flags byte, doc []byte) error
	user   func(r state.UserRecord, active bool) error
	member func(uid, gid string) error
}

// readSnapshot reads org's snapshot as tx sees it into to: its groups,
// its users, then its memberships, each in id order. An export and a
// replica's load both read it so.
func readSnapshot(ctx context.Context, tx pgx.Tx, org string, to snapshotSink) error {
	rows, err := tx.Query(ctx, "SELECT id, name, in_file, doc::text FROM rosterd.groups WHERE org = $1 ORDER BY id", org)
	if err != nil {
		return err
	}
	var id, name, doc string
	var inFile bool
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &inFile, &doc}, func() error {
		var flags byte
		if inFile {
			flags = state.GroupInFile
		}
		if err := to.group(id, name, flags, []byte(doc)); err != nil {
			return fmt.Errorf("group %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("groups: %w", err)
	}

	rows, err = tx.Query(ctx, "SELECT "+userColumns+" FROM rosterd.users WHERE org = $1 ORDER BY id", org)
	if err != nil {
		return err
	}
	for rows.Next() {
		r, active, err := scanUserRecord(rows)
		if err == nil {
			err = to.user(r, active)
		}
		if err != nil {
			rows.Close()
			return fmt.Errorf("user %s: %w", r.ID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("users: %w", err)
	}

	rows, err = tx.Query(ctx, "SELECT user_id, group_id FROM rosterd.memberships WHERE org = $1 ORDER BY user_id, group_id", org)
	if err != nil {
		return err
	}
	var uid, gid string
	_, err = pgx.ForEachRow(rows, []any{&uid, &gid}, func() error {
		if err := to.member(uid, gid); err != nil {
			return fmt.Errorf("membership of %s in %s: %w", uid, gid, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("memberships: %w", err)
	}
	return nil
}

// exportEvents writes every commit of events with its retained events,
// then the event clock.
func exportEvents(ctx context.Context, tx pgx.Tx, w *state.Importer, orgs map[string]bool, counts map[string]int) error {
	rows, err := tx.Query(ctx, "SELECT "+commitColumns+" FROM rosterd.commits ORDER BY first_id")
	if err != nil {
		return err
	}
	commits, err := collect(rows, scanCommit)
	if err != nil {
		return err
	}
	n := 0
	var data []byte
	for _, c := range commits {
		orgs[c.org] = true
		err := w.BeginCommit(state.EventCommit{Seq: c.seq, Ms: c.ms, Count: c.count, Lo: c.lo, Created: c.created, Org: c.org, Batch: c.batch})
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT "+eventRowColumns+" WHERE e.org = $1 AND e.batch_id = $2 AND e.idx >= $3 AND e.idx < $4 ORDER BY e.idx",
			c.org, c.batch, int64(c.lo), int64(c.count))
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanEventRow(rows)
			if err == nil {
				data = r.appendData(data[:0])
				err = w.Event(r.idx, r.typ, data)
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("commit %d: %w", c.seq, err)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("commit %d: %w", c.seq, err)
		}
		if err := w.EndCommit(); err != nil {
			return fmt.Errorf("commit %d: %w", c.seq, err)
		}
	}
	counts["events"] = n
	var seq, ms int64
	if err := tx.QueryRow(ctx, "SELECT seq, ms FROM rosterd.event_clock").Scan(&seq, &ms); err != nil {
		return err
	}
	return w.EventClock(uint64(seq), uint64(ms))
}

// exportDelivery writes the endpoints, their cursors and their failed
// deliveries.
func exportDelivery(ctx context.Context, tx pgx.Tx, w *state.Importer, orgs map[string]bool, counts map[string]int) error {
	rows, err := tx.Query(ctx, "SELECT "+endpointColumns+" FROM rosterd.endpoints ORDER BY id")
	if err != nil {
		return err
	}
	eps, err := collect(rows, scanEndpoint)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if err := w.Endpoint(ep); err != nil {
			return fmt.Errorf("endpoint %s: %w", ep.ID, err)
		}
		rows, err := tx.Query(ctx, "SELECT org, "+cursorColumns+" FROM rosterd.delivery_cursors WHERE endpoint = $1 ORDER BY org", ep.ID)
		if err != nil {
			return err
		}
		type cursorRow struct {
			org string
			c   state.Cursor
		}
		cursors, err := collect(rows, func(row pgx.Row) (cursorRow, error) {
			var r cursorRow
			var err error
			r.c, err = scanCursor(row, &r.org)
			return r, err
		})
		if err != nil {
			return err
		}
		for _, r := range cursors {
			orgs[r.org] = true
			if err := w.Cursor(ep.ID, r.org, r.c); err != nil {
				return fmt.Errorf("cursor of %s for %s: %w", ep.ID, r.org, err)
			}
		}
		rows, err = tx.Query(ctx, "SELECT "+failedColumns+" FROM rosterd.delivery_failed WHERE endpoint = $1 ORDER BY event_id", ep.ID)
		if err != nil {
			return err
		}
		failed, err := collect(rows, scanFailed)
		if err != nil {
			return err
		}
		for _, f := range failed {
			orgs[f.Org] = true
			if err := w.Failed(f); err != nil {
				return fmt.Errorf("failed delivery %s of %s: %w", f.EventID, ep.ID, err)
			}
		}
		counts["delivery"] += len(cursors) + len(failed)
	}
	counts["endpoints"] = len(eps)
	return nil
}

// Secrets returns every secret the store keeps, by name (see Secret).
func (db *DB) Secrets() (map[string][]byte, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT name, value FROM rosterd.secrets")
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var name string
		var v []byte
		if err := rows.Scan(&name, &v); err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		out[name] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}
