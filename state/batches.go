package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Batch statuses (SPEC §5).
const (
	BatchPending    = "pending"    // recorded, files not yet archived
	BatchProcessing = "processing" // files archived, being validated and applied
	BatchApplied    = "applied"
	BatchUnchanged  = "unchanged" // valid, nothing to change
	BatchRejected   = "rejected"  // errors: nothing changed
	BatchHeld       = "held"      // the deletion guard stopped it; approve or upload again
	BatchSuperseded = "superseded"
	// BatchIgnored records a completed .csv upload that no name or pattern
	// processes (SPEC §5): a notice, never a batch of the snapshot. It
	// never supersedes a held batch nor counts as the last batch of an
	// organization (RecordIgnored). It also records files set aside for a
	// more recently completed file of their kind, a batch that took no
	// file (RecordSetAside).
	BatchIgnored = "ignored"
)

// BatchFinished reports whether status is final: nothing will run the
// batch again. Held is not final (it can be approved).
func BatchFinished(status string) bool {
	switch status {
	case BatchApplied, BatchUnchanged, BatchRejected, BatchSuperseded, BatchIgnored:
		return true
	}
	return false
}

// Batch is the record of one batch: what it read and what became of it.
// Its report is stored beside it (BatchReport).
type Batch struct {
	ID         string       `json:"id"`
	Org        string       `json:"organization_id"`
	Status     string       `json:"status"`
	CreatedAt  time.Time    `json:"created_at"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
	Files      []BatchFile  `json:"files"`
	Counts     BatchCounts  `json:"counts"`
	Changes    BatchChanges `json:"changes"`
	Errors     int          `json:"errors"`
	Warnings   int          `json:"warnings"`
	// Approved is set when an operator released a held batch.
	Approved bool `json:"approved,omitempty"`
	// SupersededBy names the batch that superseded this held one.
	SupersededBy string `json:"superseded_by,omitempty"`
	// Reason says in one line why a batch was held or rejected.
	Reason string `json:"reason,omitempty"`
	// Effective fingerprints the policy and limits the batch ran with
	// (ingest compares it to recognize a repeated upload).
	Effective string `json:"effective,omitempty"`
	// Ignored are the files the batch set aside: candidates of a kind
	// whose more recently completed file the batch took (SPEC §5).
	Ignored []BatchFile `json:"ignored,omitempty"`
	// Supersedes names the unfinished or held batches this one replaced.
	Supersedes []string `json:"supersedes,omitempty"`
	// Attempts counts the runs of the batch that failed for a reason
	// outside its files (a full disk, an I/O error, a panic); LastError is
	// the last such failure, for the operator; RetryAt is when the batch
	// runs again while it waits (nil once it is final).
	Attempts  int        `json:"attempts,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
}

// BatchFile is one input file of a batch, as archived.
type BatchFile struct {
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"`
	Rows    int       `json:"rows"`
	ModTime time.Time `json:"mod_time"`
	// CompletedAt is when the file's upload completed (Completion): with
	// Name, it identifies the completion.
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// From names the superseded batch the file was taken over from: the
	// newest file of its kind was in that batch, not in this upload.
	From string `json:"from_batch,omitempty"`
	// ArchivePath is where the file's archived copy is in the batch's
	// archive folder when not under Name: a file taken over From a batch
	// is under from/FROM/ and that batch's own path of it, so that two
	// files of one name (two zips named export.zip) never share a copy.
	ArchivePath string `json:"archive_path,omitempty"`
	// ChangeTime is the file's change time (ctime) when it was archived:
	// with its size and modification time, it recognizes those bytes in
	// the folder (a completion whose bytes a batch already archived).
	ChangeTime time.Time `json:"change_time,omitzero"`
	// Inner is the CSV file inside a compressed or encrypted upload (the
	// member of a zip, set before processing, selects it); InnerSize its
	// bytes and Decoded how it was read, for the report.
	Inner     string `json:"inner,omitempty"`
	InnerSize int64  `json:"inner_size,omitempty"`
	Decoded   string `json:"decoded,omitempty"`
}

// BatchCounts are the snapshot totals after the batch (or that the batch
// would have produced).
type BatchCounts struct {
	Users       int `json:"users"`
	Groups      int `json:"groups"`
	Memberships int `json:"memberships"`
}

