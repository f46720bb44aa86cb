package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// runCLI runs the command line in process and returns its exit code,
// standard output and standard error.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	code = exitCode(err, &errOut)
	return code, out.String(), errOut.String()
}

// walk calls fn for every command under c with the words that name it.
func walk(c *command, words []string, fn func(c *command, words []string)) {
	fn(c, words)
	for _, s := range c.subs {
		walk(s, append(words[:len(words):len(words)], s.leafName()), fn)
	}
}

// TestEveryCommandHelp: every command and subcommand answers -h, --help
// and `rosterd help ...` on standard output with exit 0, and its help
// says what it does, how to call it, its flags and an example. A group
// called without a subcommand, and a command missing its arguments,
// print the usage on standard error and exit 2.
func TestEveryCommandHelp(t *testing.T) {
	walk(rootCommand(), nil, func(c *command, words []string) {
		name := strings.Join(words, " ")
		t.Run("rosterd "+name, func(t *testing.T) {
			usage := strings.TrimSpace("usage: rosterd " + name)
			if c.about == "" || c.example == "" || c.summary == "" {
				t.Fatalf("rosterd %s: give the command a summary, an about text and an example, like the others in its tree", name)
			}
			var first string
			for _, h := range []string{"-h", "--help"} {
				code, out, errOut := runCLI(t, "", append(words[:len(words):len(words)], h)...)
				if code != 0 || errOut != "" {
					t.Errorf("rosterd %s %s = exit %d, stderr %q; want 0 and nothing on stderr", name, h, code, errOut)
				}
				if !strings.HasPrefix(out, usage) {
					t.Errorf("rosterd %s %s starts %q; want %q", name, h, firstLine(out), usage)
				}
				for _, want := range []string{"\nExamples:\n  ", "\n\n" + firstLine(c.about)} {
					if !strings.Contains(out, want) {
						t.Errorf("rosterd %s %s lacks %q:\n%s", name, h, want, out)
					}
				}
				if c.setup != nil {
					fs := flag.NewFlagSet(name, flag.ContinueOnError)
					c.setup(fs)
					fs.VisitAll(func(f *flag.Flag) {
						if !strings.Contains(out, "\n  --"+f.Name) {
							t.Errorf("rosterd %s %s does not list --%s:\n%s", name, h, f.Name, out)
						}
					})
				}
				for _, s := range c.subs {
					if !strings.Contains(out, "\n  "+s.leafName()+" ") {
						t.Errorf("rosterd %s %s does not list %s:\n%s", name, h, s.leafName(), out)
					}
				}
				first = out
			}
			if code, out, _ := runCLI(t, "", append([]string{"help"}, words...)...); code != 0 || out != first {
				t.Errorf("rosterd help %s = exit %d\n%s\nwant exit 0 and the same as -h", name, code, out)
			}
			if len(c.subs) > 0 || c.minArgs > 0 {
				code, out, errOut := runCLI(t, "", words...)
				if code != 2 || out != "" || !strings.Contains(errOut, usage) {
					t.Errorf("rosterd %s = exit %d, stdout %q, stderr %q; want exit 2 and the usage on stderr", name, code, out, errOut)
				}
			}
		})
	})
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestUsageErrors: command-line mistakes exit 2 with a message that says
// what is wrong, on standard error, before any daemon is asked.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"nope"}, `unknown command "nope": want one of serve, validate, plan, org`},
		{[]string{"--nope"}, "unknown flag --nope"},
		{[]string{"org", "nope"}, `rosterd org: unknown command "nope": want one of add, list, remove, show, set`},
		{[]string{"org", "--data", dir, "list"}, `flags go after the command, as in "rosterd org list --data"`},
		{[]string{"org", "add"}, "rosterd org add: missing arguments: want ORG"},
		{[]string{"org", "add", "a", "b"}, `too many arguments ["a" "b"]`},
		{[]string{"org", "list", "--nope"}, "rosterd org list: unknown flag --nope"},
		{[]string{"org", "set", "acme"}, "missing arguments: want ORG KEY=VALUE..."},
		{[]string{"key", "remove", "acme"}, "missing arguments: want ORG FINGERPRINT"},
		{[]string{"batch", "show", "acme"}, "missing arguments: want ORG BATCH"},
		{[]string{"plan", "users.csv"}, "rosterd plan: --org ORG is required"},
		{[]string{"plan", "--org", "acme", "--kind", "staff", "users.csv"}, `--kind "staff": want users, user_groups or groups`},
		{[]string{"serve", "extra"}, `rosterd serve: takes no arguments, got ["extra"]`},
		{[]string{"version", "--nope"}, "rosterd version: unknown flag --nope"},
		{[]string{"--log-format", "json", "org", "list"}, "rosterd org list: --log-format does not apply to this command"},
		{[]string{"help", "org", "nope"}, `no command "org nope"`},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, "", tt.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.want) {
			t.Errorf("rosterd %q = exit %d, stdout %q, stderr %q; want exit 2 and %q on stderr", tt.args, code, out, errOut, tt.want)
		}
	}
}

