package ingest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// The order of batches (SPEC §5): the directory never goes back in time.
//
// A completion is a file's upload finishing. Its time is the file's
// change time (ctime) as the batch is formed, whether sftpd signalled it
// (Notify, after its rename) or the watcher or the scan found it: every
// write and rename moves the change time, no client can set it (unlike
// the modification time: put -p, rsync -t), and it comes from one clock,
// the file system's. (The time of Notify would come from the process's
// clock, which the kernel's change times trail by up to a tick: a file
// placed just after an SFTP upload could then seem older than it and be
// dropped.) A later mode or time change only moves a completion later.
//
// A batch takes completions the organization has not processed: the
// state records, per organization, the newest completion processed under
// each file name (size, modification and change time, SHA-256) and the
// newest completion time of each kind (state.Completions). A file is not
// taken when its name's record shows the same bytes (a file the watcher
// or the scan found: same size and modification time, or same size and
// content; an SFTP upload: same size, modification and change time, that
// is, a batch archived it already), nor when it completed before the
// newest processed completion of its kind. Kinds are ordered apart: each
// replaces its own part of the snapshot, so a late groups.csv is not
// dropped for a newer users.csv.
//
// Of several candidates of one kind, the most recently completed wins;
// on equal times (the change time's tick), the name that sorts last (byte
// order: dated names sort by date). The others are set aside: recorded
// as processed, and named in the batch's report.
//
// Batches of one organization run one at a time, in the order they were
// formed. A run that fails for a reason outside the files (outsideFiles,
// a Go error from the state, a panic) leaves the batch pending or
// processing and waiting: it runs again after Config.RetryMin, doubling
// up to Config.RetryMax, and the organization's later uploads do not run
// before it. When they settle they form a new batch that supersedes the
// waiting one and takes over, for each kind the new upload lacks, the
// waiting batch's file (its archived copy, hard-linked): the new batch
// holds the newest file of each kind, and the waiting batch, marked
// superseded in the same transaction, can never be applied after it.
//
// At start-up, an unfinished batch older than the organization's newest
// batch with an outcome (applied, unchanged, rejected, held) is
// superseded by that batch without running; of the others, one is redone,
// and several are superseded by a new batch formed from their files.

// candidate is a completed file that may go into a batch.
type candidate struct {
	name      string
	kind      schema.Kind
	size      int64
	mtime     time.Time
	completed time.Time
}

// newer orders candidates: the later completion, then the name that sorts
// last (the order of state.Completion.After).
func newer(a, b candidate) bool {
	if c := a.completed.Compare(b.completed); c != 0 {
		return c > 0
	}
	return a.name > b.name
}

// choose picks the most recently completed candidate of each kind; the
// others are ignored, sorted by name.
func choose(cands []candidate) (taken map[schema.Kind]candidate, ignored []candidate) {
	taken = map[schema.Kind]candidate{}
	for _, c := range cands {
		prev, ok := taken[c.kind]
		switch {
		case !ok:
			taken[c.kind] = c
		case newer(c, prev):
			taken[c.kind] = c
			ignored = append(ignored, prev)
		default:
			ignored = append(ignored, c)
		}
	}
	slices.SortFunc(ignored, func(a, b candidate) int { return cmp.Compare(a.name, b.name) })
	return taken, ignored
}

