package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// Completions and the batch operations ingest calls as a batch goes from
// formed to final (SPEC §5, state/completions.go). An organization's
// processed completions are rosterd.completion_files (the newest per file
// name) and rosterd.completions_newest (the newest per kind), each a
// state.Completion as JSON. Each operation is one transaction under the
// organization's batch head (lockBatches); the comparisons of completion
// order are state.Completion's, in Go, on times to the nanosecond, so
// that both stores decide alike.

// completionsIn returns org's completion records of table (keyed by
// column key), of the keys in keys (nil: all). A record that does not
// decode is left out, as state.DB leaves it out.
func completionsIn(ctx context.Context, q querier, table, key, org string, keys []string) (map[string]state.Completion, error) {
	sql := "SELECT " + key + ", record FROM rosterd." + table + " WHERE org = $1"
	args := []any{org}
	if keys != nil {
		sql += " AND " + key + " = ANY($2)"
		args = append(args, keys)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]state.Completion{}
	for rows.Next() {
		var k string
		var raw []byte
		if err := rows.Scan(&k, &raw); err != nil {
			return nil, err
		}
		var c state.Completion
		if json.Unmarshal(raw, &c) == nil {
			out[k] = c
		}
	}
	return out, rows.Err()
}

// putCompletions stores the records of m named in keys into table.
func putCompletions(ctx context.Context, q querier, table, key, org string, m map[string]state.Completion, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys) // rows locked in key order: no deadlock between writers
	recs := make([]string, len(keys))
	for i, k := range keys {
		b, err := json.Marshal(m[k])
		if err != nil {
			return err
		}
		recs[i] = string(b)
	}
	_, err := q.Exec(ctx, "INSERT INTO rosterd."+table+" (org, "+key+", record) SELECT $1, k, r::jsonb FROM unnest($2::text[], $3::text[]) AS u(k, r) "+
		"ON CONFLICT (org, "+key+") DO UPDATE SET record = excluded.record", org, keys, recs)
	return err
}

// raiseNewest moves org's newest completion of each kind forward to the
// times of cs (state's raiseNewest).
func raiseNewest(ctx context.Context, tx pgx.Tx, org string, cs []state.Completion) error {
	if len(cs) == 0 {
		return nil
	}
	newest, err := completionsIn(ctx, tx, "completions_newest", "kind", org, nil)
	if err != nil {
		return err
	}
	var changed []string
	for _, c := range cs {
		if c.Kind == "" || !c.After(newest[c.Kind]) {
			continue
		}
		newest[c.Kind] = c
		changed = append(changed, c.Kind)
	}
	return putCompletions(ctx, tx, "completions_newest", "kind", org, newest, slices.Compact(slices.Sorted(slices.Values(changed))))
}

// recordCompletions records cs in org's completions (a name keeps a newer
// completion it has) and moves the newest forward (state's
// recordCompletionsTx).
func recordCompletions(ctx context.Context, tx pgx.Tx, org string, cs []state.Completion) error {
	if len(cs) == 0 {
		return nil
	}
	names := make([]string, 0, len(cs))
	for _, c := range cs {
		names = append(names, c.Name)
	}
	files, err := completionsIn(ctx, tx, "completion_files", "name", org, names)
	if err != nil {
		return err
	}
	var changed []string
	for _, c := range cs {
		if o, ok := files[c.Name]; ok && o.CompletedAt.After(c.CompletedAt) {
			continue // a newer completion of the name is recorded
		}
		files[c.Name] = c
		changed = append(changed, c.Name)
	}
	if err := putCompletions(ctx, tx, "completion_files", "name", org, files, slices.Compact(slices.Sorted(slices.Values(changed)))); err != nil {
		return err
	}
	return raiseNewest(ctx, tx, org, cs)
}

