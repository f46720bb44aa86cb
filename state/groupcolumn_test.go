package state

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGroupColumnJSON checks the two forms of a groups_from_columns
// entry, and that an object with an unknown field is refused.
func TestGroupColumnJSON(t *testing.T) {
	dept := "Department: {value}"
	empty := ""
	tests := []struct {
		in      string
		want    []GroupColumn
		wantErr string
	}{
		{`["department_name"]`, []GroupColumn{{Column: "department_name"}}, ""},
		{`[{"column": "department_name", "template": "Department: {value}"}, {"column": "groups", "separator": ";"}]`,
			[]GroupColumn{{Column: "department_name", Template: &dept}, {Column: "groups", Separator: ";"}}, ""},
		{`[{"column": "x", "template": ""}]`, []GroupColumn{{Column: "x", Template: &empty}}, ""},
		{`[{"column": "x", "prefix": "D"}]`, nil, `unknown field "prefix"`},
		{`[1]`, nil, "cannot unmarshal"},
	}
	for _, tt := range tests {
		var got []GroupColumn
		err := json.Unmarshal([]byte(tt.in), &got)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Unmarshal(%s) = %v; want an error with %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Unmarshal(%s) = %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Unmarshal(%s) (-want +got):\n%s", tt.in, diff)
		}
	}
}
