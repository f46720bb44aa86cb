package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rosterd/rosterd/ingest/ingesttest"
	"github.com/rosterd/rosterd/state"
)

// chaos fails one write of the state at a chosen point from now: with an
// error (as a full disk), a panic (as a handler's bug) or a crash (the
// pipeline stops at once there, as on SIGKILL: what was committed stays,
// nothing after runs).
type chaos struct {
	mu        sync.Mutex
	countdown int
	mode      string   // "", "error", "panic", "crash"
	full      []string // points that fail until further notice: a full disk
	crashed   bool
	stop      func()
	fired     map[string]int
}

func (c *chaos) fill(points []string) {
	c.mu.Lock()
	c.full = points
	c.mu.Unlock()
}

// formHits is the number of batches the full disk kept from being
// recorded so far.
func (c *chaos) formHits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fired["full at form"]
}

// metFullDisk reports whether the newest batch holds a file of us and
// failed (it waits for a retry) or finished.
func metFullDisk(db *state.DB, us []ingesttest.Upload) bool {
	bs, err := db.Batches("acme", "", 1)
	if err != nil || len(bs) == 0 {
		return false
	}
	b := bs[0]
	holds := slices.ContainsFunc(b.Files, func(f state.BatchFile) bool {
		return slices.ContainsFunc(us, func(u ingesttest.Upload) bool {
			// A file the scan found completed at its ctime, which can
			// trail the test's clock by a tick.
			return f.Name == u.Name && !f.CompletedAt.Before(u.At.Add(-20*time.Millisecond))
		})
	})
	return holds && (b.Attempts > 0 || state.BatchFinished(b.Status) || b.Status == state.BatchHeld)
}

func (c *chaos) arm(mode string, after int) {
	c.mu.Lock()
	c.mode, c.countdown = mode, after
	c.mu.Unlock()
}

func (c *chaos) hook(point string) error {
	c.mu.Lock()
	if slices.Contains(c.full, point) {
		c.fired["full at "+point]++
		c.mu.Unlock()
		return fmt.Errorf("injected full disk at %s: %w", point, syscall.ENOSPC)
	}
	if c.mode == "" {
		c.mu.Unlock()
		return nil
	}
	if c.countdown--; c.countdown > 0 {
		c.mu.Unlock()
		return nil
	}
	mode := c.mode
	c.mode = ""
	c.fired[mode+" at "+point]++
	if mode == "crash" {
		c.crashed = true
		c.stop()
	}
	c.mu.Unlock()
	if mode == "panic" {
		panic("injected panic at " + point)
	}
	return fmt.Errorf("injected at %s: %w", point, syscall.ENOSPC)
}

// faultSteps is the number of steps of TestFaultSequence:
// ROSTERD_FAULT_STEPS, else 240 (120 under the race detector, 60 with
// -short).
func faultSteps(t *testing.T) int {
	if v := os.Getenv("ROSTERD_FAULT_STEPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("ROSTERD_FAULT_STEPS: %v", err)
		}
		return n
	}
	switch {
	case testing.Short():
		return 60
	case raceEnabled:
		return 120
	}
	return 240
}

