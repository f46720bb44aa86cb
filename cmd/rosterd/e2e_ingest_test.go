package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/sftpd/sftptest"
)

type e2eBatch struct {
	ID        string         `json:"id"`
	Status    string         `json:"status"`
	CreatedAt time.Time      `json:"created_at"`
	Changes   report.Changes `json:"changes"`
	Files     []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
	Report json.RawMessage `json:"report"`
}

func (b e2eBatch) events() int {
	c := b.Changes
	return c.UsersCreated + c.UsersUpdated + c.UsersDeactivated + c.UsersDeleted + c.GroupsCreated +
		c.GroupsUpdated + c.GroupsDeleted + c.MembershipsAdded + c.MembershipsRemoved
}

// batches lists every batch of org, newest first.
func (d *testDaemon) batches(org string) []e2eBatch {
	d.t.Helper()
	var page struct{ Data []e2eBatch }
	if code := d.API("GET", "/v1/organizations/"+org+"/batches?limit=1000", nil, &page); code != 200 {
		d.t.Fatalf("list batches: %d", code)
	}
	return page.Data
}

// batch returns one batch with its report.
func (d *testDaemon) batch(org, id string) e2eBatch {
	d.t.Helper()
	var b e2eBatch
	if code := d.API("GET", "/v1/organizations/"+org+"/batches/"+id, nil, &b); code != 200 {
		d.t.Fatalf("get batch %s: %d", id, code)
	}
	return b
}

// sftpOrg adds org with a fresh key and returns an ssh_config for it.
func sftpOrg(t *testing.T, d *testDaemon, org string) string {
	t.Helper()
	dir := t.TempDir()
	key := sftptest.GenerateKey(t, dir, "id_ed25519")
	if out, code := d.CLI("", "org", "add", org, "--key", key.Path+".pub"); code != 0 {
		t.Fatalf("org add: %d %s", code, out)
	}
	return sftptest.Setup(t, sftptest.Target{Addr: d.SFTPAddr, Org: org, KeyPath: key.Path})
}

// TestE2EIngestOverSFTP uploads with OpenSSH sftp, reads the report back
// over SFTP, and checks the batches API and the batch and plan commands.
func TestE2EIngestOverSFTP(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "1s"}})
	cfg := sftpOrg(t, d, "acme")
	local := t.TempDir()
	users := "user_id,email,first_name,last_name,job_title\nE1,ana@acme.test,Ana,Álvarez,Engineer\nE2,bo@acme.test,Bo,Chén,Designer\n"
	groups := "group_name,user_id\nEngineering,E1\nDesign,E2\n"
	os.WriteFile(filepath.Join(local, "users.csv"), []byte(users), 0o600)
	os.WriteFile(filepath.Join(local, "user_groups.csv"), []byte(groups), 0o600)
	if out, err := sftptest.SFTP(t, cfg, fmt.Sprintf("put %s/users.csv\nput %s/user_groups.csv\n", local, local)); err != nil {
		t.Fatalf("sftp put: %v\n%s", err, out)
	}
	// The report appears in /reports/, readable over SFTP.
	got := filepath.Join(local, "latest.json")
	waitFor(t, 20*time.Second, "reports/latest.json over SFTP", func() bool {
		os.Remove(got)
		sftptest.SFTP(t, cfg, fmt.Sprintf("-get reports/latest.json %s\n", got))
		b, err := os.ReadFile(got)
		return err == nil && len(b) > 0
	})
	var rep struct {
		BatchID string `json:"batch_id"`
		Status  string `json:"status"`
		Files   []struct {
			Name string `json:"name"`
			Rows int    `json:"rows"`
		} `json:"files"`
		Changes map[string]int `json:"changes"`
	}
	raw, _ := os.ReadFile(got)
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Status != "applied" || len(rep.Files) != 2 || rep.Changes["users_created"] != 2 || rep.Changes["memberships_added"] != 2 {
		t.Fatalf("latest.json = %s; want both files applied in one batch", raw)
	}
	bs := d.batches("acme")
	if len(bs) != 1 || bs[0].ID != rep.BatchID || bs[0].Status != "applied" || !strings.Contains(string(d.batch("acme", rep.BatchID).Report), rep.BatchID) {
		t.Fatalf("batches API = %+v; want the one applied batch %s", bs, rep.BatchID)
	}
	var evs struct{ Data []map[string]any }
	d.API("GET", "/v1/events?organization_id=acme", nil, &evs)
	if len(evs.Data) != bs[0].events() {
		t.Errorf("events = %d; want %d", len(evs.Data), bs[0].events())
	}
	if out, code := d.CLI("", "batch", "list", "acme"); code != 0 || !strings.Contains(out, rep.BatchID) || !strings.Contains(out, "applied") {
		t.Errorf("batch list = %d %s", code, out)
	}
	if out, code := d.CLI("", "batch", "show", "acme", rep.BatchID); code != 0 || !strings.Contains(out, "APPLIED") {
		t.Errorf("batch show = %d %s", code, out)
	}
	if out, code := d.CLI("", "plan", "--org", "acme", filepath.Join(local, "users.csv")); code != 0 || !strings.HasPrefix(out, "PLAN: these files would change nothing") {
		t.Errorf("plan of the same users.csv = %d %s; want PLAN: ... would change nothing", code, out)
	}
	bad := filepath.Join(local, "users_bad.csv")
	os.WriteFile(bad, []byte("user_id,email,first_name,last_name\nE1,nope,A,B\n"), 0o600)
	if out, code := d.CLI("", "plan", "--org", "acme", bad); code != 1 {
		t.Errorf("plan of a broken file = %d %s; want exit 1", code, out)
	}
	if out, code := d.CLI("", "batch", "approve", "acme", rep.BatchID); code != 1 || !strings.Contains(out, "not held") {
		t.Errorf("approve of an applied batch = %d %s; want exit 1, not held", code, out)
	}
	if len(d.batches("acme")) != 1 {
		t.Errorf("plans made batches")
	}
}

