package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunValidate(t *testing.T) {
	dir := t.TempDir()
	people := filepath.Join(dir, "people.csv")
	os.WriteFile(people, []byte("user_id,email,first_name,last_name\nE1,a@x.com,A,B\n"), 0o644)
	ex := "../../examples/csv/"
	csvOut := filepath.Join(dir, "issues.csv")
	narrow := filepath.Join(dir, "narrow.toml")
	os.WriteFile(narrow, []byte("[limits]\nmax_columns = 3\n"), 0o644)
	badConfig := filepath.Join(dir, "bad.toml")
	os.WriteFile(badConfig, []byte("[limits]\nmax_colums = 3\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int    // -1 = nil error
		out  string // in stdout
	}{
		{"valid set", []string{ex + "valid/users.csv", ex + "valid/groups.csv", ex + "valid/user_groups.csv"}, -1, "VALID: the files can be uploaded"},
		{"invalid", []string{ex + "broken/duplicates/users.csv"}, 1, `user_id "E1007" also appears on line 5`},
		{"json after file", []string{ex + "broken/duplicates/users.csv", "--json"}, 1, `"status": "invalid"`},
		{"kind from flag", []string{"--kind", "users", people}, -1, "people.csv (users)"},
		{"kind unknown", []string{people}, 2, ""},
		{"bad kind", []string{"--kind", "staff", people}, 2, ""},
		{"no files", nil, 2, ""},
		{"missing file", []string{filepath.Join(dir, "users.csv")}, 2, ""},
		{"two users files", []string{ex + "valid/users.csv", ex + "broken/duplicates/users.csv"}, 2, ""},
		{"unknown flag", []string{"--nope", people}, 2, ""},
		{"issues csv", []string{"--issues-csv", csvOut, ex + "broken/bad-rows/users.csv"}, 1, "NOT VALID"},
		{"config limits", []string{"--config", narrow, "--kind", "users", people}, 1, "at most 3 are allowed"},
		{"bad config", []string{"--config", badConfig, "--kind", "users", people}, 2, ""},
		{"data accepted", []string{"--data", dir, "--kind", "users", people}, -1, "VALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runValidate(context.Background(), tt.args, &stdout, &stderr)
			code := -1
			if err != nil {
				var ec *ExitCodeError
				if !errors.As(err, &ec) {
					t.Fatalf("runValidate(%q) = %v; want an *ExitCodeError", tt.args, err)
				}
				code = ec.Code
			}
			if code != tt.code {
				t.Errorf("runValidate(%q) exit code %d (%v); want %d\nstderr: %s", tt.args, code, err, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("runValidate(%q) stdout lacks %q:\n%s", tt.args, tt.out, stdout.String())
			}
		})
	}
	data, err := os.ReadFile(csvOut)
	if err != nil || !bytes.Contains(data, []byte("invalid_email")) {
		t.Errorf("issues CSV = %q, %v; want the issues", data, err)
	}
	var stdout bytes.Buffer
	runValidate(context.Background(), []string{"--json", ex + "valid/users.csv"}, &stdout, &bytes.Buffer{})
	var rep struct {
		Version int    `json:"version"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || rep.Version != 1 || rep.Status != "valid" {
		t.Errorf("--json output = %+v, %v", rep, err)
	}
}
