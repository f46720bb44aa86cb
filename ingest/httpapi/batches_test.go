package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/state"
)

// ingestServer is an API server with a running pipeline over real files
// and a real bbolt file, and an organization "acme".
func ingestServer(t *testing.T) (*httptest.Server, *state.DB, string) {
	t.Helper()
	root := t.TempDir()
	db, err := state.Open(filepath.Join(root, "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	orgs := filepath.Join(root, "orgs")
	p, err := ingest.New(ingest.Config{DB: db, OrgsRoot: orgs, Defaults: ingest.Defaults{Settle: 0, DeleteThresholdPercent: 20, DeleteThresholdCount: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		db.Close()
	})
	srv, _ := dirTestServer(t, Config{DB: db, OrgsRoot: orgs, Pipeline: p})
	body := strings.NewReader(`{"name":"acme"}`)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/organizations", body)
	req.Header.Set("Authorization", "Bearer "+dirTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create org: %v %v", resp, err)
	}
	resp.Body.Close()
	return srv, db, filepath.Join(orgs, "acme")
}

func placeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

type batchPage struct {
	Data []BatchView `json:"data"`
}

func waitBatches(t *testing.T, srv *httptest.Server, n int) []BatchView {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var p batchPage
		dirGet(t, srv, "GET", "/v1/organizations/acme/batches", &p)
		if len(p.Data) >= n && p.Data[0].Status != state.BatchPending && p.Data[0].Status != state.BatchProcessing {
			return p.Data
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d finished batches", n)
	return nil
}

const apiUsers = "user_id,email,first_name,last_name\nE1,a@x.test,A,A\nE2,b@x.test,B,B\nE3,c@x.test,C,C\n"

// TestBatchesAPI drives a batch written into the folder (the watcher
// takes it), a held batch, its approval, the events feed and a plan.
func TestBatchesAPI(t *testing.T) {
	srv, _, dir := ingestServer(t)
	placeFile(t, dir, "users.csv", apiUsers)
	bs := waitBatches(t, srv, 1)
	if bs[0].Status != state.BatchApplied || bs[0].Changes.UsersCreated != 3 {
		t.Fatalf("first batch = %+v; want applied with 3 users created", bs[0])
	}
	var one BatchView
	if code := dirGet(t, srv, "GET", "/v1/organizations/acme/batches/"+bs[0].ID, &one); code != 200 || !bytes.Contains(one.Report, []byte(`"users_created": 3`)) {
		t.Fatalf("GET batch = %d %s; want its report", code, one.Report)
	}

	// Deleting 2 of 3 trips a guard of 20% and 1 user.
	placeFile(t, dir, "users.csv", "user_id,email,first_name,last_name\nE1,a@x.test,A,A\n")
	bs = waitBatches(t, srv, 2)
	held := bs[0]
	if held.Status != state.BatchHeld {
		t.Fatalf("second batch = %s; want held", held.Status)
	}
	var ev dirPage
	dirGet(t, srv, "GET", "/v1/events?organization_id=acme", &ev)
	if len(ev.Data) != 3 {
		t.Fatalf("events before approval = %d; want 3", len(ev.Data))
	}
	var approved BatchView
	if code := dirGet(t, srv, "POST", "/v1/organizations/acme/batches/"+held.ID+"/approve", &approved); code != 200 || approved.Status != state.BatchApplied || !approved.Approved {
		t.Fatalf("approve = %d %+v; want applied", code, approved.Batch)
	}
	var e errorBody
	if code := dirGet(t, srv, "POST", "/v1/organizations/acme/batches/"+held.ID+"/approve", &e); code != http.StatusConflict || e.Error.Code != "not_held" {
		t.Errorf("second approve = %d %+v; want 409 not_held", code, e)
	}
	if code := dirGet(t, srv, "GET", "/v1/organizations/acme/batches/nope", &e); code != http.StatusNotFound {
		t.Errorf("GET unknown batch = %d; want 404", code)
	}

	// The feed pages in order.
	var all []string
	after := ""
	for {
		var p struct {
			Data []struct {
				ID    string `json:"id"`
				Event string `json:"event"`
			} `json:"data"`
			ListMetadata struct {
				After *string `json:"after"`
			} `json:"list_metadata"`
		}
		dirGet(t, srv, "GET", "/v1/events?limit=2&after="+after, &p)
		for _, d := range p.Data {
			all = append(all, d.Event)
		}
		if p.ListMetadata.After == nil {
			break
		}
		after = *p.ListMetadata.After
	}
	want := "dsync.user.created dsync.user.created dsync.user.created dsync.user.deleted dsync.user.deleted"
	if got := strings.Join(all, " "); got != want {
		t.Errorf("feed = %s; want %s", got, want)
	}

	// A plan changes nothing and says what would change.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "users.csv")
	fmt.Fprint(fw, apiUsers)
	mw.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/organizations/acme/plan", &buf)
	req.Header.Set("Authorization", "Bearer "+dirTestToken)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Status  string             `json:"status"`
		Changes state.BatchChanges `json:"changes"`
		DryRun  bool               `json:"dry_run"`
	}
	json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if resp.StatusCode != 200 || rep.Status != state.BatchApplied || rep.Changes.UsersCreated != 2 || !rep.DryRun {
		t.Errorf("plan = %d %+v; want a dry run, applied with 2 users created", resp.StatusCode, rep)
	}
	if bs := waitBatches(t, srv, 2); len(bs) != 2 {
		t.Errorf("a plan made a batch: %d batches", len(bs))
	}
}
