package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// Events are stored per batch and made visible by a commit log:
//
//	events          first event id of a commit -> commit record (commitRec)
//	event_orgs/ORG  first event id of a commit -> "" (the organization's commits)
//	event_batches/ORG\x00BATCH/
//	  e             uint32 index -> event record (type and references)
//	  u             user id -> the user's stored value as the batch saw it
//	  g             group id -> the group's JSON as the batch saw it
//	meta            "event_seq", "event_ms": the last commit's sequence and time
//
// A batch's events are written into its event_batches bucket (in one
// transaction, or staged over many, see apply.go) and become visible when
// the commit record is written, in the transaction that applies the batch
// to the snapshot. The id of event i of a commit is "evt_" + a ULID whose
// 48-bit time is the commit time in ms (never below the previous commit's)
// and whose 80-bit entropy is the commit sequence (48 bits) and i (32
// bits). Ids therefore sort in commit order, then emission order, across
// all organizations: a reader that saw id X and asks for after=X never
// misses an event committed later. The commit log is keyed by each
// commit's first id, so a cursor seek finds the commit of any id.
//
// An event record names a user or a group, and each batch keeps one copy
// of every user and group its events name (in the state the batch left
// them, or for deletions found them): a membership event does not repeat
// the user's record, and an old event keeps showing the data as it was.
// The JSON is rendered on read, byte for byte as SPEC §6 shows it.
var (
	bucketEventData = []byte("event_batches")
	evEvents        = []byte("e")
	evUsers         = []byte("u")
	evGroups        = []byte("g")
	keyEventSeq     = []byte("event_seq")
	keyEventMs      = []byte("event_ms")
)

// Event is one change (SPEC §6).
type Event struct {
	ID             string          `json:"id"`
	Event          string          `json:"event"`
	OrganizationID string          `json:"organization_id"`
	BatchID        string          `json:"batch_id"`
	CreatedAt      time.Time       `json:"created_at"`
	Data           json.RawMessage `json:"data"`
}

// The event types of SPEC §6.
const (
	EventUserCreated      = "dsync.user.created"
	EventUserUpdated      = "dsync.user.updated"
	EventUserDeleted      = "dsync.user.deleted"
	EventGroupCreated     = "dsync.group.created"
	EventGroupUpdated     = "dsync.group.updated"
	EventGroupDeleted     = "dsync.group.deleted"
	EventGroupUserAdded   = "dsync.group.user_added"
	EventGroupUserRemoved = "dsync.group.user_removed"
)

var eventTypes = []string{EventUserCreated, EventUserUpdated, EventUserDeleted, EventGroupCreated,
	EventGroupUpdated, EventGroupDeleted, EventGroupUserAdded, EventGroupUserRemoved}

func typeCode(typ string) (byte, bool) {
	for i, t := range eventTypes {
		if t == typ {
			return byte(i), true
		}
	}
	return 0, false
}

// Event record kinds: the first byte of a value in e.
const (
	recRaw    byte = 'R' // uvarint len(type), type, data JSON
	recUser   byte = 'U' // type code, user id
	recUpdate byte = 'P' // type code, uvarint len(user id), user id, previous_attributes JSON
	recGroup  byte = 'G' // type code, group id
	recMember byte = 'M' // type code, uvarint len(user id), user id, group id
)

const eventPrefix = "evt_"

// commitRec is the commit log's record of one batch's events.
type commitRec struct {
	seq, ms    uint64
	count, lo  uint32 // events; the ones below lo are purged
	created    time.Time
	org, batch string
}

func (c *commitRec) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, c.seq)
	b = binary.BigEndian.AppendUint64(b, c.ms)
	b = binary.BigEndian.AppendUint32(b, c.count)
	b = binary.BigEndian.AppendUint32(b, c.lo)
	b = binary.BigEndian.AppendUint64(b, uint64(c.created.UnixNano()))
	b = appendLV(b, c.org)
	return append(b, c.batch...)
}

