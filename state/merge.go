package state

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// mergeTxNodes bounds the pages one MergeOverlay transaction dirties
// (bbolt nodes: a page's entries, then its new 4 KB copy at commit; 7 to
// 8 KB each while it commits). Fewer, larger transactions cost fewer
// fsyncs; the pages a merge writes are the same. A day-2 batch of 2 % of
// a million users dirties about 45,000 pages of the base (51,000 before
// appendFill): six or seven transactions, the process at 90 to 160 MB
// anon (12,288 took 160 to 190 MB and saved no measurable time).
var mergeTxNodes int64 = 8192

// mergeTxKeys bounds the keys one MergeOverlay transaction copies: keys
// appended after the last key of a base bucket all go into one node,
// which bbolt splits only at the commit, so the node count alone does not
// bound the transaction (an overlay of three million memberships onto an
// empty base was copied in one transaction, at 1.9 GB).
var mergeTxKeys = 65536

// MergeOverlay copies org's overlay, which ApplyBatchStaged leaves after
// a change onto a non-empty snapshot, into its base in transactions that
// dirty at most mergeTxNodes pages, the last of which drops the overlay.
// Readers read the overlay over the base throughout, so they see the same
// snapshot at every step, and a crash half way leaves a snapshot that
// reads the same (prepareOrg or Recover finishes the merge). It does
// nothing when org has no overlay. It is safe to call concurrently with
// anything; a merge overtaken by another (which dropped its overlay)
// stops. Cost at a million users, day 2 (2 % changed): 0.8 to 0.9 s of
// CPU, 1.2 to 1.5 s wall and 180 MB written, nearly all bbolt rewriting
// the pages the changes fall on (a page each, they are that spread out).
func (db *DB) MergeOverlay(org string) error {
	var overlay string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		overlay = readPtr(tx.Bucket(bucketSnapshots).Bucket([]byte(org))).overlay
		return nil
	})
	if err != nil || overlay == "" {
		return err
	}
	// Where the merge stands between transactions: bucket snapBuckets[bi],
	// after its key after (nil: from its first key).
	bi, after := 0, []byte(nil)
	for done := false; !done; {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			if err := db.fault("merge"); err != nil {
				return err
			}
			root := tx.Bucket(bucketSnapshots).Bucket([]byte(org))
			p := readPtr(root)
			if p.overlay != overlay {
				done = true // merged by another call
				return nil
			}
			over, base := root.Bucket([]byte(p.overlay)), root.Bucket([]byte(p.base))
			n := 0 // keys copied in this transaction
			for ; bi < len(snapBuckets); bi, after = bi+1, nil {
				o := over.Bucket(snapBuckets[bi])
				if o == nil {
					continue
				}
				b, err := base.CreateBucketIfNotExists(snapBuckets[bi])
				if err != nil {
					return err
				}
				c := o.Cursor()
				k, v := c.First()
				if after != nil {
					if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
						k, v = c.Next()
					}
				}
				var last []byte
				for ; k != nil; k, v = c.Next() {
					if st := tx.Stats(); n > 0 && (st.GetNodeCount() >= mergeTxNodes || n >= mergeTxKeys) {
						if last != nil {
							after = bytes.Clone(last)
						}
						return nil
					}
					// bbolt copies the key; the value stays in the
					// overlay's pages, which this transaction does not
					// change (and a remap copies).
					if len(v) > 0 && v[0] == opPut {
						err = b.Put(k, v[1:])
					} else {
						err = b.Delete(k)
					}
					if err != nil {
						return err
					}
					last = k
					n++
				}
			}
			done = true
			if err := root.DeleteBucket([]byte(p.overlay)); err != nil {
				return err
			}
			p.overlay = ""
			return writePtr(root, p)
		})
		if err != nil {
			return fmt.Errorf("merge snapshot of %s: %w", org, err)
		}
	}
	return nil
}

// prepareOrg deletes org's staging leftovers and finishes a merge a crash
// interrupted.
func (db *DB) prepareOrg(org string) error {
	if err := db.discardStaging(org); err != nil {
		return fmt.Errorf("discard staging of %s: %w", org, err)
	}
	var pending bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSnapshots).Bucket([]byte(org))
		pending = root != nil && readPtr(root).overlay != ""
		return nil
	})
	if err != nil || !pending {
		return err
	}
	return db.MergeOverlay(org)
}

// Recover deletes every organization's staging leftovers and finishes the
// merges a crash interrupted. Applies do this for their organization
// anyway; calling it at start-up, before any apply, frees the space at
// once. It must not run while a staged apply is in progress.
func (db *DB) Recover() error {
	var orgs []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEachBucket(func(k []byte) error {
			orgs = append(orgs, string(k))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	var errs []error
	for _, org := range orgs {
		errs = append(errs, db.prepareOrg(org))
	}
	return errors.Join(errs...)
}

// PendingMerge reports whether org's snapshot still has an overlay being
// merged into its base (readers see the same snapshot either way).
func (db *DB) PendingMerge(org string) (bool, error) {
	var pending bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSnapshots).Bucket([]byte(org))
		pending = root != nil && readPtr(root).overlay != ""
		return nil
	})
	return pending, err
}
