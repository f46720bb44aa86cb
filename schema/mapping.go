package schema

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Mapping is how an organization's exports are read when they do not use
// the column names and values of SPEC §4 ("Exports as they come"): a source
// header is read as a canonical column, kept as a custom attribute under
// another name, or dropped; status values are read as active or inactive;
// employment_start_date is read in the organization's date format.
//
// It is applied where the header is read: a mapped column is read exactly
// as a column whose header is its target, so a mapped file costs per row
// what a canonical one costs. Two things cost per row, and only when set:
// a status value is looked up in the value map (a map lookup, no
// allocation), and a date is converted to YYYY-MM-DD on the reading
// goroutine, into the chunk's own buffer.
//
// A nil *Mapping reads files as they come. A Mapping never changes after
// NewMapping and is safe for concurrent use.
type Mapping struct {
	cols    map[string]mapTarget // by the source's key: trimmed, lower case
	status  map[string]bool      // by the value in lower case: active
	date    *dateLayout
	columns map[string]string // as given, for reports
	values  map[string]string
	groups  []groupRule // groups_from_columns (derive.go)
}

// mapTarget is what one source column becomes.
type mapTarget struct {
	source string // as written in the setting, trimmed
	how    mapHow
	name   string // the canonical column (lower case) or the custom attribute's name
}

type mapHow int

const (
	mapColumn mapHow = iota // read as a canonical column
	mapCustom               // kept as a custom attribute under name
	mapDrop                 // dropped
)

// The targets other than a column name, as written in a mapping.
const (
	// CustomPrefix starts a target that keeps the column as a custom
	// attribute under the name after it ("custom:cost_center").
	CustomPrefix = "custom:"
	// Drop is the target of a column that is not read at all.
	Drop = "drop"
)

// canonicalColumns are the column names of the three files, lower case.
var canonicalColumns = func() map[string]bool {
	m := map[string]bool{}
	for _, roles := range []map[string]int{userRoles, memberRoles, groupRoles} {
		for k := range roles {
			m[k] = true
		}
	}
	return m
}()

// MappingError lists what is wrong with a mapping, each problem naming
// the setting (columns, status_values, date_format) and the names at
// fault.
type MappingError struct {
	Problems []string
}

func (e *MappingError) Error() string { return strings.Join(e.Problems, "; ") }