// candidates returns the settled files that are completions org has not
// processed (see above), with their kinds and completion times; stale are
// those that come before the last processed completion of their kind.
func (p *Pipeline) candidates(l *orgLoop, set settings, files []pendingFile, done state.Completions) (out, stale []candidate) {
	for _, f := range files {
		k, ok := set.kindOf(f.name)
		if !ok {
			continue
		}
		c := candidate{name: f.name, kind: k, size: f.size, mtime: f.mtime, completed: f.ctime}
		rec, seen := done.Files[f.name]
		if f.trusted {
			fi, err := l.stat(f.name)
			if err != nil || !fi.Mode().IsRegular() {
				continue // gone since it completed
			}
			c.size, c.mtime, c.completed = fi.Size(), fi.ModTime(), changeTime(fi)
			if seen && !rec.ChangeTime.IsZero() && rec.Size == c.size && rec.ModTime.Equal(c.mtime) && rec.ChangeTime.Equal(c.completed) {
				// The batch of an earlier completion of the name, which
				// archived it after this upload replaced it, took these
				// very bytes.
				continue
			}
		} else if seen && p.sameFile(l.org, rec, c) {
			continue // processed: the scan or the watcher saw it again
		}
		last, ok := done.Newest[string(k)]
		if ok && last.Name == c.name && last.CompletedAt.Equal(c.completed) {
			continue // the newest processed completion itself
		}
		if ok && !newer(c, candidate{name: last.Name, completed: last.CompletedAt}) {
			p.log.Info("file not taken: it completed before the last processed file of its kind",
				"org", l.org, "file", f.name, "completed", c.completed.UTC(), "last_processed", last.Name, "last_completed", last.CompletedAt.UTC())
			stale = append(stale, c)
			continue
		}
		out = append(out, c)
	}
	return out, stale
}

// sameFile reports whether c is the completion rec records: same size and
// modification time, or same size and content. Only a file whose time
// changed since is read (to hash it), and only when it was hashed then.
func (p *Pipeline) sameFile(org string, rec state.Completion, c candidate) bool {
	if rec.Size != c.size {
		return false
	}
	if rec.ModTime.Equal(c.mtime) {
		return true
	}
	if rec.SHA256 == "" {
		return false
	}
	fh, err := os.Open(filepath.Join(p.cfg.OrgsRoot, org, c.name))
	if err != nil {
		return false
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == rec.SHA256
}

// form forms a batch from settled files and the unfinished batches older
// supersedes (oldest first), records it and runs it. Nothing to take and
// nothing to supersede forms nothing.
func (p *Pipeline) form(ctx context.Context, l *orgLoop, set settings, files []pendingFile, older []state.Batch) {
	done, err := p.db.Completions(l.org)
	if err != nil {
		p.formFailed(l, files, err)
		return
	}
	cands, stale := p.candidates(l, set, files, done)
	taken, ignored := choose(cands)
	ignored = append(ignored, stale...)
	slices.SortFunc(ignored, func(a, b candidate) int { return cmp.Compare(a.name, b.name) })
	b := state.Batch{ID: ulid.Make().String(), Org: l.org, Status: state.BatchPending, CreatedAt: time.Now().UTC()}
	for _, k := range []schema.Kind{schema.Users, schema.UserGroups, schema.Groups, kindZip} {
		c, fresh := taken[k]
		if fresh {
			b.Files = append(b.Files, state.BatchFile{Name: c.name, Kind: string(k), Size: c.size, ModTime: c.mtime, CompletedAt: c.completed})
			if k != kindZip {
				continue
			}
		}
		// Taken over: the newest unfinished batch's file of the kind. A
		// zip not read yet (its batch failed while pending) is taken over
		// beside a new zip of another name: what each holds is known once
		// they are read, and expandZips keeps the newer file of each kind.
		for i := len(older) - 1; i >= 0; i-- {
			if j := slices.IndexFunc(older[i].Files, func(f state.BatchFile) bool {
				return f.Kind == string(k) && !(fresh && f.Name == c.name)
			}); j >= 0 {
				f := older[i].Files[j]
				if f.SHA256 != "" {
					// Archived there: linked from its copy (linkArchived).
					f.ArchivePath = path.Join("from", older[i].ID, cmp.Or(f.ArchivePath, f.Name))
				}
				f.From, f.Rows = older[i].ID, 0
				b.Files = append(b.Files, f)
				break
			}
		}
	}
	for _, c := range ignored {
		b.Ignored = append(b.Ignored, state.BatchFile{Name: c.name, Kind: string(c.kind), Size: c.size, ModTime: c.mtime, CompletedAt: c.completed})
	}
	if len(b.Files) == 0 || (len(taken) == 0 && files != nil) {
		// Nothing new: a waiting batch goes on waiting; files set aside
		// get a batch of their own, so that their report says why.
		if len(b.Ignored) > 0 {
			b.Files = nil
			p.recordSetAside(l, b)
		}
		return
	}
	reports := map[string]*report.Report{}
	var sup []state.Batch
	err = p.protect(l.org, b.ID, func() (err error) {
		sup, err = p.db.FormBatch(b, func(s state.Batch) []byte {
			if i := slices.IndexFunc(older, func(o state.Batch) bool { return o.ID == s.ID }); i >= 0 {
				s = older[i] // what the loop knows of its attempts
			}
			rep := supersededReport(s, b)
			var js bytes.Buffer
			if rep.WriteJSON(&js) != nil {
				return nil
			}
			reports[s.ID] = rep
			return js.Bytes()
		})
		return err
	})
	if err != nil {
		p.formFailed(l, files, err)
		return
	}
	l.formFails = 0
	p.setWaiting(l, nil)
	for i := len(sup) - 1; i >= 0; i-- {
		s := sup[i]
		b.Supersedes = append(b.Supersedes, s.ID)
		p.metrics.batches.WithLabelValues(state.BatchSuperseded).Inc()
		p.log.Info("batch superseded", "org", l.org, "batch", s.ID, "status", s.Status, "by", b.ID)
		if s.Status == state.BatchHeld {
			if err := p.markSuperseded(l.org, s.ID, b.ID); err != nil {
				p.log.Warn("rewrite the superseded batch's report", "org", l.org, "batch", s.ID, "err", err)
			}
			continue
		}
		if rep := reports[s.ID]; rep != nil {
			s.Status = state.BatchSuperseded
			if err := p.writeReport(l.org, s, rep); err != nil {
				p.log.Warn("write report", "org", l.org, "batch", s.ID, "err", err)
			}
		}
	}
	p.log.Info("batch started", "org", l.org, "batch", b.ID, "files", len(b.Files))
	p.runBatch(ctx, l, b, nil)
}

// recordSetAside records b, which only sets files aside, as ignored, and
// writes its report. The files' completions are processed either way.
func (p *Pipeline) recordSetAside(l *orgLoop, b state.Batch) {
	rep := batchReport(b, state.BatchIgnored, orderNotes(b))
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		return
	}
	err := p.protect(l.org, b.ID, func() error { return p.db.RecordSetAside(b, js.Bytes()) })
	if err != nil {
		p.log.Warn("record ignored files", "org", l.org, "batch", b.ID, "err", err)
		return
	}
	p.metrics.batches.WithLabelValues(state.BatchIgnored).Inc()
	p.log.Info("files ignored: a later file of their kind was processed", "org", l.org, "batch", b.ID, "files", len(b.Ignored))
	b.Status = state.BatchIgnored
	if err := p.writeReport(l.org, b, rep); err != nil {
		p.log.Warn("write report", "org", l.org, "batch", b.ID, "err", err)
	}
}

