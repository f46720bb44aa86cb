package report

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rosterd/rosterd/schema"
)

// WriteText writes the report for a person: the outcome in plain words,
// the files, the counts, the changes (for a batch), the notes, then every
// listed issue as `users.csv line 9, column user_id: message`.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	errs, warns := r.errorsWarnings()
	fmt.Fprintf(bw, "%s\n", r.headline(errs, warns))
	if r.BatchID != "" {
		fmt.Fprintf(bw, "Batch:        %s\n", Visible(r.BatchID))
	}
	if r.OrganizationID != "" {
		fmt.Fprintf(bw, "Organization: %s\n", Visible(r.OrganizationID))
	}
	if !r.CreatedAt.IsZero() {
		fmt.Fprintf(bw, "Checked:      %s\n", r.CreatedAt.UTC().Format(time.DateTime+" UTC"))
	}

	fmt.Fprintf(bw, "\nFiles:\n")
	if len(r.Files) == 0 {
		fmt.Fprintf(bw, "  (none)\n")
	}
	failed := r.Status == StatusInvalid || r.Status == "rejected"
	notice := r.Status == "ignored" // nothing was read
	for _, f := range r.Files {
		if notice {
			fmt.Fprintf(bw, "  %s: %s, not read\n", Visible(f.Name), plural64(f.Size, "byte"))
			continue
		}
		rows := plural(f.Rows, "row")
		if (failed || f.ErrorRows > 0) && f.Rows > 0 {
			// SPEC §5, issue 12 case 8: what the file held, not what the
			// directory would.
			rows = fmt.Sprintf("%s read: %s valid, %s with errors;", plural(f.Rows, "row"), num(f.Rows-f.ErrorRows), num(f.ErrorRows))
		} else {
			rows += ","
		}
		if f.Inner == "" {
			fmt.Fprintf(bw, "  %s (%s): %s %s, SHA-256 %s\n", Visible(f.Name), f.Kind, rows, plural64(f.Size, "byte"), f.SHA256)
			continue
		}
		// A compressed or encrypted upload: the file as uploaded, the CSV
		// file inside and how it was read.
		fmt.Fprintf(bw, "  %s → %s (%s): %s %s (%s inside), SHA-256 %s\n", Visible(f.Name), Visible(f.Inner), f.Kind, rows,
			plural64(f.Size, "byte"), plural64(f.InnerSize, "byte"), f.SHA256)
		if f.Decoded != "" {
			fmt.Fprintf(bw, "    %s\n", Visible(f.Decoded))
		}
	}
	r.writeMapping(bw)

	if !failed && !notice {
		fmt.Fprintf(bw, "\nCounts: %s, %s, %s\n", plural(r.Counts.Users, "user"), plural(r.Counts.Groups, "group"), plural(r.Counts.Memberships, "membership"))
	}
	if !notice && (r.Status != StatusValid && r.Status != StatusInvalid || !r.Changes.zero()) {
		c := r.Changes
		fmt.Fprintf(bw, "\nChanges:\n")
		fmt.Fprintf(bw, "  users:       %s created, %s updated, %s deactivated, %s deleted\n", num(c.UsersCreated), num(c.UsersUpdated), num(c.UsersDeactivated), num(c.UsersDeleted))
		fmt.Fprintf(bw, "  groups:      %s created, %s updated, %s deleted\n", num(c.GroupsCreated), num(c.GroupsUpdated), num(c.GroupsDeleted))
		fmt.Fprintf(bw, "  memberships: %s added, %s removed\n", num(c.MembershipsAdded), num(c.MembershipsRemoved))
	}

	if len(r.Notes) > 0 {
		fmt.Fprintf(bw, "\nNotes:\n")
		for _, n := range r.Notes {
			fmt.Fprintf(bw, "  - %s\n", Visible(n))
		}
	}

	if len(r.OperatorNotes) > 0 {
		fmt.Fprintf(bw, "\nFor the operator:\n")
		for _, n := range r.OperatorNotes {
			fmt.Fprintf(bw, "  - %s\n", Visible(n))
		}
	}

	if r.RemovedUsersTotal > 0 || len(r.RemovedUsers) > 0 {
		r.writeRemoved(bw)
	}

	if len(r.Issues) > 0 {
		fmt.Fprintf(bw, "\nErrors and warnings (%s):\n", num(r.IssuesTotal))
		for _, is := range r.Issues {
			fmt.Fprintf(bw, "  %-7s  %s: %s\n", is.Severity, where(is), Visible(is.Message))
		}
	}
	if r.IssuesTotal > len(r.Issues) {
		fmt.Fprintf(bw, "\nOnly the first %s of %s issues are listed. All of them by kind:\n", num(len(r.Issues)), num(r.IssuesTotal))
		codes := make([]string, 0, len(r.IssueCounts))
		for code := range r.IssueCounts {
			codes = append(codes, code)
		}
		sort.Slice(codes, func(i, j int) bool {
			if a, b := r.IssueCounts[codes[i]], r.IssueCounts[codes[j]]; a != b {
				return a > b
			}
			return codes[i] < codes[j]
		})
		for _, code := range codes {
			fmt.Fprintf(bw, "  %-22s %s (%s)\n", code, num(r.IssueCounts[code]), schema.SeverityOf(code))
		}
	}
	return bw.Flush()
}

