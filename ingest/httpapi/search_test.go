package httpapi

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

func TestUsersByEmail(t *testing.T) {
	srv, db := dirTestServer(t, Config{})
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	seedDirectory(t, db, "acme")
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"email=u007@example.com", []string{"u007"}},
		{"email=U042@Example.COM", []string{"u042"}},
		{"email=u003@example.com&state=active", nil}, // u003 is inactive
		{"email=nobody@example.com", nil},
	} {
		var p dirPage
		if st := dirGet(t, srv, "GET", "/v1/organizations/acme/users?"+tc.query, &p); st != http.StatusOK {
			t.Fatalf("users?%s = %d", tc.query, st)
		}
		var got []string
		for _, u := range p.Data {
			got = append(got, u.ID)
		}
		if len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
			t.Errorf("users?%s = %v; want %v", tc.query, got, tc.want)
		}
	}
}

func TestEventsSince(t *testing.T) {
	srv, db := dirTestServer(t, Config{})
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	applySnapshot(t, db, "acme", func(a *state.ApplyTx) error {
		_, err := a.Emit(state.EventUserCreated, []byte(`{"object":"directory_user","id":"u1"}`))
		return err
	})
	var p struct{ Data []map[string]any }
	for _, tc := range []struct {
		since string
		n     int
	}{{before.UTC().Format(time.RFC3339), 1}, {time.Now().Add(time.Hour).UTC().Format(time.RFC3339), 0}} {
		p.Data = nil
		if st := dirGet(t, srv, "GET", "/v1/events?since="+url.QueryEscape(tc.since), &p); st != http.StatusOK || len(p.Data) != tc.n {
			t.Errorf("events?since=%s = %d, %d events; want %d", tc.since, st, len(p.Data), tc.n)
		}
	}
	if st := dirGet(t, srv, "GET", "/v1/events?since=yesterday", nil); st != http.StatusBadRequest {
		t.Errorf("events?since=yesterday = %d; want 400", st)
	}
}