// formFailed puts files back to form a batch later: the state could not
// record one.
func (p *Pipeline) formFailed(l *orgLoop, files []pendingFile, err error) {
	l.formFails++
	d := p.backoff(l.formFails)
	p.log.Error("record batch; forming it again later", "org", l.org, "retry_in", d, "err", err)
	p.metrics.retries.Inc()
	l.requeue(files, time.Now().Add(d))
}

// backoff is the wait after the nth failure in a row: Config.RetryMin,
// doubling up to Config.RetryMax.
func (p *Pipeline) backoff(n int) time.Duration {
	d := p.cfg.RetryMin
	for i := 1; i < n && d < p.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, p.cfg.RetryMax)
}

// runBatch runs a recorded batch (pending or processing) to its outcome.
// A failure outside its files leaves it waiting for a retry; a shutdown
// leaves it to be redone at the next start.
func (p *Pipeline) runBatch(ctx context.Context, l *orgLoop, b state.Batch, notes []string) {
	err := p.tryBatch(ctx, l, &b, notes)
	switch {
	case err == nil || errors.Is(err, state.ErrBatchFinished):
		p.setWaiting(l, nil)
	case ctx.Err() != nil:
		p.log.Info("batch abandoned (shutdown, or the organization's batch lease lost); the next holder of the lease redoes it", "org", l.org, "batch", b.ID)
		p.setWaiting(l, nil)
	case errors.Is(err, state.ErrLeaseLost):
		// The store refused a write: another instance holds the lease.
		p.log.Warn("batch abandoned: the organization's batch lease was taken over; the new holder redoes it", "org", l.org, "batch", b.ID, "err", err)
		p.setWaiting(l, nil)
		l.leaseLost()
	default:
		p.failed(l, b, err)
	}
}

