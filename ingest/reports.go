package ingest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// reportName matches the report files of SPEC §5:
// <UTC yyyymmddThhmmssZ>-<batch id>.txt, .json and -issues.csv.
var reportName = regexp.MustCompile(`^(\d{8}T\d{6}Z-[0-9A-Z]{26})(\.txt|\.json|-issues\.csv)$`)

func reportBase(b state.Batch) string {
	return b.CreatedAt.UTC().Format("20060102T150405Z") + "-" + b.ID
}

// writeReport writes a batch's report into ORG/reports/ (each file through
// a temporary name and a rename, newest also as latest.*), keeps the last
// ReportsKept batches' reports there, and puts a copy into the batch's
// archive folder. The organization's copy is rep.ForCustomer(): the
// operator's notes go only to the archive copy (and the stored report).
// An ignored upload's notice (status ignored) leaves latest.* and the
// archive alone: latest.* is the newest batch that processed files.
func (p *Pipeline) writeReport(org string, b state.Batch, rep *report.Report) error {
	cust := rep.ForCustomer()
	var txt, issues bytes.Buffer
	if err := cust.WriteText(&txt); err != nil {
		return err
	}
	if len(rep.Issues) > 0 {
		if err := cust.WriteIssuesCSV(&issues); err != nil {
			return err
		}
	}
	dir := filepath.Join(p.cfg.OrgsRoot, org, "reports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	base := reportBase(b)
	names := []string{base}
	if b.Status != state.BatchIgnored {
		names = append(names, "latest")
	}
	for _, name := range names {
		if err := writeAtomic(filepath.Join(dir, name+".txt"), txt.Bytes()); err != nil {
			return err
		}
		if err := writeAtomicFunc(filepath.Join(dir, name+".json"), cust.WriteJSON); err != nil {
			return err
		}
		if issues.Len() > 0 {
			if err := writeAtomic(filepath.Join(dir, name+"-issues.csv"), issues.Bytes()); err != nil {
				return err
			}
		} else if err := os.Remove(filepath.Join(dir, name+"-issues.csv")); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	p.pruneReports(dir)
	p.space.reportsChanged(org)
	if b.Status == state.BatchIgnored {
		return nil
	}
	arch := p.archiveDir(org, b.ID)
	if err := os.MkdirAll(arch, 0o700); err != nil {
		return err
	}
	var full bytes.Buffer
	if err := rep.WriteText(&full); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(arch, "report.txt"), full.Bytes()); err != nil {
		return err
	}
	err := writeAtomicFunc(filepath.Join(arch, "report.json"), rep.WriteJSON)
	p.space.archiveChanged(org, b.ID)
	return err
}

// markSuperseded rewrites the report files of a held batch that batch by
// has superseded: the stored report (which the batches API shows), and
// the files in ORG/reports/ (and latest.* while they are its) and in its
// archive folder, so that the org admin and the API say that it will not
// be applied rather than how to approve it.
func (p *Pipeline) markSuperseded(org, id, by string) error {
	b, err := p.db.Batch(org, id)
	if err != nil {
		return err
	}
	raw, err := p.db.BatchReport(org, id)
	if err != nil {
		return err
	}
	var rep report.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("stored report of %s: %w", id, err)
	}
	rep.Status = state.BatchSuperseded
	notes := []string{fmt.Sprintf("This batch was held, and the newer batch %s replaced it: it will not be applied. See that batch's report.", by)}
	for _, n := range rep.Notes {
		if !strings.HasPrefix(n, "This batch is HELD") && !strings.HasPrefix(n, releaseNote) {
			notes = append(notes, n)
		}
	}
	rep.Notes, rep.OperatorNotes = notes, nil
	rep.RemovedUsers, rep.RemovedUsersTotal = nil, 0 // nobody goes
	var txt, js bytes.Buffer
	if err := rep.WriteText(&txt); err != nil {
		return err
	}
	if err := rep.WriteJSON(&js); err != nil {
		return err
	}
	if err := p.db.ReplaceBatchReport(org, id, js.Bytes()); err != nil {
		return err
	}
	dir := filepath.Join(p.cfg.OrgsRoot, org, "reports")
	base := filepath.Join(dir, reportBase(b))
	arch := p.archiveDir(org, id)
	files := []string{base + ".txt", base + ".json", filepath.Join(arch, "report.txt"), filepath.Join(arch, "report.json")}
	if latest, err := os.ReadFile(filepath.Join(dir, "latest.json")); err == nil {
		var l report.Report
		if json.Unmarshal(latest, &l) == nil && l.BatchID == id {
			files = append(files, filepath.Join(dir, "latest.txt"), filepath.Join(dir, "latest.json"))
		}
	}
	for _, path := range files {
		if _, err := os.Stat(path); err != nil {
			continue // pruned, or never written
		}
		data := txt.Bytes()
		if strings.HasSuffix(path, ".json") {
			data = js.Bytes()
		}
		if err := writeAtomic(path, data); err != nil {
			return err
		}
	}
	p.space.reportsChanged(org)
	p.space.archiveChanged(org, id)
	return nil
}

