package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/state"
)

// The replica: ingest's differ reads a snapshot through state.SnapshotTx
// (bbolt's B+trees, with group-set hashes and member counts), and a round
// trip per row to PostgreSQL is out of the question. So each instance
// keeps a local copy, in a bbolt file of its own, of the snapshots of the
// organizations whose batches it applies: the differ reads the copy, and
// the apply writes both (the copy as bbolt applies, the database in bulk).
// snapshot_counts.version (migration 0003) names the state of each
// organization's snapshot; the copy of an organization is current while
// the version it loaded or wrote is still the row's, and loaded again
// (one repeatable-read pass over its rows) when it is not: the first
// batch after a start, after another instance applied, after a failure.
// An apply commits only if the row still has the version its diff read,
// so a copy out of date never applies.
//
// The file is scratch: NoSync, deleted at Close, rebuilt from the database
// whenever it is in doubt.

// errStale is an apply whose diff read a snapshot that another writer
// changed since; the batch is retried (it fails outside its files).
var errStale = errors.New("the snapshot changed while the batch was read; retrying")

type replica struct {
	mu      sync.Mutex
	dir     string // "" until opened
	own     bool   // dir was made here: removed at close
	db      *state.DB
	version map[string]int64       // org -> version the copy holds
	locks   map[string]*sync.Mutex // org -> held while its copy is read or written
	merges  sync.WaitGroup         // mergeLater's goroutines
}

// orgLock returns org's lock, held by an apply and by a read of the copy.
func (r *replica) orgLock(org string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.locks == nil {
		r.locks = map[string]*sync.Mutex{}
	}
	l := r.locks[org]
	if l == nil {
		l = &sync.Mutex{}
		r.locks[org] = l
	}
	return l
}

// open opens the replica's file on first use.
func (r *replica) open() (*state.DB, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db != nil {
		return r.db, nil
	}
	if r.dir == "" {
		d, err := os.MkdirTemp("", "rosterd-replica-")
		if err != nil {
			return nil, fmt.Errorf("replica: %w", err)
		}
		r.dir, r.own = d, true
	} else if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	path := filepath.Join(r.dir, "replica.db")
	os.Remove(path) // what a previous process left is not known to be current
	db, err := state.Open(path, &state.Options{NoSync: true})
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	r.db, r.version = db, map[string]int64{}
	return db, nil
}

func (r *replica) close() error {
	r.merges.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.db == nil {
		return nil
	}
	err := r.db.Close()
	os.Remove(filepath.Join(r.dir, "replica.db"))
	if r.own {
		os.RemoveAll(r.dir)
	}
	r.db = nil
	return err
}

func (r *replica) held(org string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.version[org]
	return v, ok
}

func (r *replica) set(org string, v int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.version[org] = v
}

// forget marks org's copy as not current.
func (r *replica) forget(org string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.version, org)
}

// snapshotVersion reads org's version: 0 when the organization has no
// snapshot row yet (an empty snapshot), state.ErrNotFound when it does
// not exist.
func snapshotVersion(ctx context.Context, q querier, org string, lock bool) (int64, error) {
	if err := orgExists(ctx, q, org); err != nil {
		return 0, fmt.Errorf("organization %s: %w", org, err)
	}
	sql := "SELECT version FROM rosterd.snapshot_counts WHERE org = $1"
	if lock {
		sql += " FOR UPDATE"
	}
	var v int64
	err := q.QueryRow(ctx, sql, org).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// current brings org's copy up to date and returns the replica and the
// version it holds. The caller holds org's lock.
func (db *DB) current(org string) (*state.DB, int64, error) {
	rep, err := db.rep.open()
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := db.long()
	defer cancel()
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	var ver int64
	err = pgx.BeginTxFunc(ctx, db.pool, opts, func(tx pgx.Tx) error {
		var err error
		if ver, err = snapshotVersion(ctx, tx, org, false); err != nil {
			return err
		}
		if v, ok := db.rep.held(org); ok && v == ver {
			return nil
		}
		db.rep.forget(org)
		return db.load(ctx, tx, rep, org)
	})
	if err != nil {
		return nil, 0, err
	}
	db.rep.set(org, ver)
	return rep, ver, nil
}

// load copies org's snapshot, as tx reads it, into the replica, in place
// of what the replica held.
func (db *DB) load(ctx context.Context, tx pgx.Tx, rep *state.DB, org string) error {
	if err := rep.DeleteOrg(org); err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("replica: %w", err)
	}
	if err := rep.CreateOrg(state.Org{Name: org}); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT (SELECT count(*) FROM rosterd.users WHERE org = $1) + (SELECT count(*) FROM rosterd.groups WHERE org = $1)", org).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return nil // no memberships without users
	}
	err := replicaWrite(rep, org, true, func(a *state.ApplyTx) error {
		var buf []byte
		return readSnapshot(ctx, tx, org, snapshotSink{
			group: func(id, name string, flags byte, doc []byte) error {
				if err := a.PutGroup([]byte(id), name, flags, doc); err != nil {
					return err
				}
				return a.Checkpoint()
			},
			user: func(r state.UserRecord, active bool) error {
				buf = r.AppendBinary(buf[:0])
				if err := a.PutUser([]byte(r.ID), active, buf); err != nil {
					return err
				}
				return a.Checkpoint()
			},
			member: func(uid, gid string) error {
				if err := a.AddMember([]byte(uid), []byte(gid)); err != nil {
					return err
				}
				return a.Checkpoint()
			},
		})
	})
	if err != nil {
		return fmt.Errorf("replica: load %s: %w", org, err)
	}
	return nil
}