// Completions is state.DB.Completions: org's record of processed
// completions (empty, not nil, maps when it has none).
func (db *DB) Completions(org string) (state.Completions, error) {
	var out state.Completions
	err := db.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if out.Newest, err = completionsIn(ctx, tx, "completions_newest", "kind", org, nil); err != nil {
			return err
		}
		out.Files, err = completionsIn(ctx, tx, "completion_files", "name", org, nil)
		return err
	})
	if err != nil {
		return state.Completions{}, fmt.Errorf("completions of %s: %w", org, err)
	}
	return out, nil
}

// ForgetCompletions is state.DB.ForgetCompletions: the per-name records
// of names go; the newest per kind stay.
func (db *DB) ForgetCompletions(org string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := db.lockBatches(ctx, tx, org); err != nil {
			if isNotFound(err) {
				return nil // no organization, no completions
			}
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM rosterd.completion_files WHERE org = $1 AND name = ANY($2)", org, names)
		return err
	})
	if err != nil {
		return fmt.Errorf("forget completions of %s: %w", org, err)
	}
	return nil
}

// takenCompletions are the completions b records as processed: its files
// not taken over from another batch, and those it set aside.
func takenCompletions(b state.Batch, files bool) []state.Completion {
	var cs []state.Completion
	if files {
		for _, f := range b.Files {
			if f.From == "" {
				cs = append(cs, state.Completion{Name: f.Name, Kind: f.Kind, Size: f.Size, ModTime: f.ModTime, SHA256: f.SHA256,
					ChangeTime: f.ChangeTime, CompletedAt: f.CompletedAt, Batch: b.ID})
			}
		}
	}
	for _, f := range b.Ignored {
		cs = append(cs, state.Completion{Name: f.Name, Kind: f.Kind, Size: f.Size, ModTime: f.ModTime, CompletedAt: f.CompletedAt,
			Batch: b.ID, Ignored: true})
	}
	return cs
}

// FormBatch is state.DB.FormBatch: b, its completions, and the
// supersession of every older held or unfinished batch back to the
// newest applied, unchanged or rejected one, in one transaction. report
// runs inside it.
func (db *DB) FormBatch(b state.Batch, report func(superseded state.Batch) []byte) ([]state.Batch, error) {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = db.stamp()
	}
	var superseded []state.Batch
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		superseded = nil
		if err := db.lockBatches(ctx, tx, b.Org); err != nil {
			return err
		}
		if err := batchExists(ctx, tx, b.Org, b.ID); err != nil {
			return err
		}
		olds, err := queryBatches(ctx, tx, `SELECT record FROM rosterd.batches
WHERE org = $1 AND id < $2 AND status IN ('held', 'pending', 'processing')
AND id > COALESCE((SELECT max(id) FROM rosterd.batches WHERE org = $1 AND id < $2
    AND status NOT IN ('held', 'pending', 'processing', 'superseded', 'ignored')), '')
ORDER BY id DESC`, b.Org, b.ID)
		if err != nil {
			return err
		}
		for _, old := range olds {
			superseded = append(superseded, old)
			var rep []byte
			if old.Status != state.BatchHeld && report != nil {
				rep = report(old)
			}
			now := db.stamp()
			old.Status, old.SupersededBy, old.FinishedAt, old.RetryAt = state.BatchSuperseded, b.ID, &now, nil
			if err := putBatch(ctx, tx, old, rep); err != nil {
				return err
			}
		}
		b.Supersedes = nil
		for i := len(superseded) - 1; i >= 0; i-- {
			b.Supersedes = append(b.Supersedes, superseded[i].ID)
		}
		if err := putBatch(ctx, tx, b, nil); err != nil {
			return err
		}
		return recordCompletions(ctx, tx, b.Org, takenCompletions(b, true))
	})
	if err != nil {
		return nil, fmt.Errorf("form batch %s: %w", b.ID, err)
	}
	return superseded, nil
}