// TestCommonFlagsBeforeCommand: --data, --http-addr, --config and
// --log-format may come before the command, and reach it as if given
// after it.
func TestCommonFlagsBeforeCommand(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "people.csv")
	os.WriteFile(users, []byte("user_id,email,first_name,last_name\nE1,a@example.com,A,B\n"), 0o600)
	fromConfig := filepath.Join(dir, "from-config")
	cfg := filepath.Join(dir, "rosterd.toml")
	os.WriteFile(cfg, []byte("data = \""+fromConfig+"\"\n"), 0o600)
	noDaemon := "no rosterd daemon is running (no http_addr in data directory "
	tests := []struct {
		args []string
		code int
		want string // in stdout or stderr
	}{
		{[]string{"--data", dir, "org", "list"}, 2, noDaemon + dir},
		{[]string{"--data=" + dir, "batch", "list", "acme"}, 2, noDaemon + dir},
		{[]string{"--data", dir, "status"}, 2, noDaemon + dir},
		{[]string{"--config", cfg, "org", "show", "acme"}, 2, noDaemon + fromConfig},
		{[]string{"--config", cfg, "--data", dir, "key", "list", "acme"}, 2, noDaemon + dir},
		{[]string{"--data", dir, "validate", "--kind", "users", users}, 0, "VALID"},
		{[]string{"--data", dir, "version"}, 0, "rosterd "},
		{[]string{"--version"}, 0, "rosterd "},
		{[]string{"-v"}, 0, "rosterd "},
	}
	for _, tt := range tests {
		t.Setenv("ROSTERD_DATA", "")
		t.Setenv("ROSTERD_CONFIG", "")
		t.Setenv("ROSTERD_HTTP_ADDR", "")
		code, out, errOut := runCLI(t, "", tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("rosterd %q = exit %d\n%s%s\nwant exit %d and %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
}

func TestParseSettings(t *testing.T) {
	effective := map[string]any{
		"users_patterns": []any{}, "delete_threshold_percent": 20.0, "delete_threshold_count": 10.0,
		"inactive_users": "keep", "settle": "10s", "flag": false, "groups_from_columns": []any{},
	}
	tests := []struct {
		pairs   []string
		want    string // the JSON object, or "" for an error
		wantErr string
	}{
		{[]string{"inactive_users=delete"}, `{"inactive_users":"delete"}`, ""},
		{[]string{"users_patterns=users_*.csv, Workday*.csv,"}, `{"users_patterns":["users_*.csv","Workday*.csv"]}`, ""},
		{[]string{`users_patterns=["a,b.csv"]`}, `{"users_patterns":["a,b.csv"]}`, ""},
		{[]string{"users_patterns=[1]"}, "", "is not a JSON array of strings"},
		{[]string{"groups_from_columns=department_name, work_address_locality"}, `{"groups_from_columns":["department_name","work_address_locality"]}`, ""},
		{[]string{`groups_from_columns=[{"column": "department_name", "template": "Dept: {value}"}, "groups"]`},
			`{"groups_from_columns":[{"column":"department_name","template":"Dept: {value}"},"groups"]}`, ""},
		{[]string{`groups_from_columns=[{"column": "x"}, 2]`}, "", "is not a JSON array of strings"},
		{[]string{"delete_threshold_percent=35.5", "delete_threshold_count=50"}, `{"delete_threshold_count":50,"delete_threshold_percent":35.5}`, ""},
		{[]string{"delete_threshold_count=many"}, "", `delete_threshold_count: "many" is not a number`},
		{[]string{"delete_threshold_count=0x10"}, "", "is not a number"},
		{[]string{"settle=30s", "settle="}, `{"settle":null}`, ""},
		{[]string{"users_patterns="}, `{"users_patterns":null}`, ""},
		{[]string{"flag=yes"}, "", "is not true or false"},
		{[]string{"flag=true"}, `{"flag":true}`, ""},
		{[]string{"inactive_users"}, "", `"inactive_users" is not KEY=VALUE`},
		{[]string{"=x"}, "", "is not KEY=VALUE"},
		{[]string{"nope=1"}, "", `unknown setting "nope": the settings are delete_threshold_count, delete_threshold_percent, flag, groups_from_columns, inactive_users, settle, users_patterns`},
	}
	for _, tt := range tests {
		got, err := parseSettings(tt.pairs, effective)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSettings(%q) = %v, %v; want error %q", tt.pairs, got, err, tt.wantErr)
			}
			continue
		}
		b, _ := json.Marshal(got)
		if err != nil || string(b) != tt.want {
			t.Errorf("parseSettings(%q) = %s, %v; want %s", tt.pairs, b, err, tt.want)
		}
	}
}

func TestWriteFlagsListsDefaults(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("name", "acme", "the `ORG` to use")
	fs.Bool("json", false, "print JSON")
	fs.Int("n", 0, "a count")
	var b bytes.Buffer
	writeFlags(&b, fs)
	want := "\nFlags:\n  --json\n      print JSON\n  --n int\n      a count\n  --name ORG\n      the ORG to use (default acme)\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("writeFlags (-want +got):\n%s", diff)
	}
}

func TestSettingText(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{nil, "-"}, {[]any{}, "-"}, {[]any{"a*.csv", "b?.csv"}, "a*.csv,b?.csv"}, {20.0, "20"}, {35.5, "35.5"},
		{"keep", "keep"}, {"bad\x1b[31m", `bad\x1b[31m`}, {true, "true"},
	} {
		if got := settingText(tt.v); got != tt.want {
			t.Errorf("settingText(%#v) = %q; want %q", tt.v, got, tt.want)
		}
	}
}

// TestBatchFailureEscaped: a failed run's last error names files, whose
// names come from uploads: batch list and batch show render its control
// characters visibly, like every other value they echo.
func TestBatchFailureEscaped(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	b := batchView{ID: "B1", Status: "processing", Attempts: 2, RetryAt: &at,
		LastError: "archive users\x1b[2J.csv: no space left on device"}
	var show bytes.Buffer
	if err := printBatchReport(&show, b, false); err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string]string{"batch list": changeSummary(b), "batch show": show.String()} {
		if strings.Contains(got, "\x1b") || !strings.Contains(got, `users\x1b[2J.csv`) {
			t.Errorf("%s = %q; want the escape rendered as \\x1b", what, got)
		}
	}
}