// tryBatch is one run of b: archive it if pending, then process it. A
// panic is recovered as the run's error.
func (p *Pipeline) tryBatch(ctx context.Context, l *orgLoop, b *state.Batch, notes []string) error {
	return p.protect(l.org, b.ID, func() (err error) {
		notes = append(orderNotes(*b), notes...)
		if b.Status == state.BatchPending {
			var more []string
			if *b, more, err = p.archiveBatch(ctx, l, *b); err != nil {
				return err
			}
			notes = append(notes, more...)
		}
		b.RetryAt = nil
		_, err = p.processArchived(ctx, l, *b, policyOverride{}, notes)
		return err
	})
}

// protect runs fn and turns a panic into its error, logged with the
// stack: a bug met by one batch must not stop the daemon; the batch is
// retried like after any failure outside its files.
func (p *Pipeline) protect(org, batch string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
			p.log.Error("batch panicked", "org", org, "batch", batch, "err", err, "stack", string(debug.Stack()))
		}
	}()
	return fn()
}

// failed records a failed run of b and makes it wait for its retry.
func (p *Pipeline) failed(l *orgLoop, b state.Batch, err error) {
	b.Attempts++
	b.LastError = err.Error()
	d := p.backoff(b.Attempts)
	at := time.Now().Add(d).UTC()
	b.RetryAt = &at
	rep := retryReport(b)
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		p.log.Error("encode report", "org", l.org, "batch", b.ID, "err", err)
	}
	switch rerr := p.db.RecordFailure(b, js.Bytes()); {
	case errors.Is(rerr, state.ErrBatchFinished):
		// It failed after it was final (merging its overlay): nothing
		// to retry; the next apply finishes the merge.
		p.log.Warn("batch failed after it was finished", "org", l.org, "batch", b.ID, "err", err)
		p.setWaiting(l, nil)
		return
	case rerr != nil:
		p.log.Warn("record the batch's failure", "org", l.org, "batch", b.ID, "err", rerr)
	}
	p.metrics.retries.Inc()
	if err := p.writeReport(l.org, b, rep); err != nil {
		p.log.Warn("write report", "org", l.org, "batch", b.ID, "err", err)
	}
	l.retryAt = at
	p.setWaiting(l, &b)
	// Logged last: when the line is there, so are the report and the
	// gauge.
	p.log.Warn("batch failed; it is retried", "org", l.org, "batch", b.ID, "status", b.Status,
		"attempt", b.Attempts, "retry_in", d, "err", err)
}

// retry runs the waiting batch again.
func (p *Pipeline) retry(ctx context.Context, l *orgLoop) {
	b := *l.waiting
	p.log.Info("retrying batch", "org", l.org, "batch", b.ID, "attempt", b.Attempts+1)
	p.runBatch(ctx, l, b, nil)
}

// setWaiting sets l's waiting batch and keeps the gauge.
func (p *Pipeline) setWaiting(l *orgLoop, b *state.Batch) {
	switch {
	case l.waiting == nil && b != nil:
		p.metrics.waiting.Inc()
	case l.waiting != nil && b == nil:
		p.metrics.waiting.Dec()
	}
	l.waiting = b
}

