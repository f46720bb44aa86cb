package state

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// Events are stored in events/ as event id -> the event's JSON exactly as
// the feed and webhooks send it, and indexed per organization in
// event_orgs/ORG/ as event id -> "". Ids are "evt_" + ULID, generated
// inside the applying write transaction from one monotonic source, so id
// order is commit order: a reader that saw id X and asks for after=X never
// misses an event committed later.

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

const eventPrefix = "evt_"

// ids is the process-wide monotonic event id source. bbolt has one writer
// at a time and ids are drawn only inside write transactions, so drawing
// order is commit order; the mutex guards the entropy state.
var ids struct {
	sync.Mutex
	entropy *ulid.MonotonicEntropy
	lastMs  uint64
}

// nextEventID returns an id greater than floor (the newest stored id) and
// than every id drawn before, even when the clock steps back.
func nextEventID(now time.Time, floor []byte) string {
	ids.Lock()
	defer ids.Unlock()
	if ids.entropy == nil {
		ids.entropy = ulid.Monotonic(rand.Reader, 0)
	}
	ms := max(ulid.Timestamp(now), ids.lastMs)
	for {
		id, err := ulid.New(ms, ids.entropy)
		if err != nil { // the entropy overflowed inside one millisecond
			ms++
			continue
		}
		s := eventPrefix + id.String()
		if floor != nil && s <= string(floor) {
			// An earlier process stored ids from a later clock reading.
			f, perr := ulid.ParseStrict(string(floor[len(eventPrefix):]))
			if perr != nil || f.Time() < ms {
				return s // not one of ours: ignore it
			}
			ms = f.Time() + 1
			continue
		}
		ids.lastMs = ms
		return s
	}
}

// ApplyTx is the writable snapshot of one organization inside ApplyBatch,
// plus Emit to store events in the same transaction.
type ApplyTx struct {
	*SnapshotTx
	tx      *bolt.Tx
	batch   string
	created time.Time
	events  *bolt.Bucket
	index   *bolt.Bucket
	floor   []byte
	head    []byte // the constant middle of every event of this batch
	emitted int
}

func (a *ApplyTx) init() error {
	a.events = a.tx.Bucket(bucketEvents)
	idx, err := a.tx.Bucket(bucketEventOrgs).CreateBucketIfNotExists([]byte(a.org))
	if err != nil {
		return err
	}
	a.index = idx
	a.events.FillPercent = 1 // ids only grow
	a.index.FillPercent = 1
	if k, _ := a.events.Cursor().Last(); k != nil {
		a.floor = bytes.Clone(k)
	}
	h := []byte(`,"organization_id":`)
	h = appendJSONString(h, a.org)
	h = append(h, `,"batch_id":`...)
	h = appendJSONString(h, a.batch)
	h = append(h, `,"created_at":"`...)
	h = a.created.UTC().AppendFormat(h, "2006-01-02T15:04:05.000Z07:00")
	h = append(h, `","data":`...)
	a.head = h
	return nil
}

// Emit stores one event of the given type with data (the SPEC §6 data
// object, valid JSON) and returns its id. Events of a batch are emitted in
// SPEC §6 order by the caller; their ids sort in emission order.
func (a *ApplyTx) Emit(typ string, data []byte) (string, error) {
	id := nextEventID(a.created, a.floor)
	a.floor = nil
	v := make([]byte, 0, len(id)+len(typ)+len(a.head)+len(data)+24)
	v = append(v, `{"id":"`...)
	v = append(v, id...)
	v = append(v, `","event":"`...)
	v = append(v, typ...)
	v = append(v, '"')
	v = append(v, a.head...)
	v = append(v, data...)
	v = append(v, '}')
	if err := a.events.Put([]byte(id), v); err != nil {
		return "", err
	}
	if err := a.index.Put([]byte(id), []byte{}); err != nil {
		return "", err
	}
	a.emitted++
	return id, nil
}

// Emitted returns the number of events emitted so far.
func (a *ApplyTx) Emitted() int { return a.emitted }

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

// ForEachEventJSON is Events without decoding: fn gets each event's id and
// stored JSON (valid only during the call), in id order.
func (db *DB) ForEachEventJSON(org, after string, limit int, fn func(id string, raw []byte) error) error {
	err := db.bolt.View(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		var c *bolt.Cursor
		if org == "" {
			c = events.Cursor()
		} else if idx := tx.Bucket(bucketEventOrgs).Bucket([]byte(org)); idx != nil {
			c = idx.Cursor()
		} else {
			return nil
		}
		k, _ := c.Seek([]byte(after))
		if k != nil && after != "" && string(k) == after {
			k, _ = c.Next()
		}
		for n := 0; k != nil && (limit <= 0 || n < limit); k, _ = c.Next() {
			v := events.Get(k)
			if v == nil {
				continue // purged
			}
			if err := fn(string(k), v); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}
	return nil
}

// Event returns one event, or ErrNotFound.
func (db *DB) Event(id string) (Event, error) {
	var e Event
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketEvents), []byte(id), &e)
	})
	if err != nil {
		return Event{}, fmt.Errorf("event %s: %w", id, err)
	}
	return e, nil
}

// LastEventID returns the newest event id, or "" when there is none.
func (db *DB) LastEventID() (string, error) {
	var id string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			id = string(k)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("last event: %w", err)
	}
	return id, nil
}

// deleteEventTx removes one event and its organization index entry; for
// retention. A missing event is a no-op.
func deleteEventTx(tx *bolt.Tx, id []byte) error {
	events := tx.Bucket(bucketEvents)
	v := events.Get(id)
	if v == nil {
		return nil
	}
	var head struct {
		Org string `json:"organization_id"`
	}
	if err := json.Unmarshal(v, &head); err != nil {
		return fmt.Errorf("decode event %s: %w", id, err)
	}
	if idx := tx.Bucket(bucketEventOrgs).Bucket([]byte(head.Org)); idx != nil {
		if err := idx.Delete(id); err != nil {
			return err
		}
	}
	return events.Delete(id)
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