// writeRemoved lists the first MaxRemovedText users a held batch would
// delete or deactivate.
func (r *Report) writeRemoved(w io.Writer) {
	total := max(r.RemovedUsersTotal, len(r.RemovedUsers))
	list := r.RemovedUsers[:min(len(r.RemovedUsers), MaxRemovedText)]
	what := "would delete or deactivate"
	if r.Status != "held" {
		what = "would have deleted or deactivated"
	}
	if len(list) < total {
		fmt.Fprintf(w, "\nUsers this batch %s (the first %s of %s; the JSON report lists them all):\n", what, num(len(list)), num(total))
	} else {
		fmt.Fprintf(w, "\nUsers this batch %s (%s):\n", what, num(total))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, u := range list {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Change, Visible(u.ID), Visible(u.Email), Visible(strings.TrimSpace(u.FirstName+" "+u.LastName)))
	}
	tw.Flush()
}

// headline states the outcome in plain words.
func (r *Report) headline(errs, warns int) string {
	var s string
	switch {
	case r.DryRun:
		s = r.planHeadline(errs)
	default:
		s = r.outcomeHeadline(errs)
	}
	if warns > 0 {
		s += fmt.Sprintf(" %s listed below do%s not block.", capital(plural(warns, "warning")), map[bool]string{true: "es", false: ""}[warns == 1])
	}
	return s
}

// planHeadline says what the files of a dry run would do.
func (r *Report) planHeadline(errs int) string {
	switch r.Status {
	case "applied":
		return "PLAN: these files would be applied and make the changes below. Nothing was changed yet."
	case "unchanged":
		return "PLAN: these files would change nothing: they are valid and match what is already there."
	case "rejected":
		return fmt.Sprintf("PLAN: these files would be rejected: they have %s. Fix them before uploading; nothing was changed.", plural(errs, "error"))
	case "held":
		return "PLAN: these files would be held: they are valid but would remove many users, so an operator would have to approve them. See the notes below. Nothing was changed."
	}
	return "PLAN: these files would be " + r.Status + ". Nothing was changed."
}

// outcomeHeadline states what happened to the files.
func (r *Report) outcomeHeadline(errs int) string {
	var s string
	switch r.Status {
	case StatusValid:
		s = "VALID: the files can be uploaded as they are."
	case StatusInvalid:
		s = fmt.Sprintf("NOT VALID: %s must be fixed; an upload of these files would change nothing.", plural(errs, "error"))
	case "applied":
		s = "APPLIED: the files were accepted and the changes below were made."
	case "unchanged":
		s = "UNCHANGED: the files are valid and match what is already there, so nothing changed."
	case "rejected":
		s = fmt.Sprintf("REJECTED: the files have %s, so nothing was changed. Fix them and upload the files again.", plural(errs, "error"))
	case "held":
		s = "HELD: the files are valid but were not applied, because they would remove many users. See the notes below."
	case "superseded":
		s = "SUPERSEDED: a newer upload replaced this batch before it was applied; nothing was changed by this one."
	case "ignored":
		s = "IGNORED: the file below was uploaded, but its name is not one that is processed here, so nothing was changed. See the notes below."
	case "pending":
		s = "PENDING: the files are waiting to be processed."
	case "processing":
		s = "PROCESSING: the files are being processed."
	default:
		s = strings.ToUpper(r.Status) + "."
	}
	return s
}

// where renders an issue's place: `users.csv line 9, column user_id`.
func where(is schema.Issue) string {
	s := Visible(is.File)
	if is.Line > 0 {
		s += " line " + strconv.Itoa(is.Line)
	}
	if is.Column != "" {
		if is.Line > 0 {
			s += ","
		}
		s += " column " + Visible(is.Column)
	}
	return s
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func plural(n int, unit string) string { return plural64(int64(n), unit) }

func plural64(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	if n == 0 {
		return "no " + unit + "s"
	}
	return num64(n) + " " + unit + "s"
}

func num(n int) string { return num64(int64(n)) }

// num64 writes n with thousands separators: 1,234,567.
func num64(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeMapping writes how the files were read under the organization's
// mapping, when they were.
func (r *Report) writeMapping(w io.Writer) {
	m := r.Mapping
	if m == nil {
		return
	}
	fmt.Fprintf(w, "\nRead with the organization's settings:\n")
	if len(m.Columns) == 0 {
		fmt.Fprintf(w, "  columns: no column was mapped (every header is read as it is)\n")
	}
	width := 0
	for _, c := range m.Columns {
		width = max(width, len(c.File)+len(fmt.Sprintf("%q", c.Column))+1)
	}
	for _, c := range m.Columns {
		src := fmt.Sprintf("%s %q", c.File, c.Column)
		var how string
		switch {
		case c.ReadAs == schema.Drop:
			how = "dropped"
		case strings.HasPrefix(c.ReadAs, schema.CustomPrefix):
			how = "kept as custom attribute " + strconv.Quote(c.ReadAs[len(schema.CustomPrefix):])
		default:
			how = "read as " + c.ReadAs
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, src, how)
	}
	if len(m.StatusValues) > 0 {
		keys := make([]string, 0, len(m.StatusValues))
		for k := range m.StatusValues {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%q read as %s", k, m.StatusValues[k])
		}
		fmt.Fprintf(w, "  status values: %s\n", strings.Join(parts, ", "))
	}
	if m.DateFormat != "" {
		fmt.Fprintf(w, "  employment_start_date: read as %s\n", m.DateFormat)
	}
	if len(m.GroupsFromColumns) > 0 {
		fmt.Fprintf(w, "  groups from users.csv columns (memberships joined with user_groups.csv's):\n")
		for _, g := range m.GroupsFromColumns {
			how := "named by the value"
			if g.Template != nil {
				how = "named " + strconv.Quote(*g.Template)
			}
			if g.Separator != "" {
				how += ", values split on " + strconv.Quote(g.Separator)
			}
			fmt.Fprintf(w, "    %s, %s: %s memberships\n", strings.TrimSpace(g.Column), how, num(g.Memberships))
		}
	}
}
