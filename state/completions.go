package state

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Completions and the batch operations ingest calls as a batch goes from
// formed to final (SPEC §5: a file's completion is processed once; batches
// of one organization are applied strictly in completion order). Each is
// one transaction over the batch, its completions and the batches it
// supersedes, so a SQL store can implement it the same way.
//
// completions/ORG/ holds "newest" (the newest completion time the
// organization has processed, RFC 3339) and a "files" bucket: file name ->
// Completion (JSON), the newest completion processed under that name. A
// database written before completions existed is seeded at Open from its
// batch records (seedCompletions).

var (
	bucketCompletions = []byte("completions")
	complNewest       = []byte("newest")
	complFiles        = []byte("files")
)

// Completion is a completed upload that the daemon processed: taken into
// a batch, or set aside because a more recently completed file of its kind
// was taken. CompletedAt and Name identify it.
type Completion struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
	// SHA256 is set once the file is archived ("" while it is not, and
	// for a file set aside, which is never read).
	SHA256      string    `json:"sha256,omitempty"`
	CompletedAt time.Time `json:"completed_at"`
	// Batch is the batch that took the file or set it aside.
	Batch   string `json:"batch"`
	Ignored bool   `json:"ignored,omitempty"`
}

// Completions is an organization's record of processed completions.
type Completions struct {
	// Newest is the newest completion time processed (zero: none): a file
	// completed no later than this is never taken again.
	Newest time.Time
	// Files is the newest completion processed per file name.
	Files map[string]Completion
}

// complBuckets returns org's completion bucket and its files bucket,
// creating them in a writable transaction (nil, nil when absent in a
// read-only one).
func complBuckets(tx *bolt.Tx, org string) (root, files *bolt.Bucket, err error) {
	top := tx.Bucket(bucketCompletions)
	root = top.Bucket([]byte(org))
	if root == nil {
		if !tx.Writable() {
			return nil, nil, nil
		}
		if root, err = top.CreateBucket([]byte(org)); err != nil {
			return nil, nil, err
		}
	}
	files = root.Bucket(complFiles)
	if files == nil && tx.Writable() {
		if files, err = root.CreateBucket(complFiles); err != nil {
			return nil, nil, err
		}
	}
	return root, files, nil
}

func readNewest(root *bolt.Bucket) time.Time {
	var t time.Time
	if root != nil {
		t.UnmarshalText(root.Get(complNewest))
	}
	return t
}

// recordCompletionsTx records c in org's completions and moves Newest
// forward to c's completion times.
func recordCompletionsTx(tx *bolt.Tx, org string, cs []Completion) error {
	if len(cs) == 0 {
		return nil
	}
	root, files, err := complBuckets(tx, org)
	if err != nil {
		return err
	}
	newest := readNewest(root)
	for _, c := range cs {
		if old := files.Get([]byte(c.Name)); old != nil {
			var o Completion
			if json.Unmarshal(old, &o) == nil && o.CompletedAt.After(c.CompletedAt) {
				continue // a newer completion of the name is recorded
			}
		}
		if err := putJSON(files, []byte(c.Name), c); err != nil {
			return err
		}
		if c.CompletedAt.After(newest) {
			newest = c.CompletedAt
		}
	}
	raw, err := newest.UTC().MarshalText()
	if err != nil {
		return err
	}
	return root.Put(complNewest, raw)
}

// Completions returns org's record of processed completions.
func (db *DB) Completions(org string) (Completions, error) {
	out := Completions{Files: map[string]Completion{}}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		root, files, err := complBuckets(tx, org)
		if err != nil || root == nil {
			return err
		}
		out.Newest = readNewest(root)
		if files == nil {
			return nil
		}
		return files.ForEach(func(k, v []byte) error {
			var c Completion
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode completion %s: %w", k, err)
			}
			out.Files[string(k)] = c
			return nil
		})
	})
	if err != nil {
		return Completions{}, fmt.Errorf("completions of %s: %w", org, err)
	}
	return out, nil
}

