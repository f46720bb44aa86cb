package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Webhook delivery state, under the deliveries bucket, one nested bucket
// per endpoint id:
//
//	deliveries/ENDPOINT/
//	  state             EndpointState (JSON)
//	  cursors/ ORG      Cursor (JSON): last event delivered or failed, retry state
//	  failed/  EVENT    FailedDelivery (JSON)
var (
	keyEndpointState = []byte("state")
	bucketCursors    = []byte("cursors")
	bucketFailed     = []byte("failed")
)

// EndpointState is what the store remembers about a webhook endpoint
// beyond the configuration: where it started and whether a receiver
// disabled it.
type EndpointState struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Start is the last event id when the endpoint was first seen ("" on
	// an empty feed): an organization without a cursor starts after it, so
	// a new endpoint receives only events committed from then on.
	Start     string    `json:"start"`
	FirstSeen time.Time `json:"first_seen"`
	// Disabled is set when the receiver answered 410 Gone (SPEC §7).
	Disabled       bool      `json:"disabled,omitempty"`
	DisabledAt     time.Time `json:"disabled_at,omitzero"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
}

// Cursor is one endpoint's progress through one organization's events.
type Cursor struct {
	// After is the last event delivered or marked failed; the next event
	// to send is the first one after it.
	After string `json:"after"`
	// Retry is the retry state of the next event, nil before its first
	// failed attempt.
	Retry *Retry `json:"retry,omitempty"`
}

// Retry is the state of an event whose delivery failed at least once.
type Retry struct {
	EventID    string    `json:"event_id"`
	Attempts   int       `json:"attempts"`
	NextAt     time.Time `json:"next_at"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
}

// FailedDelivery is an event that an endpoint did not accept after the
// last retry. It stays listed until it is redelivered or retention
// removes the event.
type FailedDelivery struct {
	Endpoint   string    `json:"endpoint"`
	EventID    string    `json:"event_id"`
	Event      string    `json:"event"`
	Org        string    `json:"organization_id"`
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	FailedAt   time.Time `json:"failed_at"`
}

// CursorUpdate moves an endpoint's cursor for an organization.
type CursorUpdate struct {
	Endpoint, Org string
	Cursor        Cursor
}

// RegisterEndpoint returns the stored state of endpoint id, creating it
// with Start set to the current last event id when the endpoint is new.
// When the stored URL differs from url (the operator changed the address
// of an endpoint with an explicit id), the URL is updated and a disabled
// endpoint is enabled again.
func (db *DB) RegisterEndpoint(id, url string) (EndpointState, error) {
	var st EndpointState
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketDeliveries).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		switch err := getJSON(b, keyEndpointState, &st); err {
		case nil:
			if st.URL == url {
				return nil
			}
			st.URL, st.Disabled, st.DisabledAt, st.DisabledReason = url, false, time.Time{}, ""
		case ErrNotFound:
			st = EndpointState{ID: id, URL: url, FirstSeen: db.now().UTC()}
			st.Start = lastEventIDTx(tx)
		default:
			return err
		}
		return putJSON(b, keyEndpointState, st)
	})
	if err != nil {
		return EndpointState{}, fmt.Errorf("register endpoint %s: %w", id, err)
	}
	return st, nil
}

// Endpoints returns the stored state of every endpoint ever registered.
func (db *DB) Endpoints() ([]EndpointState, error) {
	var out []EndpointState
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeliveries).ForEachBucket(func(k []byte) error {
			var st EndpointState
			if err := getJSON(tx.Bucket(bucketDeliveries).Bucket(k), keyEndpointState, &st); err != nil {
				return fmt.Errorf("decode endpoint %s: %w", k, err)
			}
			out = append(out, st)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// CountEvents returns how many events of org sort after after: an
// endpoint's pending events when after is its cursor. It walks the
// organization's commits after after, O(batches) without decoding.
func (db *DB) CountEvents(org, after string) (int, error) {
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) (err error) {
		n, err = countEventsTx(tx, org, after)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("count events of %s: %w", org, err)
	}
	return n, nil
}

// Endpoint returns the stored state of endpoint id or ErrNotFound.
func (db *DB) Endpoint(id string) (EndpointState, error) {
	var st EndpointState
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketDeliveries).Bucket([]byte(id)), keyEndpointState, &st)
	})
	if err != nil {
		return EndpointState{}, fmt.Errorf("endpoint %s: %w", id, err)
	}
	return st, nil
}

// SetEndpointDisabled disables (with reason) or re-enables endpoint id.
func (db *DB) SetEndpointDisabled(id string, disabled bool, reason string) (EndpointState, error) {
	var st EndpointState
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries).Bucket([]byte(id))
		if err := getJSON(b, keyEndpointState, &st); err != nil {
			return err
		}
		st.Disabled, st.DisabledReason, st.DisabledAt = disabled, "", time.Time{}
		if disabled {
			st.DisabledReason, st.DisabledAt = reason, db.now().UTC()
		}
		return putJSON(b, keyEndpointState, st)
	})
	if err != nil {
		return EndpointState{}, fmt.Errorf("set endpoint %s disabled: %w", id, err)
	}
	return st, nil
}

