package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"time"

	"github.com/rosterd/rosterd/schema"
)

// Version is the version of the JSON report's shape (the version field).
const Version = 1

// Statuses of `rosterd validate`. A batch report uses the batch statuses
// of SPEC §5 instead (pending, processing, applied, unchanged, rejected,
// held, superseded, ignored).
const (
	StatusValid   = "valid"
	StatusInvalid = "invalid"
)

// Report is the validation report of SPEC §5: of a batch (written by
// ingest) or of local files (`rosterd validate`).
type Report struct {
	Version        int            `json:"version"` // 1
	BatchID        string         `json:"batch_id,omitempty"`
	OrganizationID string         `json:"organization_id,omitempty"`
	Status         string         `json:"status"` // batch statuses of SPEC 5, or "valid"/"invalid" for rosterd validate
	CreatedAt      time.Time      `json:"created_at"`
	Files          []File         `json:"files"`
	Counts         Counts         `json:"counts"`  // users, groups, memberships (in the batch, or the snapshot after applying)
	Changes        Changes        `json:"changes"` // the nine counts of SPEC 5
	Issues         []schema.Issue `json:"issues"`
	IssuesTotal    int            `json:"issues_total"`
	IssueCounts    map[string]int `json:"issue_counts,omitempty"`
	Notes          []string       `json:"notes,omitempty"` // for whoever reads the report: why a batch is held, what to do
	// DryRun marks the report of a plan (`rosterd plan`, POST .../plan):
	// Status is the outcome the files would have, and nothing was applied.
	DryRun  bool     `json:"dry_run,omitempty"`
	Mapping *Mapping `json:"mapping,omitempty"` // the organization's mapping, when the files were read with one
	// OperatorNotes are for the operator only, such as the command that
	// approves a held batch: the organization's admin cannot run it. The
	// stored report (the API, rosterd batch show) and the archive copy
	// carry them; the copy in the organization's reports/ folder does not
	// (ForCustomer).
	OperatorNotes []string `json:"operator_notes,omitempty"`
	// RemovedUsersTotal is how many users a held batch would delete or
	// deactivate; RemovedUsers lists them, all of them or (in the stored
	// report) the first MaxRemovedListed. It is the last field of the
	// JSON, one user per line.
	RemovedUsersTotal int           `json:"removed_users_total,omitempty"`
	RemovedUsers      []RemovedUser `json:"removed_users,omitempty"`
	// AllRemoved, when not nil, yields every removed user in order, for
	// WriteJSON to stream instead of RemovedUsers: the list of a held
	// batch can be every user of the organization, more than memory
	// should hold at once.
	AllRemoved func(yield func(RemovedUser) error) error `json:"-"`
}

