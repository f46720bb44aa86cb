package report

import (
	"encoding/json"
	"io"
	"time"

	"github.com/rosterd/rosterd/schema"
)

// Version is the version of the JSON report's shape (the version field).
const Version = 1

// Statuses of `rosterd validate`. A batch report uses the batch statuses
// of SPEC §5 instead (pending, processing, applied, unchanged, rejected,
// held, superseded).
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
	Notes          []string       `json:"notes,omitempty"`   // e.g. why a batch is held and how to release it
	Mapping        *Mapping       `json:"mapping,omitempty"` // the organization's mapping, when the files were read with one
}

// Mapping is how the files were read under an organization's mapping
// (SPEC §4, exports as they come): how each column of each file whose
// header the mapping changed was read, the status value map and the date
// format of employment_start_date.
type Mapping struct {
	Columns      []schema.ColumnRead `json:"columns,omitempty"`
	StatusValues map[string]string   `json:"status_values,omitempty"`
	DateFormat   string              `json:"date_format,omitempty"`
}

// File describes one file of the batch. For a compressed or encrypted
// upload, Name, Size and SHA256 are those of the file as uploaded, Inner
// the CSV file inside it, InnerSize the CSV's bytes and Decoded how it was
// read ("gzip", "decrypted with key ..., signed by ...").
type File struct {
	Name      string      `json:"name"`
	Kind      schema.Kind `json:"kind"`
	Size      int64       `json:"size"`
	SHA256    string      `json:"sha256"` // lower-case hex
	Rows      int         `json:"rows"`
	Inner     string      `json:"inner,omitempty"`
	InnerSize int64       `json:"inner_size,omitempty"`
	Decoded   string      `json:"decoded,omitempty"`
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
// the package comment). Issues is always an array, never null.
func (r *Report) WriteJSON(w io.Writer) error {
	v := *r
	if v.Issues == nil {
		v.Issues = []schema.Issue{}
	}
	if v.Files == nil {
		v.Files = []File{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&v)
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
		r.Mapping = &Mapping{Columns: c.ColumnsRead(), StatusValues: m.StatusValues(), DateFormat: m.DateFormat()}
	}
}
