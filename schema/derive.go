package schema

import (
	"bytes"
	"fmt"
	"strings"
)

// GroupColumn is one entry of the organization setting
// groups_from_columns (SPEC §4, groups derived from users.csv): a users.csv
// column whose values are group memberships.
//
// Column is the column's name after the organization's column mapping:
// one of the optional known columns of users.csv (department_name,
// work_address_locality, …) or a custom attribute's name (a header the
// mapping does not name, or a mapping's custom:NAME), matched ignoring
// case. Template names the group, {value} standing for the value
// ("Department: {value}"); nil means the value itself. Separator, when
// not empty, splits a value into several groups ("Sales; EMEA" with ";").
type GroupColumn struct {
	Column    string  `json:"column"`
	Template  *string `json:"template,omitempty"`
	Separator string  `json:"separator,omitempty"`
}

// ValueMarker is the part of a GroupColumn's template that stands for the
// column's value.
const ValueMarker = "{value}"

// groupRule is a compiled GroupColumn.
type groupRule struct {
	given GroupColumn
	key   string   // the column, trimmed, lower case
	tmpl  []string // the template split at ValueMarker (at least two parts)
	sep   []byte
}

// appendName appends the name of the group of value v.
func (g *groupRule) appendName(dst, v []byte) []byte {
	for i, part := range g.tmpl {
		if i > 0 {
			dst = append(dst, v...)
		}
		dst = append(dst, part...)
	}
	return dst
}

// userColumnsOnly are the users.csv columns that cannot make groups: they
// identify the person or say whether they are active.
var userColumnsOnly = map[string]bool{
	"user_id": true, "email": true, "first_name": true, "last_name": true, "status": true, "state": true,
}

// compileGroups checks and compiles groups_from_columns against the
// mapping's columns (already compiled in m.cols). It returns the
// problems, each naming the setting.
func (m *Mapping) compileGroups(groups []GroupColumn) []string {
	var probs []string
	customs := map[string]bool{} // the custom attributes the mapping makes
	for _, t := range m.cols {
		if t.how == mapCustom {
			customs[strings.ToLower(t.name)] = true
		}
	}
	seen := map[string]string{}
	for _, g := range groups {
		name := strings.TrimSpace(g.Column)
		key := strings.ToLower(name)
		if name == "" {
			probs = append(probs, "groups_from_columns: an entry names no column: name a column of users.csv, such as department_name")
			continue
		}
		if prev, dup := seen[key]; dup {
			if prev == name {
				probs = append(probs, fmt.Sprintf("groups_from_columns: %q is listed twice: list each column once", name))
			} else {
				probs = append(probs, fmt.Sprintf("groups_from_columns: %q and %q are the same column (names match ignoring case): list it once", prev, name))
			}
			continue
		}
		seen[key] = name
		if why := m.groupColumnProblem(name, key, customs); why != "" {
			probs = append(probs, "groups_from_columns: "+why)
			continue
		}
		r := groupRule{given: g, key: key, tmpl: []string{"", ""}, sep: []byte(g.Separator)}
		if g.Template != nil {
			t := strings.TrimSpace(*g.Template)
			switch {
			case t == "":
				probs = append(probs, fmt.Sprintf(`groups_from_columns: the template of %s is empty: leave it out to name each group by the value itself, or write one such as "Department: {value}"`, name))
				continue
			case !strings.Contains(t, ValueMarker):
				probs = append(probs, fmt.Sprintf(`groups_from_columns: the template %q of %s has no %s, so everyone would be in the one group %q: write %s where the value goes, such as "Department: {value}"`, t, name, ValueMarker, t, ValueMarker))
				continue
			}
			r.tmpl = strings.Split(t, ValueMarker)
		}
		m.groups = append(m.groups, r)
	}
	return probs
}

// groupColumnProblem says why the column name (key: lower case) cannot
// make groups, or "".
func (m *Mapping) groupColumnProblem(name, key string, customs map[string]bool) string {
	if _, known := userRoles[key]; known && !userColumnsOnly[key] {
		return ""
	}
	switch {
	case userColumnsOnly[key]:
		return fmt.Sprintf("%s identifies the person or their status, not a group: name an optional column of users.csv, such as department_name, or a custom attribute", key)
	case canonicalColumns[key]:
		return fmt.Sprintf("%s is a column of user_groups.csv or groups.csv, not of users.csv", key)
	case customs[key]:
		return ""
	}
	if t, ok := m.target(key); ok {
		switch t.how {
		case mapDrop:
			return fmt.Sprintf("the column %q is dropped by the columns mapping, so it makes no groups: map it onto a column or a custom attribute instead", name)
		case mapCustom:
			return fmt.Sprintf("the column %q is kept as the custom attribute %s by the columns mapping: name %s", name, t.name, t.name)
		}
		return fmt.Sprintf("the column %q is read as %s by the columns mapping: name %s", name, t.name, t.name)
	}
	if near := nearColumn(key); near != "" {
		if _, user := userRoles[near]; user {
			return fmt.Sprintf("%q is not a column of users.csv (did you mean %s?); to derive groups from a header written %q, map it onto %s in columns and name %s here", name, near, name, near, near)
		}
	}
	return "" // a custom attribute
}