// NewMapping checks and compiles a mapping: columns maps source headers to
// a canonical column name (of any of the three files), to CustomPrefix+NAME
// or to Drop; statusValues maps status values to active or inactive (or
// another status word of SPEC §4); dateFormat is "" (YYYY-MM-DD), an
// order of YYYY, MM and DD with one of / . - or a space between them or
// nothing (MM/DD/YYYY, DD.MM.YYYY, YYYYMMDD), or "excel" (Excel's serial
// day numbers). Sources and values match like column names: trimmed,
// ignoring case. It returns nil for an empty mapping, and a *MappingError
// naming every problem: a target that is not a column, two sources onto
// one column, a source given twice. groups is the setting
// groups_from_columns (see GroupColumn), checked against columns: a column
// that cannot make groups, one listed twice, an empty template or one
// without {value} is a problem too.
func NewMapping(columns, statusValues map[string]string, dateFormat string, groups ...GroupColumn) (*Mapping, error) {
	if len(columns) == 0 && len(statusValues) == 0 && strings.TrimSpace(dateFormat) == "" && len(groups) == 0 {
		return nil, nil
	}
	m := &Mapping{columns: maps.Clone(columns), values: maps.Clone(statusValues)}
	var probs []string
	if len(columns) > 0 {
		m.cols = make(map[string]mapTarget, len(columns))
		onto := map[string][]string{}
		for _, src := range sortedKeys(columns) {
			s := strings.TrimSpace(strings.TrimPrefix(src, "\uFEFF"))
			key := strings.ToLower(s)
			if s == "" {
				probs = append(probs, "columns: a column without a name cannot be mapped")
				continue
			}
			if prev, dup := m.cols[key]; dup {
				probs = append(probs, fmt.Sprintf("columns: %q and %q are the same column (names match ignoring case): map it once", prev.source, s))
				continue
			}
			t, why := parseTarget(s, columns[src])
			if why != "" {
				probs = append(probs, why)
				continue
			}
			m.cols[key] = t
			if t.how != mapDrop {
				k := t.name
				if t.how == mapCustom {
					k = CustomPrefix + strings.ToLower(t.name)
				} else if k == "state" {
					k = "status"
				}
				onto[k] = append(onto[k], s)
			}
		}
		for _, k := range sortedKeys(onto) {
			if srcs := onto[k]; len(srcs) > 1 {
				all := "all"
				if len(srcs) == 2 {
					all = "both"
				}
				probs = append(probs, fmt.Sprintf("columns: %s are %s mapped onto %s: a column can be read from one source only", quoteList(srcs), all, k))
			}
		}
	}
	if len(statusValues) > 0 {
		m.status = make(map[string]bool, len(statusValues))
		seen := map[string]string{}
		for _, v := range sortedKeys(statusValues) {
			s := strings.TrimSpace(v)
			key := string(appendLower(nil, []byte(s)))
			if prev, dup := seen[key]; dup {
				probs = append(probs, fmt.Sprintf("status_values: %q and %q are the same value (values match ignoring case): map it once", prev, s))
				continue
			}
			seen[key] = s
			if len(key) > maxStatusLen {
				probs = append(probs, fmt.Sprintf("status_values: %q is longer than %d characters", s, maxStatusLen))
				continue
			}
			to := strings.TrimSpace(statusValues[v])
			active, known := statusOf([]byte(to))
			if !known || to == "" {
				probs = append(probs, fmt.Sprintf("status_values: %q is mapped onto %q, which is not a status: use active or inactive", s, to))
				continue
			}
			m.status[key] = active
		}
	}
	if f := strings.TrimSpace(dateFormat); f != "" {
		l, ok := parseDateLayout(f)
		if !ok {
			probs = append(probs, fmt.Sprintf("date_format: %q is not a date format: use MM/DD/YYYY, DD/MM/YYYY, DD.MM.YYYY, YYYYMMDD (any order of YYYY, MM and DD, with one of / . - or a space between them, or nothing) or excel for Excel's day numbers", f))
		} else {
			m.date = l
		}
	}
	probs = append(probs, m.compileGroups(groups)...)
	if len(probs) > 0 {
		return nil, &MappingError{Problems: probs}
	}
	return m, nil
}

// maxStatusLen bounds a status value: longer ones are never looked up.
const maxStatusLen = 64

// parseTarget reads the target of source s.
func parseTarget(s, to string) (mapTarget, string) {
	to = strings.TrimSpace(to)
	t := mapTarget{source: s}
	switch lower := strings.ToLower(to); {
	case lower == Drop:
		t.how = mapDrop
	case strings.HasPrefix(lower, CustomPrefix):
		t.how = mapCustom
		t.name = strings.TrimSpace(to[len(CustomPrefix):])
		switch {
		case t.name == "":
			return t, fmt.Sprintf("columns: %q is mapped onto %q: write the custom attribute's name after %s", s, to, CustomPrefix)
		case canonicalColumns[strings.ToLower(t.name)]:
			return t, fmt.Sprintf("columns: %q is mapped onto %q, but %s is a column's name: map it onto %s instead", s, to, strings.ToLower(t.name), strings.ToLower(t.name))
		}
	case canonicalColumns[lower]:
		t.how, t.name = mapColumn, lower
	default:
		msg := fmt.Sprintf("columns: %q is mapped onto %q, which is not a column of users.csv, user_groups.csv or groups.csv", s, to)
		if near := nearColumn(lower); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		msg += fmt.Sprintf(`; to keep it as a custom attribute write "%s%s", to leave it out write "%s"`, CustomPrefix, to, Drop)
		return t, msg
	}
	return t, ""
}

