package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rosterd/rosterd/state"
)

const dirTestToken = "test-token"

// dirTestServer returns a real API server over a real bbolt file.
func dirTestServer(t *testing.T, cfg Config) (*httptest.Server, *state.DB) {
	t.Helper()
	if cfg.DB == nil {
		db, err := state.Open(filepath.Join(t.TempDir(), "rosterd.db"), &state.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		cfg.DB = db
	}
	cfg.Token = dirTestToken
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return srv, cfg.DB.(*state.DB)
}

// dirGet GETs path with the token and decodes the JSON answer into v
// (when not nil); it returns the status.
func dirGet(t *testing.T, srv *httptest.Server, method, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+dirTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

type dirPage struct {
	Data []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Name  string `json:"name"`
	} `json:"data"`
	ListMetadata struct {
		After *string `json:"after"`
	} `json:"list_metadata"`
}

// pageAll follows the cursor of a list with the given limit and returns
// every id in order.
func pageAll(t *testing.T, srv *httptest.Server, path string, limit int) []string {
	t.Helper()
	var ids []string
	after := ""
	for range 10000 {
		sep := "?"
		if slices.Contains([]byte(path), '?') {
			sep = "&"
		}
		var p dirPage
		url := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if after != "" {
			url += "&after=" + after
		}
		if st := dirGet(t, srv, "GET", url, &p); st != http.StatusOK {
			t.Fatalf("GET %s = %d", url, st)
		}
		if len(p.Data) > limit {
			t.Fatalf("GET %s: %d items; limit %d", url, len(p.Data), limit)
		}
		for _, o := range p.Data {
			ids = append(ids, o.ID)
		}
		if p.ListMetadata.After == nil {
			return ids
		}
		after = *p.ListMetadata.After
	}
	t.Fatalf("%s: no last page", path)
	return nil
}

var dirBatch atomic.Int64

// applySnapshot applies one batch to org's snapshot through fn.
func applySnapshot(t testing.TB, db *state.DB, org string, fn func(a *state.ApplyTx) error) {
	t.Helper()
	if err := applySnapshotErr(db, org, fn); err != nil {
		t.Fatal(err)
	}
}

func applySnapshotErr(db *state.DB, org string, fn func(a *state.ApplyTx) error) error {
	b := state.Batch{ID: fmt.Sprintf("D%06d", dirBatch.Add(1)), Org: org, Status: state.BatchPending}
	if _, err := db.CreateBatch(b); err != nil {
		return err
	}
	b.Status = state.BatchApplied
	return db.ApplyBatch(b, nil, fn)
}

func userJSON(org, id string, active bool) []byte {
	st := "active"
	if !active {
		st = "inactive"
	}
	return fmt.Appendf(nil, `{"object":"directory_user","id":%q,"organization_id":%q,"email":"%s@example.com","first_name":"F","last_name":"L","state":%q,"custom_attributes":{}}`, id, org, id, st)
}

func groupJSON(org, id string) []byte {
	return fmt.Appendf(nil, `{"object":"directory_group","id":%q,"organization_id":%q,"name":"name-%s","attributes":{}}`, id, org, id)
}

// seedDirectory stores 50 users (every third inactive), 12 groups, and
// makes u000..u029 members of g00, and u000 a member of every group.
func seedDirectory(t *testing.T, db *state.DB, org string) {
	applySnapshot(t, db, org, func(a *state.ApplyTx) error {
		for i := range 50 {
			id := fmt.Sprintf("u%03d", i)
			if err := a.PutUser([]byte(id), i%3 != 0, userJSON(org, id, i%3 != 0)); err != nil {
				return err
			}
		}
		for i := range 12 {
			id := fmt.Sprintf("g%02d", i)
			if err := a.PutGroup([]byte(id), "name-"+id, 0, groupJSON(org, id)); err != nil {
				return err
			}
			if err := a.AddMember([]byte("u000"), []byte(id)); err != nil {
				return err
			}
		}
		for i := range 30 {
			if err := a.AddMember(fmt.Appendf(nil, "u%03d", i), []byte("g00")); err != nil {
				return err
			}
		}
		return nil
	})
}

func seq(prefix string, n, width int, keep func(int) bool) []string {
	var out []string
	for i := range n {
		if keep == nil || keep(i) {
			out = append(out, fmt.Sprintf("%s%0*d", prefix, width, i))
		}
	}
	return out
}

func TestDirectoryListsPaginate(t *testing.T) {
	srv, db := dirTestServer(t, Config{})
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrg(state.Org{Name: "empty"}); err != nil {
		t.Fatal(err)
	}
	seedDirectory(t, db, "acme")
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/v1/organizations/acme/users", seq("u", 50, 3, nil)},
		{"/v1/organizations/acme/users?state=active", seq("u", 50, 3, func(i int) bool { return i%3 != 0 })},
		{"/v1/organizations/acme/users?state=inactive", seq("u", 50, 3, func(i int) bool { return i%3 == 0 })},
		{"/v1/organizations/acme/groups", seq("g", 12, 2, nil)},
		{"/v1/organizations/acme/users/u000/groups", seq("g", 12, 2, nil)},
		{"/v1/organizations/acme/users/u001/groups", seq("g", 1, 2, nil)},
		{"/v1/organizations/acme/users/u049/groups", nil},
		{"/v1/organizations/acme/groups/g00/users", seq("u", 30, 3, nil)},
		{"/v1/organizations/acme/groups/g05/users", []string{"u000"}},
		{"/v1/organizations/empty/users", nil},
		{"/v1/organizations/empty/groups", nil},
	} {
		for _, limit := range []int{1, 7, 30, 100, 1000} {
			got := pageAll(t, srv, tc.path, limit)
			if !slices.Equal(got, tc.want) {
				t.Errorf("GET %s limit %d = %v; want %v", tc.path, limit, got, tc.want)
			}
		}
	}
	var p dirPage
	dirGet(t, srv, "GET", "/v1/organizations/acme/users?limit=3", &p)
	if p.ListMetadata.After == nil || *p.ListMetadata.After != "u002" {
		t.Errorf("list_metadata.after = %v; want u002", p.ListMetadata.After)
	}
	var u struct {
		Object, ID, State string
	}
	if st := dirGet(t, srv, "GET", "/v1/organizations/acme/users/u003", &u); st != 200 || u.ID != "u003" || u.State != "inactive" || u.Object != "directory_user" {
		t.Errorf("GET user u003 = %d %+v", st, u)
	}
	if st := dirGet(t, srv, "GET", "/v1/organizations/acme/groups/g03", &u); st != 200 || u.ID != "g03" || u.Object != "directory_group" {
		t.Errorf("GET group g03 = %d %+v", st, u)
	}
	for _, path := range []string{
		"/v1/organizations/nope/users", "/v1/organizations/nope/groups", "/v1/organizations/nope/users/u000",
		"/v1/organizations/nope/groups/g00/users", "/v1/organizations/acme/users/nope",
		"/v1/organizations/acme/users/nope/groups", "/v1/organizations/acme/groups/nope",
		"/v1/organizations/acme/groups/nope/users",
	} {
		var e errorBody
		if st := dirGet(t, srv, "GET", path, &e); st != http.StatusNotFound || e.Error.Code != "not_found" {
			t.Errorf("GET %s = %d %+v; want 404 not_found", path, st, e)
		}
	}
	for _, path := range []string{"/v1/organizations/acme/users?state=gone", "/v1/organizations/acme/users?limit=0", "/v1/organizations/acme/groups?limit=1001"} {
		if st := dirGet(t, srv, "GET", path, nil); st != http.StatusBadRequest {
			t.Errorf("GET %s = %d; want 400", path, st)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/organizations/acme/users", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET users without a token = %v, %v; want 401", resp.StatusCode, err)
	}
}

