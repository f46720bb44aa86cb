package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// env is a pipeline on a temp data directory with one organization.
type env struct {
	t      *testing.T
	db     *state.DB
	p      *Pipeline
	org    string
	orgDir string
	root   string
	cancel context.CancelFunc
	done   chan error
	tune   func(*Config)
}

func newEnv(t *testing.T, org string, st state.Settings, d Defaults) *env {
	t.Helper()
	return newEnvWith(t, org, st, d, nil)
}

// newEnvWith is newEnv with a hook that adjusts the pipeline's Config.
func newEnvWith(t *testing.T, org string, st state.Settings, d Defaults, tune func(*Config)) *env {
	t.Helper()
	root := t.TempDir()
	db, err := state.Open(filepath.Join(root, "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrg(state.Org{Name: org, Settings: st}); err != nil {
		t.Fatal(err)
	}
	orgDir := filepath.Join(root, "orgs", org)
	if err := os.MkdirAll(filepath.Join(orgDir, "reports"), 0o700); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, org: org, orgDir: orgDir, root: root, tune: tune}
	e.start(d)
	t.Cleanup(func() {
		e.stop()
		db.Close()
	})
	return e
}

func (e *env) start(d Defaults) {
	cfg := Config{DB: e.db, OrgsRoot: filepath.Join(e.root, "orgs"), Defaults: d}
	if e.tune != nil {
		e.tune(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.p, e.cancel, e.done = p, cancel, make(chan error, 1)
	go func() { e.done <- p.Run(ctx) }()
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("Run: %v", err)
	}
	e.cancel = nil
}

// upload places a file the way sftpd does (temporary name, rename) and
// notifies the pipeline.
func (e *env) upload(name string, data []byte) {
	e.t.Helper()
	tmp := filepath.Join(e.orgDir, ".in."+name)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.orgDir, name)); err != nil {
		e.t.Fatal(err)
	}
	e.p.Notify(e.org, name)
}

// newest returns the newest batch, or a zero Batch.
func (e *env) newest() state.Batch {
	bs, err := e.db.Batches(e.org, "", 1)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(bs) == 0 {
		return state.Batch{}
	}
	return bs[0]
}

// waitBatch waits for a batch newer than prev to reach an outcome.
func (e *env) waitBatch(prev string, timeout time.Duration) state.Batch {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b := e.newest()
		if b.ID != "" && b.ID != prev && b.Status != state.BatchPending && b.Status != state.BatchProcessing {
			return b
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("no new batch after %s within %v (newest %+v)", prev, timeout, e.newest())
	return state.Batch{}
}

// eventView is an event without the parts that change from run to run.
type eventView struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (e *env) batchEvents(batch string) []eventView {
	e.t.Helper()
	evs, err := e.db.Events(e.org, "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	out := []eventView{}
	for _, ev := range evs {
		if ev.BatchID == batch {
			out = append(out, eventView{ev.Event, ev.Data})
		}
	}
	return out
}

// stepResult is what a scenario step's golden want.json holds.
type stepResult struct {
	Status   string             `json:"status"`
	Changes  state.BatchChanges `json:"changes"`
	Counts   state.BatchCounts  `json:"counts"`
	Statuses []string           `json:"statuses"` // every batch, oldest first
	Events   []eventView        `json:"events"`
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n--- got\n%s", path, got)
	}
}

// TestScenarios runs each folder of testdata/scenarios: numbered steps of
// files uploaded together (or an APPROVE marker approving the previous
// batch), each checked against its want.json. settings.json holds the
// organization's settings. Each scenario runs twice: with the default
// apply, and with every batch staged in transactions of two changes.
func TestScenarios(t *testing.T) {
	for _, staged := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "staged"}[staged], func(t *testing.T) { runScenarios(t, staged) })
	}
}

