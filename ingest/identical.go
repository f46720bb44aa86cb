package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// SPEC §5: uploading identical content again produces a batch with no
// changes and no events. When every file of a batch has the name, kind
// and SHA-256 (computed while archiving) of the files of the
// organization's last batch that reached the snapshot (applied or
// unchanged), and the effective policy and limits are those that batch
// ran with, the snapshot already is what the files say: the batch is
// unchanged without parsing. Its report repeats that batch's rows, counts
// and warnings.

// effective fingerprints what, beside the files, decides a batch's
// outcome.
func effective(pol policy, lim schema.Limits) string {
	m := pol.mapping // a pointer: its content counts, not its address
	pol.mapping = nil
	h := sha256.Sum256(fmt.Appendf(nil, "%+v|%+v|%s", pol, lim, m))
	return hex.EncodeToString(h[:16])
}

// sameFiles reports whether a and b hold the same files.
func sameFiles(a, b []state.BatchFile) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Kind != b[i].Kind || a[i].SHA256 != b[i].SHA256 || a[i].SHA256 == "" {
			return false
		}
	}
	return true
}

// identical finishes b as unchanged when its files repeat the last
// applied or unchanged batch's (see above). ok is false when they do not
// and the batch must be processed; err is the state's failure to record
// it (ok is then true: the batch is not processed further this time).
func (p *Pipeline) identical(l *orgLoop, b state.Batch, fp string, start time.Time, notes []string) (state.Batch, bool, error) {
	var last *state.Batch
	after := ""
	for last == nil {
		page, err := p.db.Batches(l.org, after, 20)
		if err != nil || len(page) == 0 {
			return b, false, nil
		}
		for i := range page {
			if page[i].ID != b.ID && (page[i].Status == state.BatchApplied || page[i].Status == state.BatchUnchanged) {
				last = &page[i]
				break
			}
		}
		after = page[len(page)-1].ID
	}
	if last.Effective != fp || !sameFiles(last.Files, b.Files) {
		return b, false, nil
	}
	raw, err := p.db.BatchReport(l.org, last.ID)
	if err != nil {
		return b, false, nil
	}
	var prev report.Report
	if err := json.Unmarshal(raw, &prev); err != nil {
		return b, false, nil
	}
	for i := range b.Files {
		b.Files[i].Rows = last.Files[i].Rows
		b.Files[i].Inner, b.Files[i].InnerSize, b.Files[i].Decoded = last.Files[i].Inner, last.Files[i].InnerSize, last.Files[i].Decoded
	}
	b.Status, b.Reason, b.Effective = state.BatchUnchanged, "", fp
	b.Changes, b.Counts = state.BatchChanges{}, last.Counts
	b.Errors, b.Warnings = 0, last.Warnings
	now := time.Now().UTC()
	b.FinishedAt = &now
	rep := &report.Report{
		Version: report.Version, BatchID: b.ID, OrganizationID: b.Org, Status: b.Status, CreatedAt: b.CreatedAt,
		Counts: prev.Counts, Issues: prev.Issues, IssuesTotal: prev.IssuesTotal, IssueCounts: prev.IssueCounts,
		Notes: append(notes, fmt.Sprintf("The files are identical (SHA-256) to those of batch %s: nothing to apply.", last.ID)),
	}
	for _, f := range b.Files {
		rep.Files = append(rep.Files, reportFile(f))
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		return b, false, nil
	}
	if err := p.db.FinishBatch(b, js.Bytes()); err != nil {
		return b, true, err
	}
	p.metrics.observe(b, nil, time.Since(start))
	p.log.Info("batch finished", "org", l.org, "batch", b.ID, "status", b.Status, "events", 0,
		"identical_to", last.ID, "duration", time.Since(start).Round(time.Millisecond))
	tWrite := time.Now()
	if err := p.writeReport(l.org, b, rep); err != nil {
		p.log.Error("write report", "org", l.org, "batch", b.ID, "err", err)
	}
	p.pruneArchive(l.org, b.ID)
	p.log.Debug("batch timings", "org", l.org, "batch", b.ID, "identical", tWrite.Sub(start), "write_report", time.Since(tWrite))
	return b, true, nil
}
