package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// A batch goes pending -> processing -> final:
//
//  1. newBatch forms it from settled files (order.go: the most recently
//     completed file of each kind, completions not processed before) and
//     records it as pending with its completions, superseding the
//     organization's held batch or the one waiting for a retry,
//  2. archiveBatch copies the files into archive/ORG/BATCH/ (hashing as
//     it copies) and records it as processing with the files' sizes and
//     hashes,
//  3. processArchived diffs the archived copies, decides the outcome and
//     applies it in one transaction, then writes the report files.
//
// A failure outside the files in 2 or 3 (a full disk, an I/O error, a
// panic) leaves the batch pending or processing and waiting for a retry
// (order.go); a newer batch supersedes it. A crash before 3 commits leaves
// it pending or processing; Run redoes it from step 2 (pending) or 3
// (processing, from the archive, so a replaced upload does not change what
// the batch holds). Step 3's transaction refuses a batch already final, so
// nothing applies twice.

// newBatch turns settled files into a batch and runs it.
func (p *Pipeline) newBatch(ctx context.Context, l *orgLoop, files []pendingFile) {
	set, err := p.settingsFor(l.org)
	if err != nil {
		p.log.Warn("files of an unknown organization ignored", "org", l.org, "err", err)
		return
	}
	p.noteIgnored(l.org, set, files)
	var older []state.Batch
	if l.waiting != nil {
		older = []state.Batch{*l.waiting}
	}
	p.form(ctx, l, set, files, older)
}

func (p *Pipeline) archiveDir(org, batch string) string {
	return filepath.Join(p.cfg.ArchiveRoot, org, batch)
}

// archiveBatch is step 2. A file that cannot be read (gone, not a regular
// file, refused) is left out of the batch with a note; a failure outside
// the files (outsideFiles) fails the batch, to be retried.
func (p *Pipeline) archiveBatch(ctx context.Context, l *orgLoop, b state.Batch) (state.Batch, []string, error) {
	dir := p.archiveDir(l.org, b.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return b, nil, fmt.Errorf("archive batch: %w", err)
	}
	var notes []string
	var kept []state.BatchFile
	start := time.Now()
	for _, f := range b.Files {
		if err := ctx.Err(); err != nil {
			return b, nil, err // abandoned while pending: redone at the next start
		}
		var af state.BatchFile
		var err error
		if f.From != "" && f.SHA256 != "" {
			af, err = p.linkArchived(l.org, f, dir)
		} else {
			af, err = p.archiveFile(l.org, f, dir)
		}
		if err != nil {
			if outsideFiles(err) {
				os.Remove(archivedFile(dir, f)) // a partial copy only takes space
				return b, nil, err
			}
			p.log.Warn("file not archived", "org", l.org, "batch", b.ID, "file", f.Name, "err", err)
			notes = append(notes, fmt.Sprintf("%s could not be read (%v) and is not part of this batch.", f.Name, errors.Unwrap(err)))
			continue
		}
		kept = append(kept, af)
	}
	if err := syncDir(dir); err != nil {
		return b, nil, fmt.Errorf("archive batch: %w", err)
	}
	kept, notes = p.expandZips(l.org, dir, kept, notes)
	p.log.Debug("batch archived", "org", l.org, "batch", b.ID, "archive", time.Since(start))
	sb, err := p.db.RecordArchived(l.org, b.ID, kept)
	if err != nil {
		return b, nil, err
	}
	b.Files, b.Status = sb.Files, state.BatchProcessing
	return b, notes, nil
}