// GroupColumns returns the setting groups_from_columns as it was given
// (nil for none). The slice must not be changed.
func (m *Mapping) GroupColumns() []GroupColumn {
	if m == nil || len(m.groups) == 0 {
		return nil
	}
	out := make([]GroupColumn, len(m.groups))
	for i, g := range m.groups {
		out[i] = g.given
	}
	return out
}

// DerivesGroups reports whether the mapping derives groups from users.csv
// columns: the memberships of a batch then come with its users file.
func (m *Mapping) DerivesGroups() bool { return m != nil && len(m.groups) > 0 }

// GroupsDerived counts the memberships derived from one column of
// groups_from_columns in a batch.
type GroupsDerived struct {
	GroupColumn
	// Memberships are the distinct memberships this column gave (one
	// that an earlier column of the setting also gave counts there).
	Memberships int `json:"memberships"`
}

// GroupsDerived returns, for each column of the mapping's
// groups_from_columns in the order of the setting, how many memberships
// the batch's users file gave. It is nil when the mapping derives no
// groups or the batch had no users file.
func (c *Checker) GroupsDerived() []GroupsDerived {
	if !c.mapping.DerivesGroups() || !c.haveUsers {
		return nil
	}
	out := make([]GroupsDerived, len(c.mapping.groups))
	for i, g := range c.mapping.groups {
		out[i].GroupColumn = g.given
		if i < len(c.derivedCount) {
			out[i].Memberships = c.derivedCount[i]
		}
	}
	return out
}

// groupColumns finds the column of each rule of groups_from_columns in the
// users file's header: an optional known column or a custom attribute of
// that name. A rule whose column the header lacks is an error: read
// without it, the file would end every membership the column gave.
func (c *Checker) groupColumns(s *scan) {
	c.ruleCols = c.ruleCols[:0]
	c.derivedCount = make([]int, len(c.mapping.groups))
	for _, g := range c.mapping.groups {
		at := -1
		for i, col := range s.cols {
			if col.role >= uKnown && col.key == g.key || col.role == roleCustom && strings.EqualFold(col.attr, g.key) {
				at = i
				break
			}
		}
		c.ruleCols = append(c.ruleCols, at)
		if at < 0 {
			name := strings.TrimSpace(g.given.Column)
			msg := fmt.Sprintf("the organization's settings (groups_from_columns) derive groups from the column %s, which this file does not have: read without it, the file would end every membership it gave", name)
			if srcs := c.mapping.Sources(g.key); len(srcs) > 0 {
				msg += msgf("; the organization's mapping reads %s as %s, and the header has no such column either", quoteOr(srcs), g.key)
			}
			c.issue(1, name, nil, CodeMissingColumn, SeverityError, msg+". Add the column to the export, or change the setting")
		}
	}
}

// derive adds the memberships that the current row of the users file
// gives through groups_from_columns: each value of each rule's column
// (split on the rule's separator, trimmed, empty ones left out) named by
// the rule's template. A membership the row gives twice counts once. The
// row's user is the last user_id added to c.userIDs. c.derived holds the
// row's group names afterwards, in the order of the setting.
func (c *Checker) derive(s *scan) {
	c.derived = c.derived[:0]
	if len(c.ruleCols) == 0 {
		return
	}
	rec := s.rec
	m := &c.members
	order := c.userIDs.order
	i := len(order) - 1
	if len(m.heads) < len(order) {
		m.heads = append(m.heads, make([]int32, len(order)-len(m.heads))...)
	}
	head, user := &m.heads[i], order[i]
	for r, at := range c.ruleCols {
		if at < 0 {
			continue
		}
		g := &c.mapping.groups[r]
		v := rec.value(at)
		for len(v) > 0 {
			part := v
			if len(g.sep) > 0 {
				if j := bytes.Index(v, g.sep); j >= 0 {
					part, v = v[:j], v[j+len(g.sep):]
				} else {
					v = nil
				}
			} else {
				v = nil
			}
			start, end := trimField(part, 0, len(part))
			if start == end {
				continue // an empty value makes no group
			}
			c.nameBuf = g.appendName(c.nameBuf[:0], part[start:end])
			num := c.groupNumber(c.nameBuf)
			if _, dup := c.addMemberTo(head, user, num, derivedLine); dup {
				continue
			}
			c.stats.Memberships++
			c.derivedCount[r]++
			c.derived = append(c.derived, c.groupText(num, c.nameBuf))
		}
	}
}

// derivedLine is the line memberSet keeps for a derived membership: a
// user_groups.csv row that repeats one is joined with it without a
// warning (SPEC §4: derived memberships join those of user_groups.csv).
const derivedLine = 0