func runScenarios(t *testing.T, staged bool) {
	dirs, err := filepath.Glob("testdata/scenarios/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			var st state.Settings
			if raw, err := os.ReadFile(filepath.Join(dir, "settings.json")); err == nil {
				if err := json.Unmarshal(raw, &st); err != nil {
					t.Fatal(err)
				}
			}
			var tune func(*Config)
			if staged {
				tune = func(c *Config) { c.StageAbove, c.StageTxChanges = -1, 2 }
			}
			e := newEnvWith(t, "acme", st, Defaults{Settle: 300 * time.Millisecond, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"}, tune)
			steps, _ := filepath.Glob(filepath.Join(dir, "[0-9]*"))
			slices.Sort(steps)
			for _, step := range steps {
				prev := e.newest()
				var b state.Batch
				if _, err := os.Stat(filepath.Join(step, "APPROVE")); err == nil {
					b, err = e.p.Approve(context.Background(), e.org, prev.ID)
					if err != nil {
						t.Fatalf("step %s: Approve(%s): %v", step, prev.ID, err)
					}
				} else {
					files, _ := filepath.Glob(filepath.Join(step, "*.csv"))
					for _, f := range files {
						data, err := os.ReadFile(f)
						if err != nil {
							t.Fatal(err)
						}
						e.upload(filepath.Base(f), data)
					}
					b = e.waitBatch(prev.ID, 10*time.Second)
				}
				res := stepResult{Status: b.Status, Changes: b.Changes, Counts: b.Counts, Events: e.batchEvents(b.ID)}
				all, _ := e.db.Batches(e.org, "", 0)
				for i := len(all) - 1; i >= 0; i-- {
					res.Statuses = append(res.Statuses, all[i].Status)
					if all[i].Status == state.BatchSuperseded {
						checkSupersededReport(t, e, all[i])
					}
				}
				got, _ := json.MarshalIndent(res, "", "  ")
				golden(t, filepath.Join(step, "want.json"), append(got, '\n'))
				checkReport(t, e, b)
				if staged {
					// The loop merges the overlay after the report.
					deadline := time.Now().Add(5 * time.Second)
					for pending, err := e.db.PendingMerge(e.org); pending || err != nil; pending, err = e.db.PendingMerge(e.org) {
						if err != nil || time.Now().After(deadline) {
							t.Fatalf("step %s: overlay still unmerged after the batch: %v", step, err)
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
			}
		})
	}
}

// checkSupersededReport checks that the report files of a superseded
// batch say so, rather than how to approve it.
func checkSupersededReport(t *testing.T, e *env, b state.Batch) {
	t.Helper()
	base := filepath.Join(e.orgDir, "reports", reportBase(b))
	txt, err := os.ReadFile(base + ".txt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(txt), "SUPERSEDED") || strings.Contains(string(txt), "batch approve") {
		t.Errorf("report of superseded batch %s:\n%s", b.ID, txt)
	}
	js, err := os.ReadFile(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(js, []byte(`"status": "superseded"`)) {
		t.Errorf("JSON report of superseded batch %s:\n%s", b.ID, js)
	}
	stored, err := e.db.BatchReport(e.org, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(stored, []byte(`"status": "superseded"`)) || bytes.Contains(stored, []byte("batch approve")) {
		t.Errorf("stored report of superseded batch %s:\n%s", b.ID, stored)
	}
}

// checkReport checks that the batch's report is on disk and stored.
func checkReport(t *testing.T, e *env, b state.Batch) {
	t.Helper()
	// The report files follow the commit: wait for them.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		latest, _ := os.ReadFile(filepath.Join(e.orgDir, "reports", "latest.json"))
		if bytes.Contains(latest, []byte(`"batch_id": "`+b.ID+`"`)) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	raw, err := e.db.BatchReport(e.org, b.ID)
	if err != nil {
		t.Fatalf("BatchReport(%s): %v", b.ID, err)
	}
	var stored struct {
		BatchID string `json:"batch_id"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal(raw, &stored); err != nil || stored.BatchID != b.ID || stored.Status != b.Status {
		t.Errorf("stored report = %s, %v; want batch %s status %s", raw, err, b.ID, b.Status)
	}
	for _, name := range []string{reportBase(b) + ".txt", reportBase(b) + ".json", "latest.txt", "latest.json"} {
		if _, err := os.Stat(filepath.Join(e.orgDir, "reports", name)); err != nil {
			t.Errorf("report file: %v", err)
		}
	}
	latest, _ := os.ReadFile(filepath.Join(e.orgDir, "reports", "latest.json"))
	if !bytes.Contains(latest, []byte(`"batch_id": "`+b.ID+`"`)) {
		t.Errorf("latest.json is not the report of %s:\n%s", b.ID, latest)
	}
	if b.Status == state.BatchHeld {
		checkHeldAdvice(t, e, b, raw)
	}
	for _, f := range b.Files {
		if _, err := os.Stat(filepath.Join(e.root, "archive", e.org, b.ID, f.Name)); err != nil {
			t.Errorf("archive copy: %v", err)
		}
	}
}

// checkHeldAdvice checks who a held batch's report tells what (SPEC §5,
// issue 12 case 6): the organization's copy says what the admin can do
// and names the batch, never the operator's command; the stored report
// (the API, rosterd batch show) and the archive copy keep the command.
func checkHeldAdvice(t *testing.T, e *env, b state.Batch, stored []byte) {
	t.Helper()
	cmd := "rosterd batch approve acme " + b.ID
	for _, name := range []string{"latest.txt", "latest.json", reportBase(b) + ".txt", reportBase(b) + ".json"} {
		data, _ := os.ReadFile(filepath.Join(e.orgDir, "reports", name))
		if bytes.Contains(data, []byte("rosterd batch approve")) || bytes.Contains(data, []byte("/approve")) {
			t.Errorf("the organization's %s tells the admin to run the operator's command:\n%s", name, data)
		}
		if !bytes.Contains(data, []byte("ask the operator of this service to approve batch "+b.ID)) {
			t.Errorf("the organization's %s does not say what the admin can do:\n%s", name, data)
		}
	}
	if !bytes.Contains(stored, []byte(cmd)) {
		t.Errorf("the stored report does not give the operator the command %q:\n%s", cmd, stored)
	}
	var arch []byte
	deadline := time.Now().Add(5 * time.Second) // written after latest.*
	for !bytes.Contains(arch, []byte(cmd)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		arch, _ = os.ReadFile(filepath.Join(e.root, "archive", e.org, b.ID, "report.txt"))
	}
	if !bytes.Contains(arch, []byte(cmd)) {
		t.Errorf("the archive's report.txt does not give the operator the command:\n%s", arch)
	}
}

// TestDuplicateEmailSpelling: the pipeline hands the checker a seekable
// archive copy, so the issue of the earlier line of a duplicate email
// quotes how it was written there.
func TestDuplicateEmailSpelling(t *testing.T) {
	e := newEnv(t, "acme", state.Settings{}, Defaults{DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	prev := e.newest()
	e.upload("users.csv", []byte("user_id,email,first_name,last_name\nu1,Ann.Lee@Example.com,Ann,Lee\nu2,ann.lee@example.com,Anna,Lee\n"))
	b := e.waitBatch(prev.ID, 10*time.Second)
	if b.Status != state.BatchRejected {
		t.Fatalf("status %s; want rejected", b.Status)
	}
	raw, err := e.db.BatchReport(e.org, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"value": "Ann.Lee@Example.com"`, `also appears on line 3, written \"ann.lee@example.com\"`} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("report lacks %s:\n%s", want, raw)
		}
	}
}

// TestMarkSupersededRewritesLatest: while latest.* are the held batch's
// report (before the batch that supersedes it writes its own), they are
// rewritten too.
func TestMarkSupersededRewritesLatest(t *testing.T) {
	e := newEnv(t, "acme", state.Settings{}, Defaults{DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	dir := "testdata/scenarios/held-superseded"
	var held state.Batch
	for _, step := range []string{"1", "2"} {
		data, err := os.ReadFile(filepath.Join(dir, step, "users.csv"))
		if err != nil {
			t.Fatal(err)
		}
		prev := e.newest()
		e.upload("users.csv", data)
		held = e.waitBatch(prev.ID, 10*time.Second)
	}
	if held.Status != state.BatchHeld {
		t.Fatalf("second upload: %s, want held", held.Status)
	}
	checkReport(t, e, held)
	e.stop() // no batch of its own overwrites latest.* meanwhile
	if err := e.p.markSuperseded(e.org, held.ID, "B-NEXT"); err != nil {
		t.Fatal(err)
	}
	txt, err := os.ReadFile(filepath.Join(e.orgDir, "reports", "latest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(txt), "SUPERSEDED") || !strings.Contains(string(txt), "B-NEXT") || strings.Contains(string(txt), "batch approve") {
		t.Errorf("latest.txt after markSuperseded:\n%s", txt)
	}
	js, err := os.ReadFile(filepath.Join(e.orgDir, "reports", "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(js, []byte(`"status": "superseded"`)) {
		t.Errorf("latest.json after markSuperseded:\n%s", js)
	}
}
