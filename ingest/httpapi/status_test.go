package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

func TestStatus(t *testing.T) {
	started := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	listeners := []Listener{{"sftp", "127.0.0.1:2022"}, {"http", "127.0.0.1:8080"}}
	srv, db := dirTestServer(t, Config{Daemon: func() DaemonInfo {
		return DaemonInfo{Version: "v1.2.3", StartedAt: started, Listeners: listeners}
	}})
	for _, org := range []string{"acme", "globex"} {
		if err := db.CreateOrg(state.Org{Name: org}); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range []state.Batch{
		{ID: "B1", Org: "acme", Status: state.BatchApplied},
		{ID: "B2", Org: "acme", Status: state.BatchHeld},
		{ID: "B3", Org: "globex", Status: state.BatchProcessing},
	} {
		b.CreatedAt = started.Add(time.Duration(i) * time.Minute)
		if _, err := db.CreateBatch(b); err != nil {
			t.Fatal(err)
		}
	}
	var st Status
	if code := dirGet(t, srv, "GET", "/v1/status", &st); code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d", code)
	}
	var batches []string
	for _, b := range st.Batches {
		batches = append(batches, b.Org+"/"+b.ID+":"+b.Status)
	}
	got := struct {
		Object, Version string
		StartedAt       time.Time
		Listeners       []Listener
		Ready           bool
		Orgs            int
		Batches         []string
		Webhooks        int
	}{st.Object, st.Version, st.StartedAt, st.Listeners, st.Ready, st.Organizations, batches, len(st.Webhooks)}
	want := got
	want.Object, want.Version, want.StartedAt, want.Listeners, want.Ready = "status", "v1.2.3", started, listeners, true
	want.Orgs, want.Batches, want.Webhooks = 2, []string{"acme/B2:held", "globex/B3:processing"}, 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /v1/status (-want +got):\n%s", diff)
	}
	if code := dirGet(t, srv, "GET", "/v1/status", nil); code != http.StatusOK {
		t.Errorf("second GET /v1/status = %d", code)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/status without the token = %d; want 401", resp.StatusCode)
	}
}

// TestOrganizationDetail: one organization's answer carries the settings
// in force (its own, else the defaults) and the snapshot's counts; the
// list does not.
func TestOrganizationDetail(t *testing.T) {
	srv, db := dirTestServer(t, Config{})
	dirSend(t, srv, "POST", "/v1/organizations", `{"name":"acme","settings":{"inactive_users":"delete","users_patterns":["users_*.csv"]}}`, nil)
	seedDirectory(t, db, "acme")
	var o Organization
	if code := dirGet(t, srv, "GET", "/v1/organizations/acme", &o); code != http.StatusOK {
		t.Fatalf("GET acme = %d", code)
	}
	wantEff := EffectiveSettings{
		UsersPatterns: []string{"users_*.csv"}, UserGroupsPatterns: []string{}, GroupsPatterns: []string{},
		DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "delete", Settle: "10s",
		StorageQuota: 10 << 30, // ingest.DefaultStorageQuota
		Columns:      map[string]string{}, StatusValues: map[string]string{}, GroupsFromColumns: []state.GroupColumn{},
	}
	if o.EffectiveSettings == nil || o.Counts == nil {
		t.Fatalf("GET acme = %+v; want effective_settings and counts", o)
	}
	if diff := cmp.Diff(wantEff, *o.EffectiveSettings); diff != "" {
		t.Errorf("effective_settings (-want +got):\n%s", diff)
	}
	want, err := db.SnapshotCounts("acme")
	if err != nil || want.Users == 0 {
		t.Fatalf("SnapshotCounts = %+v, %v; want the seeded users", want, err)
	}
	if *o.Counts != want {
		t.Errorf("counts = %+v; want %+v", *o.Counts, want)
	}
	var patched Organization
	dirSend(t, srv, "PATCH", "/v1/organizations/acme", `{"settings":{"settle":"0s","inactive_users":null}}`, &patched)
	if e := patched.EffectiveSettings; e == nil || e.Settle != "0s" || e.InactiveUsers != "keep" {
		t.Errorf("PATCH answer effective_settings = %+v; want settle 0s, inactive_users keep", e)
	}
	var list struct{ Data []Organization }
	dirGet(t, srv, "GET", "/v1/organizations", &list)
	if len(list.Data) != 1 || list.Data[0].EffectiveSettings != nil || list.Data[0].Counts != nil {
		t.Errorf("list = %+v; want acme without the detail", list.Data)
	}
}
