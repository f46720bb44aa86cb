package ingest

import (
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
// archive folder.
func (p *Pipeline) writeReport(org string, b state.Batch, rep *report.Report) error {
	var txt, js, issues bytes.Buffer
	if err := rep.WriteText(&txt); err != nil {
		return err
	}
	if err := rep.WriteJSON(&js); err != nil {
		return err
	}
	if len(rep.Issues) > 0 {
		if err := rep.WriteIssuesCSV(&issues); err != nil {
			return err
		}
	}
	dir := filepath.Join(p.cfg.OrgsRoot, org, "reports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	base := reportBase(b)
	files := []struct {
		name string
		data []byte
	}{{base + ".txt", txt.Bytes()}, {base + ".json", js.Bytes()}}
	if issues.Len() > 0 {
		files = append(files, struct {
			name string
			data []byte
		}{base + "-issues.csv", issues.Bytes()})
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	if err := writeAtomic(filepath.Join(dir, "latest.txt"), txt.Bytes()); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "latest.json"), js.Bytes()); err != nil {
		return err
	}
	if issues.Len() > 0 {
		if err := writeAtomic(filepath.Join(dir, "latest-issues.csv"), issues.Bytes()); err != nil {
			return err
		}
	} else if err := os.Remove(filepath.Join(dir, "latest-issues.csv")); err != nil && !os.IsNotExist(err) {
		return err
	}
	p.pruneReports(dir)
	arch := p.archiveDir(org, b.ID)
	if err := os.MkdirAll(arch, 0o700); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(arch, "report.txt"), txt.Bytes()); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(arch, "report.json"), js.Bytes())
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
		if !strings.HasPrefix(n, heldNote) && !strings.HasPrefix(n, releaseNote) {
			notes = append(notes, n)
		}
	}
	rep.Notes = notes
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
	return nil
}

// writeAtomic writes data to a hidden temporary file beside path, syncs
// it and renames it onto path: a reader sees the old file or the new one.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
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
	bs, err := p.db.Batches(org, "", 1)
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

// pruneArchive removes archive folders older than ArchiveKeep, except the
// current batch's and those of batches not final (held, unfinished).
func (p *Pipeline) pruneArchive(org, current string) {
	if p.cfg.ArchiveKeep <= 0 {
		return
	}
	dir := filepath.Join(p.cfg.ArchiveRoot, org)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-p.cfg.ArchiveKeep)
	for _, e := range ents {
		id, err := ulid.ParseStrict(e.Name())
		if err != nil || e.Name() == current || !ulid.Time(id.Time()).Before(cutoff) {
			continue
		}
		if b, err := p.db.Batch(org, e.Name()); err == nil && !state.BatchFinished(b.Status) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			p.log.Warn("prune archive", "org", org, "batch", e.Name(), "err", err)
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
