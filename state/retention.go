package state

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// purgeTxSize bounds the deletions of one retention transaction, so that
// applying a batch never waits long behind a purge (bbolt has one writer).
const purgeTxSize = 500

// EventIDAt returns the smallest event id that can be drawn at t: every
// event committed before t has a smaller id.
func EventIDAt(t time.Time) string {
	var u ulid.ULID
	if err := u.SetTime(ulid.Timestamp(t)); err != nil {
		return eventPrefix
	}
	return eventPrefix + u.String()
}

// PurgeEvents deletes the events committed before before (SPEC §7:
// retention), organization by organization, in transactions of at most
// purgeTxSize deletions. keepAfter says, for an organization, after which
// event id events must be kept because a webhook endpoint has not yet
// delivered or failed them (ok false: no endpoint holds any back). Failed
// deliveries of purged events are forgotten too. It returns the number of
// events deleted, and stops early with ctx's error.
func (db *DB) PurgeEvents(ctx context.Context, before time.Time, keepAfter func(org string) (after string, ok bool)) (int, error) {
	cutoff := EventIDAt(before)
	var orgs []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEventOrgs).ForEachBucket(func(k []byte) error {
			orgs = append(orgs, string(k))
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("purge events: %w", err)
	}
	total := 0
	for _, org := range orgs {
		limit := cutoff
		if after, ok := keepAfter(org); ok && after < cutoff {
			// Keep ids > after: delete ids < after+"\x00", i.e. <= after.
			limit = after + "\x00"
		}
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			n, err := db.purgeSome(org, limit)
			total += n
			if err != nil {
				return total, fmt.Errorf("purge events of %s: %w", org, err)
			}
			if n < purgeTxSize {
				break
			}
		}
	}
	if err := db.purgeFailed(cutoff); err != nil {
		return total, fmt.Errorf("purge events: %w", err)
	}
	return total, nil
}

// purgeSome deletes up to purgeTxSize of org's events with ids below limit,
// oldest first, in one transaction.
func (db *DB) purgeSome(org, limit string) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketEventOrgs).Bucket([]byte(org))
		if idx == nil {
			return nil
		}
		var ids [][]byte
		c := idx.Cursor()
		for k, _ := c.First(); k != nil && string(k) < limit && len(ids) < purgeTxSize; k, _ = c.Next() {
			ids = append(ids, append([]byte(nil), k...))
		}
		for _, id := range ids {
			if err := deleteEventTx(tx, id); err != nil {
				return err
			}
			// An index entry whose event is already gone.
			if err := idx.Delete(id); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

// purgeFailed forgets the failed deliveries of events older than cutoff.
func (db *DB) purgeFailed(cutoff string) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketDeliveries)
		return top.ForEachBucket(func(ep []byte) error {
			fb := top.Bucket(ep).Bucket(bucketFailed)
			if fb == nil {
				return nil
			}
			var old [][]byte
			c := fb.Cursor()
			for k, _ := c.First(); k != nil && string(k) < cutoff; k, _ = c.Next() {
				old = append(old, append([]byte(nil), k...))
			}
			for _, k := range old {
				if err := fb.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
