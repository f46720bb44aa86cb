package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"github.com/rosterd/rosterd/state"
)

// seedUsers applies a snapshot of n users to org.
func seedUsers(t *testing.T, db *state.DB, org string, n int) {
	t.Helper()
	b := state.Batch{ID: "B1", Org: org, Status: state.BatchPending}
	if _, err := db.CreateBatch(b); err != nil {
		t.Fatal(err)
	}
	b.Status = state.BatchApplied
	err := db.ApplyBatch(b, nil, func(a *state.ApplyTx) error {
		for i := range n {
			id := fmt.Sprintf("E%03d", i)
			js := fmt.Sprintf(`{"object":"directory_user","id":%q,"organization_id":%q,"email":"person%03d@example.com","first_name":"P","last_name":"N%03d","state":"active","custom_attributes":{}}`, id, org, i, i)
			if err := a.PutUser([]byte(id), true, []byte(js)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConsoleOverviewSearchAndDirectory(t *testing.T) {
	ts := newTestServer(t)
	for _, o := range []string{"globex", "initech"} {
		ts.db.CreateOrg(state.Org{Name: o})
	}
	seedUsers(t, ts.db, "acme", 60)
	c := browser(t)
	signIn(t, ts, c, "", testToken)

	_, page, _ := fetch(t, c, "GET", ts.URL+"/console/?q=GLO", nil)
	if !strings.Contains(page, `href="/console/orgs/globex"`) || strings.Contains(page, `href="/console/orgs/acme"`) {
		t.Errorf("search GLO: want globex only:\n%s", page)
	}
	_, page, _ = fetch(t, c, "GET", ts.URL+"/console/", nil)
	if !strings.Contains(page, "3 organizations") {
		t.Errorf("overview does not count 3 organizations")
	}

	for _, tc := range []struct {
		query, want, not string
	}{
		{"", "E000", "E050"},                        // the first page
		{"after=E049", "E050", "E049<"},             // the next
		{"q=person042@EXAMPLE.com", "E042", "E041"}, // by email
		{"q=E007", "person007@example.com", "E008"}, // by id
		{"q=E999", "No user with id E999", "E000"},  // none
		{"kind=groups", "No group.", "E000"},        // groups
	} {
		st, page, _ := fetch(t, c, "GET", ts.URL+"/console/orgs/acme/directory?"+tc.query, nil)
		if st != 200 || !strings.Contains(page, tc.want) || strings.Contains(page, tc.not) {
			t.Errorf("directory?%s = %d; want %q and not %q:\n%s", tc.query, st, tc.want, tc.not, page)
		}
	}
	_, page, _ = fetch(t, c, "GET", ts.URL+"/console/orgs/acme/directory", nil)
	if !strings.Contains(page, "after=E049") {
		t.Errorf("the first page of 60 users has no link to the next")
	}
	for _, p := range []string{"/console/orgs/acme", "/console/orgs/acme/audit", "/console/orgs/acme/events?since=1h", "/console/webhooks"} {
		if st, page, _ := fetch(t, c, "GET", ts.URL+p, nil); st != 200 {
			t.Errorf("GET %s = %d:\n%s", p, st, page)
		}
	}
	if st, _, _ := fetch(t, c, "GET", ts.URL+"/console/orgs/nope", nil); st != http.StatusNotFound {
		t.Errorf("GET /console/orgs/nope = %d; want 404", st)
	}
}

func TestConsoleSettingsGoThroughTheAPI(t *testing.T) {
	ts := newTestServer(t)
	c := browser(t)
	_, csrf := signIn(t, ts, c, "", testToken)
	post := func(form url.Values) string {
		t.Helper()
		form.Set("csrf", csrf)
		st, _, h := fetch(t, c, "POST", ts.URL+"/console/orgs/acme/settings", form)
		if st != http.StatusSeeOther {
			t.Fatalf("POST settings = %d", st)
		}
		_, page, _ := fetch(t, c, "GET", ts.URL+h.Get("Location"), nil)
		return page
	}
	page := post(url.Values{"users_patterns": {"users_*.csv, Workday*.csv"}, "delete_threshold_percent": {"35"}, "inactive_users": {"delete"}, "setup_all_keys": {"yes"}})
	if !strings.Contains(page, "Settings saved.") {
		t.Fatalf("no confirmation:\n%s", page)
	}
	o, _ := ts.db.Org("acme")
	st := o.Settings
	if len(st.UsersPatterns) != 2 || st.UsersPatterns[1] != "Workday*.csv" || st.DeleteThresholdPercent == nil || *st.DeleteThresholdPercent != 35 ||
		st.InactiveUsers != "delete" || st.SetupAllKeys == nil || !*st.SetupAllKeys {
		t.Errorf("stored settings = %+v", st)
	}
	// What the API refuses, the console cannot do: the API's message shows.
	page = post(url.Values{"delete_threshold_percent": {"150"}})
	if !strings.Contains(page, "is not between 0 and 100") {
		t.Errorf("a refused setting does not show the API's message:\n%s", page)
	}
	if o, _ := ts.db.Org("acme"); *o.Settings.DeleteThresholdPercent != 35 {
		t.Errorf("a refused setting changed the stored one to %v", *o.Settings.DeleteThresholdPercent)
	}
	page = post(url.Values{"mode": {"json"}, "settings_json": {`{"settle": "1m", "users_patterns": null}`}})
	if o, _ := ts.db.Org("acme"); o.Settings.Settle != "1m" || o.Settings.UsersPatterns != nil || o.Settings.InactiveUsers != "delete" {
		t.Errorf("settings after the JSON form = %+v:\n%s", o.Settings, page)
	}
}

// TestConsoleGroupsFromColumns sets groups_from_columns with the form's
// rows: a row per entry, an empty template for the value itself; a form
// without the rows leaves the setting alone, and empty rows remove it.
func TestConsoleGroupsFromColumns(t *testing.T) {
	ts := newTestServer(t)
	c := browser(t)
	_, csrf := signIn(t, ts, c, "", testToken)
	post := func(form url.Values) string {
		t.Helper()
		form.Set("csrf", csrf)
		st, _, h := fetch(t, c, "POST", ts.URL+"/console/orgs/acme/settings", form)
		if st != http.StatusSeeOther {
			t.Fatalf("POST settings = %d", st)
		}
		_, page, _ := fetch(t, c, "GET", ts.URL+h.Get("Location"), nil)
		return page
	}
	page := post(url.Values{
		"group_column":    {"department_name", "", "groups"},
		"group_template":  {"Department: {value}", "", ""},
		"group_separator": {"", "", ";"},
	})
	o, _ := ts.db.Org("acme")
	got, _ := json.Marshal(o.Settings.GroupsFromColumns)
	if want := `[{"column":"department_name","template":"Department: {value}"},{"column":"groups","separator":";"}]`; string(got) != want {
		t.Fatalf("stored groups_from_columns = %s; want %s\n%s", got, want, page)
	}
	if !strings.Contains(page, `value="Department: {value}"`) || strings.Count(page, `name="group_column"`) != 4 {
		t.Errorf("the form does not show the two entries and two blank rows:\n%s", page)
	}
	page = post(url.Values{"group_column": {"department_name"}, "group_template": {"Staff"}, "group_separator": {""}})
	if !strings.Contains(page, "has no {value}") {
		t.Errorf("a template without {value} does not show the API's message:\n%s", page)
	}
	post(url.Values{"inactive_users": {"delete"}})
	if o, _ := ts.db.Org("acme"); len(o.Settings.GroupsFromColumns) != 2 {
		t.Errorf("a form without the rows changed groups_from_columns to %+v", o.Settings.GroupsFromColumns)
	}
	post(url.Values{"group_column": {"", ""}, "group_template": {"", ""}, "group_separator": {"", ""}})
	if o, _ := ts.db.Org("acme"); o.Settings.GroupsFromColumns != nil {
		t.Errorf("empty rows left groups_from_columns %+v; want it removed", o.Settings.GroupsFromColumns)
	}
}

func TestSetupPageKeyRotation(t *testing.T) {
	ts := newTestServer(t)
	var link struct{ URL string }
	if err := ts.webCall("POST", "/v1/organizations/acme/setup_links", map[string]any{}, &link); err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	old, cur := sftptest.GenerateKey(t, t.TempDir(), "old"), sftptest.GenerateKey(t, t.TempDir(), "new")
	for _, k := range []sftptest.Key{old, cur} {
		if st, _, _ := fetch(t, c, "POST", link.URL+"/keys", url.Values{"public_key": {string(k.AuthorizedKey)}}); st != http.StatusSeeOther {
			t.Fatalf("add key = %d", st)
		}
	}
	oldFP, curFP := ssh.FingerprintSHA256(old.Public), ssh.FingerprintSHA256(cur.Public)
	if st, _, _ := fetch(t, c, "POST", link.URL+"/keys/remove", url.Values{"fingerprint": {oldFP}}); st != http.StatusSeeOther {
		t.Fatalf("remove key = %d", st)
	}
	_, page, _ := fetch(t, c, "GET", link.URL, nil)
	if strings.Contains(page, `<code class="fp">`+oldFP) || !strings.Contains(page, `<code class="fp">`+curFP) {
		t.Errorf("after rotation the page lists the old key or lacks the new one")
	}
	if ok, _ := ts.db.HasKey("acme", oldFP); ok {
		t.Error("the old key is still stored")
	}
	if ok, _ := ts.db.HasKey("acme", curFP); !ok {
		t.Error("the new key is gone")
	}
}

// webCall is an API request with the API token.
func (ts *testServer) webCall(method, path string, body, out any) error {
	s := &Server{cfg: Config{API: ts.Config.Handler}}
	r, _ := http.NewRequest("GET", ts.URL, nil)
	return s.send(r, testToken, method, path, body, out)
}

func TestSessionsExpire(t *testing.T) {
	ss := newSessions(time.Hour)
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	ss.now = func() time.Time { return now }
	s := ss.create("op")
	if ss.get(s.id) == nil {
		t.Fatal("a new session is not found")
	}
	now = now.Add(time.Hour)
	if ss.get(s.id) != nil {
		t.Error("a session is still live at its expiry")
	}
	s2 := ss.create("op")
	ss.end(s2.id)
	if ss.get(s2.id) != nil {
		t.Error("a session is live after sign-out")
	}
}

func TestSigninLimiter(t *testing.T) {
	ts := newTestServer(t)
	for i := range signinFailures {
		if st, _ := signIn(t, ts, browser(t), "", "wrong"); st != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d; want 401", i+1, st)
		}
	}
	// Now even the right token is refused from this address, for a while.
	if st, _ := signIn(t, ts, browser(t), "", testToken); st != http.StatusTooManyRequests {
		t.Errorf("sign-in after %d failures = %d; want 429", signinFailures, st)
	}
	l := newSigninLimiter()
	now := time.Now()
	l.now = func() time.Time { return now }
	for range signinFailures {
		l.failed("192.0.2.1")
	}
	if l.allowed("192.0.2.1") || !l.allowed("192.0.2.2") {
		t.Error("the limit is not per address")
	}
	now = now.Add(signinWindow + time.Second)
	if !l.allowed("192.0.2.1") {
		t.Error("the limit does not end after the window")
	}
}
