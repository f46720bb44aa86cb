package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/state"
)

// Events are stored as state.DB stores them, in rows: a batch's event
// records (rosterd.event_records), the users and groups they name as the
// batch left them (event_users, event_groups), and one row of
// rosterd.commits that makes them visible. An event's id is not stored:
// it is "evt_" and the ULID of (commit ms, commit seq, index), the same
// ids as state.DB draws. A commit draws (seq, ms) from the one row of
// rosterd.event_clock as the last statement of the applying transaction;
// the row stays locked until that transaction commits, so seqs are drawn
// in commit order across every instance, and a reader that saw id X and
// asks for after=X never misses an event committed later.
//
// Reads find the commits by first id (the id of their event 0), as
// state.DB's commit log does, and render each event's JSON from its
// record, byte for byte as state.DB renders it.

// eventPageSize is how many events a read fetches at a time; the
// connection goes back to the pool between pages, while fn runs.
const eventPageSize = 1000

// commit is one row of rosterd.commits.
type commit struct {
	seq, ms    uint64
	count, lo  uint32
	created    time.Time
	org, batch string
}

const commitColumns = "seq, ms, count, lo, created_at, org, batch_id"

func scanCommit(row pgx.Row) (commit, error) {
	var c commit
	var seq, ms int64
	var count, lo int32
	if err := row.Scan(&seq, &ms, &count, &lo, &c.created, &c.org, &c.batch); err != nil {
		return commit{}, notFound(err)
	}
	c.seq, c.ms, c.count, c.lo, c.created = uint64(seq), uint64(ms), uint32(count), uint32(lo), c.created.UTC()
	return c, nil
}

// eventID is state's id of event i of the commit (ms, seq).
func eventID(ms, seq uint64, i uint32) string {
	var u ulid.ULID
	binary.BigEndian.PutUint16(u[0:], uint16(ms>>32))
	binary.BigEndian.PutUint32(u[2:], uint32(ms))
	binary.BigEndian.PutUint16(u[6:], uint16(seq>>32))
	binary.BigEndian.PutUint32(u[8:], uint32(seq))
	binary.BigEndian.PutUint32(u[12:], i)
	return "evt_" + u.String()
}

func (c *commit) id(i uint32) string { return eventID(c.ms, c.seq, i) }

// parseEventID returns the commit sequence and index an id encodes.
func parseEventID(id string) (seq uint64, i uint32, ok bool) {
	s, found := strings.CutPrefix(id, "evt_")
	if !found {
		return 0, 0, false
	}
	u, err := ulid.ParseStrict(s)
	if err != nil {
		return 0, 0, false
	}
	seq = uint64(binary.BigEndian.Uint16(u[6:]))<<32 | uint64(binary.BigEndian.Uint32(u[8:]))
	return seq, binary.BigEndian.Uint32(u[12:]), true
}

