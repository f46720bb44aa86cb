package main

// End-to-end tests of the command line against the real binary and a
// real daemon: what an operator types and reads.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecondDaemonOnSameData starts a second `serve` on a data directory
// that a daemon already runs on: it must say so in one line and exit 1,
// leaving the running daemon and its files alone.
func TestSecondDaemonOnSameData(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	addrBefore, _ := os.ReadFile(filepath.Join(d.Data, fileHTTPAddr))
	out, code := runBinary(t, "", "serve", "--data", d.Data, "--sftp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json")
	want := "rosterd: another rosterd is using " + d.Data
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("second serve on %s = exit %d\n%s\nwant exit 1 and %q", d.Data, code, out, want)
	}
	if strings.Contains(out, "timeout") || strings.Contains(out, `"host key"`) {
		t.Errorf("second serve output = %q; want no bare timeout and nothing done before the lock", out)
	}
	if addr, _ := os.ReadFile(filepath.Join(d.Data, fileHTTPAddr)); string(addr) != string(addrBefore) {
		t.Errorf("http_addr after the second serve = %q; want the running daemon's %q", addr, addrBefore)
	}
	if out, code := d.CLI("", "org", "list"); code != 0 {
		t.Errorf("org list after the second serve = %d %q; want the running daemon to answer", code, out)
	}
}

// placeUsers puts a users.csv with the given rows (after the header) into
// org's folder by rename, as an upload would, and waits for its batch to
// end with status want.
func placeUsers(t *testing.T, d *testDaemon, org string, rows []string, want string) e2eBatch {
	t.Helper()
	before := len(d.batches(org))
	dir := filepath.Join(d.Data, "orgs", org)
	tmp := filepath.Join(dir, ".upload")
	body := "user_id,email,first_name,last_name\n" + strings.Join(rows, "")
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// An old modification time: the watcher takes the file at once.
	old := time.Now().Add(-time.Minute)
	os.Chtimes(tmp, old, old)
	if err := os.Rename(tmp, filepath.Join(dir, "users.csv")); err != nil {
		t.Fatal(err)
	}
	var b e2eBatch
	waitFor(t, 30*time.Second, "batch "+want, func() bool {
		bs := d.batches(org)
		if len(bs) <= before || bs[0].Status == "pending" || bs[0].Status == "processing" {
			return false
		}
		b = bs[0]
		return true
	})
	if b.Status != want {
		t.Fatalf("batch %s = %s; want %s", b.ID, b.Status, want)
	}
	return b
}

// hasLine reports whether out has a line that starts with want's words,
// however the columns are spaced.
func hasLine(out, want string) bool {
	w := strings.Join(strings.Fields(want), " ")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(l), " "), w) {
			return true
		}
	}
	return false
}

func userRows(n int) []string {
	rows := make([]string, n)
	for i := range rows {
		rows[i] = fmt.Sprintf("E%d,u%d@example.com,First%d,Last%d\n", i, i, i, i)
	}
	return rows
}

