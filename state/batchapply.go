package state

import (
	"cmp"
	"fmt"
	"time"
)

// A batch's apply, as a store's consumer (ingest) sees it: the consumer's
// differ reads a view of the organization's snapshot and decides the
// outcome (Outcome); the store then records the batch and, when the
// outcome applies, writes the changes the differ found, with their events,
// in one transaction (SPEC §6). The interface is the batch, not the row:
// Outcome.Write streams the changes, in SPEC §6 order, into the store's
// Writer, which applies them its own way (bbolt: row by row into its
// B+trees; state/postgres: in bulk, set-based, when the stream ends).

// Writer takes a batch's changes and events, in the order of SPEC §6:
// each change to the snapshot, then the events that name it (a deletion's
// events before it). A batch changes each user, group and membership at
// most once (a put or a delete), as a diff finds it: a store may apply
// the changes of each kind together. *ApplyTx is bbolt's.
type Writer interface {
	PutGroup(id []byte, name string, flags byte, rec []byte) error
	DeleteGroup(id []byte) error
	PutUser(id []byte, active bool, rec []byte) error
	DeleteUser(id []byte) error
	AddMember(uid, gid []byte) error
	RemoveMember(uid, gid []byte) error
	// EmitUser, EmitGroup and EmitMember emit an event whose data is the
	// user, group or both as the snapshot holds them at that point of
	// the stream (ApplyTx.EmitUser).
	EmitUser(typ string, uid, prev []byte) error
	EmitGroup(typ string, gid []byte) error
	EmitMember(typ string, uid, gid []byte) error
	// Checkpoint follows each change and its events: a store may commit
	// work in progress there, invisible to readers (a staged apply).
	Checkpoint() error
}

// Outcome is what a batch's diff decided.
type Outcome struct {
	// Batch is the final record (Status: applied, unchanged, held,
	// rejected), Report its JSON report.
	Batch  Batch
	Report []byte
	// Write streams the changes into the store; nil when Batch.Status is
	// not BatchApplied (the record and report are stored alone).
	// Changes is how many snapshot changes Write makes.
	Write   func(Writer) error
	Changes int
}

// Applied is how an apply went.
type Applied struct {
	// Emitted is the number of events the batch committed.
	Emitted int
	// Staged reports that the store applied the batch in bounded
	// transactions and left work that the caller should let it finish
	// off the critical path (bbolt: MergeOverlay).
	Staged bool
	// Load, Diff, Write and Commit are where the apply spent its time:
	// what the store did before the diff (PostgreSQL: bringing its
	// replica up to date; bbolt: nothing), the diff callback, the changes (bbolt: a direct apply's transaction or a
	// staged one's staging), and what made them visible (bbolt: the flip
	// of a staged apply; 0 otherwise).
	Load, Diff, Write, Commit time.Duration
}

// DefaultStageAbove is the number of changes above which Apply stages a
// batch (ApplyBatchStaged) rather than applying it in one transaction
// (ApplyBatch): a direct apply's memory grows with its dirty pages.
const DefaultStageAbove = 4096

// SetStaging sets when Apply stages a batch: above stageAbove changes (0 =
// DefaultStageAbove, negative = always), in transactions of txChanges
// changes (0 = DefaultStageTxChanges). Call it before the first Apply.
func (db *DB) SetStaging(stageAbove, txChanges int) {
	db.stageAbove, db.stageTx = stageAbove, txChanges // read by Apply
}

// Apply runs diff in a read transaction of org's snapshot, then stores the
// outcome: ApplyBatch, or ApplyBatchStaged when it makes more than the
// staging threshold's changes (SetStaging; the caller then calls
// MergeOverlay when it is done with the batch, Applied.Staged). Both run
// under the organization's loop, so the snapshot does not change between
// them. ErrBatchFinished when the stored batch is already final.
func (db *DB) Apply(org string, diff func(*SnapshotTx) (Outcome, error)) (Applied, error) {
	var got Applied
	var out Outcome
	start := time.Now()
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		var err error
		out, err = diff(s)
		return err
	})
	got.Diff = time.Since(start)
	if err != nil {
		return got, err
	}
	if out.Batch.Org != org {
		return got, fmt.Errorf("apply batch %s: organization %q, not %q", out.Batch.ID, out.Batch.Org, org)
	}
	var fn func(*ApplyTx) error
	var applied *ApplyTx
	if out.Write != nil {
		fn = func(a *ApplyTx) error {
			applied = a
			if err := out.Write(a); err != nil {
				return err
			}
			got.Emitted = a.Emitted()
			return nil
		}
	}
	start = time.Now()
	if fn != nil && (db.stageAbove < 0 || out.Changes > cmp.Or(db.stageAbove, DefaultStageAbove)) {
		err = db.ApplyBatchStaged(out.Batch, out.Report, db.stageTx, fn)
	} else {
		err = db.ApplyBatch(out.Batch, out.Report, fn)
	}
	if err != nil {
		return got, err
	}
	if applied != nil {
		t := applied.Timings()
		got.Write, got.Commit, got.Staged = t.Stage, t.Flip, applied.Staged()
	} else {
		got.Write = time.Since(start)
	}
	return got, nil
}