// firstAfter returns the first index of c whose id sorts after after.
func (c *commit) firstAfter(after string) uint32 {
	lo, hi := c.lo, c.count
	for lo < hi {
		m := lo + (hi-lo)/2
		if c.id(m) > after {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// commitsFrom returns up to limit commits (of org, or of every
// organization when org is "") that may hold ids after after, in id
// order: the one whose ids span after, then those after it.
func commitsFrom(ctx context.Context, q querier, org, after string, limit int) ([]commit, error) {
	start := ""
	if after != "" {
		err := q.QueryRow(ctx, `SELECT first_id FROM rosterd.commits WHERE ($1 = '' OR org = $1) AND first_id <= $2
ORDER BY first_id DESC LIMIT 1`, org, after).Scan(&start)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
	}
	rows, err := q.Query(ctx, "SELECT "+commitColumns+` FROM rosterd.commits
WHERE ($1 = '' OR org = $1) AND first_id >= $2 ORDER BY first_id LIMIT $3`, org, start, limitArg(limit))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanCommit)
}

// eventRow is an event's record with the user and group it names.
type eventRow struct {
	idx                             uint32
	typ                             string
	userID, groupID                 *string
	data, previous, userDoc, grpDoc []byte
}

const eventRowColumns = `e.idx, e.type, e.user_id, e.group_id, e.data::text, e.previous::text, u.doc::text, g.doc::text
FROM rosterd.event_records e
LEFT JOIN rosterd.event_users u ON u.org = e.org AND u.batch_id = e.batch_id AND u.user_id = e.user_id
LEFT JOIN rosterd.event_groups g ON g.org = e.org AND g.batch_id = e.batch_id AND g.group_id = e.group_id`

func scanEventRow(row pgx.Row) (eventRow, error) {
	var r eventRow
	var idx int32
	var data, prev, user, group *string
	if err := row.Scan(&idx, &r.typ, &r.userID, &r.groupID, &data, &prev, &user, &group); err != nil {
		return eventRow{}, notFound(err)
	}
	r.idx = uint32(idx)
	bs := func(s *string) []byte {
		if s == nil {
			return nil
		}
		return []byte(*s)
	}
	r.data, r.previous, r.userDoc, r.grpDoc = bs(data), bs(prev), bs(user), bs(group)
	return r, nil
}

// render appends the event's JSON to b, as state.DB renders it.
func (r *eventRow) render(b []byte, c *commit) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, c.id(r.idx)...)
	b = append(b, `","event":"`...)
	b = append(b, r.typ...)
	b = append(b, `","organization_id":`...)
	b = state.AppendJSONString(b, c.org)
	b = append(b, `,"batch_id":`...)
	b = state.AppendJSONString(b, c.batch)
	b = append(b, `,"created_at":"`...)
	b = c.created.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","data":`...)
	doc := func(b, d []byte) []byte {
		if d == nil {
			return append(b, "null"...)
		}
		return append(b, d...)
	}
	switch {
	case r.data != nil:
		b = append(b, r.data...)
	case r.userID != nil && r.groupID != nil:
		b = append(b, `{"user":`...)
		b = doc(b, r.userDoc)
		b = append(b, `,"group":`...)
		b = doc(b, r.grpDoc)
		b = append(b, '}')
	case r.userID != nil:
		start := len(b)
		b = doc(b, r.userDoc)
		if r.previous != nil && len(b) > start && b[len(b)-1] == '}' {
			b = append(b[:len(b)-1], `,"previous_attributes":`...)
			b = append(b, r.previous...)
			b = append(b, '}')
		}
	default:
		b = doc(b, r.grpDoc)
	}
	return append(b, '}')
}

// ForEachEventJSON is state.DB.ForEachEventJSON: fn gets each event's id
// and JSON (valid only during the call), in id order, of org ("": every
// organization) after after, up to limit (<= 0: all). fn runs between
// pages, without a connection held.
func (db *DB) ForEachEventJSON(org, after string, limit int, fn func(id string, raw []byte) error) error {
	n := 0
	var buf []byte
	for {
		ctx, cancel := db.op()
		commits, err := commitsFrom(ctx, db.pool, org, after, 100)
		cancel()
		if err != nil {
			return fmt.Errorf("list events: %w", err)
		}
		if len(commits) == 0 {
			return nil
		}
		for i := range commits {
			c := &commits[i]
			for from := c.firstAfter(after); from < c.count; {
				if limit > 0 && n >= limit {
					return nil
				}
				page := eventPageSize
				if limit > 0 {
					page = min(page, limit-n)
				}
				ctx, cancel := db.op()
				rows, err := db.pool.Query(ctx, "SELECT "+eventRowColumns+`
WHERE e.org = $1 AND e.batch_id = $2 AND e.idx >= $3 AND e.idx < $4 ORDER BY e.idx LIMIT $5`,
					c.org, c.batch, int64(from), int64(c.count), page)
				var evs []eventRow
				if err == nil {
					evs, err = collect(rows, scanEventRow)
				}
				cancel()
				if err != nil {
					return fmt.Errorf("list events: %w", err)
				}
				if len(evs) == 0 {
					break // the rest was purged
				}
				for j := range evs {
					buf = evs[j].render(buf[:0], c)
					if err := fn(c.id(evs[j].idx), buf); err != nil {
						return err
					}
					n++
				}
				from = evs[len(evs)-1].idx + 1
			}
			if c.count > 0 {
				after = max(after, c.id(c.count-1))
			}
		}
		if len(commits) < 100 {
			return nil
		}
	}
}

