package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// Applying a batch (SPEC §6, §11): the differ reads the instance's copy
// of the snapshot (replica.go), and its changes stream through a Writer
// that applies each to the copy, as bbolt does, and sends it to the
// database with COPY: the users, groups and memberships to temporary
// tables (straight into the snapshot's tables when it was empty), the
// events into event_records and the users' and groups' JSON into
// event_users and event_groups. When the stream ends, set-based
// statements apply the temporary tables (DELETE ... USING, INSERT ...
// ON CONFLICT), snapshot_counts gets the counts and a new version, the
// batch record its outcome, and the commit row its (seq, ms), last. All
// of it is one transaction: a reader of the snapshot's tables or of the
// views never sees half a batch, and a day 2 writes its changes, not the
// snapshot. The events' JSON is rendered in Go by state's renderers, so
// that it is byte for byte bbolt's.

// Apply is state.DB.Apply: diff reads org's snapshot and returns the
// outcome; it is stored, and its changes applied, in one transaction,
// which checks (under the organization's batch head, fenced by its
// lease) that the stored batch is not final (state.ErrBatchFinished) and
// that the snapshot is still the one diff read (else it fails, and the
// batch is retried).
func (db *DB) Apply(org string, diff func(*state.SnapshotTx) (state.Outcome, error)) (state.Applied, error) {
	var got state.Applied
	l := db.rep.orgLock(org)
	l.Lock()
	defer l.Unlock()
	start := time.Now()
	rep, ver, err := db.current(org)
	got.Load = time.Since(start)
	if err != nil {
		return got, err
	}
	start = time.Now()
	var out state.Outcome
	err = rep.ViewSnapshot(org, func(s *state.SnapshotTx) error {
		var err error
		out, err = diff(s)
		return err
	})
	got.Diff = time.Since(start)
	if err != nil {
		return got, err
	}
	b := out.Batch
	if b.Org != org {
		return got, fmt.Errorf("apply batch %s: organization %q, not %q", b.ID, b.Org, org)
	}
	start = time.Now()
	if b.FinishedAt == nil {
		now := db.stamp()
		b.FinishedAt = &now
	}
	if out.Write == nil {
		// The outcome (unchanged, held, rejected) holds only for the
		// snapshot the diff read.
		err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
			if _, err := db.finishable(ctx, tx, org, b.ID); err != nil {
				return err
			}
			if now, err := snapshotVersion(ctx, tx, org, true); err != nil {
				return err
			} else if now != ver {
				db.rep.forget(org)
				return errStale
			}
			return putBatch(ctx, tx, b, out.Report)
		})
		got.Write = time.Since(start)
		if err != nil {
			return got, fmt.Errorf("apply batch %s: %w", b.ID, err)
		}
		return got, nil
	}
	ctx, cancel := db.long()
	defer cancel()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return got, fmt.Errorf("apply batch %s: %w", b.ID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := db.finishable(ctx, tx, org, b.ID); err != nil {
		return got, fmt.Errorf("apply batch %s: %w", b.ID, err)
	}
	now, err := snapshotVersion(ctx, tx, org, true)
	if err != nil {
		return got, fmt.Errorf("apply batch %s: %w", b.ID, err)
	}
	if now != ver {
		db.rep.forget(org)
		return got, fmt.Errorf("apply batch %s: %w", b.ID, errStale)
	}
	committed := false
	var newVer int64
	var tCommit time.Time
	var w *writer
	err = replicaWrite(rep, org, out.Changes > state.DefaultStageAbove, func(a *state.ApplyTx) error {
		var err error
		if w, err = newWriter(ctx, tx, a, org, b.ID); err != nil {
			return err
		}
		if err := out.Write(w); err != nil {
			return err
		}
		if newVer, err = w.finish(); err != nil {
			return err
		}
		if err := putBatch(ctx, tx, b, out.Report); err != nil {
			return err
		}
		if _, err := db.commitEvents(ctx, tx, org, b.ID, w.emitted); err != nil {
			return err
		}
		got.Emitted = int(w.emitted)
		tCommit = time.Now()
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		committed = true
		return nil
	})
	if w != nil {
		w.cp.wait() // no COPY in flight when the transaction ends
	}
	if !committed {
		db.rep.forget(org)
		return got, fmt.Errorf("apply batch %s: %w", b.ID, err)
	}
	got.Write, got.Commit = tCommit.Sub(start), time.Since(tCommit)
	if err != nil {
		// Applied in the database; the copy is rebuilt before the next
		// batch.
		db.rep.forget(org)
		return got, nil
	}
	db.rep.set(org, newVer)
	db.rep.mergeLater(rep, org, l)
	return got, nil
}

