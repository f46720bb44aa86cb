package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/state"
)

// Import moves a bbolt deployment's state into this store (SPEC §11:
// rosterd store copy). Everything is copied as it is: organizations and
// settings, keys, setup links, audit records with their ids, batches with
// their reports, completions, each organization's snapshot, events with
// their ids, delivery endpoints, cursors and failed deliveries, and the
// event clock, so that cursors stay valid and new ids follow the old
// ones. state.ContentHash verifies the result.

// ErrNotEmpty is returned by Import when the store holds state already:
// a copy goes into an empty store only.
var ErrNotEmpty = errors.New("store not empty")

// ImportReport is what Import copied.
type ImportReport struct {
	// Counts are the records copied per area (state.ContentAreas, plus
	// "endpoints" and "secrets").
	Counts map[string]int
	// Orgs are the organizations the copied state names: those that
	// exist, and those only events, cursors or setup links name.
	Orgs []string
}

// copyChunk is how many rows Import sends per COPY.
const copyChunk = 10000

// Import copies src, and secrets (name -> value, see Secret), into this
// store, which must be empty (ErrNotEmpty), in one transaction: all of it
// or nothing. ctx bounds it; Config.Timeout does not (a large store takes
// longer). src must not change meanwhile (it is the bbolt file of a
// stopped daemon).
func (db *DB) Import(ctx context.Context, src *state.DB, secrets map[string][]byte) (ImportReport, error) {
	rep := ImportReport{Counts: map[string]int{}}
	orgSet := map[string]bool{}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var used bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rosterd.organizations) OR EXISTS (SELECT 1 FROM rosterd.commits)
OR EXISTS (SELECT 1 FROM rosterd.endpoints) OR EXISTS (SELECT 1 FROM rosterd.setup_links)
OR EXISTS (SELECT 1 FROM rosterd.secrets) OR (SELECT seq > 0 FROM rosterd.event_clock)`).Scan(&used)
		if err != nil {
			return err
		}
		if used {
			return ErrNotEmpty
		}
		orgs, err := src.Orgs("", 0)
		if err != nil {
			return err
		}
		for _, o := range orgs {
			orgSet[o.Name] = true
			if err := importOrg(ctx, tx, src, o, rep.Counts); err != nil {
				return fmt.Errorf("organization %s: %w", o.Name, err)
			}
		}
		links, err := src.AllSetupLinks()
		if err != nil {
			return err
		}
		for _, l := range links {
			orgSet[l.Org] = true
			_, err := tx.Exec(ctx, `INSERT INTO rosterd.setup_links (token_sha256, id, org, create_org, org_created_at, created_at,
    expires_at, revoked_at, last_used_at, uses) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				l.TokenSHA256, l.ID, l.Org, l.CreateOrg, l.OrgCreatedAt, l.CreatedAt, l.ExpiresAt, l.RevokedAt, l.LastUsedAt, l.Uses)
			if err != nil {
				return fmt.Errorf("setup link %s: %w", l.ID, err)
			}
		}
		rep.Counts["setup_links"] = len(links)
		if err := importEvents(ctx, tx, src, orgSet, rep.Counts); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		if err := importDelivery(ctx, tx, src, orgSet, rep.Counts); err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		for _, name := range slices.Sorted(maps.Keys(secrets)) {
			_, err := tx.Exec(ctx, "INSERT INTO rosterd.secrets (name, value, created_at) VALUES ($1, $2, $3)", name, secrets[name], db.stamp())
			if err != nil {
				return fmt.Errorf("secret %s: %w", name, err)
			}
		}
		rep.Counts["secrets"] = len(secrets)
		return nil
	})
	if err != nil {
		return ImportReport{}, fmt.Errorf("import: %w", err)
	}
	rep.Orgs = slices.Sorted(maps.Keys(orgSet))
	return rep, nil
}

