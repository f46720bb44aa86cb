package state

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// RecordIgnored stores the final record and report of an ignored upload
// (status BatchIgnored) in one transaction. Unlike CreateBatch it
// supersedes nothing: a notice that a file was not processed leaves the
// organization's batches as they were. It returns ErrNotFound for an
// unknown organization and ErrExists for a batch id already taken.
func (db *DB) RecordIgnored(b Batch, report []byte) error {
	if b.Status != BatchIgnored {
		return fmt.Errorf("record ignored upload %s: status %q is not %q", b.ID, b.Status, BatchIgnored)
	}
	if b.FinishedAt == nil {
		now := db.now().UTC()
		b.FinishedAt = &now
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOrgs).Get([]byte(b.Org)) == nil {
			return ErrNotFound
		}
		recs, reps, err := batchBuckets(tx, b.Org)
		if err != nil {
			return err
		}
		if recs.Get([]byte(b.ID)) != nil {
			return ErrExists
		}
		if err := putJSON(recs, []byte(b.ID), b); err != nil {
			return err
		}
		return reps.Put([]byte(b.ID), report)
	})
	if err != nil {
		return fmt.Errorf("record ignored upload %s: %w", b.ID, err)
	}
	return nil
}