// ViewSnapshot is state.DB.ViewSnapshot: fn reads org's snapshot, from
// the instance's copy brought up to date first (replica.go).
func (db *DB) ViewSnapshot(org string, fn func(*state.SnapshotTx) error) error {
	l := db.rep.orgLock(org)
	l.Lock()
	defer l.Unlock()
	rep, _, err := db.current(org)
	if err != nil {
		return err
	}
	return rep.ViewSnapshot(org, fn)
}

// bulk sends rows to one table with COPY, a chunk at a time, through the
// apply's copyRunner.
type bulk struct {
	cp    *copyRunner
	table pgx.Identifier
	cols  []string
	rows  [][]any
}

func (c *bulk) add(row ...any) error {
	c.rows = append(c.rows, row)
	if len(c.rows) >= copyChunk {
		return c.flush()
	}
	return nil
}

// flush hands the rows held to the copyRunner.
func (c *bulk) flush() error {
	if len(c.rows) == 0 {
		return nil
	}
	err := c.cp.send(copyJob{table: c.table, cols: c.cols, rows: c.rows})
	c.rows = make([][]any, 0, copyChunk)
	return err
}

// copyJob is one COPY.
type copyJob struct {
	table pgx.Identifier
	cols  []string
	rows  [][]any
}

// copyRunner runs the COPYs of an apply one after another on its own
// goroutine, so that the server stores a chunk while the differ's stream
// makes the next (the transaction's connection does one thing at a
// time: nothing else uses it until wait returns).
type copyRunner struct {
	jobs chan copyJob
	done chan struct{}
	err  error // the first failure, read after done
	once sync.Once
}

func newCopyRunner(ctx context.Context, tx pgx.Tx) *copyRunner {
	c := &copyRunner{jobs: make(chan copyJob, 4), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for j := range c.jobs {
			if c.err != nil {
				continue // drain
			}
			if _, err := tx.CopyFrom(ctx, j.table, j.cols, pgx.CopyFromRows(j.rows)); err != nil {
				c.err = fmt.Errorf("copy %s: %w", j.table.Sanitize(), err)
			}
		}
	}()
	return c
}

// send queues a COPY; it fails once one has failed.
func (c *copyRunner) send(j copyJob) error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	c.jobs <- j
	return nil
}

// wait waits for the COPYs queued and returns the first failure. The
// apply calls it before the transaction ends, whatever happened.
func (c *copyRunner) wait() error {
	c.once.Do(func() { close(c.jobs) })
	<-c.done
	return c.err
}

// writer is the state.Writer of an apply: each change goes to the copy
// (a) and to a bulk of the transaction.
type writer struct {
	ctx        context.Context
	tx         pgx.Tx
	cp         *copyRunner
	a          *state.ApplyTx
	org, batch string
	// fresh: the snapshot was empty, so the changes go straight into its
	// tables (nothing to conflict with, nothing to delete).
	fresh bool
	seq   int64

	users, usersDel, groups, groupsDel, membersAdd, membersDel *bulk
	events, eventUsers, eventGroups                            *bulk

	userDoc, groupDoc map[string]bool // docs sent for the batch
	emitted           uint32
	dUsers, dActive   int64 // what the batch changes in snapshot_counts
	dGroups, dMembers int64

	rec state.UserRecord
	buf []byte
}