// ForgetCompletions drops the per-name records of names (files no longer
// in the organization's folder: a file that appears under such a name
// later is a new completion). Newest stays.
func (db *DB) ForgetCompletions(org string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		_, files, err := complBuckets(tx, org)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := files.Delete([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget completions of %s: %w", org, err)
	}
	return nil
}

// FormBatch records b, a batch ingest has just formed (normally pending),
// in one transaction with what it implies (SPEC §5):
//
//   - the completions of its files (those not taken over From another
//     batch) and of the files it set aside (b.Ignored) are recorded as
//     processed, and the organization's newest completion moves forward;
//   - every older held or unfinished (pending, processing) batch of the
//     organization, back to the newest one applied, unchanged or
//     rejected, becomes superseded by b, and b.Supersedes names them; the
//     report of each unfinished one is report(it) when report is not nil
//     (a held one keeps its report, which the caller rewrites).
//
// report runs inside the transaction: it must only build bytes. It
// returns the batches superseded, as they were. ErrNotFound when the
// organization does not exist, ErrExists when b.ID does.
func (db *DB) FormBatch(b Batch, report func(superseded Batch) []byte) ([]Batch, error) {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = db.now().UTC()
	}
	var superseded []Batch
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOrgs).Get([]byte(b.Org)) == nil {
			return ErrNotFound
		}
		if err := db.fault("form"); err != nil {
			return err
		}
		recs, reps, err := batchBuckets(tx, b.Org)
		if err != nil {
			return err
		}
		if recs.Get([]byte(b.ID)) != nil {
			return ErrExists
		}
		c := recs.Cursor()
		k, v := c.Seek([]byte(b.ID))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil; k, v = c.Prev() {
			var old Batch
			if err := json.Unmarshal(v, &old); err != nil {
				return fmt.Errorf("decode batch %s: %w", k, err)
			}
			if old.Status == BatchHeld || old.Status == BatchPending || old.Status == BatchProcessing {
				superseded = append(superseded, old)
				if old.Status != BatchHeld && report != nil {
					if rep := report(old); rep != nil {
						if err := reps.Put([]byte(old.ID), rep); err != nil {
							return err
						}
					}
				}
				now := db.now().UTC()
				old.Status, old.SupersededBy, old.FinishedAt, old.RetryAt = BatchSuperseded, b.ID, &now, nil
				if err := putJSON(recs, k, old); err != nil {
					return err
				}
				continue
			}
			if old.Status != BatchSuperseded {
				break // older batches were settled before this one
			}
		}
		b.Supersedes = nil
		for i := len(superseded) - 1; i >= 0; i-- {
			b.Supersedes = append(b.Supersedes, superseded[i].ID)
		}
		if err := putJSON(recs, []byte(b.ID), b); err != nil {
			return err
		}
		var cs []Completion
		for _, f := range b.Files {
			if f.From == "" {
				cs = append(cs, Completion{Name: f.Name, Size: f.Size, ModTime: f.ModTime, SHA256: f.SHA256, CompletedAt: f.CompletedAt, Batch: b.ID})
			}
		}
		for _, f := range b.Ignored {
			cs = append(cs, Completion{Name: f.Name, Size: f.Size, ModTime: f.ModTime, CompletedAt: f.CompletedAt, Batch: b.ID, Ignored: true})
		}
		return recordCompletionsTx(tx, b.Org, cs)
	})
	if err != nil {
		return nil, fmt.Errorf("form batch %s: %w", b.ID, err)
	}
	return superseded, nil
}

