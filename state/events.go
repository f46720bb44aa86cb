package state

import (
	"bytes"
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
//	  e             uint32 index of a block's first event -> the block: recBlock,
//	                then each event record (type and references) after its
//	                uvarint length; a database written before blocks holds
//	                uint32 index -> one event record, read the same
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

// Event record kinds: the first byte of a record.
const (
	recRaw    byte = 'R' // uvarint len(type), type, data JSON
	recUser   byte = 'U' // type code, user id
	recUpdate byte = 'P' // type code, uvarint len(user id), user id, previous_attributes JSON
	recGroup  byte = 'G' // type code, group id
	recMember byte = 'M' // type code, uvarint len(user id), user id, group id

	recBlock byte = 'B' // a value of e that holds a block of records
)

// eventBlockBytes is the size a block of event records stops growing at
// (a record larger than that is a block alone). bbolt's leaf pages hold
// two such blocks with their keys, so the blocks fill them; a bbolt put
// each event (4 million for a million-user first upload) cost more than
// the rest of writing it, and 20 bytes of key and page header an event.
const eventBlockBytes = 2000

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

// eventReader reads the records of one batch's events, valid while its
// transaction is. Events read in ascending order cost a step through the
// block each; others a cursor seek.
type eventReader struct {
	c *bolt.Cursor
	// rest holds the records of the current block from record next on.
	rest []byte
	next uint32
	ok   bool
}

func newEventReader(data *bolt.Bucket) *eventReader {
	r := &eventReader{}
	if data != nil {
		if e := data.Bucket(evEvents); e != nil {
			r.c = e.Cursor()
		}
	}
	return r
}

// record returns event i's record, or nil when it is gone (purged).
func (r *eventReader) record(i uint32) []byte {
	if r.c == nil {
		return nil
	}
	sought := false
	if !r.ok || i < r.next {
		if v, block := r.seek(i); !block {
			return v
		}
		sought = true
	}
	for {
		n, w := binary.Uvarint(r.rest)
		if w <= 0 || int(n) > len(r.rest)-w { // the block ends before i
			r.ok = false
			if sought {
				return nil
			}
			if v, block := r.seek(i); !block {
				return v
			}
			sought = true
			continue
		}
		rec := r.rest[w : w+int(n)]
		r.rest = r.rest[w+int(n):]
		r.next++
		if r.next-1 == i {
			return rec
		}
	}
}

// seek finds the entry that holds event i: a block, which it makes
// current (block true), or one record (before blocks), which it returns
// when it is event i's.
func (r *eventReader) seek(i uint32) (rec []byte, block bool) {
	r.ok = false
	k, v := seekBlock(r.c, i)
	if k == nil {
		return nil, false
	}
	first := binary.BigEndian.Uint32(k)
	if v[0] != recBlock {
		if first != i {
			return nil, false
		}
		return v, false
	}
	r.rest, r.next, r.ok = v[1:], first, true
	return nil, true
}

// seekBlock positions c on the entry of e that holds event i: the last
// key not above i. It returns nil when there is none.
func seekBlock(c *bolt.Cursor, i uint32) ([]byte, []byte) {
	key := binary.BigEndian.AppendUint32(nil, i)
	k, v := c.Seek(key)
	switch {
	case k == nil:
		k, v = c.Last()
	case bytes.Compare(k, key) > 0:
		k, v = c.Prev()
	}
	if len(k) != 4 || len(v) == 0 {
		return nil, nil
	}
	return k, v
}

// renderEvent appends the JSON of event i of c to b; ok is false when the
// event is gone (purged).
func renderEvent(b []byte, data *bolt.Bucket, r *eventReader, c *commitRec, i uint32) ([]byte, bool) {
	if data == nil {
		return b, false
	}
	v := r.record(i)
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
			r := newEventReader(data)
			for i := cr.firstAfter(after); i < cr.count && (limit <= 0 || n < limit); i++ {
				var ok bool
				if buf, ok = renderEvent(buf[:0], data, r, &cr, i); !ok {
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

// findEvent returns the commit holding id and its index; false when the
// event does not exist or was purged.
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
	// i < cr.lo: purged, though a block it shared with later events may
	// still hold its record.
	if err != nil || cr.seq != seq || i < cr.lo || i >= cr.count || cr.id(i) != id {
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
	data := eventData(tx, cr.org, cr.batch)
	b, ok := renderEvent(nil, data, newEventReader(data), &cr, i)
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
	e := data.Bucket(evEvents)
	k, v := seekBlock(e.Cursor(), i)
	if k == nil {
		return nil
	}
	first := binary.BigEndian.Uint32(k)
	if v[0] != recBlock {
		if first != i {
			return nil
		}
		return e.Delete(k)
	}
	// The block again, with record i empty.
	nb := []byte{recBlock}
	rest := v[1:]
	for j := first; len(rest) > 0; j++ {
		n, w := binary.Uvarint(rest)
		if w <= 0 || int(n) > len(rest)-w {
			return fmt.Errorf("malformed event block %d", first)
		}
		rec := rest[w : w+int(n)]
		if j == i {
			rec = nil
		}
		nb = append(binary.AppendUvarint(nb, uint64(len(rec))), rec...)
		rest = rest[w+int(n):]
	}
	return e.Put(bytes.Clone(k), nb)
}

// purgeRecords deletes the entries of e that hold only events below end,
// from the one that holds event lo on. A block that also holds events
// from end on stays until its batch's events are all purged (the commit
// record's lo hides the rest).
func purgeRecords(e *bolt.Bucket, lo, end uint32) error {
	c := e.Cursor()
	var del [][]byte
	for k, v := seekBlock(c, lo); k != nil && binary.BigEndian.Uint32(k) < end; k, v = c.Next() {
		first := binary.BigEndian.Uint32(k)
		if len(v) > 0 && v[0] == recBlock {
			n := uint32(0)
			for rest := v[1:]; len(rest) > 0; n++ {
				l, w := binary.Uvarint(rest)
				if w <= 0 || int(l) > len(rest)-w {
					return fmt.Errorf("malformed event block %d", first)
				}
				rest = rest[w+int(l):]
			}
			if first+n > end {
				break
			}
		}
		del = append(del, bytes.Clone(k))
	}
	for _, k := range del {
		if err := e.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
