package state

import (
	"bytes"
	"encoding/json"
)

// GroupColumn is one entry of Settings.GroupsFromColumns: a users.csv
// column (its name after the organization's column mapping), an optional
// template naming its groups ("Department: {value}"; nil: the value
// itself) and an optional separator of a multi-valued column. It is
// schema.GroupColumn as stored; state imports no rosterd package.
type GroupColumn struct {
	Column    string  `json:"column"`
	Template  *string `json:"template,omitempty"`
	Separator string  `json:"separator,omitempty"`
}

// UnmarshalJSON reads an entry as an object or, for a column with neither
// template nor separator, as the column's name alone ("department_name").
// An object with an unknown field is refused.
func (g *GroupColumn) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '"' {
		*g = GroupColumn{}
		return json.Unmarshal(b, &g.Column)
	}
	type plain GroupColumn
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*g = GroupColumn(p)
	return nil
}