// Cursors returns endpoint id's cursors by organization. An organization
// without a cursor starts after the endpoint's Start.
func (db *DB) Cursors(id string) (map[string]Cursor, error) {
	out := map[string]Cursor{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries).Bucket([]byte(id))
		if b == nil {
			return ErrNotFound
		}
		cb := b.Bucket(bucketCursors)
		if cb == nil {
			return nil
		}
		return cb.ForEach(func(k, v []byte) error {
			var c Cursor
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode cursor %s: %w", k, err)
			}
			out[string(k)] = c
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cursors of endpoint %s: %w", id, err)
	}
	return out, nil
}

// Cursor returns endpoint id's cursor for org; without a stored one it is
// {After: the endpoint's Start}.
func (db *DB) Cursor(id, org string) (Cursor, error) {
	var c Cursor
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries).Bucket([]byte(id))
		var st EndpointState
		if err := getJSON(b, keyEndpointState, &st); err != nil {
			return err
		}
		if err := getJSON(b.Bucket(bucketCursors), []byte(org), &c); err == ErrNotFound {
			c = Cursor{After: st.Start}
			return nil
		} else {
			return err
		}
	})
	if err != nil {
		return Cursor{}, fmt.Errorf("cursor of endpoint %s for %s: %w", id, org, err)
	}
	return c, nil
}

// SaveCursors stores several cursors in one transaction (one fsync).
// Cursors only move forward: an update whose After sorts before the stored
// one is ignored, so a late writer never undoes progress. An update at the
// stored position replaces the retry state.
func (db *DB) SaveCursors(updates ...CursorUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, u := range updates {
			if err := saveCursor(tx, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save delivery cursors: %w", err)
	}
	return nil
}

func saveCursor(tx *bolt.Tx, u CursorUpdate) error {
	b := tx.Bucket(bucketDeliveries).Bucket([]byte(u.Endpoint))
	if b == nil {
		return fmt.Errorf("endpoint %s: %w", u.Endpoint, ErrNotFound)
	}
	cb, err := b.CreateBucketIfNotExists(bucketCursors)
	if err != nil {
		return err
	}
	var old Cursor
	if err := getJSON(cb, []byte(u.Org), &old); err == nil && u.Cursor.After < old.After {
		return nil
	}
	c := u.Cursor
	if c.Retry != nil && c.Retry.EventID <= c.After {
		c.Retry = nil
	}
	return putJSON(cb, []byte(u.Org), c)
}

// MarkFailed records f as failed and moves the cursor past it, in one
// transaction.
func (db *DB) MarkFailed(f FailedDelivery) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := saveCursor(tx, CursorUpdate{Endpoint: f.Endpoint, Org: f.Org, Cursor: Cursor{After: f.EventID}}); err != nil {
			return err
		}
		fb, err := tx.Bucket(bucketDeliveries).Bucket([]byte(f.Endpoint)).CreateBucketIfNotExists(bucketFailed)
		if err != nil {
			return err
		}
		return putJSON(fb, []byte(f.EventID), f)
	})
	if err != nil {
		return fmt.Errorf("mark event %s failed for endpoint %s: %w", f.EventID, f.Endpoint, err)
	}
	return nil
}

// FailedDeliveries returns up to limit failed deliveries of endpoint id
// whose event ids sort after after, in event order. limit <= 0 means all.
func (db *DB) FailedDeliveries(id, after string, limit int) ([]FailedDelivery, error) {
	var out []FailedDelivery
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries).Bucket([]byte(id))
		if b == nil {
			return ErrNotFound
		}
		fb := b.Bucket(bucketFailed)
		if fb == nil {
			return nil
		}
		c := fb.Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && after != "" && bytes.Equal(k, []byte(after)) {
			k, v = c.Next()
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var f FailedDelivery
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed deliveries of endpoint %s: %w", id, err)
	}
	return out, nil
}

// FailedDelivery returns endpoint id's failed delivery of event, or
// ErrNotFound.
func (db *DB) FailedDelivery(id, event string) (FailedDelivery, error) {
	var f FailedDelivery
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries).Bucket([]byte(id))
		if b == nil {
			return ErrNotFound
		}
		return getJSON(b.Bucket(bucketFailed), []byte(event), &f)
	})
	if err != nil {
		return FailedDelivery{}, fmt.Errorf("failed delivery %s of endpoint %s: %w", event, id, err)
	}
	return f, nil
}

// ClearFailed removes event from endpoint id's failed deliveries (after a
// successful redelivery). Clearing an absent entry is not an error.
func (db *DB) ClearFailed(id, event string) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveries).Bucket([]byte(id))
		if b == nil {
			return ErrNotFound
		}
		if fb := b.Bucket(bucketFailed); fb != nil {
			return fb.Delete([]byte(event))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clear failed delivery %s of endpoint %s: %w", event, id, err)
	}
	return nil
}

// CountFailed returns how many failed deliveries endpoint id lists.
func (db *DB) CountFailed(id string) (int, error) {
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketDeliveries).Bucket([]byte(id)); b != nil {
			if fb := b.Bucket(bucketFailed); fb != nil {
				n = fb.Stats().KeyN
			}
		}
		return nil
	})
	return n, err
}

// EventJSON returns one event's stored JSON, exactly as webhooks send it,
// or ErrNotFound.
func (db *DB) EventJSON(id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		out = eventJSONTx(tx, id)
		if out == nil {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return out, nil
}
