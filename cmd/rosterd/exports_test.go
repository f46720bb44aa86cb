package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// TestValidateExports checks an export offline the ways a customer does
// before the organization's settings are set: with a --mapping file, and
// compressed with gzip and zip (the real tools make the files).
func TestValidateExports(t *testing.T) {
	gz := sftptest.LookPath(t, "gzip")
	zipBin := sftptest.LookPath(t, "zip")
	dir := t.TempDir()
	ex := "../../examples/exports/bamboohr/"
	data, err := os.ReadFile(ex + "users.csv")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "users.csv"), data, 0o644)
	out, err := exec.Command(gz, "-c", filepath.Join(dir, "users.csv")).Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "users.csv.gz"), out, 0o644)
	os.WriteFile(filepath.Join(dir, "user_groups.csv"), []byte("group_name,user_id\nSales,1001\n"), 0o644)
	zc := exec.Command(zipBin, "-q", "export.zip", "users.csv", "user_groups.csv")
	zc.Dir = dir
	if out, err := zc.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v %s", err, out)
	}
	badMapping := filepath.Join(dir, "bad.toml")
	os.WriteFile(badMapping, []byte("[columns]\n\"Employee #\" = \"userid\"\n"), 0o644)
	unknownKey := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknownKey, []byte("date_fromat = \"MM/DD/YYYY\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "users.csv.gpg"), []byte("x"), 0o644)
	tests := []struct {
		name string
		args []string
		code int // -1 = valid
		out  string
	}{
		{"bamboohr without its mapping", []string{ex + "users.csv"}, 1, "the header has no user_id column"},
		{"bamboohr with its mapping", []string{"--mapping", ex + "mapping.toml", ex + "users.csv"}, -1, `users.csv "Employee #"         read as user_id`},
		{"gzipped", []string{"--mapping", ex + "mapping.toml", filepath.Join(dir, "users.csv.gz")}, -1, "users.csv.gz → users.csv (users): 6 rows"},
		{"zipped", []string{"--mapping", ex + "mapping.toml", filepath.Join(dir, "export.zip")}, -1, "export.zip → user_groups.csv (user_groups)"},
		{"a bad mapping", []string{"--mapping", badMapping, ex + "users.csv"}, 2, ""},
		{"an unknown key", []string{"--mapping", unknownKey, ex + "users.csv"}, 2, ""},
		{"encrypted", []string{filepath.Join(dir, "users.csv.gpg")}, 2, ""},
		{"groups from columns", []string{"--mapping", "../../examples/exports/hr-groups/mapping.toml", "../../examples/exports/hr-groups/users.csv", "../../examples/exports/hr-groups/groups.csv"},
			-1, `teams, named by the value, values split on ";": 8 memberships`},
		{"both sources", []string{"--mapping", ex + "mapping.toml", "--org", "acme", ex + "users.csv"}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runValidate(context.Background(), tt.args, &stdout, &stderr)
			code := -1
			var ec *ExitCodeError
			if errors.As(err, &ec) {
				code = ec.Code
			} else if err != nil {
				t.Fatalf("runValidate(%q) = %v", tt.args, err)
			}
			if code != tt.code || !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("runValidate(%q) = exit %d (%v); want %d with %q\nstdout:\n%s", tt.args, code, err, tt.code, tt.out, stdout.String())
			}
			if tt.name == "a bad mapping" && !strings.Contains(err.Error(), `"Employee #" is mapped onto "userid"`) {
				t.Errorf("bad mapping error %q does not name the entry", err)
			}
			if tt.name == "encrypted" && !strings.Contains(err.Error(), "rosterd plan --org ORG FILE") {
				t.Errorf("encrypted file error %q does not say what to do", err)
			}
		})
	}
}

// TestMappingFileGroups checks groups_from_columns in a --mapping file:
// an entry is a column's name or a table, and what the mapping refuses,
// or a key of no setting, is an error naming it.
func TestMappingFileGroups(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string // column|template|separator; nil = an error
		err        string
	}{
		{"names", `groups_from_columns = ["department_name", "work_address_locality"]`, []string{"department_name|<nil>|", "work_address_locality|<nil>|"}, ""},
		{"tables", "[[groups_from_columns]]\ncolumn = \"department_name\"\ntemplate = \"Department: {value}\"\n" +
			"[[groups_from_columns]]\ncolumn = \"groups\"\nseparator = \";\"\n",
			[]string{"department_name|Department: {value}|", "groups|<nil>|;"}, ""},
		{"mixed inline", `groups_from_columns = ["division_name", {column = "Team", template = "Team {value}"}]`, []string{"division_name|<nil>|", "Team|Team {value}|"}, ""},
		{"template without the value", `groups_from_columns = [{column = "department_name", template = "Staff"}]`, nil, `the template "Staff" of department_name has no {value}`},
		{"unknown key in an entry", `groups_from_columns = [{column = "department_name", prefix = "D"}]`, nil, "unknown key prefix"},
		{"not a name", `groups_from_columns = [3]`, nil, "an entry must be a column's name or a table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mapping.toml")
			os.WriteFile(path, []byte(tt.toml+"\n"), 0o644)
			m, cm, err := readMappingFile(path)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("readMappingFile = %v; want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("readMappingFile = %v", err)
			}
			var got []string
			for _, g := range m.GroupsFromColumns {
				tm := "<nil>"
				if g.Template != nil {
					tm = *g.Template
				}
				got = append(got, g.Column+"|"+tm+"|"+g.Separator)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("groups_from_columns = %q; want %q", got, tt.want)
			}
			if !cm.DerivesGroups() {
				t.Errorf("the compiled mapping derives no groups")
			}
		})
	}
}