// BatchChanges counts the changes of a batch, named as in the report.
type BatchChanges struct {
	UsersCreated       int `json:"users_created"`
	UsersUpdated       int `json:"users_updated"`
	UsersDeactivated   int `json:"users_deactivated"`
	UsersDeleted       int `json:"users_deleted"`
	GroupsCreated      int `json:"groups_created"`
	GroupsUpdated      int `json:"groups_updated"`
	GroupsDeleted      int `json:"groups_deleted"`
	MembershipsAdded   int `json:"memberships_added"`
	MembershipsRemoved int `json:"memberships_removed"`
}

// Batches live in batches/ORG/ as two nested buckets: "b" batch id ->
// Batch (JSON) and "r" batch id -> report JSON. Batch ids are ULIDs, so
// key order is creation order.
var (
	batchRecords = []byte("b")
	batchReports = []byte("r")
)

// ErrBatchFinished is returned when applying or approving a batch whose
// outcome is already final.
var ErrBatchFinished = errors.New("batch already finished")

// ErrNotHeld is returned when approving a batch that is not held.
var ErrNotHeld = errors.New("batch is not held")

func batchBuckets(tx *bolt.Tx, org string) (records, reports *bolt.Bucket, err error) {
	root := tx.Bucket(bucketBatches).Bucket([]byte(org))
	if root == nil {
		if !tx.Writable() {
			return nil, nil, nil
		}
		if root, err = tx.Bucket(bucketBatches).CreateBucket([]byte(org)); err != nil {
			return nil, nil, err
		}
	}
	records, reports = root.Bucket(batchRecords), root.Bucket(batchReports)
	if tx.Writable() {
		if records == nil {
			if records, err = root.CreateBucket(batchRecords); err != nil {
				return nil, nil, err
			}
		}
		if reports == nil {
			if reports, err = root.CreateBucket(batchReports); err != nil {
				return nil, nil, err
			}
		}
	}
	return records, reports, nil
}

// CreateBatch records a new batch (normally pending). Every held batch of
// the organization becomes superseded in the same transaction (SPEC §5: a
// newer batch supersedes a held one); their ids are returned.
func (db *DB) CreateBatch(b Batch) (superseded []string, err error) {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = db.now().UTC()
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOrgs).Get([]byte(b.Org)) == nil {
			return ErrNotFound
		}
		recs, _, err := batchBuckets(tx, b.Org)
		if err != nil {
			return err
		}
		if recs.Get([]byte(b.ID)) != nil {
			return ErrExists
		}
		c := recs.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var old Batch
			if err := json.Unmarshal(v, &old); err != nil {
				return fmt.Errorf("decode batch %s: %w", k, err)
			}
			if old.Status == BatchHeld {
				old.Status, old.SupersededBy = BatchSuperseded, b.ID
				now := db.now().UTC()
				old.FinishedAt = &now
				if err := putJSON(recs, k, old); err != nil {
					return err
				}
				superseded = append(superseded, old.ID)
			}
			if BatchFinished(old.Status) && old.Status != BatchSuperseded && old.Status != BatchIgnored {
				break // older batches were settled before this one
			}
		}
		return putJSON(recs, []byte(b.ID), b)
	})
	if err != nil {
		return nil, fmt.Errorf("create batch %s: %w", b.ID, err)
	}
	return superseded, nil
}

// UpdateBatch applies fn to a stored batch record in one transaction.
func (db *DB) UpdateBatch(org, id string, fn func(*Batch) error) (Batch, error) {
	var b Batch
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		recs, _, err := batchBuckets(tx, org)
		if err != nil {
			return err
		}
		if err := getJSON(recs, []byte(id), &b); err != nil {
			return err
		}
		if err := fn(&b); err != nil {
			return err
		}
		b.ID, b.Org = id, org
		return putJSON(recs, []byte(id), b)
	})
	if err != nil {
		return Batch{}, fmt.Errorf("update batch %s: %w", id, err)
	}
	return b, nil
}

// Batch returns one batch record, or ErrNotFound.
func (db *DB) Batch(org, id string) (Batch, error) {
	var b Batch
	err := db.bolt.View(func(tx *bolt.Tx) error {
		recs, _, err := batchBuckets(tx, org)
		if err != nil {
			return err
		}
		return getJSON(recs, []byte(id), &b)
	})
	if err != nil {
		return Batch{}, fmt.Errorf("batch %s: %w", id, err)
	}
	return b, nil
}