// writeAtomic writes data to a hidden temporary file beside path, syncs
// it and renames it onto path: a reader sees the old file or the new one.
func writeAtomic(path string, data []byte) error {
	return writeAtomicFunc(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomicFunc is writeAtomic of what write writes, streamed.
func writeAtomicFunc(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// pruneReports keeps the reports of the newest ReportsKept batches.
func (p *Pipeline) pruneReports(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	byBase := map[string][]string{}
	for _, e := range ents {
		if m := reportName.FindStringSubmatch(e.Name()); m != nil {
			byBase[m[1]] = append(byBase[m[1]], e.Name())
		} else if strings.HasPrefix(e.Name(), ".tmp-") {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(dir, e.Name())) // left by a crash
			}
		}
	}
	if len(byBase) <= p.cfg.ReportsKept {
		return
	}
	bases := make([]string, 0, len(byBase))
	for b := range byBase {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	for _, b := range bases[:len(bases)-p.cfg.ReportsKept] {
		for _, name := range byBase[b] {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

// restoreReport writes the report of org's newest finished batch if a
// crash came between its commit and its report files.
func (p *Pipeline) restoreReport(org string) {
	bs, err := p.db.Batches(org, "", 20)
	bs = slices.DeleteFunc(bs, func(b state.Batch) bool { return b.Status == state.BatchIgnored })
	if err != nil || len(bs) == 0 {
		return
	}
	b := bs[0]
	if b.Status == state.BatchPending || b.Status == state.BatchProcessing {
		return
	}
	if _, err := os.Stat(filepath.Join(p.cfg.OrgsRoot, org, "reports", reportBase(b)+".json")); err == nil {
		return
	}
	raw, err := p.db.BatchReport(org, b.ID)
	if err != nil {
		return
	}
	var rep report.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		p.log.Error("decode stored report", "org", org, "batch", b.ID, "err", err)
		return
	}
	if err := p.writeReport(org, b, &rep); err != nil {
		p.log.Error("write report", "org", org, "batch", b.ID, "err", err)
	}
}

// pruneArchive removes the archive folders of org that retention does not
// keep: those older than ArchiveKeep and not among the newest
// ArchiveBatches. Then, while the organization holds more than its
// storage quota, it removes the oldest remaining ones: the archive is the
// operator's, and must not lock the organization out of uploading. It
// never removes the current batch's folder nor those of batches not final
// (held, unfinished).
func (p *Pipeline) pruneArchive(org, current string) {
	dir := filepath.Join(p.cfg.ArchiveRoot, org)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var ids []string // oldest first (ULIDs sort by time)
	for _, e := range ents {
		if _, err := ulid.ParseStrict(e.Name()); err == nil && e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	removable := func(id string) bool {
		if id == current {
			return false
		}
		b, err := p.db.Batch(org, id)
		return err != nil || state.BatchFinished(b.Status)
	}
	remove := func(id, why string) {
		if err := os.RemoveAll(filepath.Join(dir, id)); err != nil {
			p.log.Warn("prune archive", "org", org, "batch", id, "err", err)
		} else {
			p.log.Debug("archive pruned", "org", org, "batch", id, "reason", why)
		}
		p.space.archiveChanged(org, id)
	}
	kept := ids[:0:0]
	for i, id := range ids {
		old := p.cfg.ArchiveKeep > 0 && ulid.Time(ulid.MustParse(id).Time()).Before(time.Now().Add(-p.cfg.ArchiveKeep))
		if old && i < len(ids)-p.cfg.ArchiveBatches && removable(id) {
			remove(id, "retention")
			continue
		}
		kept = append(kept, id)
	}
	quota := p.QuotaOf(org)
	if quota <= 0 {
		return
	}
	for _, id := range kept {
		folder, archive, err := p.space.Used(org)
		if err != nil || folder+archive <= quota {
			return
		}
		if removable(id) {
			p.log.Warn("archive copy removed early: the organization is over its storage quota", "org", org, "batch", id,
				"bytes", folder+archive, "quota", quota)
			remove(id, "quota")
		}
	}
}

// hashCounter hashes and counts what is read through it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func (c *hashCounter) reset() { c.h, c.n = sha256.New(), 0 }

func (c *hashCounter) sum() string {
	if c.h == nil {
		return ""
	}
	return hex.EncodeToString(c.h.Sum(nil))
}

func (c *hashCounter) wrap(rc io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.TeeReader(rc, writerFunc(func(p []byte) (int, error) {
		c.n += int64(len(p))
		return c.h.Write(p)
	})), rc}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