// faultSeed is ROSTERD_FAULT_SEED, else a new seed; the test logs it.
func faultSeed(t *testing.T) uint64 {
	if v := os.Getenv("ROSTERD_FAULT_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ROSTERD_FAULT_SEED: %v", err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestFaultSequence is issue 12's randomized fault test, in process with
// a real bbolt file: a sequence of uploads (random valid and invalid
// files of every kind, under the canonical names, a case variant and a
// pattern), with one write of the state failed at a random point of a
// random batch in about a third of the steps (an error, a panic, or a
// crash that stops the pipeline there), full-disk periods over one to
// three steps (every write at some points fails: failed batches wait,
// newer uploads supersede them), and restarts. After each step, once the
// pipeline is done with it: every batch with an outcome took its
// files in completion order and none twice, every applied batch's events
// are exactly the model's changes, no batch is applied after a newer one,
// and the snapshot is the model's (ingesttest). The seed is logged;
// ROSTERD_FAULT_SEED reproduces a run, ROSTERD_FAULT_STEPS changes its
// length.
func TestFaultSequence(t *testing.T) {
	seed, steps := faultSeed(t), faultSteps(t)
	rng := rand.New(rand.NewPCG(seed, 12))
	pct, count := 100.0, 1<<30
	st := state.Settings{UsersPatterns: ingesttest.UsersPatterns, DeleteThresholdPercent: &pct, DeleteThresholdCount: &count}

	ch := &chaos{fired: map[string]int{}}
	root := t.TempDir()
	db, err := state.Open(filepath.Join(root, "rosterd.db"), &state.Options{NoSync: true, Fault: ch.hook})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrg(state.Org{Name: "acme", Settings: st}); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	fail := func(format string, args ...any) {
		t.Helper()
		all, _ := db.Batches("acme", "", 0)
		for i := len(all) - 1; i >= 0; i-- {
			raw, _ := json.Marshal(all[i])
			t.Logf("batch %s", raw)
		}
		t.Logf("pipeline log:\n%s", logs.String())
		t.Fatalf(format, args...)
	}
	staged := rng.IntN(2) == 0 // every apply staged, in transactions of one to four changes
	stageTx := 1 + rng.IntN(4)
	e := &env{t: t, db: db, org: "acme", orgDir: filepath.Join(root, "orgs", "acme"), root: root,
		tune: func(c *Config) {
			c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			c.RetryMin, c.RetryMax = 2*time.Millisecond, 10*time.Millisecond
			if staged {
				c.StageAbove, c.StageTxChanges = -1, stageTx
			}
		}}
	os.MkdirAll(e.orgDir, 0o700)
	defaults := Defaults{InactiveUsers: "keep"}
	restart := func() {
		e.stop()
		ch.mu.Lock()
		ch.crashed = false
		ch.mu.Unlock()
		e.start(defaults)
		ch.mu.Lock()
		ch.stop = e.cancel
		ch.mu.Unlock()
	}
	t.Logf("seed %d, %d steps, staged %v (ROSTERD_FAULT_SEED=%d reproduces)", seed, steps, staged, seed)
	restart()
	t.Cleanup(func() {
		e.stop()
		db.Close()
	})

	gen := ingesttest.NewGenerator(rng)
	check := ingesttest.NewChecker()
	lastEvent := ""
	restarts, crashes, full := 0, 0, 0
	for step := range steps {
		us := gen.Step(step)
		switch r := rng.IntN(100); {
		case full > 0:
		case r < 20:
			ch.arm("error", 1+rng.IntN(12))
		case r < 26:
			ch.arm("panic", 1+rng.IntN(12))
		case r < 34:
			ch.arm("crash", 1+rng.IntN(12))
		case r < 42:
			// Batches fail where they write; now and then a new one
			// cannot even be recorded.
			full = 2 + rng.IntN(3)
			points := []string{"archived", "apply", "change", "stage", "flip"}
			rng.Shuffle(len(points), func(i, j int) { points[i], points[j] = points[j], points[i] })
			points = points[:1+rng.IntN(len(points))]
			if rng.IntN(4) == 0 {
				points = append(points, "form")
			}
			ch.fill(points)
		}
		for i := range us {
			us[i].At = time.Now()
			e.upload(us[i].Name, us[i].Content)
		}
		check.Uploaded(us)
		if rng.IntN(100) < 5 {
			restart() // a shutdown at a random moment
			restarts++
		}
		if full > 0 {
			// Let the step's batch meet the full disk (or finish without
			// writing at the failing points).
			forms := ch.formHits()
			for deadline := time.Now().Add(10 * time.Second); !metFullDisk(db, us) && ch.formHits() == forms; {
				if time.Now().After(deadline) {
					fail("step %d (seed %d): the step's batch neither failed nor finished on the full disk", step, seed)
				}
				time.Sleep(time.Millisecond)
			}
			if full--; full > 0 {
				continue // the disk stays full: the next upload comes meanwhile
			}
			ch.fill(nil)
		}
		var bs []ingesttest.Batch
		deadline := time.Now().Add(30 * time.Second)
		for {
			ch.mu.Lock()
			crashed := ch.crashed
			ch.mu.Unlock()
			if crashed {
				restart()
				crashes++
			}
			bs = inProcessBatches(t, db)
			if check.Settled(bs) {
				break
			}
			if time.Now().After(deadline) {
				fail("step %d (seed %d): not settled after 30s: %+v", step, seed, bs)
			}
			time.Sleep(2 * time.Millisecond)
		}
		ch.arm("", 0) // an armed fault that did not fire goes
		evs, err := db.Events("acme", lastEvent, 0)
		if err != nil {
			t.Fatal(err)
		}
		var news []ingesttest.Event
		for _, ev := range evs {
			news = append(news, ingesttest.Event{ID: ev.ID, Type: ev.Event, BatchID: ev.BatchID, Data: ev.Data})
			lastEvent = ev.ID
		}
		if err := check.Check(bs, news, inProcessSnapshot(t, db)); err != nil {
			fail("step %d (seed %d): %v", step, seed, err)
		}
	}
	superseded, takenOver := 0, 0
	for _, b := range inProcessBatches(t, db) {
		if b.Status == state.BatchSuperseded {
			superseded++
		}
	}
	all, _ := db.Batches("acme", "", 0)
	for _, b := range all {
		for _, f := range b.Files {
			if f.From != "" {
				takenOver++
			}
		}
	}
	t.Logf("%d batches, %d superseded, %d files taken over; %d restarts, %d crashes; faults fired: %v", len(all), superseded, takenOver, restarts, crashes, ch.fired)
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func inProcessBatches(t *testing.T, db *state.DB) []ingesttest.Batch {
	t.Helper()
	bs, err := db.Batches("acme", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ingesttest.Batch, 0, len(bs))
	for _, b := range bs {
		x := ingesttest.Batch{ID: b.ID, Status: b.Status}
		for _, f := range b.Files {
			x.Files = append(x.Files, ingesttest.File{Name: f.Name, Kind: f.Kind, SHA256: f.SHA256, CompletedAt: f.CompletedAt})
		}
		for _, f := range b.Ignored {
			x.Ignored = append(x.Ignored, ingesttest.File{Name: f.Name, Kind: f.Kind, CompletedAt: f.CompletedAt})
		}
		out = append(out, x)
	}
	return out
}

func inProcessSnapshot(t *testing.T, db *state.DB) ingesttest.Snapshot {
	t.Helper()
	s := ingesttest.Snapshot{Users: map[string]string{}, Groups: map[string]string{}, Members: map[string][]string{}}
	users, err := db.Users("acme", "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range users {
		var u struct {
			ID       string `json:"id"`
			JobTitle string `json:"job_title"`
		}
		json.Unmarshal(raw, &u)
		s.Users[u.ID] = u.JobTitle
		gs, err := db.UserGroups("acme", u.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range gs {
			var g struct{ Name string }
			json.Unmarshal(raw, &g)
			s.Members[u.ID] = append(s.Members[u.ID], g.Name)
		}
		slices.Sort(s.Members[u.ID])
	}
	groups, err := db.Groups("acme", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range groups {
		var g struct {
			Name  string
			Attrs struct {
				Description string `json:"description"`
			} `json:"attributes"`
		}
		json.Unmarshal(raw, &g)
		s.Groups[g.Name] = g.Attrs.Description
	}
	return s
}