// nearColumn returns the canonical column that name spells when case,
// spaces and punctuation are ignored, or "".
func nearColumn(name string) string {
	w := squash(name)
	for _, c := range slices.Sorted(maps.Keys(canonicalColumns)) {
		if squash(c) == w {
			return c
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	ks := slices.Collect(maps.Keys(m))
	sort.Strings(ks)
	return ks
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 2 {
		return q[0] + " and " + q[1]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// Columns returns the column mapping as it was given (nil for none). The
// map must not be changed.
func (m *Mapping) Columns() map[string]string {
	if m == nil {
		return nil
	}
	return m.columns
}

// StatusValues returns the status value map as it was given (nil for
// none). The map must not be changed.
func (m *Mapping) StatusValues() map[string]string {
	if m == nil {
		return nil
	}
	return m.values
}

// DateFormat returns the date format of employment_start_date as it was
// given, normalized ("MM/DD/YYYY", "excel"), or "" for YYYY-MM-DD.
func (m *Mapping) DateFormat() string {
	if m == nil || m.date == nil {
		return ""
	}
	return m.date.name
}

// Sources returns the source headers mapped onto the canonical column
// name (lower case), in the order of their names.
func (m *Mapping) Sources(name string) []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, t := range m.cols {
		if t.how == mapColumn && (t.name == name || t.name == "state" && name == "status" || t.name == "status" && name == "state") {
			out = append(out, t.source)
		}
	}
	sort.Strings(out)
	return out
}

// statusOf reads a status value with the organization's value map first,
// then the words of SPEC §4. It does not allocate.
func (m *Mapping) statusOf(v []byte) (active, known bool) {
	if m != nil && m.status != nil && len(v) <= maxStatusLen {
		var buf [2 * maxStatusLen]byte
		if a, ok := m.status[string(appendLower(buf[:0], v))]; ok {
			return a, true
		}
	}
	return statusOf(v)
}

// statusHint is the end of an invalid_status message under a value map.
func (m *Mapping) statusHint() string {
	if m == nil || len(m.values) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m.values))
	for _, v := range sortedKeys(m.values) {
		parts = append(parts, fmt.Sprintf("%q as %s", strings.TrimSpace(v), strings.ToLower(strings.TrimSpace(m.values[v]))))
	}
	return "; the organization's settings also read " + strings.Join(parts, ", ")
}

// ColumnRead says how one column of a file was read under a mapping: the
// source header as written and what it was read as, in the mapping's
// syntax: a canonical column name, CustomPrefix+NAME or Drop.
type ColumnRead struct {
	File   string `json:"file"`
	Column string `json:"column"`
	ReadAs string `json:"read_as"`
}

// readAs describes how column col was read, for ColumnRead.
func (col column) readAs() string {
	switch col.role {
	case roleDropped:
		return Drop
	case roleCustom:
		return CustomPrefix + col.attr
	case roleIgnored:
		return Drop
	}
	return col.key
}

// target returns what the source column with key (trimmed, lower case)
// becomes, if the mapping names it.
func (m *Mapping) target(key string) (mapTarget, bool) {
	if m == nil || m.cols == nil {
		return mapTarget{}, false
	}
	t, ok := m.cols[key]
	return t, ok
}

// quoteOr quotes names and joins them with "or".
func quoteOr(names []string) string {
	q := make([]string, len(names))
	for i, s := range names {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// String describes the mapping in a stable form (sorted), the same for
// the same settings: "" for nil.
func (m *Mapping) String() string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	for _, k := range sortedKeys(m.columns) {
		fmt.Fprintf(&b, "column %q=%q;", k, m.columns[k])
	}
	for _, k := range sortedKeys(m.values) {
		fmt.Fprintf(&b, "status %q=%q;", k, m.values[k])
	}
	fmt.Fprintf(&b, "date %q", m.DateFormat())
	for _, g := range m.groups {
		fmt.Fprintf(&b, ";groups %q %q %q", g.key, strings.Join(g.tmpl, ValueMarker), g.sep)
	}
	return b.String()
}