// resume deals with org's unfinished batches found at start-up, and those
// another instance of a fleet left when this loop takes the lease (oldest
// first).
func (p *Pipeline) resume(ctx context.Context, l *orgLoop, bs []state.Batch) {
	outcome := p.newestOutcome(l.org)
	var live []state.Batch
	for _, b := range bs {
		// The stored record, not the one in the list: in a fleet the list
		// may be older than the loop's lease (read at start-up while
		// another instance ran the organization's batches, which it may
		// have finished since). A batch no longer unfinished is done with;
		// merged with the one really left, it would supersede it.
		cur, err := p.db.Batch(l.org, b.ID)
		if err == nil && cur.Status != state.BatchPending && cur.Status != state.BatchProcessing {
			continue
		}
		if err == nil {
			b = cur
		}
		if outcome != "" && b.ID < outcome {
			p.supersedeStale(l, b, outcome)
			continue
		}
		live = append(live, b)
	}
	switch len(live) {
	case 0:
	case 1:
		b := live[0]
		p.log.Info("redoing interrupted batch", "org", b.Org, "batch", b.ID, "status", b.Status)
		p.runBatch(ctx, l, b, []string{"This batch was interrupted (the daemon stopped) and was redone at start-up."})
	default:
		set, err := p.settingsFor(l.org)
		if err != nil {
			p.log.Warn("batches of an unknown organization left", "org", l.org, "err", err)
			return
		}
		p.log.Info("merging interrupted batches into a new one", "org", l.org, "batches", len(live))
		p.form(ctx, l, set, nil, live)
	}
}

// newestOutcome returns the id of org's newest batch that reached an
// outcome (applied, unchanged, rejected or held), or "".
func (p *Pipeline) newestOutcome(org string) string {
	after := ""
	for {
		page, err := p.db.Batches(org, after, 50)
		if err != nil || len(page) == 0 {
			return ""
		}
		for _, b := range page {
			switch b.Status {
			case state.BatchPending, state.BatchProcessing, state.BatchSuperseded, state.BatchIgnored:
			default:
				return b.ID
			}
		}
		after = page[len(page)-1].ID
	}
}

// supersedeStale marks b, interrupted and older than the batch by that
// already reached its outcome, superseded: running it now would apply it
// after a newer batch.
func (p *Pipeline) supersedeStale(l *orgLoop, b state.Batch, by string) {
	rep := batchReport(b, state.BatchSuperseded, []string{fmt.Sprintf(
		"This batch was interrupted, and the newer batch %s was processed before it could be redone: it will not be applied, so that the directory does not go back to older files. Upload the files again if they are still current.", by)})
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		return
	}
	sb, err := p.db.SupersedeBatch(l.org, b.ID, by, js.Bytes())
	if err != nil {
		p.log.Error("supersede interrupted batch", "org", l.org, "batch", b.ID, "err", err)
		return
	}
	p.metrics.batches.WithLabelValues(state.BatchSuperseded).Inc()
	p.log.Warn("interrupted batch superseded: a newer batch reached its outcome first", "org", l.org, "batch", b.ID, "by", by)
	if err := p.writeReport(l.org, sb, rep); err != nil {
		p.log.Warn("write report", "org", l.org, "batch", b.ID, "err", err)
	}
}

// outsideFiles reports whether err is a failure outside a batch's files
// (the disk, the I/O, the system's limits): the batch is retried. Other
// errors about one file (gone, not a regular file, refused) leave that
// file out.
func outsideFiles(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.EFBIG,
		syscall.ENOMEM, syscall.ENOBUFS, syscall.EMFILE, syscall.ENFILE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// linkArchived puts the archived copy of f, taken over from batch f.From,
// into dir at f.ArchivePath: a hard link (no copy, the same bytes the
// hash names), or a copy where links are not possible. The copy is the
// one in f.From's folder, or, when that batch never got to make it (it
// failed while pending), in the folder of the batch that batch took the
// file from, and so on (linkSources).
func (p *Pipeline) linkArchived(org string, f state.BatchFile, dir string) (state.BatchFile, error) {
	dst := archivedFile(dir, f)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return f, fmt.Errorf("archive %s from batch %s: %w", f.Name, f.From, err)
	}
	os.Remove(dst) // left by an earlier attempt
	err := os.ErrNotExist
	for _, src := range p.linkSources(org, f) {
		if err = os.Link(src, dst); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			err = copyFile(src, dst)
		}
		break
	}
	p.space.archiveChanged(org, filepath.Base(dir))
	if err != nil {
		return f, fmt.Errorf("archive %s from batch %s: %w", f.Name, f.From, err)
	}
	return f, nil
}