func decodeCommit(v []byte) (commitRec, error) {
	if len(v) < 32 {
		return commitRec{}, fmt.Errorf("commit record of %d bytes", len(v))
	}
	c := commitRec{
		seq: binary.BigEndian.Uint64(v), ms: binary.BigEndian.Uint64(v[8:]),
		count: binary.BigEndian.Uint32(v[16:]), lo: binary.BigEndian.Uint32(v[20:]),
		created: time.Unix(0, int64(binary.BigEndian.Uint64(v[24:]))).UTC(),
	}
	n, w := binary.Uvarint(v[32:])
	if w <= 0 || int(n) > len(v)-32-w {
		return commitRec{}, fmt.Errorf("malformed commit record")
	}
	c.org = string(v[32+w : 32+w+int(n)])
	c.batch = string(v[32+w+int(n):])
	return c, nil
}

// eventID is the id of event i of the commit (ms, seq).
func eventID(ms, seq uint64, i uint32) string {
	var u ulid.ULID
	binary.BigEndian.PutUint16(u[0:], uint16(ms>>32))
	binary.BigEndian.PutUint32(u[2:], uint32(ms))
	binary.BigEndian.PutUint16(u[6:], uint16(seq>>32))
	binary.BigEndian.PutUint32(u[8:], uint32(seq))
	binary.BigEndian.PutUint32(u[12:], i)
	return eventPrefix + u.String()
}

func (c *commitRec) id(i uint32) string { return eventID(c.ms, c.seq, i) }

// parseEventID returns the commit sequence and index an id encodes.
func parseEventID(id string) (seq uint64, i uint32, ok bool) {
	if !strings.HasPrefix(id, eventPrefix) {
		return 0, 0, false
	}
	u, err := ulid.ParseStrict(id[len(eventPrefix):])
	if err != nil {
		return 0, 0, false
	}
	seq = uint64(binary.BigEndian.Uint16(u[6:]))<<32 | uint64(binary.BigEndian.Uint32(u[8:]))
	return seq, binary.BigEndian.Uint32(u[12:]), true
}

