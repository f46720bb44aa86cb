package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/ingest/ingesttest"
	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// TestE2EFaultSequence is the real-binary part of issue 12's randomized
// fault test (ingest's TestFaultSequence runs the long sequence in
// process): uploads over SFTP from the model of package ingesttest, with
// SIGKILLs at random moments and full-disk periods injected through the
// test-only ROSTERD_TEST_WRITE_FAULT hook, everything read back through
// the HTTP API. After each step: every batch with an outcome took its
// files in completion order and none twice, every applied batch's events
// are exactly the model's changes, none is applied after a newer one,
// and the snapshot is the model's. The seed is logged;
// ROSTERD_FAULT_SEED reproduces a run, ROSTERD_E2E_FAULT_STEPS changes its
// length (default 40).
func TestE2EFaultSequence(t *testing.T) {
	if testing.Short() {
		t.Skip("fault sequence skipped in -short mode")
	}
	sftptest.LookPath(t, "sftp")
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("ROSTERD_FAULT_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	steps := 40
	if v := os.Getenv("ROSTERD_E2E_FAULT_STEPS"); v != "" {
		steps, _ = strconv.Atoi(v)
	}
	t.Logf("seed %d, %d steps (ROSTERD_FAULT_SEED=%d reproduces)", seed, steps, seed)
	rng := rand.New(rand.NewPCG(seed, 21))

	flag := filepath.Join(t.TempDir(), "disk-full")
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "0s"},
		Env: []string{"ROSTERD_TEST_WRITE_FAULT=" + flag, "ROSTERD_TEST_RETRY=20ms,100ms"}})
	key := addOrg(t, d, "acme")
	settings := map[string]any{"users_patterns": ingesttest.UsersPatterns, "delete_threshold_percent": 100, "delete_threshold_count": 1 << 30}
	if code := d.API("PATCH", "/v1/organizations/acme", map[string]any{"settings": settings}, nil); code != 200 {
		t.Fatalf("PATCH settings = %d", code)
	}
	var logs strings.Builder
	defer func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s%s", logs.String(), d.Logs())
		}
	}()
	kill := func() {
		d.Kill()
		logs.WriteString(d.Logs())
		logs.WriteString("--- SIGKILL\n")
		d.start()
	}

	local := t.TempDir()
	gen := ingesttest.NewGenerator(rng)
	check := ingesttest.NewChecker()
	lastEvent, kills, fulls := "", 0, 0
	for step := range steps {
		us := gen.Step(step)
		full := rng.IntN(100) < 25
		if full {
			os.WriteFile(flag, nil, 0o600)
			fulls++
		}
		var script strings.Builder
		for i, u := range us {
			p := filepath.Join(local, fmt.Sprintf("%d-%d", step, i))
			os.WriteFile(p, u.Content, 0o600)
			fmt.Fprintf(&script, "put %s %s\n", p, u.Name)
		}
		for i := range us {
			us[i].At = time.Now()
		}
		if out, ok := sftpBatch(t, d, key, "acme", script.String()); !ok {
			t.Fatalf("step %d: sftp: %s", step, out)
		}
		check.Uploaded(us)
		if rng.IntN(100) < 35 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // a random moment of the batch
			kill()
			kills++
		}
		if full {
			// The disk stays full until the step's batch has met it.
			waitFor(t, 30*time.Second, "the batch to meet the full disk", func() bool {
				return check.Settled(apiBatches(d)) || waiting(d)
			})
			os.Remove(flag)
		}
		var bs []ingesttest.Batch
		waitFor(t, 60*time.Second, fmt.Sprintf("step %d (seed %d) to settle", step, seed), func() bool {
			bs = apiBatches(d)
			return check.Settled(bs)
		})
		news, last := apiEvents(d, lastEvent)
		lastEvent = last
		if err := check.Check(bs, news, apiSnapshot(d)); err != nil {
			t.Fatalf("step %d (seed %d): %v", step, seed, err)
		}
	}
	t.Logf("%d steps, %d SIGKILLs, %d full-disk steps", steps, kills, fulls)
}

