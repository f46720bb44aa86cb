package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// Errors of Approve and Plan.
var (
	// ErrNotRunning is returned by Approve when Run is not running.
	ErrNotRunning = errors.New("the ingest pipeline is not running")
	// ErrNotHeld is returned by Approve for a batch that is not held.
	ErrNotHeld = errors.New("batch is not held")
	// ErrBadFiles is returned by Plan when the files cannot form a batch.
	ErrBadFiles = errors.New("files cannot form a batch")
)

// Approve releases a held batch (SPEC §5): it is processed again from its
// archived files without the deletion guard, in the organization's loop
// after the batch in progress. It returns the batch as it ended: applied,
// unchanged or rejected. A batch that is not held gives ErrNotHeld (a
// superseded one among them), an unknown one state.ErrNotFound.
func (p *Pipeline) Approve(ctx context.Context, org, batchID string) (state.Batch, error) {
	b, err := p.db.Batch(org, batchID)
	if err != nil {
		return state.Batch{}, err
	}
	if b.Status != state.BatchHeld {
		return b, fmt.Errorf("approve batch %s (%s): %w", batchID, b.Status, ErrNotHeld)
	}
	p.mu.Lock()
	running := p.run != nil
	p.mu.Unlock()
	if !running {
		return b, ErrNotRunning
	}
	l := p.loop(org)
	resp := make(chan approveResp, 1)
	select {
	case l.reqs <- approveReq{batch: batchID, resp: resp}:
	case <-ctx.Done():
		return b, ctx.Err()
	}
	select {
	case r := <-resp:
		return r.b, r.err
	case <-ctx.Done():
		return b, ctx.Err()
	}
}

// approveInLoop runs in org's loop; the batch runs in ctx, the loop's
// work context (its lease's: orgLoop.approve), not the request's, which
// only bounds the wait.
func (p *Pipeline) approveInLoop(ctx context.Context, l *orgLoop, batchID string) (state.Batch, error) {
	b, err := p.db.Batch(l.org, batchID)
	if err != nil {
		return b, err
	}
	if b.Status != state.BatchHeld {
		return b, fmt.Errorf("approve batch %s (%s): %w", batchID, b.Status, ErrNotHeld)
	}
	p.log.Info("held batch approved", "org", l.org, "batch", batchID)
	return p.processArchived(ctx, l, b, policyOverride{approved: true}, nil)
}

// PlanFile is one file of a dry run.
type PlanFile struct {
	Name string
	// Kind is "" to take it from Name (the organization's patterns, then
	// users*.csv, user_groups*.csv, groups*.csv).
	Kind schema.Kind
	Open func() (io.ReadCloser, error)

	inner string // the member of a zip (planZips)
}

// PlanOptions change a dry run: Mapping, when not nil, reads the files
// with it instead of the organization's mapping (to try a mapping before
// setting it); NoMapping reads them as they come.
type PlanOptions struct {
	Mapping   *schema.Mapping
	NoMapping bool
}

// Plan is the dry run behind `rosterd plan`: the files go through the same
// validation, diff and deletion guard as an upload, against org's current
// snapshot, and nothing is applied or stored. The report's status is the
// outcome the files would have (applied, unchanged, held or rejected) and
// its changes what they would change. ErrBadFiles when a name's kind is
// unknown or two files have the same kind.
func (p *Pipeline) Plan(ctx context.Context, org string, files []PlanFile) (*report.Report, error) {
	return p.PlanWith(ctx, org, files, PlanOptions{})
}

// PlanWith is Plan with options.
func (p *Pipeline) PlanWith(ctx context.Context, org string, files []PlanFile, opt PlanOptions) (*report.Report, error) {
	set, err := p.settingsFor(org)
	if err != nil {
		return nil, err
	}
	if opt.Mapping != nil || opt.NoMapping {
		set.mapping = opt.Mapping
	}
	files, zipNotes, err := p.planZips(set, files)
	if err != nil {
		return nil, err
	}
	var inputs []input
	decoded := make([]*state.BatchFile, 0, len(files))
	seen := map[schema.Kind]string{}
	for _, f := range files {
		k := f.Kind
		if k == "" {
			var ok bool
			if k, ok = set.kindOf(filepath.Base(f.Name)); !ok {
				if k, ok = schema.KindOf(f.Name); !ok {
					return nil, fmt.Errorf("%s: %w: cannot tell users, user_groups or groups from the name", f.Name, ErrBadFiles)
				}
			}
		}
		if prev, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s and %s: %w: two %s files", prev, f.Name, ErrBadFiles, k)
		}
		seen[k] = f.Name
		bf := &state.BatchFile{Name: filepath.Base(f.Name), Kind: string(k), Inner: f.inner}
		decoded = append(decoded, bf)
		inputs = append(inputs, input{kind: k, name: csvName(*bf), open: p.planOpen(ctx, set, f.Open, bf)})
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: no files", ErrBadFiles)
	}
	// Hash while reading: wrap each input.
	hashes := make([]*hashCounter, len(inputs))
	for i := range inputs {
		hc := &hashCounter{}
		hashes[i] = hc
		open := inputs[i].open
		inputs[i].open = func() (io.ReadCloser, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			hc.reset()
			return hc.wrap(rc), nil
		}
	}
	o, err := p.decide(ctx, org, set.policy(), inputs)
	if err != nil {
		return nil, err
	}
	defer o.close()
	b := state.Batch{Org: org, Status: o.status, CreatedAt: time.Now().UTC(), Changes: o.res.changes, Counts: o.res.counts}
	for i, in := range inputs {
		bf := *decoded[i]
		bf.Size, bf.SHA256, bf.Rows = hashes[i].n, hashes[i].sum(), o.res.results[in.kind].Rows
		if bf.Inner != "" {
			bf.Size, bf.SHA256 = planRawHash(files[i].Open)
		}
		b.Files = append(b.Files, bf)
	}
	notes := []string{"Dry run (rosterd plan): nothing was applied; this is what the files would do."}
	notes = append(notes, zipNotes...)
	more, _ := outcomeNotes(o, o.res, b)
	if o.status == state.BatchHeld {
		more = more[:len(more)-1] // no batch to approve
	}
	rep, err := buildReport(b, o.res, o, append(notes, more...))
	if err != nil {
		return nil, err
	}
	rep.DryRun = true
	return rep, nil
}