// replicaWrite changes org's copy through fn, staged when large (the
// caller merges the overlay: mergeLater), outside any batch of the
// database: the replica records a batch of its own for it (state.DB
// applies only recorded batches) and no events.
func replicaWrite(rep *state.DB, org string, large bool, fn func(*state.ApplyTx) error) error {
	b := state.Batch{ID: ulid.Make().String(), Org: org, Status: state.BatchProcessing}
	if _, err := rep.CreateBatch(b); err != nil {
		return err
	}
	b.Status = state.BatchApplied
	if !large {
		return rep.ApplyBatch(b, nil, fn)
	}
	return rep.ApplyBatchStaged(b, nil, 0, fn)
}

// mergeLater merges org's staged overlay into its copy's base
// (state.DB.MergeOverlay) once the caller releases l, org's lock, off
// the apply's critical path; until then reads go through the overlay,
// and the next apply would merge it first. A failed merge drops the copy.
func (r *replica) mergeLater(rep *state.DB, org string, l *sync.Mutex) {
	r.merges.Add(1)
	go func() {
		defer r.merges.Done()
		l.Lock()
		defer l.Unlock()
		if err := rep.MergeOverlay(org); err != nil {
			r.forget(org)
		}
	}()
}

// scanUserRecord decodes a row of userColumns.
func scanUserRecord(row pgx.Row) (state.UserRecord, bool, error) {
	var r state.UserRecord
	var active bool
	var known, custom string
	if err := row.Scan(&r.ID, &active, &r.Email, &r.FirstName, &r.LastName, &known, &custom); err != nil {
		return r, false, notFound(err)
	}
	if err := decodeAttrs(&r, known, custom); err != nil {
		return r, false, fmt.Errorf("decode user %s: %w", r.ID, err)
	}
	return r, active, nil
}

// decodeAttrs fills r's known attributes (in state's order) and custom
// ones (by name) from their jsonb columns. A million users' worth of
// encoding/json maps took a third of loading a replica: the flat objects
// jsonb prints are read by decodeFlat, and only what it does not know
// (an escape, another shape) by encoding/json.
func decodeAttrs(r *state.UserRecord, known, custom string) error {
	r.Known, r.Custom = r.Known[:0], r.Custom[:0]
	var err error
	if r.Known, err = decodeFlat(r.Known, known); err != nil {
		return err
	}
	if len(r.Known) > 1 {
		slices.SortStableFunc(r.Known, func(a, b state.Attr) int { return cmp.Compare(knownRank(a.Name), knownRank(b.Name)) })
		// Names state does not know (none that ingest writes) by name,
		// after the known ones.
		i := len(r.Known)
		for i > 0 && knownRank(r.Known[i-1].Name) == len(knownNames) {
			i--
		}
		slices.SortFunc(r.Known[i:], func(a, b state.Attr) int { return strings.Compare(a.Name, b.Name) })
	}
	if r.Custom, err = decodeFlat(r.Custom, custom); err != nil {
		return err
	}
	slices.SortFunc(r.Custom, func(a, b state.Attr) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

// knownIndex is each known column's place in a user's JSON.
var knownIndex = func() map[string]int {
	m := map[string]int{}
	for i, n := range knownNames {
		m[n] = i
	}
	return m
}()

func knownRank(name string) int {
	if i, ok := knownIndex[name]; ok {
		return i
	}
	return len(knownNames)
}

// decodeFlat appends the members of a JSON object of strings to to.
func decodeFlat(to []state.Attr, s string) ([]state.Attr, error) {
	if out, ok := scanFlat(to, s); ok {
		return out, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return to, err
	}
	for k, v := range m {
		to = append(to, state.Attr{Name: k, Value: v})
	}
	return to, nil
}

// scanFlat reads {"k": "v", ...} whose strings have no escapes, as jsonb
// prints a flat object; ok is false for anything else.
func scanFlat(to []state.Attr, s string) ([]state.Attr, bool) {
	n := len(to)
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return to[:n], false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return to, skipSpace(s, i+1) == len(s)
	}
	for {
		k, j, ok := plainString(s, i)
		if !ok {
			return to[:n], false
		}
		i = skipSpace(s, j)
		if i >= len(s) || s[i] != ':' {
			return to[:n], false
		}
		v, j, ok := plainString(s, skipSpace(s, i+1))
		if !ok {
			return to[:n], false
		}
		to = append(to, state.Attr{Name: k, Value: v})
		i = skipSpace(s, j)
		switch {
		case i < len(s) && s[i] == ',':
			i = skipSpace(s, i+1)
		case i < len(s) && s[i] == '}':
			return to, skipSpace(s, i+1) == len(s)
		default:
			return to[:n], false
		}
	}
}

// plainString reads the string at s[i] when it has no escape: its value
// and the index after it.
func plainString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return s[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return "", i, false
		}
	}
	return "", i, false
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