// importOrg copies an organization with its keys, audit trail, batches,
// completions and snapshot.
func importOrg(ctx context.Context, tx pgx.Tx, src *state.DB, o state.Org, counts map[string]int) error {
	settings, err := json.Marshal(o.Settings)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO rosterd.organizations (name, settings, created_at) VALUES ($1, $2, $3)",
		o.Name, settings, o.CreatedAt); err != nil {
		return err
	}
	counts["organization"]++

	keys, err := src.Keys(o.Name)
	if err != nil {
		return err
	}
	for _, k := range keys {
		_, err := tx.Exec(ctx, `INSERT INTO rosterd.keys (org, fingerprint, type, comment, public_key, created_at, added_by, setup_link)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, o.Name, k.Fingerprint, k.Type, k.Comment, k.PublicKey, k.CreatedAt, k.AddedBy, k.SetupLink)
		if err != nil {
			return fmt.Errorf("key %s: %w", k.Fingerprint, err)
		}
	}
	counts["keys"] += len(keys)

	recs, err := src.AuditRecords(o.Name, "", 0, state.OldestFirst)
	if err != nil {
		return err
	}
	if err := importAudit(ctx, tx, o.Name, recs); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	counts["audit"] += len(recs)

	bs, err := src.Batches(o.Name, "", 0)
	if err != nil {
		return err
	}
	for _, b := range bs {
		report, err := src.BatchReport(o.Name, b.ID)
		if err != nil && !isNotFound(err) {
			return err
		}
		if err := putBatch(ctx, tx, b, report); err != nil {
			return fmt.Errorf("batch %s: %w", b.ID, err)
		}
	}
	counts["batches"] += len(bs)

	c, err := src.Completions(o.Name)
	if err != nil {
		return err
	}
	if err := putCompletions(ctx, tx, "completions_newest", "kind", o.Name, c.Newest, slices.Collect(maps.Keys(c.Newest))); err != nil {
		return err
	}
	if err := putCompletions(ctx, tx, "completion_files", "name", o.Name, c.Files, slices.Collect(maps.Keys(c.Files))); err != nil {
		return err
	}
	counts["completions"] += len(c.Newest) + len(c.Files)

	return src.ViewSnapshot(o.Name, func(s *state.SnapshotTx) error {
		return importSnapshot(ctx, tx, o.Name, s, counts)
	})
}

// importAudit copies an organization's audit records with their ids, and
// its head, so that the next ids follow them.
func importAudit(ctx context.Context, tx pgx.Tx, org string, recs []state.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	rows := make([][]any, len(recs))
	for i, r := range recs {
		rows[i] = []any{org, r.ID, r.Time, r.Event, r.RemoteAddr, r.KeyFP, r.Session, r.File, r.Target,
			r.Bytes, r.SHA256, int64(r.Duration), r.Reason, r.SetupLink}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"rosterd", "audit"}, []string{"org", "id", "time", "event", "remote_addr", "key_fp",
		"session", "file", "target", "bytes", "sha256", "duration_ns", "reason", "setup_link"}, pgx.CopyFromRows(rows))
	if err != nil {
		return err
	}
	last := recs[len(recs)-1].ID
	if len(last) != 32 {
		return fmt.Errorf("audit id %q: want 32 hex digits", last)
	}
	ns, err1 := strconv.ParseUint(last[:16], 16, 64)
	seq, err2 := strconv.ParseUint(last[16:], 16, 64)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("audit id %q: %w", last, err)
	}
	_, err = tx.Exec(ctx, "INSERT INTO rosterd.audit_heads (org, seq, last_ns, count) VALUES ($1, $2, $3, $4)",
		org, int64(seq), int64(ns), len(recs))
	return err
}

// copier sends rows to a table a chunk at a time.
type copier struct {
	ctx   context.Context
	tx    pgx.Tx
	table string
	cols  []string
	rows  [][]any
	n     int
}

func (c *copier) add(row ...any) error {
	c.rows = append(c.rows, row)
	c.n++
	if len(c.rows) >= copyChunk {
		return c.flush()
	}
	return nil
}

func (c *copier) flush() error {
	if len(c.rows) == 0 {
		return nil
	}
	_, err := c.tx.CopyFrom(c.ctx, pgx.Identifier{"rosterd", c.table}, c.cols, pgx.CopyFromRows(c.rows))
	c.rows = c.rows[:0]
	return err
}

// importSnapshot copies an organization's users, groups, memberships and
// counts.
func importSnapshot(ctx context.Context, tx pgx.Tx, org string, s *state.SnapshotTx, counts map[string]int) error {
	users := &copier{ctx: ctx, tx: tx, table: "users", cols: []string{"org", "id", "active", "email", "first_name", "last_name", "known", "custom"}}
	err := s.ForEachUser(func(id, rec []byte, active bool) error {
		u, err := decodeUser(rec)
		if err != nil {
			return fmt.Errorf("user %s: %w", id, err)
		}
		known, custom := map[string]string{}, map[string]string{}
		for _, a := range u.Known {
			known[a.Name] = a.Value
		}
		for _, a := range u.Custom {
			custom[a.Name] = a.Value
		}
		kj, _ := json.Marshal(known)
		cj, _ := json.Marshal(custom)
		return users.add(org, string(id), active, u.Email, u.FirstName, u.LastName, string(kj), string(cj))
	})
	if err == nil {
		err = users.flush()
	}
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	groups := &copier{ctx: ctx, tx: tx, table: "groups", cols: []string{"org", "id", "name", "in_file", "doc"}}
	err = s.ForEachGroup(func(id []byte, name string, flags byte, rec []byte) error {
		return groups.add(org, string(id), name, flags&state.GroupInFile != 0, string(rec))
	})
	if err == nil {
		err = groups.flush()
	}
	if err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	members := &copier{ctx: ctx, tx: tx, table: "memberships", cols: []string{"org", "user_id", "group_id"}}
	err = s.ForEachMember(func(uid, gid []byte) error { return members.add(org, string(uid), string(gid)) })
	if err == nil {
		err = members.flush()
	}
	if err != nil {
		return fmt.Errorf("memberships: %w", err)
	}
	c := s.Counts()
	_, err = tx.Exec(ctx, "INSERT INTO rosterd.snapshot_counts (org, users, active, groups, memberships) VALUES ($1, $2, $3, $4, $5)",
		org, c.Users, c.Active, c.Groups, c.Memberships)
	counts["users"] += users.n
	counts["groups"] += groups.n
	counts["memberships"] += members.n
	return err
}

// decodeUser decodes a stored user record: state's compact encoding, or
// the directory user JSON that older databases hold.
func decodeUser(rec []byte) (state.UserRecord, error) {
	if len(rec) == 0 || rec[0] != '{' {
		return state.DecodeUserRecord(rec)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(rec, &m); err != nil {
		return state.UserRecord{}, err
	}
	str := func(k string) string {
		var s string
		json.Unmarshal(m[k], &s)
		return s
	}
	u := state.UserRecord{ID: str("id"), Email: str("email"), FirstName: str("first_name"), LastName: str("last_name")}
	for _, n := range knownNames {
		if v := str(n); v != "" {
			u.Known = append(u.Known, state.Attr{Name: n, Value: v})
		}
	}
	var custom map[string]string
	json.Unmarshal(m["custom_attributes"], &custom)
	for _, n := range slices.Sorted(maps.Keys(custom)) {
		u.Custom = append(u.Custom, state.Attr{Name: n, Value: custom[n]})
	}
	return u, nil
}

// importEvents copies every event with its id: each commit of src (the
// events sharing a sequence) becomes a commit row, each event a record
// holding its data as rendered, so that every event reads back byte for
// byte. The event clock follows src's.
func importEvents(ctx context.Context, tx pgx.Tx, src *state.DB, orgs map[string]bool, counts map[string]int) error {
	records := &copier{ctx: ctx, tx: tx, table: "event_records", cols: []string{"org", "batch_id", "idx", "type", "data"}}
	commits := &copier{ctx: ctx, tx: tx, table: "commits", cols: []string{"seq", "ms", "first_id", "org", "batch_id", "count", "lo", "created_at"}}
	var cur *commit
	endCommit := func() error {
		if cur == nil {
			return nil
		}
		return commits.add(int64(cur.seq), int64(cur.ms), cur.id(0), cur.org, cur.batch, int64(cur.count), int64(cur.lo), cur.created)
	}
	err := src.ForEachEventJSON("", "", 0, func(id string, raw []byte) error {
		seq, idx, ok := parseEventID(id)
		if !ok {
			return fmt.Errorf("event id %q", id)
		}
		var e struct {
			Event   string          `json:"event"`
			Org     string          `json:"organization_id"`
			Batch   string          `json:"batch_id"`
			Created string          `json:"created_at"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("event %s: %w", id, err)
		}
		if cur == nil || cur.seq != seq {
			if err := endCommit(); err != nil {
				return err
			}
			created, err := time.Parse(time.RFC3339Nano, e.Created)
			if err != nil {
				return fmt.Errorf("event %s: %w", id, err)
			}
			cur = &commit{seq: seq, ms: ulid.MustParse(id[len("evt_"):]).Time(), lo: idx, created: created.UTC(), org: e.Org, batch: e.Batch}
			orgs[e.Org] = true
		}
		cur.count = idx + 1
		if cur.id(idx) != id {
			return fmt.Errorf("event %s: its id does not round-trip", id)
		}
		return records.add(e.Org, e.Batch, int32(idx), e.Event, string(e.Data))
	})
	for _, f := range []func() error{func() error { return err }, endCommit, records.flush, commits.flush} {
		if err := f(); err != nil {
			return err
		}
	}
	seq, ms, err := src.EventClock()
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "UPDATE rosterd.event_clock SET seq = $1, ms = $2", int64(seq), int64(ms)); err != nil {
		return err
	}
	counts["events"] = records.n
	return nil
}

