package schema

import "strings"

// Kind names one of the three files of SPEC §4.
type Kind string

// The three kinds of file an organization uploads.
const (
	Users      Kind = "users"
	UserGroups Kind = "user_groups"
	Groups     Kind = "groups"
)

// KindOf reports the kind of a file from its base name, using the default
// patterns users*.csv, user_groups*.csv and groups*.csv (case-insensitive).
// Directory parts (with / or \) are ignored. Organizations' own patterns are
// the caller's business.
func KindOf(fileName string) (Kind, bool) {
	if i := strings.LastIndexAny(fileName, `/\`); i >= 0 {
		fileName = fileName[i+1:]
	}
	name := strings.ToLower(fileName)
	if !strings.HasSuffix(name, ".csv") {
		return "", false
	}
	switch {
	case strings.HasPrefix(name, "user_groups"):
		return UserGroups, true
	case strings.HasPrefix(name, "users"):
		return Users, true
	case strings.HasPrefix(name, "groups"):
		return Groups, true
	}
	return "", false
}

// Severity tells whether an issue blocks the batch (error) or not (warning).
// SPEC §4: a batch with any error changes nothing; warnings never block.
type Severity string

// The two severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Issue is one problem found in a file: where (file, physical line,
// column), what (the value, cut to 80 characters, and a stable code) and
// what to do about it (Message, written for a non-programmer; it does not
// repeat the file and line, which the report prints before it).
type Issue struct {
	File     string   `json:"file"`
	Line     int      `json:"line"` // physical line, header = 1; 0 = the whole file
	Column   string   `json:"column"`
	Value    string   `json:"value"` // cut to 80 characters
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// Limits bounds what one file may hold (SPEC §3 and §4). A zero field means
// the default: 1 GiB per file, 512 columns, 64 KiB per field.
type Limits struct {
	MaxFileSize  int64
	MaxColumns   int
	MaxFieldSize int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = 1 << 30
	}
	if l.MaxColumns <= 0 {
		l.MaxColumns = 512
	}
	if l.MaxFieldSize <= 0 {
		l.MaxFieldSize = 64 << 10
	}
	return l
}

// KnownField indexes the optional known users.csv columns of SPEC §4
// (username … work_address_country), in the order the spec lists them.
type KnownField int

// The optional known users.csv columns; NumKnown is their number.
const (
	Username KnownField = iota
	DisplayName
	JobTitle
	EmployeeType
	EmploymentStartDate
	DepartmentName
	DivisionName
	CostCenterName
	ManagerID
	ManagerName
	ManagerEmail
	WorkAddressStreet
	WorkAddressLocality
	WorkAddressRegion
	WorkAddressPostalCode
	WorkAddressCountry
	NumKnown
)

var knownNames = [NumKnown]string{
	"username", "display_name", "job_title", "employee_type",
	"employment_start_date", "department_name", "division_name",
	"cost_center_name", "manager_id", "manager_name", "manager_email",
	"work_address_street", "work_address_locality", "work_address_region",
	"work_address_postal_code", "work_address_country",
}

// Name returns the column name of f as it appears in users.csv, for
// example "job_title". It returns "" for values outside the range.
func (f KnownField) Name() string {
	if f < 0 || f >= NumKnown {
		return ""
	}
	return knownNames[f]
}

// Attr is one custom attribute: a column that is not one of the known ones,
// under its header name (trimmed, case kept), with its trimmed value.
type Attr struct{ Name, Value string }

// User is one valid users.csv row. The *User passed to a callback and its
// Custom slice are reused for the next row: they are valid only during the
// call (the strings themselves are ordinary immutable strings and may be
// kept; they share one allocation with the rows read with them, about
// 256 KB, so a caller that keeps a few values for long should copy them
// with strings.Clone).
type User struct {
	Line                           int // physical line where the row starts
	ID, Email, FirstName, LastName string
	Active                         bool
	Known                          [NumKnown]string // "" = absent or empty
	Custom                         []Attr           // other columns in header order, empty values omitted
	// Groups are the groups the row's columns make under the
	// organization's groups_from_columns (GroupColumn): distinct, in the
	// order of the setting, each a membership of the user like a row of
	// user_groups.csv. Reused like Custom; the strings may be kept.
	Groups []string
}

// Membership is one valid user_groups.csv row.
type Membership struct {
	Line      int
	GroupName string
	UserID    string
}

// Group is one valid groups.csv row. Like User, the *Group and its Custom
// slice are valid only during the callback.
type Group struct {
	Line        int
	Name        string
	ID          string // "" when groups.csv has no group_id or it is empty
	Description string
	Custom      []Attr
}

// FileResult summarizes one checked file: Rows counts the data rows read
// (blank lines and the header excluded, rows with issues included);
// ErrorRows those of them with at least one error, so that Rows-ErrorRows
// rows are valid. A row counts once however many errors it has, except
// that a row with an error of its own whose user_id or email a later row
// repeats counts twice (ErrorRows never exceeds Rows): telling would take
// memory for every row with an error.
type FileResult struct {
	Rows      int
	ErrorRows int
	Errors    int
	Warnings  int
}