// BatchReport returns the stored report JSON of a batch, or ErrNotFound
// when the batch has none yet.
func (db *DB) BatchReport(org, id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.bolt.View(func(tx *bolt.Tx) error {
		_, reps, err := batchBuckets(tx, org)
		if err != nil {
			return err
		}
		if reps == nil || reps.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		out = bytes.Clone(reps.Get([]byte(id)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report of batch %s: %w", id, err)
	}
	return out, nil
}

// ReplaceBatchReport replaces the stored report of a batch that has one:
// a superseded held batch's report is rewritten to say so.
func (db *DB) ReplaceBatchReport(org, id string, report []byte) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		_, reps, err := batchBuckets(tx, org)
		if err != nil {
			return err
		}
		if reps == nil || reps.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		return reps.Put([]byte(id), report)
	})
	if err != nil {
		return fmt.Errorf("replace report of batch %s: %w", id, err)
	}
	return nil
}

// Batches returns up to limit batches of org, newest first, starting with
// the batch after (older than) the id after ("" = the newest).
func (db *DB) Batches(org, after string, limit int) ([]Batch, error) {
	var out []Batch
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOrgs).Get([]byte(org)) == nil {
			return ErrNotFound
		}
		recs, _, err := batchBuckets(tx, org)
		if err != nil || recs == nil {
			return err
		}
		c := recs.Cursor()
		var k, v []byte
		if after == "" {
			k, v = c.Last()
		} else {
			k, v = c.Seek([]byte(after))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && string(k) >= after {
				k, v = c.Prev()
			}
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var b Batch
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("decode batch %s: %w", k, err)
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list batches of %s: %w", org, err)
	}
	return out, nil
}

// UnfinishedBatches returns every pending or processing batch of every
// organization, oldest first per organization: the work a crash or a
// shutdown interrupted.
func (db *DB) UnfinishedBatches() ([]Batch, error) {
	out, err := db.batchesWhere(func(status string) bool {
		return status == BatchPending || status == BatchProcessing
	})
	if err != nil {
		return nil, fmt.Errorf("list unfinished batches: %w", err)
	}
	return out, nil
}

// OpenBatches returns every organization's batches that are not final
// (BatchFinished): pending, processing and held ones, for a status view.
// It reads every batch record, so it costs one pass over the batches.
func (db *DB) OpenBatches() ([]Batch, error) {
	out, err := db.batchesWhere(func(status string) bool { return !BatchFinished(status) })
	if err != nil {
		return nil, fmt.Errorf("list open batches: %w", err)
	}
	return out, nil
}

// batchesWhere returns the batches of every organization whose status
// keep accepts, per organization in id order.
func (db *DB) batchesWhere(keep func(status string) bool) ([]Batch, error) {
	var out []Batch
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBatches).ForEachBucket(func(org []byte) error {
			recs, _, err := batchBuckets(tx, string(org))
			if err != nil || recs == nil {
				return err
			}
			return recs.ForEach(func(k, v []byte) error {
				var b Batch
				if err := json.Unmarshal(v, &b); err != nil {
					return fmt.Errorf("decode batch %s: %w", k, err)
				}
				if keep(b.Status) {
					out = append(out, b)
				}
				return nil
			})
		})
	})
	return out, err
}

// FinishBatch stores a batch's final record and its report without
// touching the snapshot (rejected, held, unchanged, superseded outcomes).
// It returns ErrBatchFinished when the batch is already final.
func (db *DB) FinishBatch(b Batch, report []byte) error {
	return db.ApplyBatch(b, report, nil)
}

// storeBatchTx stores the final record and report of b, refusing a batch
// already final.
func storeBatchTx(tx *bolt.Tx, b Batch, report []byte) error {
	recs, reps, err := batchBuckets(tx, b.Org)
	if err != nil {
		return err
	}
	if err := checkBatchTx(tx, b); err != nil {
		return err
	}
	if err := putJSON(recs, []byte(b.ID), b); err != nil {
		return err
	}
	if report != nil {
		return reps.Put([]byte(b.ID), report)
	}
	return nil
}

// checkBatchTx returns ErrBatchFinished when the stored batch is final,
// ErrNotFound when it does not exist.
func checkBatchTx(tx *bolt.Tx, b Batch) error {
	recs, _, err := batchBuckets(tx, b.Org)
	if err != nil {
		return err
	}
	var stored Batch
	if err := getJSON(recs, []byte(b.ID), &stored); err != nil {
		return err
	}
	if BatchFinished(stored.Status) {
		return ErrBatchFinished
	}
	return nil
}
