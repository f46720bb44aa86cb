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