const applyTables = `
CREATE TEMP TABLE apply_users (seq bigint, id text COLLATE "C", active boolean, email text, first_name text, last_name text, known jsonb, custom jsonb) ON COMMIT DROP;
CREATE TEMP TABLE apply_users_del (id text COLLATE "C") ON COMMIT DROP;
CREATE TEMP TABLE apply_groups (seq bigint, id text COLLATE "C", name text COLLATE "C", in_file boolean, doc json) ON COMMIT DROP;
CREATE TEMP TABLE apply_groups_del (id text COLLATE "C") ON COMMIT DROP;
CREATE TEMP TABLE apply_members_add (user_id text COLLATE "C", group_id text COLLATE "C") ON COMMIT DROP;
CREATE TEMP TABLE apply_members_del (user_id text COLLATE "C", group_id text COLLATE "C") ON COMMIT DROP;`

func newWriter(ctx context.Context, tx pgx.Tx, a *state.ApplyTx, org, batch string) (*writer, error) {
	c := a.Counts()
	w := &writer{
		ctx: ctx, tx: tx, a: a, org: org, batch: batch,
		fresh:   c.Users == 0 && c.Groups == 0 && c.Memberships == 0,
		userDoc: map[string]bool{}, groupDoc: map[string]bool{},
	}
	if _, err := tx.Exec(ctx, applyTables); err != nil {
		return nil, err
	}
	w.cp = newCopyRunner(ctx, tx)
	mk := func(schema, table string, cols ...string) *bulk {
		return &bulk{cp: w.cp, table: pgx.Identifier{schema, table}, cols: cols}
	}
	if w.fresh {
		w.users = mk("rosterd", "users", "org", "id", "active", "email", "first_name", "last_name", "known", "custom")
		w.groups = mk("rosterd", "groups", "org", "id", "name", "in_file", "doc")
		w.membersAdd = mk("rosterd", "memberships", "org", "user_id", "group_id")
	} else {
		w.users = mk("pg_temp", "apply_users", "seq", "id", "active", "email", "first_name", "last_name", "known", "custom")
		w.groups = mk("pg_temp", "apply_groups", "seq", "id", "name", "in_file", "doc")
		w.membersAdd = mk("pg_temp", "apply_members_add", "user_id", "group_id")
	}
	w.usersDel = mk("pg_temp", "apply_users_del", "id")
	w.groupsDel = mk("pg_temp", "apply_groups_del", "id")
	w.membersDel = mk("pg_temp", "apply_members_del", "user_id", "group_id")
	w.events = mk("rosterd", "event_records", "org", "batch_id", "idx", "type", "user_id", "group_id", "data", "previous")
	w.eventUsers = mk("rosterd", "event_users", "org", "batch_id", "user_id", "doc")
	w.eventGroups = mk("rosterd", "event_groups", "org", "batch_id", "group_id", "doc")
	return w, nil
}

func (w *writer) PutGroup(id []byte, name string, flags byte, rec []byte) error {
	if _, _, _, ok := w.a.Group(id); !ok {
		w.dGroups++
	}
	if err := w.a.PutGroup(id, name, flags, rec); err != nil {
		return err
	}
	w.seq++
	inFile := flags&state.GroupInFile != 0
	if w.fresh {
		return w.groups.add(w.org, string(id), name, inFile, string(rec))
	}
	return w.groups.add(w.seq, string(id), name, inFile, string(rec))
}

func (w *writer) DeleteGroup(id []byte) error {
	if _, _, _, ok := w.a.Group(id); ok {
		w.dGroups--
	}
	if err := w.a.DeleteGroup(id); err != nil {
		return err
	}
	return w.groupsDel.add(string(id))
}

