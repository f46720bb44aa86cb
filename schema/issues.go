package schema

import (
	"container/heap"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// The stable issue codes. Reports, tests and admins' scripts may rely on
// them; messages may change, codes do not.
const (
	CodeEmptyFile          = "empty_file"           // no header line
	CodeNotCSV             = "not_csv"              // a workbook, a binary file, UTF-16 without BOM
	CodeInvalidUTF8        = "invalid_utf8"         // not UTF-8 text (reported once per file)
	CodeMissingColumn      = "missing_column"       // a required column is absent
	CodeDuplicateColumn    = "duplicate_column"     // two columns with the same name
	CodeTooManyColumns     = "too_many_columns"     // more columns than Limits.MaxColumns
	CodeFileTooLarge       = "file_too_large"       // more bytes than Limits.MaxFileSize
	CodeLineTooLong        = "line_too_long"        // a line no valid row could fill
	CodeFieldTooLong       = "field_too_long"       // a value over Limits.MaxFieldSize
	CodeBadQuote           = "bad_quote"            // text after a closing quote
	CodeUnclosedQuote      = "unclosed_quote"       // a quoted value that never ends
	CodeWrongFieldCount    = "wrong_field_count"    // a row with more or fewer values than the header
	CodeUnnamedColumn      = "unnamed_column"       // warning: values under an empty header name
	CodeIgnoredColumn      = "ignored_column"       // warning: a user_groups.csv column that is not used
	CodeNoRows             = "no_rows"              // warning: a header and no rows
	CodeMissingValue       = "missing_value"        // a required value is empty
	CodeInvalidEmail       = "invalid_email"        // not an email address
	CodeDuplicateUserID    = "duplicate_user_id"    // user_id twice in users.csv
	CodeDuplicateEmail     = "duplicate_email"      // email twice in users.csv, ignoring case
	CodeInvalidStatus      = "invalid_status"       // status not one of the known words
	CodeInvalidDate        = "invalid_date"         // employment_start_date is not a date
	CodeDateFormat         = "date_format"          // warning: a date, but not YYYY-MM-DD
	CodeUnknownUser        = "unknown_user"         // user_groups.csv names a user_id that does not exist
	CodeDuplicateMember    = "duplicate_membership" // warning: the same membership twice
	CodeDuplicateGroupName = "duplicate_group_name" // group_name twice in groups.csv
	CodeDuplicateGroupID   = "duplicate_group_id"   // group_id twice in groups.csv
	CodeUsersFileRequired  = "users_file_required"  // a batch that needs users.csv has none

	// The codes of an InputError: a compressed or encrypted upload that
	// could not be read (the reader given to the Checker says why).
	CodeCorruptFile       = "corrupt_file"       // compressed or encrypted data that is damaged or cut off
	CodeCompressionRatio  = "compression_ratio"  // expands more than the ratio limit allows (a zip bomb)
	CodeNotDecrypted      = "not_decrypted"      // an OpenPGP file the organization's key cannot decrypt
	CodeBadSignature      = "bad_signature"      // an OpenPGP signature missing, unknown or wrong
	CodeUnsupportedFormat = "unsupported_format" // a compression or encryption rosterd does not read
)

// InputError is an error of the reader given to a Checker that is a
// problem of the file rather than of reading it: a compressed file that
// is damaged, an encrypted one that cannot be decrypted, a signature that
// does not verify. The Checker reports it as an error of the whole file
// (line 0) with Code and Message, as it reports a file over the size
// limit, and does not return it.
type InputError struct {
	Code    string
	Message string // for the org admin: what is wrong and what to do
}

func (e *InputError) Error() string { return e.Message }

// MaxIssues is how many issues a Checker keeps in full (SPEC §4: the first
// 1,000, then counts by code).
const MaxIssues = 1000

const maxValueRunes = 80

// cut returns v as valid UTF-8 of at most 80 characters (the 80th being …
// when it was cut).
func cut(v []byte) string {
	if utf8.RuneCount(v) <= maxValueRunes && utf8.Valid(v) {
		return string(v)
	}
	s := strings.ToValidUTF8(string(v), "\uFFFD")
	if utf8.RuneCountInString(s) <= maxValueRunes {
		return s
	}
	n := 0
	for i := range s {
		if n == maxValueRunes-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// heldIssue orders issues by file, line, then emission.
type heldIssue struct {
	Issue
	file, seq int
	refill    *refill // the issue waits for a value from another line (refill.go)
}

func (a *heldIssue) less(b *heldIssue) bool {
	if a.file != b.file {
		return a.file < b.file
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	return a.seq < b.seq
}

// issueHeap is a max-heap holding the MaxIssues smallest issues seen.
type issueHeap []heldIssue

func (h issueHeap) Len() int           { return len(h) }
func (h issueHeap) Less(i, j int) bool { return h[j].less(&h[i]) }
func (h issueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *issueHeap) Push(x any)        { *h = append(*h, x.(heldIssue)) }
func (h *issueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// issue records one issue of the current file.
func (c *Checker) issue(line int, column string, value []byte, code string, sev Severity, msg string) {
	c.issueRefill(line, column, value, code, sev, msg, nil)
}

// issueRefill records an issue whose value or message can be completed
// after the pass (see refill); rf nil is issue.
func (c *Checker) issueRefill(line int, column string, value []byte, code string, sev Severity, msg string, rf *refill) {
	c.counts[code]++
	if sev == SeverityError {
		c.errors++
		c.cur.Errors++
		if c.inRow && line >= c.rowStart || line <= 0 {
			c.rowErr = true
		} else {
			c.flagRow(line) // an earlier row (the first of a duplicate)
		}
	} else {
		c.warnings++
		c.cur.Warnings++
	}
	c.seq++
	h := heldIssue{
		Issue:  Issue{File: c.file, Line: line, Column: column, Value: cut(value), Code: code, Severity: sev, Message: msg},
		file:   c.nfile,
		seq:    c.seq,
		refill: rf,
	}
	if len(c.held) < MaxIssues {
		heap.Push(&c.held, h)
		return
	}
	if h.less(&c.held[0]) {
		c.held[0] = h
		heap.Fix(&c.held, 0)
	}
}

// Issues returns the first MaxIssues issues of the batch in file order
// (the order of the calls), then line order.
func (c *Checker) Issues() []Issue {
	held := make([]heldIssue, len(c.held))
	copy(held, c.held)
	sort.Slice(held, func(i, j int) bool { return held[i].less(&held[j]) })
	out := make([]Issue, len(held))
	for i := range held {
		out[i] = held[i].Issue
	}
	return out
}

// IssueCounts returns the number of issues by code, all of them, listed or
// not.
func (c *Checker) IssueCounts() map[string]int {
	m := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		m[k] = v
	}
	return m
}

// Errors returns the number of errors found so far in the batch.
func (c *Checker) Errors() int { return c.errors }

// Warnings returns the number of warnings found so far in the batch.
func (c *Checker) Warnings() int { return c.warnings }

// SeverityOf returns the severity that issues with code always have.
func SeverityOf(code string) Severity {
	switch code {
	case CodeUnnamedColumn, CodeIgnoredColumn, CodeNoRows, CodeDateFormat, CodeDuplicateMember:
		return SeverityWarning
	}
	return SeverityError
}

// msgf is fmt.Sprintf for messages: a string or []byte argument printed
// with %q appears in plain double quotes, cut to 80 characters, on one
// line, without Go escapes (an admin reads "Lead "Ops"", not "Lead \"Ops\"").
func msgf(format string, args ...any) string {
	for i, a := range args {
		switch x := a.(type) {
		case []byte:
			args[i] = quoted(x)
		case string:
			args[i] = quoted(x)
		}
	}
	return fmt.Sprintf(format, args...)
}

type quoted []byte

func (q quoted) Format(f fmt.State, verb rune) {
	if verb != 'q' {
		f.Write(q)
		return
	}
	s := strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ").Replace(cut(q))
	io.WriteString(f, `"`+s+`"`)
}