// RecordArchived records that a pending batch's files are archived: the
// batch becomes processing with files (sizes and hashes as archived), and
// the completion record of each file, when it is still that file's
// completion, takes its archived size, time and hash. ErrBatchFinished
// when the batch is final.
func (db *DB) RecordArchived(org, id string, files []BatchFile) (Batch, error) {
	var b Batch
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := db.fault("archived"); err != nil {
			return err
		}
		recs, _, err := batchBuckets(tx, org)
		if err != nil {
			return err
		}
		if err := getJSON(recs, []byte(id), &b); err != nil {
			return err
		}
		if BatchFinished(b.Status) {
			return ErrBatchFinished
		}
		b.Files, b.Status = files, BatchProcessing
		if err := putJSON(recs, []byte(id), b); err != nil {
			return err
		}
		_, cf, err := complBuckets(tx, org)
		if err != nil {
			return err
		}
		for _, f := range files {
			var c Completion
			if getJSON(cf, []byte(f.Name), &c) != nil || !c.CompletedAt.Equal(f.CompletedAt) {
				continue
			}
			c.Size, c.ModTime, c.SHA256 = f.Size, f.ModTime, f.SHA256
			if err := putJSON(cf, []byte(f.Name), c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Batch{}, fmt.Errorf("record archived batch %s: %w", id, err)
	}
	return b, nil
}

// RecordFailure stores b's Attempts, LastError and RetryAt on its stored
// record (a run failed for a reason outside its files; it waits for a
// retry) and, when report is not nil, the report that says so. The batch
// keeps its status. ErrBatchFinished when it is final.
func (db *DB) RecordFailure(b Batch, report []byte) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		recs, reps, err := batchBuckets(tx, b.Org)
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
		stored.Attempts, stored.LastError, stored.RetryAt = b.Attempts, b.LastError, b.RetryAt
		if err := putJSON(recs, []byte(b.ID), stored); err != nil {
			return err
		}
		if report != nil {
			return reps.Put([]byte(b.ID), report)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record failure of batch %s: %w", b.ID, err)
	}
	return nil
}

// SupersedeBatch marks an unfinished or held batch superseded by the batch
// by (which need not be newer in the store's order: at start-up, an
// interrupted batch is superseded by a newer one that already reached its
// outcome) and stores its report. ErrBatchFinished when it is final.
func (db *DB) SupersedeBatch(org, id, by string, report []byte) (Batch, error) {
	var b Batch
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		recs, reps, err := batchBuckets(tx, org)
		if err != nil {
			return err
		}
		if err := getJSON(recs, []byte(id), &b); err != nil {
			return err
		}
		if BatchFinished(b.Status) {
			return ErrBatchFinished
		}
		now := db.now().UTC()
		b.Status, b.SupersededBy, b.FinishedAt, b.RetryAt = BatchSuperseded, by, &now, nil
		if err := putJSON(recs, []byte(id), b); err != nil {
			return err
		}
		if report != nil {
			return reps.Put([]byte(id), report)
		}
		return nil
	})
	if err != nil {
		return Batch{}, fmt.Errorf("supersede batch %s: %w", id, err)
	}
	return b, nil
}

// seedCompletions fills the completion record of every organization that
// has batches but no record (a database written before completions
// existed): each name's newest archived file, and the newest batch's
// creation time as the newest completion (a batch is created after its
// files completed). It runs inside Open's transaction.
func seedCompletions(tx *bolt.Tx) error {
	var orgs []string
	err := tx.Bucket(bucketBatches).ForEachBucket(func(org []byte) error {
		if tx.Bucket(bucketCompletions).Bucket(org) == nil {
			orgs = append(orgs, string(org))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, org := range orgs {
		recs, _, err := batchBuckets(tx, org)
		if err != nil {
			return err
		}
		var cs []Completion
		err = recs.ForEach(func(k, v []byte) error {
			var b Batch
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("decode batch %s: %w", k, err)
			}
			cs = append(cs, Completion{Name: "", CompletedAt: b.CreatedAt, Batch: b.ID})
			for _, f := range b.Files {
				if f.SHA256 != "" {
					cs = append(cs, Completion{Name: f.Name, Size: f.Size, ModTime: f.ModTime, SHA256: f.SHA256, CompletedAt: b.CreatedAt, Batch: b.ID})
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		root, files, err := complBuckets(tx, org)
		if err != nil {
			return err
		}
		var newest time.Time
		for _, c := range cs { // oldest batch first: a later one replaces
			if c.CompletedAt.After(newest) {
				newest = c.CompletedAt
			}
			if c.Name != "" {
				if err := putJSON(files, []byte(c.Name), c); err != nil {
					return err
				}
			}
		}
		raw, err := newest.UTC().MarshalText()
		if err != nil {
			return err
		}
		if err := root.Put(complNewest, raw); err != nil {
			return err
		}
	}
	return nil
}