func (w *writer) PutUser(id []byte, active bool, rec []byte) error {
	if w.fresh {
		w.dUsers++
	} else if _, was, ok := w.a.User(id); !ok {
		w.dUsers++
	} else if was {
		w.dActive--
	}
	if active {
		w.dActive++
	}
	if err := w.a.PutUser(id, active, rec); err != nil {
		return err
	}
	r, err := state.DecodeUserRecord(rec)
	if err != nil {
		return fmt.Errorf("user %s: %w", id, err)
	}
	known, custom := attrsJSON(r.Known), attrsJSON(r.Custom)
	w.seq++
	if w.fresh {
		return w.users.add(w.org, string(id), active, r.Email, r.FirstName, r.LastName, known, custom)
	}
	return w.users.add(w.seq, string(id), active, r.Email, r.FirstName, r.LastName, known, custom)
}

// attrsJSON is the JSON object of attributes, for a jsonb column.
func attrsJSON(as []state.Attr) string {
	b := []byte{'{'}
	for i, a := range as {
		if i > 0 {
			b = append(b, ',')
		}
		b = state.AppendJSONString(b, a.Name)
		b = append(b, ':')
		b = state.AppendJSONString(b, a.Value)
	}
	return string(append(b, '}'))
}

func (w *writer) DeleteUser(id []byte) error {
	if _, was, ok := w.a.User(id); ok {
		w.dUsers--
		if was {
			w.dActive--
		}
	}
	if err := w.a.DeleteUser(id); err != nil {
		return err
	}
	return w.usersDel.add(string(id))
}

func (w *writer) AddMember(uid, gid []byte) error {
	if !w.fresh && w.a.IsMember(uid, gid) {
		return nil
	}
	if err := w.a.AddMember(uid, gid); err != nil {
		return err
	}
	w.dMembers++
	if w.fresh {
		return w.membersAdd.add(w.org, string(uid), string(gid))
	}
	return w.membersAdd.add(string(uid), string(gid))
}

func (w *writer) RemoveMember(uid, gid []byte) error {
	if !w.a.IsMember(uid, gid) {
		return nil
	}
	if err := w.a.RemoveMember(uid, gid); err != nil {
		return err
	}
	w.dMembers--
	return w.membersDel.add(string(uid), string(gid))
}

// keepUser sends the user's JSON as the snapshot holds it now, once per
// batch (state.ApplyTx.EmitUser: every event of a batch that names a
// user shows the first one emitted).
func (w *writer) keepUser(uid []byte) error {
	if w.userDoc[string(uid)] {
		return nil
	}
	rec, active, ok := w.a.User(uid)
	if !ok {
		return fmt.Errorf("event of missing user %q", uid)
	}
	w.userDoc[string(uid)] = true
	w.buf = state.AppendUserJSON(w.buf[:0], w.org, active, rec)
	return w.eventUsers.add(w.org, w.batch, string(uid), string(w.buf))
}

func (w *writer) keepGroup(gid []byte) error {
	if w.groupDoc[string(gid)] {
		return nil
	}
	_, _, rec, ok := w.a.Group(gid)
	if !ok {
		return fmt.Errorf("event of missing group %q", gid)
	}
	w.groupDoc[string(gid)] = true
	return w.eventGroups.add(w.org, w.batch, string(gid), string(rec))
}

func (w *writer) event(typ string, uid, gid, prev []byte) error {
	if !eventTypes[typ] {
		return fmt.Errorf("unknown event type %q", typ)
	}
	var u, g, p any
	if uid != nil {
		u = string(uid)
	}
	if gid != nil {
		g = string(gid)
	}
	if prev != nil {
		p = string(prev)
	}
	err := w.events.add(w.org, w.batch, int32(w.emitted), typ, u, g, nil, p)
	w.emitted++
	return err
}

// eventTypes are the types of SPEC §6 an apply emits.
var eventTypes = map[string]bool{
	state.EventUserCreated: true, state.EventUserUpdated: true, state.EventUserDeleted: true,
	state.EventGroupCreated: true, state.EventGroupUpdated: true, state.EventGroupDeleted: true,
	state.EventGroupUserAdded: true, state.EventGroupUserRemoved: true,
}