// firstAfter returns the first index of c whose id sorts after after.
func (c *commitRec) firstAfter(after string) uint32 {
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

func dataKey(org, batch string) []byte { return []byte(org + "\x00" + batch) }

// nextCommit draws the next commit sequence and time, inside the applying
// write transaction (bbolt has one writer: drawing order is commit order).
func (db *DB) nextCommit(tx *bolt.Tx) (seq, ms uint64, err error) {
	meta := tx.Bucket(bucketMeta)
	seq = getU64(meta.Get(keyEventSeq)) + 1
	ms = max(ulid.Timestamp(db.now()), getU64(meta.Get(keyEventMs)))
	if err := meta.Put(keyEventSeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return 0, 0, err
	}
	return seq, ms, meta.Put(keyEventMs, binary.BigEndian.AppendUint64(nil, ms))
}

func getU64(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// writeCommit makes a batch's events visible.
func writeCommit(tx *bolt.Tx, c commitRec) error {
	key := []byte(c.id(0))
	if err := tx.Bucket(bucketEvents).Put(key, c.encode()); err != nil {
		return err
	}
	idx, err := tx.Bucket(bucketEventOrgs).CreateBucketIfNotExists([]byte(c.org))
	if err != nil {
		return err
	}
	return idx.Put(key, []byte{})
}

// eventData returns the event_batches bucket of a commit, or nil.
func eventData(tx *bolt.Tx, org, batch string) *bolt.Bucket {
	top := tx.Bucket(bucketEventData)
	if top == nil {
		return nil
	}
	return top.Bucket(dataKey(org, batch))
}

// renderEvent appends the JSON of event i of c to b; ok is false when the
// event is gone (purged).
func renderEvent(b []byte, data *bolt.Bucket, c *commitRec, i uint32) ([]byte, bool) {
	if data == nil {
		return b, false
	}
	e := data.Bucket(evEvents)
	if e == nil {
		return b, false
	}
	v := e.Get(binary.BigEndian.AppendUint32(nil, i))
	if len(v) < 2 {
		return b, false
	}
	var typ string
	kind := v[0]
	if kind == recRaw {
		n, w := binary.Uvarint(v[1:])
		typ = string(v[1+w : 1+w+int(n)])
		v = v[1+w+int(n):]
	} else {
		if int(v[1]) >= len(eventTypes) {
			return b, false
		}
		typ = eventTypes[v[1]]
		v = v[2:]
	}
	b = append(b, `{"id":"`...)
	b = append(b, c.id(i)...)
	b = append(b, `","event":"`...)
	b = append(b, typ...)
	b = append(b, `","organization_id":`...)
	b = AppendJSONString(b, c.org)
	b = append(b, `,"batch_id":`...)
	b = AppendJSONString(b, c.batch)
	b = append(b, `,"created_at":"`...)
	b = c.created.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","data":`...)
	user := func(b []byte, uid []byte) []byte {
		u := data.Bucket(evUsers).Get(uid)
		if len(u) == 0 {
			return append(b, "null"...)
		}
		return appendUserJSON(b, c.org, u)
	}
	group := func(b []byte, gid []byte) []byte {
		g := data.Bucket(evGroups).Get(gid)
		if g == nil {
			return append(b, "null"...)
		}
		return append(b, g...)
	}
	switch kind {
	case recRaw:
		b = append(b, v...)
	case recUser:
		b = user(b, v)
	case recUpdate:
		n, w := binary.Uvarint(v)
		uid, prev := v[w:w+int(n)], v[w+int(n):]
		start := len(b)
		b = user(b, uid)
		if len(b) > start && b[len(b)-1] == '}' {
			b = append(b[:len(b)-1], `,"previous_attributes":`...)
			b = append(b, prev...)
			b = append(b, '}')
		}
	case recGroup:
		b = group(b, v)
	case recMember:
		n, w := binary.Uvarint(v)
		b = append(b, `{"user":`...)
		b = user(b, v[w:w+int(n)])
		b = append(b, `,"group":`...)
		b = group(b, v[w+int(n):])
		b = append(b, '}')
	}
	return append(b, '}'), true
}

// Events returns up to limit events with ids after after ("" = from the
// oldest retained), in id order; org "" means every organization.
func (db *DB) Events(org, after string, limit int) ([]Event, error) {
	var out []Event
	err := db.ForEachEventJSON(org, after, limit, func(_ string, raw []byte) error {
		var e Event
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

// seekCommits positions c (over the commit log or an organization's
// index, both keyed by first id) on the first commit that may hold an id
// after after, and returns its key.
func seekCommits(c *bolt.Cursor, after string) []byte {
	if after == "" {
		k, _ := c.First()
		return k
	}
	k, _ := c.Seek([]byte(after))
	switch {
	case k == nil:
		k, _ = c.Last()
	case string(k) > after:
		if pk, _ := c.Prev(); pk != nil {
			k = pk
		} else {
			k, _ = c.First()
		}
	}
	return k
}

// ForEachEventJSON is Events without decoding: fn gets each event's id and
// JSON (valid only during the call), in id order.
func (db *DB) ForEachEventJSON(org, after string, limit int, fn func(id string, raw []byte) error) error {
	err := db.bolt.View(func(tx *bolt.Tx) error {
		commits := tx.Bucket(bucketEvents)
		var c *bolt.Cursor
		if org == "" {
			c = commits.Cursor()
		} else if idx := tx.Bucket(bucketEventOrgs).Bucket([]byte(org)); idx != nil {
			c = idx.Cursor()
		} else {
			return nil
		}
		n := 0
		var buf []byte
		for k := seekCommits(c, after); k != nil && (limit <= 0 || n < limit); k, _ = c.Next() {
			cr, err := decodeCommit(commits.Get(k))
			if err != nil {
				return fmt.Errorf("commit %s: %w", k, err)
			}
			data := eventData(tx, cr.org, cr.batch)
			for i := cr.firstAfter(after); i < cr.count && (limit <= 0 || n < limit); i++ {
				var ok bool
				if buf, ok = renderEvent(buf[:0], data, &cr, i); !ok {
					continue // purged
				}
				if err := fn(cr.id(i), buf); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}
	return nil
}

// findEvent returns the commit holding id and its index.
func findEvent(tx *bolt.Tx, id string) (commitRec, uint32, bool) {
	seq, i, ok := parseEventID(id)
	if !ok {
		return commitRec{}, 0, false
	}
	c := tx.Bucket(bucketEvents).Cursor()
	k, v := c.Seek([]byte(id))
	if k == nil || string(k) != id {
		k, v = c.Prev()
		if k == nil {
			return commitRec{}, 0, false
		}
	}
	cr, err := decodeCommit(v)
	if err != nil || cr.seq != seq || i >= cr.count || cr.id(i) != id {
		return commitRec{}, 0, false
	}
	return cr, i, true
}

// eventJSONTx returns the JSON of one event, or nil.
func eventJSONTx(tx *bolt.Tx, id string) []byte {
	cr, i, ok := findEvent(tx, id)
	if !ok {
		return nil
	}
	b, ok := renderEvent(nil, eventData(tx, cr.org, cr.batch), &cr, i)
	if !ok {
		return nil
	}
	return b
}

// Event returns one event, or ErrNotFound.
func (db *DB) Event(id string) (Event, error) {
	var e Event
	err := db.bolt.View(func(tx *bolt.Tx) error {
		raw := eventJSONTx(tx, id)
		if raw == nil {
			return ErrNotFound
		}
		return json.Unmarshal(raw, &e)
	})
	if err != nil {
		return Event{}, fmt.Errorf("event %s: %w", id, err)
	}
	return e, nil
}

// lastEventIDTx returns the newest event id, or "".
func lastEventIDTx(tx *bolt.Tx) string {
	_, v := tx.Bucket(bucketEvents).Cursor().Last()
	if v == nil {
		return ""
	}
	cr, err := decodeCommit(v)
	if err != nil || cr.count == 0 {
		return ""
	}
	return cr.id(cr.count - 1)
}

// LastEventID returns the newest event id, or "" when there is none.
func (db *DB) LastEventID() (string, error) {
	var id string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id = lastEventIDTx(tx)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("last event: %w", err)
	}
	return id, nil
}

// countEventsTx counts org's events after after.
func countEventsTx(tx *bolt.Tx, org, after string) (int, error) {
	idx := tx.Bucket(bucketEventOrgs).Bucket([]byte(org))
	if idx == nil {
		return 0, nil
	}
	commits := tx.Bucket(bucketEvents)
	c := idx.Cursor()
	n := 0
	for k := seekCommits(c, after); k != nil; k, _ = c.Next() {
		cr, err := decodeCommit(commits.Get(k))
		if err != nil {
			return 0, err
		}
		n += int(cr.count - cr.firstAfter(after))
	}
	return n, nil
}

// deleteEventTx removes one event (the commit record stays until its
// batch's events are all purged, see retention.go). A missing event is a
// no-op.
func deleteEventTx(tx *bolt.Tx, id []byte) error {
	cr, i, ok := findEvent(tx, string(id))
	if !ok {
		return nil
	}
	data := eventData(tx, cr.org, cr.batch)
	if data == nil || data.Bucket(evEvents) == nil {
		return nil
	}
	return data.Bucket(evEvents).Delete(binary.BigEndian.AppendUint32(nil, i))
}