// waiting reports whether acme's newest batch waits for a retry.
func waiting(d *testDaemon) bool {
	var page struct {
		Data []struct {
			Status   string
			Attempts int
		}
	}
	d.API("GET", "/v1/organizations/acme/batches?limit=1", nil, &page)
	return len(page.Data) == 1 && page.Data[0].Attempts > 0 && (page.Data[0].Status == "pending" || page.Data[0].Status == "processing")
}

// apiBatches reads every batch of acme through the API.
func apiBatches(d *testDaemon) []ingesttest.Batch {
	type file struct {
		Name        string    `json:"name"`
		Kind        string    `json:"kind"`
		SHA256      string    `json:"sha256"`
		CompletedAt time.Time `json:"completed_at"`
	}
	conv := func(fs []file) []ingesttest.File {
		var out []ingesttest.File
		for _, f := range fs {
			out = append(out, ingesttest.File(f))
		}
		return out
	}
	var out []ingesttest.Batch
	after := ""
	for {
		var page struct {
			Data []struct {
				ID      string `json:"id"`
				Status  string `json:"status"`
				Files   []file `json:"files"`
				Ignored []file `json:"ignored"`
			}
			ListMetadata struct{ After *string } `json:"list_metadata"`
		}
		if code := d.API("GET", "/v1/organizations/acme/batches?limit=1000&after="+url.QueryEscape(after), nil, &page); code != 200 {
			d.t.Fatalf("list batches: %d", code)
		}
		for _, b := range page.Data {
			out = append(out, ingesttest.Batch{ID: b.ID, Status: b.Status, Files: conv(b.Files), Ignored: conv(b.Ignored)})
		}
		if page.ListMetadata.After == nil {
			return out
		}
		after = *page.ListMetadata.After
	}
}

// apiEvents reads acme's events after the id after; it returns them and
// the last id.
func apiEvents(d *testDaemon, after string) ([]ingesttest.Event, string) {
	var out []ingesttest.Event
	for {
		var page struct {
			Data         []e2eEvent
			ListMetadata struct{ After *string } `json:"list_metadata"`
		}
		if code := d.API("GET", "/v1/events?organization_id=acme&limit=1000&after="+url.QueryEscape(after), nil, &page); code != 200 {
			d.t.Fatalf("GET /v1/events = %d", code)
		}
		for _, e := range page.Data {
			out = append(out, ingesttest.Event{ID: e.ID, Type: e.Event, BatchID: e.BatchID, Data: e.Data})
			after = e.ID
		}
		if page.ListMetadata.After == nil || len(page.Data) == 0 {
			return out, after
		}
	}
}

// apiSnapshot reads acme's snapshot through the recipient-store API.
func apiSnapshot(d *testDaemon) ingesttest.Snapshot {
	s := ingesttest.Snapshot{Users: map[string]string{}, Groups: map[string]string{}, Members: map[string][]string{}}
	var users struct{ Data []json.RawMessage }
	d.API("GET", "/v1/organizations/acme/users?limit=1000", nil, &users)
	for _, raw := range users.Data {
		var u struct {
			ID       string `json:"id"`
			JobTitle string `json:"job_title"`
		}
		json.Unmarshal(raw, &u)
		s.Users[u.ID] = u.JobTitle
		var gs struct {
			Data []struct{ Name string }
		}
		d.API("GET", "/v1/organizations/acme/users/"+u.ID+"/groups?limit=1000", nil, &gs)
		for _, g := range gs.Data {
			s.Members[u.ID] = append(s.Members[u.ID], g.Name)
		}
		slices.Sort(s.Members[u.ID])
	}
	var groups struct {
		Data []struct {
			Name  string
			Attrs struct {
				Description string `json:"description"`
			} `json:"attributes"`
		}
	}
	d.API("GET", "/v1/organizations/acme/groups?limit=1000", nil, &groups)
	for _, g := range groups.Data {
		s.Groups[g.Name] = g.Attrs.Description
	}
	return s
}
