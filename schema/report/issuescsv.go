package report

import (
	"encoding/csv"
	"io"
	"strings"

	"github.com/gocarina/gocsv"
)

// issueRow is one row of the -issues.csv companion.
type issueRow struct {
	File     string `csv:"file"`
	Line     int    `csv:"line"`
	Column   string `csv:"column"`
	Value    string `csv:"value"`
	Code     string `csv:"code"`
	Severity string `csv:"severity"`
	Message  string `csv:"message"`
}

// WriteIssuesCSV writes the listed issues as the -issues.csv companion of
// SPEC §5, for admins who open it in a spreadsheet: a UTF-8 BOM (so that
// Excel reads non-ASCII names right), CRLF line ends, the columns file,
// line, column, value, code, severity, message. Values are shown as
// Visible renders them (control characters escaped). A cell that a spreadsheet
// would run as a formula (starting with = + - @, tab or CR) gets a leading
// apostrophe: the values come from uploaded files.
func (r *Report) WriteIssuesCSV(w io.Writer) error {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return err
	}
	rows := make([]issueRow, len(r.Issues))
	for i, is := range r.Issues {
		rows[i] = issueRow{
			File: defuse(Visible(is.File)), Line: is.Line, Column: defuse(Visible(is.Column)), Value: defuse(Visible(is.Value)),
			Code: is.Code, Severity: string(is.Severity), Message: defuse(Visible(is.Message)),
		}
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	return gocsv.MarshalCSV(&rows, gocsv.NewSafeCSVWriter(cw))
}

// defuse keeps a spreadsheet from reading s as a formula (OWASP "CSV
// injection").
func defuse(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
