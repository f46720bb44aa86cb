package ingest

import (
	"encoding/json"

	"github.com/rosterd/rosterd/state"
)

// Store is what the pipeline needs of the state store: *state.DB (bbolt)
// and *postgres.DB satisfy it. Every method is one transaction of the
// store; the batch and completion operations are SPEC §5's bookkeeping,
// Apply a batch's diff and apply (state.Outcome, state.Writer).
type Store interface {
	Org(name string) (state.Org, error)
	Orgs(after string, limit int) ([]state.Org, error)

	Batch(org, id string) (state.Batch, error)
	Batches(org, after string, limit int) ([]state.Batch, error)
	BatchReport(org, id string) (json.RawMessage, error)
	UnfinishedBatches() ([]state.Batch, error)
	ReplaceBatchReport(org, id string, report []byte) error
	FinishBatch(b state.Batch, report []byte) error
	RecordIgnored(b state.Batch, report []byte) error

	Completions(org string) (state.Completions, error)
	ForgetCompletions(org string, names []string) error
	FormBatch(b state.Batch, report func(superseded state.Batch) []byte) ([]state.Batch, error)
	RecordArchived(org, id string, files []state.BatchFile) (state.Batch, error)
	RecordSetAside(b state.Batch, report []byte) error
	RecordFailure(b state.Batch, report []byte) error
	SupersedeBatch(org, id, by string, report []byte) (state.Batch, error)

	// ViewSnapshot runs fn in a consistent read of org's snapshot: the
	// differ's reads (a dry run, Plan).
	ViewSnapshot(org string, fn func(*state.SnapshotTx) error) error
	// Apply runs diff on a consistent read of org's snapshot and stores
	// the outcome it returns: the final batch record and report, and the
	// changes with their events when it applies, all visible at once.
	// state.ErrBatchFinished when the stored batch is already final.
	Apply(org string, diff func(*state.SnapshotTx) (state.Outcome, error)) (state.Applied, error)
}

// What some stores need besides Store: bbolt stages large batches, merges
// their overlay after the batch, and cleans up after a crash before the
// first batch. The pipeline calls them when its store has them.
type (
	stager interface {
		SetStaging(stageAbove, txChanges int)
	}
	overlayMerger interface {
		MergeOverlay(org string) error
	}
	recoverer interface {
		Recover() error
	}
)

var _ Store = (*state.DB)(nil)