// TestE2EOperatorCommands drives org show, org set, plan and status
// against a real daemon through the real binary.
func TestE2EOperatorCommands(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	secret := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 24))
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "0s", "--webhook-url", failing.URL + "/hook", "--webhook-secret", secret}})
	key := newClientKey(t)
	if out, code := d.CLI("", "org", "add", "acme", "--key", key+".pub"); code != 0 {
		t.Fatalf("org add = %d %s", code, out)
	}
	applied := placeUsers(t, d, "acme", userRows(12), "applied")

	// org show: settings in force, keys, counts, last batch.
	out, code := d.CLI("", "org", "show", "acme")
	var keys struct {
		Data []struct{ Fingerprint string }
	}
	d.API("GET", "/v1/organizations/acme/keys", nil, &keys)
	for _, want := range []string{
		"Organization: acme",
		"Snapshot: 12 users (12 active), 0 groups, 0 memberships",
		"Last batch: " + applied.ID + " applied, " + applied.CreatedAt.UTC().Format(time.RFC3339) + ", users+12",
		"inactive_users keep default",
		"delete_threshold_percent 20 default",
		"users_patterns - default",
		"settle 0s default",
		"Keys (1):",
		keys.Data[0].Fingerprint + " ssh-ed25519 rosterd demo added",
	} {
		if code != 0 || !hasLine(out, want) {
			t.Errorf("org show acme = %d\n%s\nwant a line %q", code, out, want)
		}
	}
	out, code = d.CLI("", "org", "show", "acme", "--json")
	var shown struct {
		Organization struct {
			ID     string         `json:"id"`
			Counts map[string]int `json:"counts"`
		} `json:"organization"`
		Keys      []map[string]any            `json:"keys"`
		LastBatch struct{ ID, Status string } `json:"last_batch"`
	}
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || shown.Organization.ID != "acme" || shown.Organization.Counts["users"] != 12 ||
		len(shown.Keys) != 1 || shown.LastBatch.ID != applied.ID {
		t.Errorf("org show acme --json = %d %v\n%s", code, err, out)
	}
	if out, code := d.CLI("", "org", "show", "nope"); code != 1 || !strings.Contains(out, "organization nope not found") {
		t.Errorf("org show nope = %d %q; want exit 1, not found", code, out)
	}

	// plan: the headline says what the files would do.
	local := t.TempDir()
	same := filepath.Join(local, "export.csv")
	os.WriteFile(same, []byte("user_id,email,first_name,last_name\n"+strings.Join(userRows(12), "")), 0o600)
	broken := filepath.Join(local, "users_broken.csv")
	os.WriteFile(broken, []byte("user_id,email,first_name,last_name\nE1,nope,A,B\n"), 0o600)
	empty := filepath.Join(local, "users_empty.csv")
	os.WriteFile(empty, []byte("user_id,email,first_name,last_name\n"), 0o600)
	more := filepath.Join(local, "users_more.csv")
	os.WriteFile(more, []byte("user_id,email,first_name,last_name\n"+strings.Join(userRows(13), "")), 0o600)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--kind", "users", same}, 0, "PLAN: these files would change nothing"},
		{[]string{more}, 0, "PLAN: these files would be applied and make the changes below."},
		{[]string{broken}, 1, "PLAN: these files would be rejected: they have 1 error."},
		{[]string{empty}, 0, "PLAN: these files would be held:"},
		{[]string{same}, 2, "cannot tell users, user_groups or groups from the name"},
	} {
		out, code := d.CLI("", append([]string{"plan", "--org", "acme"}, tt.args...)...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("plan %q = %d\n%s\nwant exit %d and %q", tt.args, code, out, tt.code, tt.want)
		}
	}
	if got := len(d.batches("acme")); got != 1 {
		t.Errorf("plans made batches: %d; want the one upload", got)
	}

	// status: listeners, organizations, the held batch, webhook lag.
	held := placeUsers(t, d, "acme", nil, "held")
	var st statusView
	waitFor(t, 30*time.Second, "webhook lag in the status", func() bool {
		out, code := runBinary(t, "", "--data", d.Data, "status", "--json")
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("status --json = %d %s", code, out)
		}
		return len(st.Webhooks) == 1 && st.Webhooks[0].LagSeconds > 0
	})
	out, code = runBinary(t, "", "--data", d.Data, "status")
	for _, want := range []string{
		"rosterd ", ", ready, up ",
		"  sftp  " + d.SFTPAddr + "\n", "  http  " + d.HTTPAddr + "\n",
		"Organizations: 1\n",
		"Batches in progress (1):\n",
		"Webhooks (1):\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status = %d\n%s\nwant %q", code, out, want)
		}
	}
	for _, want := range []string{
		"acme " + held.ID + " held " + held.CreatedAt.UTC().Format(time.RFC3339) + " approval: rosterd batch approve acme " + held.ID,
		st.Webhooks[0].ID + " " + failing.URL + "/hook enabled",
	} {
		if !hasLine(out, want) {
			t.Errorf("status =\n%s\nwant a line %q", out, want)
		}
	}
	if e := st.Webhooks[0]; e.Pending == 0 || len(e.Lag) == 0 || e.Lag[0].Org != "acme" || e.Lag[0].LagSeconds <= 0 {
		t.Errorf("status webhook = %+v; want pending events and acme's lag", e)
	}

	// org set: values by kind, KEY= back to the default, bad input refused.
	out, code = d.CLI("", "org", "set", "acme", "inactive_users=delete", "users_patterns=users_*.csv, staff_*.csv", "delete_threshold_percent=35", "settle=1m")
	for _, want := range []string{"organization acme: settings changed", "inactive_users delete", "users_patterns users_*.csv,staff_*.csv", "delete_threshold_count 10 default"} {
		if code != 0 || !hasLine(out, want) {
			t.Errorf("org set = %d\n%s\nwant a line %q", code, out, want)
		}
	}
	settings := func() string {
		var o struct{ Settings json.RawMessage }
		d.API("GET", "/v1/organizations/acme", nil, &o)
		return compact(o.Settings)
	}
	if got, want := settings(), `{"users_patterns":["users_*.csv","staff_*.csv"],"delete_threshold_percent":35,"inactive_users":"delete","settle":"1m"}`; got != want {
		t.Errorf("settings after org set = %s; want %s", got, want)
	}
	if out, code := d.CLI("", "org", "set", "acme", "settle=", "inactive_users=", "delete_threshold_percent="); code != 0 {
		t.Errorf("org set KEY= = %d %s", code, out)
	}
	if got, want := settings(), `{"users_patterns":["users_*.csv","staff_*.csv"]}`; got != want {
		t.Errorf("settings after org set KEY= = %s; want %s", got, want)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nope=1"}, 2, `unknown setting "nope": the settings are columns, date_format, delete_threshold_count,`},
		{[]string{"delete_threshold_count=many"}, 2, `delete_threshold_count: "many" is not a number`},
		{[]string{"settle=soon"}, 1, `settings.settle: "soon" is not a duration`},
		{[]string{"inactive_users=archive"}, 1, `settings.inactive_users: "archive" is not "keep" or "delete"`},
	} {
		out, code := d.CLI("", append([]string{"org", "set", "acme"}, tt.args...)...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("org set acme %q = %d\n%s\nwant exit %d and %q", tt.args, code, out, tt.code, tt.want)
		}
	}
	if got, want := settings(), `{"users_patterns":["users_*.csv","staff_*.csv"]}`; got != want {
		t.Errorf("settings after refused org set = %s; want them unchanged, %s", got, want)
	}
}