// TestDirectoryPaginationDuringBatches pages through users and group
// members while batches keep adding and removing other objects: every
// object present throughout is listed exactly once, in order.
func TestDirectoryPaginationDuringBatches(t *testing.T) {
	srv, db := dirTestServer(t, Config{})
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	seedDirectory(t, db, "acme")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var applied atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Churn: ids that sort between the stable ones, in and out.
			err := applySnapshotErr(db, "acme", func(a *state.ApplyTx) error {
				for j := range 50 {
					id := fmt.Appendf(nil, "u%03d-x%d", j, i%3)
					if i%2 == 0 {
						if err := a.PutUser(id, true, userJSON("acme", string(id), true)); err != nil {
							return err
						}
						if err := a.AddMember(id, []byte("g00")); err != nil {
							return err
						}
					} else {
						if err := a.RemoveMember(id, []byte("g00")); err != nil {
							return err
						}
						if err := a.DeleteUser(id); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			applied.Add(1)
		}
	})
	defer func() { close(stop); wg.Wait() }()
	stableUsers, stableMembers := seq("u", 50, 3, nil), seq("u", 30, 3, nil)
	for round := 0; round < 5 || applied.Load() < 5; round++ {
		for _, tc := range []struct {
			path   string
			stable []string
		}{
			{"/v1/organizations/acme/users", stableUsers},
			{"/v1/organizations/acme/groups/g00/users", stableMembers},
		} {
			got := pageAll(t, srv, tc.path, 4)
			if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Fatalf("GET %s during batches: not strictly in order: %v", tc.path, got)
			}
			var stable []string
			for _, id := range got {
				if len(id) == 4 {
					stable = append(stable, id)
				}
			}
			if !slices.Equal(stable, tc.stable) {
				t.Fatalf("GET %s during batches: stable ids %v; want %v", tc.path, stable, tc.stable)
			}
		}
	}
}