// RecordSetAside is state.DB.RecordSetAside: b, which took no file, as
// ignored with its report, and the completions it set aside.
func (db *DB) RecordSetAside(b state.Batch, report []byte) error {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = db.stamp()
	}
	if b.FinishedAt == nil {
		now := db.stamp()
		b.FinishedAt = &now
	}
	b.Status = state.BatchIgnored
	if b.Files == nil {
		b.Files = []state.BatchFile{} // the record lists its files, none: not null
	}
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := db.lockBatches(ctx, tx, b.Org); err != nil {
			return err
		}
		if err := batchExists(ctx, tx, b.Org, b.ID); err != nil {
			return err
		}
		if err := putBatch(ctx, tx, b, report); err != nil {
			return err
		}
		return recordCompletions(ctx, tx, b.Org, takenCompletions(b, false))
	})
	if err != nil {
		return fmt.Errorf("record set-aside batch %s: %w", b.ID, err)
	}
	return nil
}

// RecordArchived is state.DB.RecordArchived: the pending batch becomes
// processing with files as archived, and the completion each file still
// holds takes its archived size, times and hash.
func (db *DB) RecordArchived(org, id string, files []state.BatchFile) (state.Batch, error) {
	var b state.Batch
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if b, err = db.finishable(ctx, tx, org, id); err != nil {
			return err
		}
		files := slices.Clone(files)
		names := make([]string, 0, len(files))
		for _, f := range files {
			names = append(names, f.Name)
		}
		cf, err := completionsIn(ctx, tx, "completion_files", "name", org, names)
		if err != nil {
			return err
		}
		var moved []state.Completion
		var changed []string
		for i, f := range files {
			c, ok := cf[f.Name]
			current := ok && c.CompletedAt.Equal(f.CompletedAt)
			if f.ChangeTime.After(f.CompletedAt) {
				files[i].CompletedAt = f.ChangeTime
			}
			if !current {
				continue
			}
			c.Size, c.ModTime, c.SHA256, c.ChangeTime, c.CompletedAt = f.Size, f.ModTime, f.SHA256, f.ChangeTime, files[i].CompletedAt
			cf[f.Name] = c
			changed = append(changed, f.Name)
			moved = append(moved, c)
			if f.Kind != c.Kind {
				// A file found inside the upload (a zip's member): it is
				// the newest file of its own kind too.
				c.Kind = f.Kind
				moved = append(moved, c)
			}
		}
		if err := putCompletions(ctx, tx, "completion_files", "name", org, cf, slices.Compact(slices.Sorted(slices.Values(changed)))); err != nil {
			return err
		}
		if err := raiseNewest(ctx, tx, org, moved); err != nil {
			return err
		}
		b.Files, b.Status = files, state.BatchProcessing
		return putBatch(ctx, tx, b, nil)
	})
	if err != nil {
		return state.Batch{}, fmt.Errorf("record archived batch %s: %w", id, err)
	}
	return b, nil
}

// RecordFailure is state.DB.RecordFailure: b's Attempts, LastError and
// RetryAt on the stored record, and report unless it is nil.
func (db *DB) RecordFailure(b state.Batch, report []byte) error {
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		stored, err := db.finishable(ctx, tx, b.Org, b.ID)
		if err != nil {
			return err
		}
		stored.Attempts, stored.LastError, stored.RetryAt = b.Attempts, b.LastError, b.RetryAt
		return putBatch(ctx, tx, stored, report)
	})
	if err != nil {
		return fmt.Errorf("record failure of batch %s: %w", b.ID, err)
	}
	return nil
}

// SupersedeBatch is state.DB.SupersedeBatch: the unfinished or held batch
// becomes superseded by by, with report unless it is nil.
func (db *DB) SupersedeBatch(org, id, by string, report []byte) (state.Batch, error) {
	var b state.Batch
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if b, err = db.finishable(ctx, tx, org, id); err != nil {
			return err
		}
		now := db.stamp()
		b.Status, b.SupersededBy, b.FinishedAt, b.RetryAt = state.BatchSuperseded, by, &now, nil
		return putBatch(ctx, tx, b, report)
	})
	if err != nil {
		return state.Batch{}, fmt.Errorf("supersede batch %s: %w", id, err)
	}
	return b, nil
}