// archiveFile copies one file of the organization's folder into dir,
// hashing it. It refuses anything but a regular file with one link in a
// real organization folder: the daemon never follows a symlink found in a
// folder, nor ingests a hard link (SPEC §3).
func (p *Pipeline) archiveFile(org string, f state.BatchFile, dir string) (state.BatchFile, error) {
	od, err := p.orgDir(org)
	if err != nil {
		return f, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	root, err := os.OpenRoot(od)
	if err != nil {
		return f, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	defer root.Close()
	fi, err := root.Lstat(f.Name)
	if err != nil {
		return f, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	if !fi.Mode().IsRegular() {
		return f, fmt.Errorf("archive %s: %w", f.Name, errors.New("not a regular file"))
	}
	in, err := root.Open(f.Name)
	if err != nil {
		return f, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	defer in.Close()
	st, err := in.Stat()
	switch {
	case err != nil:
		return f, fmt.Errorf("archive %s: %w", f.Name, err)
	case !os.SameFile(fi, st):
		return f, fmt.Errorf("archive %s: %w", f.Name, errors.New("the file was replaced while it was opened"))
	case linkCount(st) > 1:
		return f, fmt.Errorf("archive %s: %w", f.Name, errHardLink)
	}
	// The copy is written aside and renamed into place: on a folder shared
	// by a fleet, an instance that stalled (not died) while archiving a
	// batch another has taken over must not tear the copy the other reads.
	out, err := os.CreateTemp(dir, ".archive-*")
	if err != nil {
		return f, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	defer os.Remove(out.Name()) // gone after the rename; a leftover on failure
	h := sha256.New()
	// The copy keeps the upload's holes (see copySparse), in 1 MB reads
	// and writes: io.Copy's 32 KB would be thousands of system calls for
	// a large export.
	n := st.Size()
	err = copySparse(out, in, n, h, make([]byte, 1<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(out.Name(), filepath.Join(dir, f.Name))
	}
	p.space.archiveChanged(org, filepath.Base(dir))
	if err != nil {
		return f, fmt.Errorf("archive %s: %w", f.Name, err)
	}
	f.Size, f.SHA256, f.ModTime, f.ChangeTime = n, hex.EncodeToString(h.Sum(nil)), fi.ModTime(), changeTime(st)
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader fails reads once ctx is done, so that a shutdown abandons a
// long diff.
type ctxReader struct {
	ctx context.Context
	r   io.ReadCloser
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (c ctxReader) Close() error { return c.r.Close() }

// ctxFile is a ctxReader of an archived file that passes Stat and Seek
// through: the checker sizes its tables from the file's size, and seeks
// back to quote the earlier spelling of a duplicate email.
type ctxFile struct {
	ctxReader
	f *os.File
}

func (c ctxFile) Stat() (fs.FileInfo, error) { return c.f.Stat() }

func (c ctxFile) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }

// policyOverride changes the policy of one run (an approval).
type policyOverride struct{ approved bool }

// outcome is what processing decided.
type outcome struct {
	status string
	reason string
	res    *diffResult
	// removed lists who a held batch would delete or deactivate
	// (removedUsers); nil otherwise. close releases it.
	removed *spill
}

func (o *outcome) close() {
	if o.res != nil {
		o.res.close()
	}
	o.removed.close()
}

// decide runs the diff on the snapshot and decides the outcome. It does
// not change anything. The caller closes the outcome.
func (p *Pipeline) decide(ctx context.Context, org string, pol policy, inputs []input) (outcome, error) {
	var o outcome
	err := p.db.ViewSnapshot(org, func(s *state.SnapshotTx) error {
		var err error
		o, err = p.decideIn(ctx, s, pol, inputs)
		return err
	})
	return o, err
}

// decideIn is decide inside a read of the snapshot.
func (p *Pipeline) decideIn(ctx context.Context, s *state.SnapshotTx, pol policy, inputs []input) (outcome, error) {
	var o outcome
	r, err := diff(s, pol, p.currentLimits(), inputs, os.TempDir())
	if err != nil {
		return o, err
	}
	o.res = r
	if r.errors() == 0 && r.guardReason(pol) != "" {
		if o.removed, err = removedUsers(s, r); err != nil {
			r.close()
			return outcome{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		o.close()
		return outcome{}, err
	}
	switch {
	case r.errors() > 0:
		o.status = state.BatchRejected
		o.reason = fmt.Sprintf("the files have %d errors; nothing was changed", r.errors())
	case r.guardReason(pol) != "":
		o.status, o.reason = state.BatchHeld, r.guardReason(pol)
	case r.empty():
		o.status = state.BatchUnchanged
	default:
		o.status = state.BatchApplied
	}
	return o, nil
}

// processArchived is step 3 for a batch in processing (or an approved
// held batch): diff the archived files, decide, apply or record, report.
func (p *Pipeline) processArchived(ctx context.Context, l *orgLoop, b state.Batch, ov policyOverride, notes []string) (state.Batch, error) {
	start := time.Now()
	set, err := p.settingsFor(l.org)
	if err != nil {
		return b, err
	}
	pol := set.policy()
	if ov.approved {
		pol.guard = false
	}
	fp := effective(pol, p.currentLimits())
	if !ov.approved {
		if done, ok, err := p.identical(l, b, fp, start, notes); ok {
			return done, err
		}
	}
	b.Effective = fp
	dir := p.archiveDir(l.org, b.ID)
	inputs := make([]input, 0, len(b.Files))
	for i, f := range b.Files {
		// Compressed and encrypted uploads are decoded (unwrap.go).
		open := openDecoded(ctx, archivedFile(dir, f), &b.Files[i], p.decodeOpts(set))
		inputs = append(inputs, input{kind: schema.Kind(f.Kind), name: csvName(f), open: open})
	}
	var o outcome
	defer o.close()
	var rep *report.Report
	// Holes are looked for before the store's read of the snapshot: file
	// I/O that needs no snapshot, kept out of its read transaction.
	tSparse := time.Now()
	sparse := sparseIssues(dir, b.Files)
	sparseTook := time.Since(tSparse)
	// Inside the store's read of the snapshot: diff, decide, report. The
	// store then records the outcome and applies its changes (Write).
	decide := func(s *state.SnapshotTx) (state.Outcome, error) {
		tDiff := time.Now().Add(-sparseTook)
		if iss := sparse; len(iss) > 0 {
			// Holes read as zero bytes: not worth reading, and zero bytes in
			// a value are no name. Rejected as it is.
			o = outcome{status: state.BatchRejected, res: &diffResult{
				org: l.org, checker: schema.NewChecker(p.currentLimits(), nil), results: map[schema.Kind]schema.FileResult{}, issues: iss,
			}}
			o.reason = fmt.Sprintf("the files have %d errors; nothing was changed", len(iss))
		} else {
			var err error
			if o, err = p.decideIn(ctx, s, pol, inputs); err != nil {
				return state.Outcome{}, fmt.Errorf("process batch %s: %w", b.ID, err)
			}
		}
		r := o.res
		r.timed("diff", tDiff)
		tReport := time.Now()

		// Rows of each file, for the record and the report.
		for i, f := range b.Files {
			b.Files[i].Rows = r.results[schema.Kind(f.Kind)].Rows
		}
		b.Status, b.Reason = o.status, o.reason
		b.Approved = b.Approved || ov.approved
		b.Changes, b.Counts = r.changes, r.counts
		b.Errors, b.Warnings = r.errors(), r.checker.Warnings()
		if o.status != state.BatchApplied && o.status != state.BatchUnchanged {
			b.Changes = state.BatchChanges{}
		}
		now := time.Now().UTC()
		b.FinishedAt = &now
		if o.status == state.BatchHeld {
			b.FinishedAt = nil
		}
		more, operator := outcomeNotes(o, r, b)
		var err error
		rep, err = buildReport(b, r, o, append(notes, more...))
		if err != nil {
			return state.Outcome{}, fmt.Errorf("build report: %w", err)
		}
		rep.OperatorNotes = operator
		var js bytes.Buffer
		if err := rep.WriteJSON(&js); err != nil {
			return state.Outcome{}, fmt.Errorf("encode report: %w", err)
		}
		if o.removed != nil {
			// The stored report lists the first report.MaxRemovedListed; the
			// report files, all of them.
			rep.AllRemoved = eachRemoved(o.removed)
		}
		r.timed("report", tReport)
		// The checker's sets of ids and memberships (tens of MB at a million
		// users) are not needed any more: let the apply run without them.
		r.checker = nil
		if rows := r.results[schema.Users].Rows + r.results[schema.UserGroups].Rows; rows >= freeAfterRows {
			// The diff's garbage would otherwise stay until the heap reaches
			// twice what the diff held, and the apply's pages would pile on
			// top of it; collect it now and give it back.
			debug.FreeOSMemory()
		}
		out := state.Outcome{Batch: b, Report: js.Bytes()}
		if o.status == state.BatchApplied {
			out.Write, out.Changes = r.apply, r.changeCount()
		}
		return out, nil
	}
	applied, err := p.db.Apply(l.org, decide)
	if err != nil {
		return b, err
	}
	r := o.res
	if applied.Load > 0 {
		r.steps = append([]step{{"load", applied.Load}}, r.steps...)
	}
	if o.status == state.BatchApplied {
		r.steps = append(r.steps, step{"stage", applied.Write}, step{"flip", applied.Commit})
	} else {
		r.steps = append(r.steps, step{"record", applied.Write})
	}
	emitted := applied.Emitted
	p.metrics.observe(b, r, time.Since(start))
	p.log.Info("batch finished", "org", l.org, "batch", b.ID, "status", b.Status, "events", emitted,
		"errors", b.Errors, "warnings", b.Warnings, "duration", time.Since(start).Round(time.Millisecond))
	if emitted > 0 && p.cfg.OnApplied != nil {
		p.cfg.OnApplied(l.org)
	}
	tWrite := time.Now()
	if err := p.writeReport(l.org, b, rep); err != nil {
		p.log.Error("write report", "org", l.org, "batch", b.ID, "err", err)
	}
	p.pruneArchive(l.org, b.ID)
	r.timed("write_report", tWrite)
	if m, ok := p.db.(overlayMerger); ok && applied.Staged {
		// The batch is applied and reported; its overlay is copied into
		// the base now, before the organization's next batch. Readers see
		// the same snapshot throughout; a merge cut short is finished
		// before the next apply (state.DB.MergeOverlay).
		tMerge := time.Now()
		if err := m.MergeOverlay(l.org); err != nil {
			p.log.Warn("merge snapshot overlay; it is retried before the next batch", "org", l.org, "batch", b.ID, "err", err)
		}
		r.timed("merge", tMerge)
	}
	if p.log.Enabled(ctx, slog.LevelDebug) {
		attrs := []any{"org", l.org, "batch", b.ID}
		for _, s := range r.steps {
			attrs = append(attrs, s.name, s.d)
		}
		p.log.Debug("batch timings", attrs...)
	}
	return b, nil
}

// freeAfterRows is the number of rows from which a batch returns the
// diff's memory to the system before it applies (a collection costs a few
// ms with the diff's sets gone).
const freeAfterRows = 100000

// step is the time one part of a batch took, for the debug log
// ("batch timings") that benchmarks read.
type step struct {
	name string
	d    time.Duration
}

// timed records the time since start as the step name.
func (r *diffResult) timed(name string, start time.Time) {
	r.steps = append(r.steps, step{name, time.Since(start)})
}

// The start of a held batch's note on what to do, which markSuperseded
// takes out.
const releaseNote = "What you can do:"

// outcomeNotes returns the notes of an outcome: for everyone who reads
// the report, and for the operator only. SPEC §5: the organization's
// admin cannot run the operator's commands, so their report says what
// they can do, and names the batch to the operator.
func outcomeNotes(o outcome, r *diffResult, b state.Batch) (notes, operator []string) {
	switch o.status {
	case state.BatchHeld:
		notes = append(notes,
			"This batch is HELD and was not applied: "+o.reason+". The users it would delete or deactivate are listed below.",
			fmt.Sprintf(releaseNote+" check that the export is complete and correct, then upload the files again (a newer upload replaces this batch); or, if these people are really leaving, ask the operator of this service to approve batch %s.", b.ID))
		operator = append(operator,
			fmt.Sprintf("Release it with `rosterd batch approve %s %s` or POST /v1/organizations/%s/batches/%s/approve; a newer upload supersedes it.", b.Org, b.ID, b.Org, b.ID))
	case state.BatchRejected:
		notes = append(notes, "This batch was REJECTED: nothing was changed. Fix the errors below and upload again.")
	case state.BatchUnchanged:
		notes = append(notes, "The files hold no changes: nothing to apply.")
	}
	if b.Approved && o.status == state.BatchApplied {
		notes = append(notes, "This held batch was approved by an operator and applied.")
	}
	if r.skippedMembers > 0 {
		notes = append(notes, fmt.Sprintf("%d memberships of inactive users were left out: the organization deletes inactive users.", r.skippedMembers))
	}
	return notes, operator
}

// buildReport makes the SPEC §5 report of a batch.
func buildReport(b state.Batch, r *diffResult, o outcome, notes []string) (*report.Report, error) {
	rep := &report.Report{
		Version: report.Version, BatchID: b.ID, OrganizationID: b.Org,
		Status: b.Status, CreatedAt: b.CreatedAt, Notes: notes,
	}
	rep.FromChecker(r.checker)
	for _, f := range b.Files {
		rf := reportFile(f)
		rf.ErrorRows = r.results[schema.Kind(f.Kind)].ErrorRows
		rep.Files = append(rep.Files, rf)
	}
	if len(r.issues) > 0 {
		rep.Issues = append(slices.Clone(r.issues), rep.Issues...)
		rep.IssuesTotal += len(r.issues)
		if rep.IssueCounts == nil {
			rep.IssueCounts = map[string]int{}
		}
		for _, is := range r.issues {
			rep.IssueCounts[is.Code]++
		}
	}
	if o.status != state.BatchRejected {
		rep.Counts = report.Counts(r.counts)
	}
	if o.status == state.BatchApplied || o.status == state.BatchUnchanged || o.status == state.BatchHeld {
		rep.Changes = report.Changes(r.changes)
	}
	if o.removed != nil {
		if err := listRemoved(rep, o.removed); err != nil {
			return nil, err
		}
	}
	return rep, nil
}
