package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

type auditPage struct {
	Data         []AuditView `json:"data"`
	ListMetadata struct {
		After *string `json:"after"`
	} `json:"list_metadata"`
}

func TestListAudit(t *testing.T) {
	srv, db := dirTestServer(t, Config{})
	for _, o := range []string{"acme", "globex"} {
		if err := db.CreateOrg(state.Org{Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	var recs []state.AuditRecord
	for i := range 5 {
		recs = append(recs, state.AuditRecord{Org: "acme", Time: t0.Add(time.Duration(i) * time.Second), Event: "upload",
			File: fmt.Sprintf("f%d.csv", i), Bytes: int64(i), SHA256: "e3b0", Duration: 1500 * time.Microsecond, KeyFP: "SHA256:k"})
	}
	recs = append(recs, state.AuditRecord{Org: "globex", Time: t0, Event: "session.start"})
	if err := db.AppendAudit(recs, 0); err != nil {
		t.Fatal(err)
	}

	files := func(p auditPage) []string {
		var out []string
		for _, v := range p.Data {
			out = append(out, v.File)
		}
		return out
	}
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"", []string{"f4.csv", "f3.csv", "f2.csv", "f1.csv", "f0.csv"}},
		{"?order=asc", []string{"f0.csv", "f1.csv", "f2.csv", "f3.csv", "f4.csv"}},
	} {
		var got []string
		path := "/v1/organizations/acme/audit" + tt.query
		sep := "?"
		if tt.query != "" {
			sep = "&"
		}
		cursor := ""
		for range 10 {
			var p auditPage
			q := path + sep + "limit=2"
			if cursor != "" {
				q += "&after=" + cursor
			}
			if st := dirGet(t, srv, "GET", q, &p); st != http.StatusOK {
				t.Fatalf("GET %s = %d; want 200", q, st)
			}
			got = append(got, files(p)...)
			if p.ListMetadata.After == nil {
				break
			}
			if len(p.Data) != 2 {
				t.Fatalf("GET %s: a page of %d with a next cursor; want 2", q, len(p.Data))
			}
			cursor = *p.ListMetadata.After
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("pages of %s = %q; want %q", path, got, tt.want)
		}
	}

	var p auditPage
	dirGet(t, srv, "GET", "/v1/organizations/acme/audit?limit=1", &p)
	want := AuditView{Object: "audit_record", ID: p.Data[0].ID, OrganizationID: "acme", Time: "2026-11-22T01:02:07.000Z",
		Event: "upload", KeyFP: "SHA256:k", File: "f4.csv", Bytes: p.Data[0].Bytes, SHA256: "e3b0", DurationMS: 1.5}
	if p.Data[0].Bytes == nil || *p.Data[0].Bytes != 4 || p.Data[0] != want {
		t.Errorf("newest record = %+v; want %+v with bytes 4", p.Data[0], want)
	}
	var g auditPage
	if dirGet(t, srv, "GET", "/v1/organizations/globex/audit", &g); len(g.Data) != 1 || g.Data[0].Event != "session.start" || g.Data[0].Bytes != nil {
		t.Errorf("globex audit = %+v; want its session only, without bytes", g.Data)
	}

	var e errorBody
	for path, want := range map[string]int{
		"/v1/organizations/nope/audit":            http.StatusNotFound,
		"/v1/organizations/acme/audit?limit=0":    http.StatusBadRequest,
		"/v1/organizations/acme/audit?order=up":   http.StatusBadRequest,
		"/v1/organizations/acme/audit?limit=1001": http.StatusBadRequest,
	} {
		if st := dirGet(t, srv, "GET", path, &e); st != want || e.Error.Code == "" {
			t.Errorf("GET %s = %d %+v; want %d and an error body", path, st, e, want)
		}
	}
}
