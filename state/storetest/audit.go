package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

func auditEvents(recs []state.AuditRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Event)
	}
	return out
}

func testAuditAppendAndPage(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "beta")
	// Records of organizations that do not exist are skipped; times that
	// go back do not make ids go back.
	err := s.AppendAudit([]state.AuditRecord{
		{Org: "acme", Time: t0, Event: "e1"},
		{Org: "nope", Time: t0, Event: "x"},
		{Org: "beta", Time: t0, Event: "b1"},
		{Org: "acme", Time: t0.Add(-time.Hour), Event: "e2"},
		{Org: "", Time: t0, Event: "x"},
		{Org: "acme", Time: t0.Add(time.Second), Event: "e3"},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit([]state.AuditRecord{{Org: "acme", Time: t0, Event: "e4"}, {Org: "acme", Time: t0.Add(time.Minute), Event: "e5"}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(nil, 0); err != nil {
		t.Errorf("AppendAudit(nil) = %v", err)
	}
	all, err := s.AuditRecords("acme", "", 0, state.OldestFirst)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"e1", "e2", "e3", "e4", "e5"}, auditEvents(all)); diff != "" {
		t.Fatalf("AuditRecords(acme, oldest first) mismatch (-want +got):\n%s", diff)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Errorf("ids not ascending: %s then %s", all[i-1].ID, all[i].ID)
		}
	}
	for _, r := range all {
		if r.Org != "acme" || r.ID == "" {
			t.Errorf("record %+v; want Org acme and an ID", r)
		}
	}
	if !all[1].Time.Equal(t0.Add(-time.Hour)) {
		t.Errorf("e2's Time = %v; want the time given, %v", all[1].Time, t0.Add(-time.Hour))
	}
	ids := func(i int) string { return all[i].ID }
	for _, tc := range []struct {
		after string
		limit int
		order state.AuditOrder
		want  []string
	}{
		{"", 2, state.OldestFirst, []string{"e1", "e2"}},
		{ids(1), 2, state.OldestFirst, []string{"e3", "e4"}},
		{ids(4), 0, state.OldestFirst, nil},
		{"", 0, state.NewestFirst, []string{"e5", "e4", "e3", "e2", "e1"}},
		{"", 2, state.NewestFirst, []string{"e5", "e4"}},
		{ids(3), 2, state.NewestFirst, []string{"e3", "e2"}},
		{ids(0), 2, state.NewestFirst, nil},
		// after need not be a stored id.
		{ids(2) + "0", 0, state.OldestFirst, []string{"e4", "e5"}},
		{ids(2) + "0", 0, state.NewestFirst, []string{"e3", "e2", "e1"}},
		{"~", 0, state.NewestFirst, []string{"e5", "e4", "e3", "e2", "e1"}},
		{"0", 1, state.OldestFirst, []string{"e1"}},
	} {
		got, err := s.AuditRecords("acme", tc.after, tc.limit, tc.order)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, auditEvents(got)); diff != "" {
			t.Errorf("AuditRecords(acme, %q, %d, %v) mismatch (-want +got):\n%s", tc.after, tc.limit, tc.order, diff)
		}
	}
	if got, err := s.AuditRecords("beta", "", 0, state.NewestFirst); err != nil || !cmp.Equal([]string{"b1"}, auditEvents(got)) {
		t.Errorf("AuditRecords(beta) = %v, %v; want b1", got, err)
	}
	if _, err := s.AuditRecords("nope", "", 0, state.NewestFirst); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("AuditRecords(nope) = %v; want ErrNotFound", err)
	}
}

func testAuditKeep(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme", "beta")
	var recs []state.AuditRecord
	for i := range 5 {
		recs = append(recs, state.AuditRecord{Org: "acme", Time: t0.Add(time.Duration(i) * time.Second), Event: fmt.Sprintf("a%d", i)})
	}
	recs = append(recs, state.AuditRecord{Org: "beta", Time: t0, Event: "b0"})
	if err := s.AppendAudit(recs, 3); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditRecords("acme", "", 0, state.OldestFirst)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a2", "a3", "a4"}, auditEvents(got)); diff != "" {
		t.Errorf("after appending 5 with keep 3 (-want +got):\n%s", diff)
	}
	if err := s.AppendAudit([]state.AuditRecord{{Org: "acme", Time: t0, Event: "a5"}}, 3); err != nil {
		t.Fatal(err)
	}
	got, _ = s.AuditRecords("acme", "", 0, state.OldestFirst)
	if diff := cmp.Diff([]string{"a3", "a4", "a5"}, auditEvents(got)); diff != "" {
		t.Errorf("after one more with keep 3 (-want +got):\n%s", diff)
	}
	// A larger bound keeps what is there and more.
	if err := s.AppendAudit([]state.AuditRecord{{Org: "acme", Time: t0, Event: "a6"}}, 10); err != nil {
		t.Fatal(err)
	}
	got, _ = s.AuditRecords("acme", "", 0, state.OldestFirst)
	if diff := cmp.Diff([]string{"a3", "a4", "a5", "a6"}, auditEvents(got)); diff != "" {
		t.Errorf("after one more with keep 10 (-want +got):\n%s", diff)
	}
	if got, _ := s.AuditRecords("beta", "", 0, state.OldestFirst); len(got) != 1 {
		t.Errorf("beta's records = %v; want its one, untouched by acme's bound", got)
	}
}

func testAuditFields(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	want := state.AuditRecord{
		Org: "acme", Time: t0, Event: "upload", RemoteAddr: "192.0.2.7:51234", KeyFP: "SHA256:abc", Session: "s-1",
		File: "users.csv", Target: "users.csv.tmp", Bytes: 1 << 33, SHA256: "e3b0c442", Duration: 1500 * time.Millisecond,
		Reason: "quota «exceeded»", SetupLink: "sl_1",
	}
	if err := s.AppendAudit([]state.AuditRecord{want}, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditRecords("acme", "", 0, state.OldestFirst)
	if err != nil || len(got) != 1 {
		t.Fatalf("AuditRecords = %v, %v; want one record", got, err)
	}
	want.ID = got[0].ID
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("record mismatch (-want +got):\n%s", diff)
	}
}
