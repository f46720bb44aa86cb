package state

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Completions and the batch operations ingest calls as a batch goes from
// formed to final (SPEC §5: a file's completion is processed once; batches
// of one organization are applied strictly in completion order). Each is
// one transaction over the batch, its completions and the batches it
// supersedes, so a SQL store can implement it the same way.
//
// completions/ORG/ holds a "newest" bucket: kind -> the newest Completion
// of that kind the organization has processed (JSON), and a "files"
// bucket: file name -> Completion (JSON), the newest completion processed
// under that name. Completions are ordered by CompletedAt, then by Name
// (byte order; Completion.After). A database written before completions
// existed is seeded at Open from its batch records (seedCompletions).

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
	Kind    string    `json:"kind"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
	// SHA256 is set once the file is archived ("" while it is not, and
	// for a file set aside, which is never read).
	SHA256 string `json:"sha256,omitempty"`
	// ChangeTime is the archived file's change time (zero before).
	ChangeTime  time.Time `json:"change_time,omitzero"`
	CompletedAt time.Time `json:"completed_at"`
	// Batch is the batch that took the file or set it aside.
	Batch   string `json:"batch"`
	Ignored bool   `json:"ignored,omitempty"`
}

// After reports whether c comes after o in completion order: a later
// CompletedAt, or the same and a name that sorts after o's.
func (c Completion) After(o Completion) bool {
	if d := c.CompletedAt.Compare(o.CompletedAt); d != 0 {
		return d > 0
	}
	return c.Name > o.Name
}

// Completions is an organization's record of processed completions.
type Completions struct {
	// Newest is the newest completion processed, per kind (absent: none):
	// a file of the kind that does not come after it is never taken.
	Newest map[string]Completion
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

func readNewest(root *bolt.Bucket) map[string]Completion {
	out := map[string]Completion{}
	if b := root.Bucket(complNewest); b != nil {
		b.ForEach(func(k, v []byte) error {
			var c Completion
			if json.Unmarshal(v, &c) == nil {
				out[string(k)] = c
			}
			return nil
		})
	}
	return out
}

// raiseNewest moves org's newest completion of each kind forward to the
// times of cs.
func raiseNewest(root *bolt.Bucket, cs []Completion) error {
	b, err := root.CreateBucketIfNotExists(complNewest)
	if err != nil {
		return err
	}
	newest := readNewest(root)
	for _, c := range cs {
		if c.Kind == "" || !c.After(newest[c.Kind]) {
			continue
		}
		newest[c.Kind] = c
		if err := putJSON(b, []byte(c.Kind), c); err != nil {
			return err
		}
	}
	return nil
}

// recordCompletionsTx records cs in org's completions and moves Newest
// forward to their completion times.
func recordCompletionsTx(tx *bolt.Tx, org string, cs []Completion) error {
	if len(cs) == 0 {
		return nil
	}
	root, files, err := complBuckets(tx, org)
	if err != nil {
		return err
	}
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
	}
	return raiseNewest(root, cs)
}

// Completions returns org's record of processed completions.
func (db *DB) Completions(org string) (Completions, error) {
	out := Completions{Newest: map[string]Completion{}, Files: map[string]Completion{}}
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
			if old.Status != BatchSuperseded && old.Status != BatchIgnored {
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
				cs = append(cs, Completion{Name: f.Name, Kind: f.Kind, Size: f.Size, ModTime: f.ModTime, SHA256: f.SHA256, ChangeTime: f.ChangeTime, CompletedAt: f.CompletedAt, Batch: b.ID})
			}
		}
		for _, f := range b.Ignored {
			cs = append(cs, Completion{Name: f.Name, Kind: f.Kind, Size: f.Size, ModTime: f.ModTime, CompletedAt: f.CompletedAt, Batch: b.ID, Ignored: true})
		}
		return recordCompletionsTx(tx, b.Org, cs)
	})
	if err != nil {
		return nil, fmt.Errorf("form batch %s: %w", b.ID, err)
	}
	return superseded, nil
}

// RecordSetAside records b, a batch that took no file and only sets
// completions aside (b.Ignored: files of a kind whose later completion was
// already processed), as ignored with its report, and records those
// completions as processed, so that no restart offers them again. It
// supersedes nothing. ErrNotFound when the organization does not exist,
// ErrExists when b.ID does.
func (db *DB) RecordSetAside(b Batch, report []byte) error {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = db.now().UTC()
	}
	if b.FinishedAt == nil {
		now := db.now().UTC()
		b.FinishedAt = &now
	}
	b.Status = BatchIgnored
	if b.Files == nil {
		b.Files = []BatchFile{} // the record lists its files, none: not null
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
		if err := reps.Put([]byte(b.ID), report); err != nil {
			return err
		}
		var cs []Completion
		for _, f := range b.Ignored {
			cs = append(cs, Completion{Name: f.Name, Kind: f.Kind, Size: f.Size, ModTime: f.ModTime, CompletedAt: f.CompletedAt, Batch: b.ID, Ignored: true})
		}
		return recordCompletionsTx(tx, b.Org, cs)
	})
	if err != nil {
		return fmt.Errorf("record set-aside batch %s: %w", b.ID, err)
	}
	return nil
}

// RecordArchived records that a pending batch's files are archived: the
// batch becomes processing with files (sizes and hashes as archived), and
// the completion record of each file, when it is still that file's
// completion, takes its archived size, times and hash. A file whose
// ChangeTime is after its CompletedAt was replaced between the batch's
// forming and its archive: the batch holds the newer completion, whose
// time is its ChangeTime. A file whose kind is not its completion's (a
// member of a zip upload, whose completion is the zip's) moves the newest
// completion of its kind forward too. ErrBatchFinished when the batch is
// final.
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
		root, cf, err := complBuckets(tx, org)
		if err != nil {
			return err
		}
		files = slices.Clone(files)
		var moved []Completion
		for i, f := range files {
			var c Completion
			current := getJSON(cf, []byte(f.Name), &c) == nil && c.CompletedAt.Equal(f.CompletedAt)
			if f.ChangeTime.After(f.CompletedAt) {
				files[i].CompletedAt = f.ChangeTime
			}
			if !current {
				continue
			}
			c.Size, c.ModTime, c.SHA256, c.ChangeTime, c.CompletedAt = f.Size, f.ModTime, f.SHA256, f.ChangeTime, files[i].CompletedAt
			if err := putJSON(cf, []byte(f.Name), c); err != nil {
				return err
			}
			moved = append(moved, c)
			if f.Kind != c.Kind {
				// A file found inside the upload (a zip's member): it is
				// the newest file of its own kind too.
				c.Kind = f.Kind
				moved = append(moved, c)
			}
		}
		if err := raiseNewest(root, moved); err != nil {
			return err
		}
		b.Files, b.Status = files, BatchProcessing
		return putJSON(recs, []byte(id), b)
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
// existed): each name's newest archived file, and per kind the creation
// time of the newest batch with a file of the kind as the newest
// completion (a batch is created after its files completed). It runs
// inside Open's transaction.
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
		root, files, err := complBuckets(tx, org)
		if err != nil {
			return err
		}
		var cs []Completion
		err = recs.ForEach(func(k, v []byte) error { // oldest first: a later batch replaces
			var b Batch
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("decode batch %s: %w", k, err)
			}
			for _, f := range b.Files {
				c := Completion{Name: f.Name, Kind: f.Kind, Size: f.Size, ModTime: f.ModTime, SHA256: f.SHA256, CompletedAt: b.CreatedAt, Batch: b.ID}
				cs = append(cs, c)
				if f.SHA256 != "" {
					if err := putJSON(files, []byte(f.Name), c); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := raiseNewest(root, cs); err != nil {
			return err
		}
	}
	return nil
}
