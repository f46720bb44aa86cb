package ingest

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// SPEC §5: a completed .csv upload that no name or pattern processes gets
// a short report, so that an admin whose export writes
// users-2026-12-03.csv sees why nothing happened. It is a batch record
// with status ignored (state.RecordIgnored) so that the batches API lists
// it, but it reads no file, never touches the snapshot, never supersedes
// a held batch, and its report does not replace latest.* (writeReport):
// a notice, not a batch. At most one per name (ignoring case) per UTC day,
// so that a job that retries every minute does not fill reports/.

// noteIgnored writes an ignored notice for each completed upload among
// files whose name ends in .csv and that no name or pattern of the
// organization processes.
func (p *Pipeline) noteIgnored(org string, set settings, files []pendingFile) {
	for _, f := range files {
		if !f.trusted || !strings.HasSuffix(strings.ToLower(f.name), ".csv") {
			continue
		}
		if _, ok := set.kindOf(f.name); ok {
			continue
		}
		if _, err := os.Lstat(filepath.Join(p.cfg.OrgsRoot, org, f.name)); err != nil {
			continue // renamed away (uploaded under a temporary name) or removed
		}
		if err := p.recordIgnored(org, set, f.name); err != nil {
			p.log.Error("record ignored upload", "org", org, "file", f.name, "err", err)
		}
	}
}

func (p *Pipeline) recordIgnored(org string, set settings, name string) error {
	now := time.Now().UTC()
	if seen, err := p.ignoredToday(org, name, now); err != nil || seen {
		return err
	}
	b := state.Batch{ID: ulid.Make().String(), Org: org, Status: state.BatchIgnored, CreatedAt: now, FinishedAt: &now,
		Reason: name + " is not a file name this organization's uploads are processed under"}
	var size int64
	if fi, err := os.Lstat(filepath.Join(p.cfg.OrgsRoot, org, name)); err == nil {
		size = fi.Size()
	}

	b.Files = []state.BatchFile{{Name: name, Size: size}}
	notes, operator := ignoredNotes(org, set, name)
	rep := &report.Report{
		Version: report.Version, BatchID: b.ID, OrganizationID: org, Status: b.Status, CreatedAt: b.CreatedAt,
		Files: []report.File{{Name: name, Size: size}}, Notes: notes, OperatorNotes: operator,
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		return err
	}
	if err := p.db.RecordIgnored(b, js.Bytes()); err != nil {
		return err
	}
	p.metrics.batches.WithLabelValues(b.Status).Inc()
	p.log.Info("upload ignored: no name or pattern processes it", "org", org, "batch", b.ID, "file", name)
	return p.writeReport(org, b, rep)
}

// ignoredToday reports whether org already has an ignored notice for name
// (ignoring case) from now's UTC day.
func (p *Pipeline) ignoredToday(org, name string, now time.Time) (bool, error) {
	day := now.Truncate(24 * time.Hour)
	after := ""
	for {
		page, err := p.db.Batches(org, after, 100)
		if err != nil || len(page) == 0 {
			return false, err
		}
		for _, b := range page {
			if b.CreatedAt.Before(day) {
				return false, nil
			}
			if b.Status == state.BatchIgnored && len(b.Files) == 1 && strings.EqualFold(b.Files[0].Name, name) {
				return true, nil
			}
		}
		after = page[len(page)-1].ID
	}
}

// ignoredNotes says what was ignored and what to do: to the admin, which
// names are processed and how to ask for one more; to the operator, the
// setting that adds it.
func ignoredNotes(org string, set settings, name string) (notes, operator []string) {
	names := []string{"users.csv", "user_groups.csv", "groups.csv"}
	for _, k := range []schema.Kind{schema.Users, schema.UserGroups, schema.Groups} {
		for _, pat := range set.patterns[k] {
			names = append(names, fmt.Sprintf("%s (%s)", pat, k))
		}
	}
	pat := suggestPattern(name)
	kind, known := schema.KindOf(name)
	setting := "users_patterns, user_groups_patterns or groups_patterns, as the file holds"
	forKind := "for the kind of file it is"
	if known {
		setting, forKind = string(kind)+"_patterns", "for "+string(kind)+" files"
	}
	notes = []string{
		fmt.Sprintf("%s was uploaded, but no file of that name is processed here, so nothing was read or changed.", name),
		"The names processed here (upper or lower case): " + strings.Join(names, ", ") + ".",
		fmt.Sprintf("What you can do: upload the file as one of these names (for example upload it, then rename it); or, if your system can only write names like this one, ask the operator of this service to add the pattern %s %s to your organization's settings.", pat, forKind),
		"This notice is written once a day per file name.",
	}
	operator = []string{
		fmt.Sprintf("To process such files, add the pattern to the organization's %s setting: PATCH /v1/organizations/%s with {\"settings\": {%q: [%q]}} (list the patterns it has too).", setting, org, strings.SplitN(setting, ",", 2)[0], pat),
	}
	return notes, operator
}

// digitRun finds the dates and sequence numbers in a file name.
var digitRun = regexp.MustCompile(`[0-9]+([-_.][0-9]+)*`)

// suggestPattern turns a file name into a pattern for names like it: its
// dates and sequence numbers become * (users-2026-12-03.csv ->
// users-*.csv).
func suggestPattern(name string) string {
	pat := digitRun.ReplaceAllString(name, "*")
	if _, err := path.Match(pat, ""); err != nil {
		return name
	}
	return pat
}