// importDelivery copies the endpoints, their cursors and their failed
// deliveries.
func importDelivery(ctx context.Context, tx pgx.Tx, src *state.DB, orgs map[string]bool, counts map[string]int) error {
	eps, err := src.Endpoints()
	if err != nil {
		return err
	}
	for _, ep := range eps {
		_, err := tx.Exec(ctx, `INSERT INTO rosterd.endpoints (id, url, start, first_seen, disabled, disabled_at, disabled_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, ep.ID, ep.URL, ep.Start, ep.FirstSeen, ep.Disabled, nullTime(ep.DisabledAt), ep.DisabledReason)
		if err != nil {
			return fmt.Errorf("endpoint %s: %w", ep.ID, err)
		}
		cursors, err := src.Cursors(ep.ID)
		if err != nil {
			return err
		}
		for org, c := range cursors {
			orgs[org] = true
			var (
				event          *string
				attempts, stat int
				next           *time.Time
				lastErr        string
			)
			if r := c.Retry; r != nil {
				event, attempts, next, stat, lastErr = &r.EventID, r.Attempts, nullTime(r.NextAt), r.LastStatus, r.LastError
			}
			_, err := tx.Exec(ctx, `INSERT INTO rosterd.delivery_cursors (endpoint, org, `+cursorColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, ep.ID, org, c.After, event, attempts, next, stat, lastErr)
			if err != nil {
				return fmt.Errorf("cursor of %s for %s: %w", ep.ID, org, err)
			}
		}
		failed, err := src.FailedDeliveries(ep.ID, "", 0)
		if err != nil {
			return err
		}
		for _, f := range failed {
			_, err := tx.Exec(ctx, "INSERT INTO rosterd.delivery_failed ("+failedColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
				f.Endpoint, f.EventID, f.Event, f.Org, f.Attempts, f.LastStatus, f.LastError, f.FailedAt)
			if err != nil {
				return fmt.Errorf("failed delivery %s of %s: %w", f.EventID, ep.ID, err)
			}
		}
		counts["delivery"] += len(cursors) + len(failed)
	}
	counts["endpoints"] = len(eps)
	return nil
}