func (w *writer) EmitUser(typ string, uid, prev []byte) error {
	if err := w.keepUser(uid); err != nil {
		return err
	}
	return w.event(typ, uid, nil, prev)
}

func (w *writer) EmitGroup(typ string, gid []byte) error {
	if err := w.keepGroup(gid); err != nil {
		return err
	}
	return w.event(typ, nil, gid, nil)
}

func (w *writer) EmitMember(typ string, uid, gid []byte) error {
	if err := w.keepUser(uid); err != nil {
		return err
	}
	if err := w.keepGroup(gid); err != nil {
		return err
	}
	return w.event(typ, uid, gid, nil)
}

func (w *writer) Checkpoint() error { return w.a.Checkpoint() }

// finish sends what the bulks hold, applies the temporary tables to the
// snapshot and updates its counts; it returns the snapshot's new version.
func (w *writer) finish() (int64, error) {
	for _, b := range []*bulk{w.users, w.usersDel, w.groups, w.groupsDel, w.membersAdd, w.membersDel, w.events, w.eventUsers, w.eventGroups} {
		if err := b.flush(); err != nil {
			return 0, err
		}
	}
	if err := w.cp.wait(); err != nil {
		return 0, err
	}
	if !w.fresh {
		// The planner knows nothing of temporary tables until they are
		// analyzed: without it, a day 2's few thousand memberships to
		// delete were joined to the organization's millions by a scan.
		if _, err := w.tx.Exec(w.ctx, "ANALYZE pg_temp.apply_users, pg_temp.apply_users_del, pg_temp.apply_groups, pg_temp.apply_groups_del, pg_temp.apply_members_add, pg_temp.apply_members_del"); err != nil {
			return 0, err
		}
		for _, sql := range []string{
			`DELETE FROM rosterd.memberships m USING pg_temp.apply_members_del d
WHERE m.org = $1 AND m.user_id = d.user_id AND m.group_id = d.group_id`,
			`DELETE FROM rosterd.users u USING pg_temp.apply_users_del d WHERE u.org = $1 AND u.id = d.id`,
			`DELETE FROM rosterd.groups g USING pg_temp.apply_groups_del d WHERE g.org = $1 AND g.id = d.id`,
			`INSERT INTO rosterd.groups (org, id, name, in_file, doc)
SELECT DISTINCT ON (id) $1, id, name, in_file, doc FROM pg_temp.apply_groups ORDER BY id, seq DESC
ON CONFLICT (org, id) DO UPDATE SET name = excluded.name, in_file = excluded.in_file, doc = excluded.doc`,
			`INSERT INTO rosterd.users (org, id, active, email, first_name, last_name, known, custom)
SELECT DISTINCT ON (id) $1, id, active, email, first_name, last_name, known, custom FROM pg_temp.apply_users ORDER BY id, seq DESC
ON CONFLICT (org, id) DO UPDATE SET active = excluded.active, email = excluded.email, first_name = excluded.first_name,
    last_name = excluded.last_name, known = excluded.known, custom = excluded.custom`,
			`INSERT INTO rosterd.memberships (org, user_id, group_id)
SELECT $1, user_id, group_id FROM pg_temp.apply_members_add ON CONFLICT DO NOTHING`,
		} {
			if _, err := w.tx.Exec(w.ctx, sql, w.org); err != nil {
				return 0, err
			}
		}
	}
	var ver int64
	err := w.tx.QueryRow(w.ctx, `INSERT INTO rosterd.snapshot_counts (org, users, active, groups, memberships, version)
VALUES ($1, $2, $3, $4, $5, nextval('rosterd.snapshot_version'))
ON CONFLICT (org) DO UPDATE SET users = snapshot_counts.users + excluded.users, active = snapshot_counts.active + excluded.active,
    groups = snapshot_counts.groups + excluded.groups, memberships = snapshot_counts.memberships + excluded.memberships,
    version = excluded.version
RETURNING version`, w.org, w.dUsers, w.dActive, w.dGroups, w.dMembers).Scan(&ver)
	return ver, err
}