// RemovedUser is a user a held batch would delete or deactivate, as the
// snapshot knows them.
type RemovedUser struct {
	Change    string `json:"change"` // "deleted" or "deactivated"
	ID        string `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

// Removal changes of RemovedUser.
const (
	Deleted     = "deleted"
	Deactivated = "deactivated"
)

// MaxRemovedListed is how many removed users a report keeps in memory
// (RemovedUsers) and in the stored copy; the text lists the first
// MaxRemovedText of them.
const (
	MaxRemovedListed = 1000
	MaxRemovedText   = 100
)

// ForCustomer returns the report as the organization's admin reads it:
// without the operator's notes.
func (r *Report) ForCustomer() *Report {
	c := *r
	c.OperatorNotes = nil
	return &c
}

// Mapping is how the files were read under an organization's mapping
// (SPEC §4, exports as they come): how each column of each file whose
// header the mapping changed was read, the status value map and the date
// format of employment_start_date, and the columns groups were derived
// from (groups_from_columns) with the memberships each gave.
type Mapping struct {
	Columns           []schema.ColumnRead    `json:"columns,omitempty"`
	StatusValues      map[string]string      `json:"status_values,omitempty"`
	DateFormat        string                 `json:"date_format,omitempty"`
	GroupsFromColumns []schema.GroupsDerived `json:"groups_from_columns,omitempty"`
}

// File describes one file of the batch. For a compressed or encrypted
// upload, Name, Size and SHA256 are those of the file as uploaded, Inner
// the CSV file inside it, InnerSize the CSV's bytes and Decoded how it was
// read ("gzip", "decrypted with key ..., signed by ...").
type File struct {
	Name   string      `json:"name"`
	Kind   schema.Kind `json:"kind"`
	Size   int64       `json:"size"`
	SHA256 string      `json:"sha256"` // lower-case hex
	Rows   int         `json:"rows"`
	// ErrorRows are the rows of Rows with at least one error; the others
	// are valid (schema.FileResult.ErrorRows).
	ErrorRows int    `json:"rows_with_errors"`
	Inner     string `json:"inner,omitempty"`
	InnerSize int64  `json:"inner_size,omitempty"`
	Decoded   string `json:"decoded,omitempty"`
}

// Counts are the numbers of users, groups and memberships: in the batch's
// files, or in the snapshot after applying it.
type Counts struct {
	Users       int `json:"users"`
	Groups      int `json:"groups"`
	Memberships int `json:"memberships"`
}

// Changes are the nine change counts of SPEC §5.
type Changes struct {
	UsersCreated       int `json:"users_created"`
	UsersUpdated       int `json:"users_updated"`
	UsersDeactivated   int `json:"users_deactivated"`
	UsersDeleted       int `json:"users_deleted"`
	GroupsCreated      int `json:"groups_created"`
	GroupsUpdated      int `json:"groups_updated"`
	GroupsDeleted      int `json:"groups_deleted"`
	MembershipsAdded   int `json:"memberships_added"`
	MembershipsRemoved int `json:"memberships_removed"`
}

func (c Changes) zero() bool { return c == Changes{} }

// Errors returns the number of listed issues that are errors (all of them
// when none were left unlisted).
func (r *Report) errorsWarnings() (errs, warns int) {
	for _, is := range r.Issues {
		if is.Severity == schema.SeverityError {
			errs++
		} else {
			warns++
		}
	}
	if r.IssuesTotal > len(r.Issues) {
		errs, warns = r.totals()
	}
	return errs, warns
}

// totals splits IssuesTotal by severity using IssueCounts.
func (r *Report) totals() (errs, warns int) {
	for code, n := range r.IssueCounts {
		if schema.SeverityOf(code) == schema.SeverityWarning {
			warns += n
		} else {
			errs += n
		}
	}
	return errs, warns
}

// WriteJSON writes the report as indented JSON (the shape is documented in
// the package comment). Issues is always an array, never null. The
// removed users come last, one per line, from AllRemoved when it is set
// (streamed: the list is never held whole), else from RemovedUsers. DEL,
// C1 and bidirectional controls are written as \u escapes, as
// encoding/json writes the C0 ones.
func (r *Report) WriteJSON(w io.Writer) error {
	v := *r
	if v.Issues == nil {
		v.Issues = []schema.Issue{}
	}
	if v.Files == nil {
		v.Files = []File{}
	}
	v.RemovedUsers, v.AllRemoved = nil, nil
	var buf bytes.Buffer
	// Reports are read as text too: "Workday <hr@example.com>" stays as
	// written, not \u003c...\u003e (nothing renders them as HTML unescaped).
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&v); err != nil {
		return err
	}
	each := r.AllRemoved
	if each == nil && len(r.RemovedUsers) > 0 {
		each = func(yield func(RemovedUser) error) error {
			for _, u := range r.RemovedUsers {
				if err := yield(u); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if each == nil {
		_, err := w.Write(escapeJSONControls(buf.Bytes()))
		return err
	}
	// "removed_users" goes last, one compact user per line, streamed.
	head := bytes.TrimSuffix(buf.Bytes(), []byte("\n}\n"))
	bw := bufio.NewWriter(w)
	bw.Write(escapeJSONControls(head))
	bw.WriteString(",\n  \"removed_users\": [")
	n := 0
	var line bytes.Buffer
	lenc := json.NewEncoder(&line)
	lenc.SetEscapeHTML(false)
	err := each(func(u RemovedUser) error {
		line.Reset()
		if err := lenc.Encode(u); err != nil {
			return err
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		n++
		bw.WriteString("\n    ")
		_, err := bw.Write(escapeJSONControls(bytes.TrimSuffix(line.Bytes(), []byte("\n"))))
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}

// FromChecker fills r's issues (Issues, IssuesTotal, IssueCounts) and
// Counts from a Checker that has read a batch.
func (r *Report) FromChecker(c *schema.Checker) {
	r.Issues = c.Issues()
	r.IssuesTotal = c.Errors() + c.Warnings()
	r.IssueCounts = c.IssueCounts()
	if len(r.IssueCounts) == 0 {
		r.IssueCounts = nil
	}
	st := c.Stats()
	r.Counts = Counts{Users: st.Users, Groups: st.Groups, Memberships: st.Memberships}
	if m := c.Mapping(); m != nil {
		r.Mapping = &Mapping{Columns: c.ColumnsRead(), StatusValues: m.StatusValues(), DateFormat: m.DateFormat(), GroupsFromColumns: c.GroupsDerived()}
	}
}