// linkSources are the archived copies a taken-over file may be linked
// from, nearest first: f.ArchivePath is from/B/P, where P is the file's
// path in batch B's folder, itself from/A/... when B took it over from A.
// A file recorded without an ArchivePath is under its name in f.From's.
func (p *Pipeline) linkSources(org string, f state.BatchFile) []string {
	if f.ArchivePath == "" {
		return []string{filepath.Join(p.archiveDir(org, f.From), f.Name)}
	}
	var out []string
	rest := f.ArchivePath
	for {
		id, after, ok := strings.Cut(strings.TrimPrefix(rest, "from/"), "/")
		if !ok || !strings.HasPrefix(rest, "from/") {
			return out
		}
		out = append(out, filepath.Join(p.archiveDir(org, id), filepath.FromSlash(after)))
		rest = after
	}
}

// archivedFile is where f's archived copy is in a batch's archive folder
// dir: under its name, or its ArchivePath when taken over.
func archivedFile(dir string, f state.BatchFile) string {
	return filepath.Join(dir, filepath.FromSlash(cmp.Or(f.ArchivePath, f.Name)))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(out, struct{ io.Reader }{in}, make([]byte, 1<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// orderNotes are the report notes on how b was formed: files set aside,
// files taken over, batches superseded, failed runs.
func orderNotes(b state.Batch) []string {
	var notes []string
	for _, f := range b.Ignored {
		winner := ""
		if i := slices.IndexFunc(b.Files, func(w state.BatchFile) bool { return w.Kind == f.Kind }); i >= 0 {
			winner = b.Files[i].Name
		}
		if winner == "" {
			notes = append(notes, fmt.Sprintf("%s was ignored: a %s file that completed later was processed before it.", f.Name, f.Kind))
			continue
		}
		notes = append(notes, fmt.Sprintf("%s was ignored: %s, completed later, is this batch's %s file.", f.Name, winner, f.Kind))
	}
	for _, id := range b.Supersedes {
		notes = append(notes, fmt.Sprintf("This batch supersedes batch %s, which will not be applied.", id))
	}
	for _, f := range b.Files {
		if f.From != "" {
			notes = append(notes, fmt.Sprintf("%s comes from batch %s, which this batch supersedes: the newer upload has no %s file.", fileLabel(f), f.From, f.Kind))
		}
	}
	if b.Attempts > 0 {
		notes = append(notes, fmt.Sprintf("Processing this batch failed %s because of a problem on the server, not in the files; it was retried.", times(b.Attempts)))
	}
	return notes
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// batchReport is the report of a batch that ends without being
// processed (superseded) or is not processed yet (waiting for a retry):
// its files and the notes.
func batchReport(b state.Batch, status string, notes []string) *report.Report {
	rep := &report.Report{Version: report.Version, BatchID: b.ID, OrganizationID: b.Org, Status: status, CreatedAt: b.CreatedAt, Notes: notes}
	for _, f := range b.Files {
		rep.Files = append(rep.Files, reportFile(f))
	}
	return rep
}

// retryReport says that b failed and is retried. The cause stays in the
// batch record (last_error) and the log, for the operator.
func retryReport(b state.Batch) *report.Report {
	notes := []string{fmt.Sprintf(
		"This batch could not be processed yet because of a problem on the server, not in the files: nothing was changed. It is retried automatically (next try at %s UTC; %s failed so far). A newer upload replaces it; there is no need to upload the same files again.",
		b.RetryAt.Format(time.DateTime), attempts(b.Attempts))}
	return batchReport(b, b.Status, append(notes, orderNotes(state.Batch{Ignored: b.Ignored, Files: b.Files, Supersedes: b.Supersedes})...))
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

// supersededReport is the report of the unfinished batch s that the new
// batch by supersedes.
func supersededReport(s state.Batch, by state.Batch) *report.Report {
	notes := []string{fmt.Sprintf("This batch was not applied: the newer batch %s replaced it before it could be processed. See that batch's report.", by.ID)}
	if s.Attempts > 0 {
		notes = append(notes, fmt.Sprintf("It could not be processed because of a problem on the server, not in the files (%s).", attempts(s.Attempts)))
	}
	for _, f := range by.Files {
		if f.From == s.ID {
			notes = append(notes, fmt.Sprintf("Its %s is part of batch %s, since the newer upload has no %s file.", fileLabel(f), by.ID, f.Kind))
		}
	}
	return batchReport(s, state.BatchSuperseded, notes)
}
