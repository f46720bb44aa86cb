package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// t0 is a time in whole microseconds, which both stores keep exactly.
var t0 = time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC)

func mustCreateOrg(t *testing.T, s Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := s.CreateOrg(state.Org{Name: n}); err != nil {
			t.Fatalf("CreateOrg(%s): %v", n, err)
		}
	}
}

// orgNames returns the names of orgs.
func orgNames(orgs []state.Org) []string {
	var out []string
	for _, o := range orgs {
		out = append(out, o.Name)
	}
	return out
}

// within fails t unless got is between before and after (to the
// microsecond).
func within(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	if got.Before(before.Truncate(time.Microsecond)) || got.After(after) {
		t.Errorf("%s = %v; want between %v and %v", what, got, before, after)
	}
}

func testOrgCreateAndList(t *testing.T, h Harness, s Store) {
	before := time.Now()
	// Byte order, as bbolt's keys: "-" < "2" < "_" < "a"; a language's
	// collation puts "_" before digits.
	mustCreateOrg(t, s, "zeta", "acme2", "acme", "acme-2", "acme_2", "beta")
	after := time.Now()
	if err := s.CreateOrg(state.Org{Name: "acme"}); !errors.Is(err, state.ErrExists) {
		t.Errorf("CreateOrg(acme) again = %v; want ErrExists", err)
	}
	all, err := s.Orgs("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"acme", "acme-2", "acme2", "acme_2", "beta", "zeta"}, orgNames(all)); diff != "" {
		t.Errorf("Orgs(\"\", 0) names mismatch (-want +got):\n%s", diff)
	}
	for _, o := range all {
		within(t, "CreatedAt of "+o.Name, o.CreatedAt, before, after)
	}
	for _, tc := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 2, []string{"acme", "acme-2"}},
		{"acme-2", 2, []string{"acme2", "acme_2"}},
		{"acme2", 2, []string{"acme_2", "beta"}},
		{"acme-", 1, []string{"acme-2"}}, // after need not be a name
		{"beta", 0, []string{"zeta"}},
		{"beta", -1, []string{"zeta"}},
		{"zeta", 5, nil},
	} {
		got, err := s.Orgs(tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, orgNames(got)); diff != "" {
			t.Errorf("Orgs(%q, %d) mismatch (-want +got):\n%s", tc.after, tc.limit, diff)
		}
	}
	if n, err := s.OrgCount(); err != nil || n != 6 {
		t.Errorf("OrgCount() = %d, %v; want 6", n, err)
	}
	if _, err := s.Org("nope"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Org(nope) = %v; want ErrNotFound", err)
	}
	o, err := s.Org("beta")
	if err != nil || o.Name != "beta" {
		t.Errorf("Org(beta) = %+v, %v; want beta", o, err)
	}
	// A creation time given is kept.
	if err := s.CreateOrg(state.Org{Name: "given", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Org("given"); err != nil || !o.CreatedAt.Equal(t0) {
		t.Errorf("Org(given).CreatedAt = %v, %v; want %v", o.CreatedAt, err, t0)
	}
}

func testOrgSettingsRoundTrip(t *testing.T, h Harness, s Store) {
	pct, count, quota, all, dept := 12.5, 7, int64(1<<40), false, "Department: {value}"
	want := state.Org{Name: "acme", CreatedAt: t0, Settings: state.Settings{
		UsersPatterns:          []string{"people_*.csv", "Users*.CSV"},
		UserGroupsPatterns:     []string{"members.csv"},
		GroupsPatterns:         []string{"teams.csv"},
		DeleteThresholdPercent: &pct,
		DeleteThresholdCount:   &count,
		InactiveUsers:          "delete",
		Settle:                 "1m30s",
		Columns:                map[string]string{"Mail": "email", "Kostenstelle": "custom:cost_center", "x": "drop"},
		StatusValues:           map[string]string{"Aktiv": "active", "Ausgetreten": "inactive"},
		DateFormat:             "02.01.2006",
		GroupsFromColumns:      []state.GroupColumn{{Column: "department_name", Template: &dept}, {Column: "groups", Separator: ";"}},
		PGPKeyFile:             "/etc/rosterd/acme.asc",
		RequireSignature:       true,
		StorageQuota:           &quota,
		SetupAllKeys:           &all,
	}}
	if err := s.CreateOrg(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Org("acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Org(acme) mismatch (-want +got):\n%s", diff)
	}
	// Zero settings stay zero (nil, not empty).
	mustCreateOrg(t, s, "plain")
	got, err = s.Org("plain")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(state.Settings{}, got.Settings); diff != "" {
		t.Errorf("Org(plain).Settings mismatch (-want +got):\n%s", diff)
	}
}

func testUpdateOrg(t *testing.T, h Harness, s Store) {
	if err := s.CreateOrg(state.Org{Name: "acme", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	pct := 50.0
	got, err := s.UpdateOrg("acme", func(o *state.Org) error {
		o.Settings.DeleteThresholdPercent = &pct
		o.Settings.InactiveUsers = "keep"
		o.Name = "renamed" // ignored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := state.Org{Name: "acme", CreatedAt: t0, Settings: state.Settings{DeleteThresholdPercent: &pct, InactiveUsers: "keep"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UpdateOrg(acme) returned mismatch (-want +got):\n%s", diff)
	}
	if stored, err := s.Org("acme"); err != nil || !cmp.Equal(want, stored) {
		t.Errorf("Org(acme) after UpdateOrg = %+v, %v; want %+v", stored, err, want)
	}
	if _, err := s.Org("renamed"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Org(renamed) = %v; want ErrNotFound", err)
	}
	// fn's error aborts the update and is returned.
	boom := errors.New("boom")
	_, err = s.UpdateOrg("acme", func(o *state.Org) error {
		o.Settings.InactiveUsers = "delete"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("UpdateOrg with failing fn = %v; want boom", err)
	}
	if stored, _ := s.Org("acme"); stored.Settings.InactiveUsers != "keep" {
		t.Errorf("after a failed UpdateOrg, InactiveUsers = %q; want keep", stored.Settings.InactiveUsers)
	}
	called := false
	if _, err := s.UpdateOrg("nope", func(*state.Org) error { called = true; return nil }); !errors.Is(err, state.ErrNotFound) || called {
		t.Errorf("UpdateOrg(nope) = %v, fn called %v; want ErrNotFound, not called", err, called)
	}
}

func testDeleteOrg(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "other")
	if err := s.AddKey("acme", state.Key{Fingerprint: "SHA256:a", Type: "ssh-ed25519"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSetupLink(state.SetupLink{ID: "sl_1", Org: "acme", TokenSHA256: "aa", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit([]state.AuditRecord{{Org: "acme", Time: t0, Event: "login"}}, 0); err != nil {
		t.Fatal(err)
	}
	ids := h.Emit(t, s, "acme", "b1", []RawEvent{{state.EventUserCreated, `{"id":"u1"}`}})

	if err := s.DeleteOrg("acme"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOrg("acme"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("DeleteOrg(acme) twice = %v; want ErrNotFound", err)
	}
	if _, err := s.Org("acme"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Org(acme) after DeleteOrg = %v; want ErrNotFound", err)
	}
	if ok, err := s.HasKey("acme", "SHA256:a"); ok || err != nil {
		t.Errorf("HasKey after DeleteOrg = %v, %v; want false", ok, err)
	}
	// The events stay for the consumers.
	if evs, err := s.Events("acme", "", 0); err != nil || len(evs) != 1 || evs[0].ID != ids[0] {
		t.Errorf("Events(acme) after DeleteOrg = %+v, %v; want the one event %s", evs, err, ids[0])
	}
	// A new organization of the same name starts empty: no keys, no
	// links, no audit records.
	mustCreateOrg(t, s, "acme")
	if keys, err := s.Keys("acme"); err != nil || len(keys) != 0 {
		t.Errorf("Keys(acme) of the new acme = %v, %v; want none", keys, err)
	}
	if links, err := s.SetupLinks("acme"); err != nil || len(links) != 0 {
		t.Errorf("SetupLinks(acme) of the new acme = %v, %v; want none", links, err)
	}
	if _, _, err := s.UseSetupLink("aa"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("UseSetupLink of the old acme's link = %v; want ErrNotFound", err)
	}
	if recs, err := s.AuditRecords("acme", "", 0, state.OldestFirst); err != nil || len(recs) != 0 {
		t.Errorf("AuditRecords(acme) of the new acme = %v, %v; want none", recs, err)
	}
	if n, _ := s.OrgCount(); n != 2 {
		t.Errorf("OrgCount() = %d; want 2", n)
	}
}

func testKeys(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "beta")
	k1 := state.Key{Fingerprint: "SHA256:Bbb", Type: "ssh-ed25519", Comment: "hr@acme", PublicKey: "ssh-ed25519 AAAA1", CreatedAt: t0}
	k2 := state.Key{Fingerprint: "SHA256:aaa", Type: "ssh-rsa", Comment: "", PublicKey: "ssh-rsa AAAA2", CreatedAt: t0.Add(time.Second),
		AddedBy: state.KeyAddedBySetupLink, SetupLink: "sl_0123456789abcdef"}
	if keys, err := s.Keys("acme"); err != nil || keys == nil || len(keys) != 0 {
		t.Errorf("Keys(acme) with none = %#v, %v; want an empty, non-nil list", keys, err)
	}
	for _, k := range []state.Key{k1, k2} {
		if err := s.AddKey("acme", k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddKey("acme", k1); !errors.Is(err, state.ErrExists) {
		t.Errorf("AddKey(acme, k1) twice = %v; want ErrExists", err)
	}
	if err := s.AddKey("nope", k1); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("AddKey(nope) = %v; want ErrNotFound", err)
	}
	// The same key may belong to another organization too.
	if err := s.AddKey("beta", k1); err != nil {
		t.Errorf("AddKey(beta, k1) = %v; want nil", err)
	}
	keys, err := s.Keys("acme")
	if err != nil {
		t.Fatal(err)
	}
	// Fingerprint order is byte order: "B" < "a".
	if diff := cmp.Diff([]state.Key{k1, k2}, keys); diff != "" {
		t.Errorf("Keys(acme) mismatch (-want +got):\n%s", diff)
	}
	if _, err := s.Keys("nope"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Keys(nope) = %v; want ErrNotFound", err)
	}
	for _, tc := range []struct {
		org, fp string
		want    bool
	}{
		{"acme", "SHA256:Bbb", true}, {"acme", "SHA256:aaa", true}, {"acme", "SHA256:bbb", false},
		{"beta", "SHA256:aaa", false}, {"nope", "SHA256:Bbb", false},
	} {
		if ok, err := s.HasKey(tc.org, tc.fp); ok != tc.want || err != nil {
			t.Errorf("HasKey(%s, %s) = %v, %v; want %v", tc.org, tc.fp, ok, err, tc.want)
		}
	}
	if err := s.RemoveKey("acme", "SHA256:Bbb"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveKey("acme", "SHA256:Bbb"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("RemoveKey twice = %v; want ErrNotFound", err)
	}
	if err := s.RemoveKey("nope", "SHA256:Bbb"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("RemoveKey(nope) = %v; want ErrNotFound", err)
	}
	if ok, _ := s.HasKey("acme", "SHA256:Bbb"); ok {
		t.Error("HasKey(acme, bbb) after RemoveKey = true")
	}
	if ok, _ := s.HasKey("beta", "SHA256:Bbb"); !ok {
		t.Error("HasKey(beta, bbb) after removing acme's = false")
	}
	// A key added without a time gets the store's.
	before := time.Now()
	if err := s.AddKey("beta", state.Key{Fingerprint: "SHA256:new", Type: "ssh-ed25519"}); err != nil {
		t.Fatal(err)
	}
	keys, _ = s.Keys("beta")
	if len(keys) != 2 || keys[0].Fingerprint != "SHA256:Bbb" || keys[1].Fingerprint != "SHA256:new" {
		t.Fatalf("Keys(beta) = %+v; want bbb, new", keys)
	}
	within(t, "CreatedAt of a new key", keys[1].CreatedAt, before, time.Now())
}
