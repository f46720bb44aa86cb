package state

import (
	"bytes"
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
// retention), organization by organization, in transactions that drop one
// whole batch's events or delete at most purgeTxSize events. keepAfter says, for an organization, after which
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
			n, progress, err := db.purgeSome(org, limit)
			total += n
			if err != nil {
				return total, fmt.Errorf("purge events of %s: %w", org, err)
			}
			if !progress {
				break
			}
		}
	}
	if err := db.purgeFailed(cutoff); err != nil {
		return total, fmt.Errorf("purge events: %w", err)
	}
	return total, nil
}

// purgeSome deletes, in one transaction, org's oldest events with ids
// below limit: the whole oldest batch when all its remaining events are
// below limit (its event bucket is dropped, which costs no more than its
// page count), else up to purgeTxSize of them. progress is false when
// there was nothing to delete.
func (db *DB) purgeSome(org, limit string) (n int, progress bool, err error) {
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketEventOrgs).Bucket([]byte(org))
		if idx == nil {
			return nil
		}
		k, _ := idx.Cursor().First()
		if k == nil {
			return nil
		}
		k = bytes.Clone(k)
		commits := tx.Bucket(bucketEvents)
		cr, err := decodeCommit(commits.Get(k))
		if err != nil {
			return fmt.Errorf("commit %s: %w", k, err)
		}
		// hi: the first index whose id is not below limit.
		lo, hi := cr.lo, cr.count
		for lo < hi {
			m := lo + (hi-lo)/2
			if cr.id(m) < limit {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if hi <= cr.lo {
			return nil
		}
		progress = true
		data := eventData(tx, cr.org, cr.batch)
		if hi == cr.count {
			n = int(cr.count - cr.lo)
			if data != nil {
				if err := tx.Bucket(bucketEventData).DeleteBucket(dataKey(cr.org, cr.batch)); err != nil {
					return err
				}
			}
			if err := idx.Delete(k); err != nil {
				return err
			}
			return commits.Delete(k)
		}
		end := min(hi, cr.lo+purgeTxSize)
		if data != nil && data.Bucket(evEvents) != nil {
			if err := purgeRecords(data.Bucket(evEvents), cr.lo, end); err != nil {
				return err
			}
		}
		n = int(end - cr.lo)
		cr.lo = end
		return commits.Put(k, cr.encode())
	})
	return n, progress, err
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