// Events is state.DB.Events: ForEachEventJSON decoded.
func (db *DB) Events(org, after string, limit int) ([]state.Event, error) {
	var out []state.Event
	err := db.ForEachEventJSON(org, after, limit, func(_ string, raw []byte) error {
		var e state.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eventJSON returns one event's JSON, or state.ErrNotFound.
func (db *DB) eventJSON(id string) ([]byte, error) {
	seq, i, ok := parseEventID(id)
	if !ok {
		return nil, state.ErrNotFound
	}
	ctx, cancel := db.op()
	defer cancel()
	c, err := scanCommit(db.pool.QueryRow(ctx, "SELECT "+commitColumns+" FROM rosterd.commits WHERE seq = $1", int64(seq)))
	if err != nil {
		return nil, err
	}
	if i < c.lo || i >= c.count || c.id(i) != id {
		return nil, state.ErrNotFound
	}
	r, err := scanEventRow(db.pool.QueryRow(ctx, "SELECT "+eventRowColumns+" WHERE e.org = $1 AND e.batch_id = $2 AND e.idx = $3",
		c.org, c.batch, int64(i)))
	if err != nil {
		return nil, err
	}
	return r.render(nil, &c), nil
}

// EventJSON is state.DB.EventJSON: one event's JSON exactly as webhooks
// send it, or state.ErrNotFound.
func (db *DB) EventJSON(id string) (json.RawMessage, error) {
	raw, err := db.eventJSON(id)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return raw, nil
}

// Event is state.DB.Event.
func (db *DB) Event(id string) (state.Event, error) {
	var e state.Event
	raw, err := db.eventJSON(id)
	if err == nil {
		err = json.Unmarshal(raw, &e)
	}
	if err != nil {
		return state.Event{}, fmt.Errorf("event %s: %w", id, err)
	}
	return e, nil
}

// lastEventID returns the newest event id, or "".
func lastEventID(ctx context.Context, q querier) (string, error) {
	c, err := scanCommit(q.QueryRow(ctx, "SELECT "+commitColumns+" FROM rosterd.commits ORDER BY first_id DESC LIMIT 1"))
	if errors.Is(err, state.ErrNotFound) || (err == nil && c.count == 0) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return c.id(c.count - 1), nil
}

// LastEventID is state.DB.LastEventID: the newest event id, or "".
func (db *DB) LastEventID() (string, error) {
	ctx, cancel := db.op()
	defer cancel()
	id, err := lastEventID(ctx, db.pool)
	if err != nil {
		return "", fmt.Errorf("last event: %w", err)
	}
	return id, nil
}

// CountEvents is state.DB.CountEvents: how many events of org sort after
// after. The commits wholly after it are summed in SQL; the one that
// spans it is counted here.
func (db *DB) CountEvents(org, after string) (int, error) {
	ctx, cancel := db.op()
	defer cancel()
	var n int64
	err := db.pool.QueryRow(ctx, "SELECT COALESCE(sum(count - lo), 0) FROM rosterd.commits WHERE org = $1 AND first_id > $2",
		org, after).Scan(&n)
	if err == nil && after != "" {
		var c commit
		c, err = scanCommit(db.pool.QueryRow(ctx, "SELECT "+commitColumns+` FROM rosterd.commits
WHERE org = $1 AND first_id <= $2 ORDER BY first_id DESC LIMIT 1`, org, after))
		if err == nil {
			n += int64(c.count - c.firstAfter(after))
		} else if errors.Is(err, state.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("count events of %s: %w", org, err)
	}
	return int(n), nil
}

// eventRecord is one event as a batch stores it: Data (the event's data
// as given, state.ApplyTx.Emit), or the user (UserID; Previous for
// previous_attributes), the group (GroupID), or both (a membership)
// whose copies the batch keeps.
type eventRecord struct {
	Type            string
	UserID, GroupID string
	Data, Previous  []byte
}

// AppendEvents commits events of org as batch's, each with the type and
// data it gives (Event and Data: the JSON of a directory user, group or
// membership; the store sets the other fields), in one transaction, and
// returns their ids in order. It notifies ChannelEvents at commit, as an
// apply does. It is for the tests of the store's consumers (webhook
// delivery by a fleet, the daemon): a batch's apply commits its events
// in its own transaction.
func (db *DB) AppendEvents(org, batch string, events []state.Event) ([]string, error) {
	recs := make([]eventRecord, len(events))
	for i, e := range events {
		recs[i] = eventRecord{Type: e.Event, Data: e.Data}
	}
	return db.appendEvents(org, batch, recs, nil, nil)
}

// appendEvents commits a batch's events in one transaction, as the end of
// an apply will: the records and the batch's copies of the users and
// groups they name (their JSON as rendered), then the commit row, whose
// (seq, ms) is drawn last. It returns the events' ids.
func (db *DB) appendEvents(org, batch string, recs []eventRecord, users, groups map[string][]byte) ([]string, error) {
	var ids []string
	err := db.tx(func(ctx context.Context, tx pgx.Tx) error {
		str := func(s string) any {
			if s == "" {
				return nil
			}
			return s
		}
		js := func(b []byte) any {
			if b == nil {
				return nil
			}
			return string(b)
		}
		rows := make([][]any, len(recs))
		for i, e := range recs {
			rows[i] = []any{org, batch, int32(i), e.Type, str(e.UserID), str(e.GroupID), js(e.Data), js(e.Previous)}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"rosterd", "event_records"},
			[]string{"org", "batch_id", "idx", "type", "user_id", "group_id", "data", "previous"}, pgx.CopyFromRows(rows))
		if err != nil {
			return err
		}
		for table, docs := range map[string]map[string][]byte{"event_users": users, "event_groups": groups} {
			idCol := map[string]string{"event_users": "user_id", "event_groups": "group_id"}[table]
			rows = rows[:0]
			for id, doc := range docs {
				rows = append(rows, []any{org, batch, id, string(doc)})
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"rosterd", table}, []string{"org", "batch_id", idCol, "doc"}, pgx.CopyFromRows(rows))
			if err != nil {
				return err
			}
		}
		c, err := db.commitEvents(ctx, tx, org, batch, uint32(len(recs)))
		if err != nil {
			return err
		}
		for i := range recs {
			ids = append(ids, c.id(uint32(i)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("append events of batch %s: %w", batch, err)
	}
	return ids, nil
}

// commitEvents makes count event records of (org, batch), written in tx,
// visible, and notifies ChannelEvents of org at commit: it draws the commit's (seq, ms) from the clock row, which stays
// locked until tx ends, and writes the commit row. It must be the last
// write of tx, so that the lock is held only while tx commits. A batch
// without events gets no commit, as in state.DB.
func (db *DB) commitEvents(ctx context.Context, tx pgx.Tx, org, batch string, count uint32) (commit, error) {
	c := commit{count: count, created: db.stamp(), org: org, batch: batch}
	if count == 0 {
		return c, nil
	}
	// Sent before the clock row is locked: PostgreSQL delivers it at
	// commit whatever its place in tx.
	if err := notify(ctx, tx, ChannelEvents, org); err != nil {
		return commit{}, err
	}
	var seq, ms int64
	err := tx.QueryRow(ctx, "UPDATE rosterd.event_clock SET seq = seq + 1, ms = greatest(ms, $1) RETURNING seq, ms",
		int64(ulid.Timestamp(c.created))).Scan(&seq, &ms)
	if err != nil {
		return commit{}, err
	}
	c.seq, c.ms = uint64(seq), uint64(ms)
	_, err = tx.Exec(ctx, "INSERT INTO rosterd.commits (seq, ms, first_id, org, batch_id, count, lo, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
		seq, ms, c.id(0), org, batch, int64(count), c.created)
	return c, err
}
