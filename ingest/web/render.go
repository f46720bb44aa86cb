package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rosterd/rosterd/schema/report"
)

// pages are the parsed templates: one set per page file, each with the
// layout and the partials.
type pages struct {
	sets map[string]*template.Template
}

var funcs = template.FuncMap{
	"visible":   visible,
	"when":      when,
	"size":      size,
	"join":      strings.Join,
	"badge":     badge,
	"path":      pathEscape,
	"changeSum": changeSum,
	"list":      func(v ...string) []string { return v },
	"sentence":  sentence,
	"add":       func(a, b int) int { return a + b },
}

// sentence starts s with a capital letter: the API's messages are
// written to follow a colon, a page shows them on their own.
func sentence(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

func parsePages() (*pages, error) {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{sets: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" || base == "partials.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", n, err)
		}
		p.sets[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

// view is what every page template gets.
type view struct {
	Title string
	// Console selects the console's navigation; Static is where the
	// stylesheet and script are.
	Console bool
	Static  string
	CSRF    string
	Who     string
	Flash   string
	Error   string
	Data    any
}

// render writes the page name with status; a template error is a 500.
func (s *Server) render(w http.ResponseWriter, status int, name string, v view) {
	var buf bytes.Buffer
	t := s.pages.sets[name]
	if t == nil {
		s.log.Error("web: no such page", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("web: render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

// visible shows control characters escaped (\x1b), as reports do
// (SPEC §5), so that nothing in a value is hidden.
func visible(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, `\x%02x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r != '\n' && unicode.IsControl(r) }

// when renders a time (time.Time or *time.Time) in UTC to the minute.
func when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return "never"
		}
		t = *x
	case string:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, x); err != nil {
			return x
		}
	}
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// size renders a byte count.
func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// badge is the CSS class of a batch or link status.
func badge(status string) string {
	switch status {
	case "applied", "unchanged", "valid", "active", "delivered":
		return "badge ok"
	case "held", "pending", "processing", "expired":
		return "badge wait"
	case "rejected", "invalid", "revoked", "failed":
		return "badge bad"
	}
	return "badge"
}

// changeSum says in a few words what a batch changed.
func changeSum(c report.Changes) string {
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{
		{c.UsersCreated, "users added"}, {c.UsersUpdated, "updated"}, {c.UsersDeactivated, "deactivated"}, {c.UsersDeleted, "deleted"},
		{c.GroupsCreated, "groups created"}, {c.GroupsUpdated, "groups updated"}, {c.GroupsDeleted, "groups deleted"},
		{c.MembershipsAdded, "memberships added"}, {c.MembershipsRemoved, "memberships removed"},
	} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, ", ")
}

// reportView is a report (SPEC §5) laid out for a page: the fields every
// report has, and, as tables, any other list the report carries (such as
// the people a held batch would delete).
type reportView struct {
	report.Report
	// OperatorNotes are for the operator's eyes (the console shows them;
	// the API leaves them out of what a setup link reads).
	OperatorNotes []string `json:"operator_notes"`
	Tables        []table
}

// table is a list of objects from a report, with the keys of its objects
// as columns in the order they first appear.
type table struct {
	Title   string
	Columns []string
	Rows    [][]string
}

// knownReportFields are the fields reportView shows on their own.
var knownReportFields = map[string]bool{
	"version": true, "batch_id": true, "organization_id": true, "status": true, "created_at": true, "files": true,
	"counts": true, "changes": true, "issues": true, "issues_total": true, "issue_counts": true, "notes": true,
	"operator_notes": true,
}

// parseReport reads a report's JSON for a page.
func parseReport(raw []byte) (*reportView, error) {
	v := &reportView{}
	if err := json.Unmarshal(raw, &v.Report); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	var op struct {
		Notes []string `json:"operator_notes"`
	}
	json.Unmarshal(raw, &op)
	v.OperatorNotes = op.Notes
	var top []kv
	if err := decodeObject(raw, &top); err != nil {
		return nil, err
	}
	for _, f := range top {
		if !knownReportFields[f.key] {
			v.Tables = append(v.Tables, tablesOf(f.key, f.val, 1)...)
		}
	}
	return v, nil
}

// tablesOf returns the tables in val: itself when it is a list of
// objects, or, depth levels down, the lists of objects among an object's
// fields.
func tablesOf(key string, val json.RawMessage, depth int) []table {
	var items []json.RawMessage
	if json.Unmarshal(val, &items) == nil {
		t := table{Title: title(key)}
		col := map[string]int{}
		for _, it := range items {
			var fields []kv
			if decodeObject(it, &fields) != nil {
				return nil
			}
			row := make([]string, len(t.Columns))
			for _, f := range fields {
				i, ok := col[f.key]
				if !ok {
					i = len(t.Columns)
					col[f.key] = i
					t.Columns = append(t.Columns, f.key)
				}
				for len(row) <= i {
					row = append(row, "")
				}
				row[i] = scalar(f.val)
			}
			t.Rows = append(t.Rows, row)
		}
		for i := range t.Rows {
			for len(t.Rows[i]) < len(t.Columns) {
				t.Rows[i] = append(t.Rows[i], "")
			}
		}
		if len(t.Rows) == 0 {
			return nil
		}
		return []table{t}
	}
	var fields []kv
	if depth == 0 || decodeObject(val, &fields) != nil {
		return nil
	}
	var out []table
	for _, f := range fields {
		out = append(out, tablesOf(key+" "+f.key, f.val, depth-1)...)
	}
	return out
}

type kv struct {
	key string
	val json.RawMessage
}

// decodeObject reads a JSON object's fields in their order.
func decodeObject(raw []byte, out *[]kv) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("not an object")
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*out = append(*out, kv{k.(string), v})
	}
	return nil
}

// scalar renders a JSON value for a table cell.
func scalar(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	if string(v) == "null" {
		return ""
	}
	return string(v)
}

// title turns a JSON key into a heading: "would_delete" -> "Would delete".
func title(key string) string {
	t := strings.ReplaceAll(key, "_", " ")
	if t == "" {
		return t
	}
	return strings.ToUpper(t[:1]) + t[1:]
}