// crashUsers is version v of a users.csv of n users: each version changes
// some titles, replaces a few users and moves some between departments.
func crashUsers(n, v int) []byte {
	var b strings.Builder
	b.WriteString("user_id,email,first_name,last_name,job_title,department_name,team\n")
	for i := range n {
		if (i+v)%97 == 0 {
			continue // gone in this version
		}
		fmt.Fprintf(&b, "U%06d,u%06d@acme.test,Fírst%d,Läst%d,Title %d,Dept %d,team-%d\n", i, i, i, i, (i*7+v)%13, (i+v/3)%9, (i+v)%5)
	}
	for i := range v % 4 * 10 {
		fmt.Fprintf(&b, "N%03d%03d,n%03d%03d@acme.test,New,Hire,Rookie,Dept 0,team-0\n", v, i, v, i)
	}
	return []byte(b.String())
}

// TestE2ECrashSafety kills the daemon with SIGKILL at random moments while
// it processes uploads, restarts it, and checks that no batch is applied
// twice or lost, that every applied batch has exactly its events, and that
// the snapshot is the last applied upload.
func TestE2ECrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop skipped in -short mode")
	}
	const users, rounds = 8000, 20
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "0s"}})
	if out, code := d.CLI("", "org", "add", "acme"); code != 0 {
		t.Fatalf("org add: %s", out)
	}
	var logs strings.Builder
	defer func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s%s", logs.String(), d.Logs())
		}
	}()
	orgDir := filepath.Join(d.Data, "orgs", "acme")
	place := func(v int) {
		tmp := filepath.Join(orgDir, ".upload")
		if err := os.WriteFile(tmp, crashUsers(users, v), 0o600); err != nil {
			t.Fatal(err)
		}
		// An old modification time: the start-up scan and the watcher
		// take the file without waiting for it to stand still.
		old := time.Now().Add(-time.Minute).Add(time.Duration(v) * time.Millisecond)
		os.Chtimes(tmp, old, old)
		if err := os.Rename(tmp, filepath.Join(orgDir, "users.csv")); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for v := range rounds {
		place(v)
		time.Sleep(time.Duration(rng.IntN(1200)) * time.Millisecond)
		d.Kill()
		logs.WriteString(d.Logs())
		logs.WriteString("--- SIGKILL\n")
		d.start()
	}
	last := rounds
	lastSum := fmt.Sprintf("%x", sha256.Sum256(crashUsers(users, last)))
	place(last)
	var final e2eBatch
	waitFor(t, 60*time.Second, "the last upload to be applied", func() bool {
		bs := d.batches("acme")
		if len(bs) == 0 || bs[0].Status == "pending" || bs[0].Status == "processing" {
			return false
		}
		// Every round has the same number of rows: the last upload is the
		// batch of its content.
		final = d.batch("acme", bs[0].ID)
		return len(final.Files) == 1 && final.Files[0].SHA256 == lastSum
	})
	bs := d.batches("acme")
	applied := 0
	for _, b := range bs {
		switch b.Status {
		case "pending", "processing":
			t.Errorf("batch %s left %s", b.ID, b.Status)
		case "applied":
			applied++
		case "unchanged", "held", "superseded":
		default:
			t.Errorf("batch %s is %s", b.ID, b.Status)
		}
		if len(d.batch("acme", b.ID).Report) == 0 {
			t.Errorf("batch %s has no report", b.ID)
		}
	}
	if applied < 2 {
		t.Errorf("only %d applied batches in %d rounds", applied, rounds)
	}

	// Replay the whole feed: every event belongs to an applied batch, each
	// applied batch has exactly its events, and the replay is the snapshot.
	perBatch := map[string]int{}
	snap := map[string]string{}
	after := ""
	for {
		var page struct {
			Data []struct {
				Event   string          `json:"event"`
				BatchID string          `json:"batch_id"`
				Data    json.RawMessage `json:"data"`
			}
			ListMetadata struct{ After *string } `json:"list_metadata"`
		}
		d.API("GET", "/v1/events?organization_id=acme&limit=1000&after="+after, nil, &page)
		for _, e := range page.Data {
			perBatch[e.BatchID]++
			var u struct {
				ID string `json:"id"`
			}
			json.Unmarshal(e.Data, &u)
			data := compact(e.Data)
			if i := strings.Index(data, `,"previous_attributes"`); i >= 0 {
				data = data[:i] + "}"
			}
			switch e.Event {
			case "dsync.user.created":
				if _, dup := snap[u.ID]; dup {
					t.Fatalf("user %s created twice (batch %s)", u.ID, e.BatchID)
				}
				snap[u.ID] = data
			case "dsync.user.updated":
				if _, ok := snap[u.ID]; !ok {
					t.Fatalf("update of unknown user %s (batch %s)", u.ID, e.BatchID)
				}
				snap[u.ID] = data
			case "dsync.user.deleted":
				if _, ok := snap[u.ID]; !ok {
					t.Fatalf("delete of unknown user %s (batch %s)", u.ID, e.BatchID)
				}
				delete(snap, u.ID)
			}
		}
		if page.ListMetadata.After == nil {
			break
		}
		after = *page.ListMetadata.After
	}
	for _, b := range bs {
		if perBatch[b.ID] != b.events() || (b.Status != "applied" && perBatch[b.ID] != 0) {
			t.Errorf("batch %s (%s) has %d events; its changes count %d", b.ID, b.Status, perBatch[b.ID], b.events())
		}
		delete(perBatch, b.ID)
	}
	if len(perBatch) != 0 {
		t.Errorf("events of unknown batches: %v", perBatch)
	}
	// The snapshot is the replay, and holds the users of the last upload.
	var stored []json.RawMessage
	after = ""
	for {
		var page struct {
			Data         []json.RawMessage
			ListMetadata struct{ After *string } `json:"list_metadata"`
		}
		if code := d.API("GET", "/v1/organizations/acme/users?limit=1000&after="+after, nil, &page); code != 200 {
			t.Skipf("recipient-store API not available yet (%d)", code)
		}
		stored = append(stored, page.Data...)
		if page.ListMetadata.After == nil {
			break
		}
		after = *page.ListMetadata.After
	}
	want := strings.Count(string(crashUsers(users, last)), "\n") - 1
	if len(stored) != want || len(snap) != want {
		t.Fatalf("snapshot has %d users, replay %d; the last upload has %d (final batch %s %s)", len(stored), len(snap), want, final.ID, final.Status)
	}
	for _, raw := range stored {
		var u struct {
			ID string `json:"id"`
		}
		json.Unmarshal(raw, &u)
		if snap[u.ID] != compact(raw) {
			t.Fatalf("user %s: snapshot %s; replay %s", u.ID, raw, snap[u.ID])
		}
	}
}

func compact(raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}
