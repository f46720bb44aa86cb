package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// TestChoose: of several candidates of one kind the most recently
// completed wins, then the name that sorts last; the others are ignored,
// in name order (SPEC §5).
func TestChoose(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	c := func(name string, kind schema.Kind, sec int) candidate {
		return candidate{name: name, kind: kind, completed: t0.Add(time.Duration(sec) * time.Second)}
	}
	for _, tc := range []struct {
		name          string
		in            []candidate
		taken, ignore []string
	}{
		{"one of each", []candidate{c("users.csv", schema.Users, 1), c("groups.csv", schema.Groups, 0)}, []string{"groups.csv", "users.csv"}, nil},
		{"newest wins", []candidate{c("users_20261202.csv", schema.Users, 2), c("users.csv", schema.Users, 1), c("users_20261201.csv", schema.Users, 3)},
			[]string{"users_20261201.csv"}, []string{"users.csv", "users_20261202.csv"}},
		{"tie: last name wins", []candidate{c("users.csv", schema.Users, 1), c("Users.CSV", schema.Users, 1)}, []string{"users.csv"}, []string{"Users.CSV"}},
		{"tie in the other order", []candidate{c("Users.CSV", schema.Users, 1), c("users.csv", schema.Users, 1)}, []string{"users.csv"}, []string{"Users.CSV"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			taken, ignored := choose(tc.in)
			var gotTaken, gotIgnored []string
			for _, c := range taken {
				gotTaken = append(gotTaken, c.name)
			}
			slices.Sort(gotTaken)
			for _, c := range ignored {
				gotIgnored = append(gotIgnored, c.name)
			}
			if !slices.Equal(gotTaken, tc.taken) || !slices.Equal(gotIgnored, tc.ignore) {
				t.Errorf("choose = taken %v, ignored %v; want %v, %v", gotTaken, gotIgnored, tc.taken, tc.ignore)
			}
		})
	}
}

// faults is a switchable state.Options.Fault.
type faults struct {
	mu sync.Mutex
	fn func(point string) error
}

func (f *faults) set(fn func(point string) error) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}

func (f *faults) hook(point string) error {
	f.mu.Lock()
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(point)
}

// failAt fails every write at the given points, as a full disk would.
func failAt(points ...string) func(string) error {
	return func(p string) error {
		if slices.Contains(points, p) {
			return fmt.Errorf("injected at %s: %w", p, syscall.ENOSPC)
		}
		return nil
	}
}

// newFaultEnv is newEnvWith on a database whose writes the returned
// faults can fail.
func newFaultEnv(t *testing.T, st state.Settings, d Defaults, tune func(*Config)) (*env, *faults) {
	t.Helper()
	root := t.TempDir()
	f := &faults{}
	db, err := state.Open(filepath.Join(root, "rosterd.db"), &state.Options{NoSync: true, Fault: f.hook})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrg(state.Org{Name: "acme", Settings: st}); err != nil {
		t.Fatal(err)
	}
	orgDir := filepath.Join(root, "orgs", "acme")
	if err := os.MkdirAll(filepath.Join(orgDir, "reports"), 0o700); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, org: "acme", orgDir: orgDir, root: root, tune: tune}
	e.start(d)
	t.Cleanup(func() {
		e.stop()
		db.Close()
	})
	return e, f
}

var orderDefaults = Defaults{DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"}

// settled is orderDefaults with a settle window that puts the uploads of
// one step in one batch.
var settled = Defaults{Settle: 200 * time.Millisecond, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"}

// retryIn sets the retry backoff.
func retryIn(min, max time.Duration) func(*Config) {
	return func(c *Config) { c.RetryMin, c.RetryMax = min, max }
}

// waitFor polls cond until it holds or the deadline passes.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s (newest batch %+v)", what, e.newest())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitAttempt waits until the newest batch waits for a retry after at
// least n failed runs, and returns it.
func (e *env) waitAttempt(n int) state.Batch {
	e.t.Helper()
	var b state.Batch
	e.waitFor(fmt.Sprintf("a batch with %d failed attempts", n), func() bool {
		b = e.newest()
		return b.Attempts >= n && (b.Status == state.BatchPending || b.Status == state.BatchProcessing)
	})
	return b
}

// waitReport waits for b's report files, which follow its record.
func (e *env) waitReport(b state.Batch) {
	e.t.Helper()
	e.waitFor("the report files of "+b.ID, func() bool {
		_, err := os.Stat(filepath.Join(e.orgDir, "reports", reportBase(b)+".json"))
		return err == nil
	})
}

func titledUsersCSV(title string, ids ...string) []byte {
	var b strings.Builder
	b.WriteString("user_id,email,first_name,last_name,job_title\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "%s,%s@acme.test,F%s,L%s,%s\n", id, strings.ToLower(id), id, id, title)
	}
	return []byte(b.String())
}

func (e *env) title(id string) string {
	e.t.Helper()
	raw, err := e.db.User(e.org, id)
	if err != nil {
		return ""
	}
	var u struct {
		JobTitle string `json:"job_title"`
	}
	json.Unmarshal(raw, &u)
	return u.JobTitle
}

// TestRetryAfterWriteFailure: a batch whose apply fails on a full disk
// waits, is retried with backoff, and is applied once the disk has room
// again; the record and the metrics show the attempts (SPEC §5).
func TestRetryAfterWriteFailure(t *testing.T) {
	for _, point := range []string{"apply", "archived", "change", "panic"} {
		t.Run(point, func(t *testing.T) {
			e, f := newFaultEnv(t, state.Settings{}, orderDefaults, retryIn(20*time.Millisecond, 80*time.Millisecond))
			e.upload("users.csv", titledUsersCSV("A", "E1", "E2"))
			a := e.waitBatch("", 10*time.Second)
			if point == "panic" {
				f.set(func(p string) error {
					if p == "apply" {
						panic("a handler's bug")
					}
					return nil
				})
			} else {
				f.set(failAt(point))
			}
			e.upload("users.csv", titledUsersCSV("B", "E1", "E2"))
			b := e.waitAttempt(2)
			if b.LastError == "" || b.RetryAt == nil {
				t.Errorf("waiting batch = %+v; want last_error and retry_at", b)
			}
			if got := testutil.ToFloat64(e.p.metrics.waiting); got != 1 {
				t.Errorf("rosterd_ingest_batches_waiting = %v; want 1", got)
			}
			if rep, err := e.db.BatchReport(e.org, b.ID); err != nil || !bytes.Contains(rep, []byte("retried automatically")) {
				t.Errorf("report of the waiting batch = %s, %v; want it to say it is retried", rep, err)
			}
			f.set(nil)
			got := e.waitBatch(a.ID, 10*time.Second)
			if got.ID != b.ID || got.Status != state.BatchApplied || got.Attempts < 2 || got.RetryAt != nil {
				t.Fatalf("after the fault = %s %s attempts %d retry_at %v; want %s applied after its attempts", got.ID, got.Status, got.Attempts, got.RetryAt, b.ID)
			}
			if e.title("E1") != "B" {
				t.Errorf("job_title = %q; want B", e.title("E1"))
			}
			if n := testutil.ToFloat64(e.p.metrics.retries); n < 2 {
				t.Errorf("rosterd_ingest_batch_retries_total = %v; want at least 2", n)
			}
			e.waitFor("the waiting gauge to go back to 0", func() bool { return testutil.ToFloat64(e.p.metrics.waiting) == 0 })
			rep, _ := e.db.BatchReport(e.org, b.ID)
			if !bytes.Contains(rep, []byte("it was retried")) {
				t.Errorf("final report does not mention the retries:\n%s", rep)
			}
		})
	}
}

// TestNewerUploadSupersedesFailedBatch: while batch B (users.csv) waits
// for its retry, an upload of user_groups.csv alone forms C, which takes
// over B's users.csv; B is superseded with a report and never applied
// (SPEC §5). Once with B failed at the apply (processing), once at the
// archive (pending).
func TestNewerUploadSupersedesFailedBatch(t *testing.T) {
	for _, point := range []string{"apply", "archived"} {
		t.Run(point, func(t *testing.T) {
			e, f := newFaultEnv(t, state.Settings{}, settled, retryIn(time.Hour, time.Hour))
			e.upload("users.csv", titledUsersCSV("A", "E1", "E2"))
			e.upload("user_groups.csv", []byte("group_name,user_id\nEng,E1\n"))
			if a := e.waitBatch("", 10*time.Second); len(a.Files) != 2 {
				t.Fatalf("first batch = %+v; want both files", a.Files)
			}
			f.set(failAt(point))
			e.upload("users.csv", titledUsersCSV("B", "E1", "E2", "E3"))
			b := e.waitAttempt(1)
			f.set(nil)
			e.upload("user_groups.csv", []byte("group_name,user_id\nEng,E3\n"))
			c := e.waitBatch(b.ID, 10*time.Second)
			if c.Status != state.BatchApplied || len(c.Files) != 2 || c.Files[0].Name != "users.csv" || c.Files[0].From != b.ID {
				t.Fatalf("C = %s %+v; want applied with B's users.csv taken over", c.Status, c.Files)
			}
			if !slices.Equal(c.Supersedes, []string{b.ID}) {
				t.Errorf("C supersedes %v; want [%s]", c.Supersedes, b.ID)
			}
			sb, _ := e.db.Batch(e.org, b.ID)
			if sb.Status != state.BatchSuperseded || sb.SupersededBy != c.ID {
				t.Errorf("B = %s by %q; want superseded by %s", sb.Status, sb.SupersededBy, c.ID)
			}
			e.waitReport(sb)
			checkSupersededReport(t, e, sb)
			if rep, _ := e.db.BatchReport(e.org, b.ID); !bytes.Contains(rep, []byte("users.csv is part of batch "+c.ID)) {
				t.Errorf("B's report does not say where its users.csv went:\n%s", rep)
			}
			if e.title("E3") != "B" {
				t.Errorf("E3's job_title = %q; want B (B's users.csv applied through C)", e.title("E3"))
			}
			var members []string
			for _, ev := range e.batchEvents(c.ID) {
				if ev.Event == state.EventGroupUserAdded || ev.Event == state.EventGroupUserRemoved {
					var d struct{ User struct{ ID string } }
					json.Unmarshal(ev.Data, &d)
					members = append(members, ev.Event+" "+d.User.ID)
				}
			}
			slices.Sort(members)
			if want := []string{state.EventGroupUserAdded + " E3", state.EventGroupUserRemoved + " E1"}; !slices.Equal(members, want) {
				t.Errorf("C's membership events = %v; want %v", members, want)
			}
			if len(e.batchEvents(b.ID)) != 0 {
				t.Errorf("B has events")
			}
		})
	}
}

// TestStartupOrder: at start-up, an interrupted batch older than a batch
// with an outcome is superseded and never applied (issue 12's case 2 as a
// database written before this rule left it), and several interrupted
// batches newer than any outcome are superseded by one new batch holding
// the newest file of each kind.
func TestStartupOrder(t *testing.T) {
	t.Run("stale", func(t *testing.T) {
		e, _ := newFaultEnv(t, state.Settings{}, orderDefaults, nil)
		e.upload("users.csv", titledUsersCSV("A", "E1"))
		a := e.waitBatch("", 10*time.Second)
		e.upload("users.csv", titledUsersCSV("C", "E1"))
		c := e.waitBatch(a.ID, 10*time.Second)
		e.stop()
		// B, between A and C, left processing with its archived file.
		bid := ulid.MustNew(ulid.Timestamp(c.CreatedAt.Add(-time.Millisecond)), nil).String()
		if bid <= a.ID || bid >= c.ID {
			t.Fatalf("B's id %s not between %s and %s", bid, a.ID, c.ID)
		}
		arch := filepath.Join(e.root, "archive", e.org, bid)
		os.MkdirAll(arch, 0o700)
		os.WriteFile(filepath.Join(arch, "users.csv"), titledUsersCSV("B", "E1"), 0o600)
		if _, err := e.db.CreateBatch(state.Batch{ID: bid, Org: e.org, Status: state.BatchProcessing, CreatedAt: c.CreatedAt,
			Files: []state.BatchFile{{Name: "users.csv", Kind: "users", SHA256: "x"}}}); err != nil {
			t.Fatal(err)
		}
		e.start(orderDefaults)
		e.waitFor("B to be superseded", func() bool {
			b, _ := e.db.Batch(e.org, bid)
			return b.Status == state.BatchSuperseded
		})
		b, _ := e.db.Batch(e.org, bid)
		if b.SupersededBy != c.ID || len(e.batchEvents(bid)) != 0 || e.title("E1") != "C" {
			t.Errorf("B = %s by %s, %d events, E1 %q; want superseded by C, no events, C's title", b.Status, b.SupersededBy, len(e.batchEvents(bid)), e.title("E1"))
		}
		e.waitReport(b)
		checkSupersededReport(t, e, b)
	})
	t.Run("stale list", func(t *testing.T) {
		// In a fleet, a loop's list of unfinished batches may be older
		// than its lease: read at start-up while another instance ran the
		// organization's batches and finished some. A finished one is left
		// alone, and the batch really unfinished is redone, not merged
		// into a new batch that supersedes it.
		e, _ := newFaultEnv(t, state.Settings{}, orderDefaults, nil)
		e.upload("users.csv", titledUsersCSV("A", "E1"))
		a := e.waitBatch("", 10*time.Second)
		e.stop()
		bid := ulid.Make().String()
		arch := filepath.Join(e.root, "archive", e.org, bid)
		os.MkdirAll(arch, 0o700)
		data := titledUsersCSV("B", "E1")
		os.WriteFile(filepath.Join(arch, "users.csv"), data, 0o600)
		sum := sha256.Sum256(data)
		if _, err := e.db.CreateBatch(state.Batch{ID: bid, Org: e.org, Status: state.BatchProcessing, CreatedAt: time.Now().UTC(),
			Files: []state.BatchFile{{Name: "users.csv", Kind: "users", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}}}); err != nil {
			t.Fatal(err)
		}
		p, err := New(Config{DB: e.db, OrgsRoot: filepath.Join(e.root, "orgs"), Defaults: orderDefaults})
		if err != nil {
			t.Fatal(err)
		}
		stale := a
		stale.Status, stale.FinishedAt = state.BatchProcessing, nil
		p.loop(e.org).resumeWith([]state.Batch{stale}) // as the list had A before it was applied
		ctx, cancel := context.WithCancel(context.Background())
		e.p, e.cancel, e.done = p, cancel, make(chan error, 1)
		go func() { e.done <- p.Run(ctx) }()
		e.waitFor("B finished", func() bool {
			b, _ := e.db.Batch(e.org, bid)
			return state.BatchFinished(b.Status)
		})
		b, _ := e.db.Batch(e.org, bid)
		if b.Status != state.BatchApplied || e.title("E1") != "B" {
			t.Errorf("B = %s (superseded by %q), E1 %q; want B redone: applied, B's title", b.Status, b.SupersededBy, e.title("E1"))
		}
		if got, _ := e.db.Batch(e.org, a.ID); got.Status != state.BatchApplied {
			t.Errorf("A = %s; want applied, untouched", got.Status)
		}
		if n := e.newest(); n.ID != bid {
			t.Errorf("newest batch %s (%s); want B, no batch formed after it", n.ID, n.Status)
		}
	})
	t.Run("merged", func(t *testing.T) {
		e, _ := newFaultEnv(t, state.Settings{}, orderDefaults, nil)
		e.upload("users.csv", titledUsersCSV("A", "E1", "E2"))
		a := e.waitBatch("", 10*time.Second)
		e.stop()
		// Two interrupted batches, as an older daemon could leave them.
		os.WriteFile(filepath.Join(e.orgDir, "users.csv"), titledUsersCSV("B", "E1", "E2"), 0o600)
		os.WriteFile(filepath.Join(e.orgDir, "user_groups.csv"), []byte("group_name,user_id\nEng,E2\n"), 0o600)
		now := time.Now()
		b1 := state.Batch{ID: ulid.Make().String(), Org: e.org, Status: state.BatchPending,
			Files: []state.BatchFile{{Name: "users.csv", Kind: "users", CompletedAt: now}}}
		b2 := state.Batch{ID: ulid.Make().String(), Org: e.org, Status: state.BatchPending,
			Files: []state.BatchFile{{Name: "user_groups.csv", Kind: "user_groups", CompletedAt: now}}}
		for _, b := range []state.Batch{b1, b2} {
			if _, err := e.db.CreateBatch(b); err != nil {
				t.Fatal(err)
			}
		}
		e.start(orderDefaults)
		n := e.waitBatch(b2.ID, 10*time.Second)
		if n.ID == b2.ID || n.Status != state.BatchApplied || len(n.Files) != 2 || !slices.Equal(n.Supersedes, []string{b1.ID, b2.ID}) {
			t.Fatalf("new batch = %s %s %+v supersedes %v; want applied with both files, superseding both", n.ID, n.Status, n.Files, n.Supersedes)
		}
		for _, id := range []string{b1.ID, b2.ID} {
			if b, _ := e.db.Batch(e.org, id); b.Status != state.BatchSuperseded {
				t.Errorf("batch %s = %s; want superseded", id, b.Status)
			}
		}
		if e.title("E1") != "B" || a.ID >= n.ID {
			t.Errorf("E1 = %q; want B", e.title("E1"))
		}
	})
}

// TestScanTakesOnlyNewCompletions: at start-up the scan takes a file
// placed while the daemon was down, but not one already processed, nor
// one set aside for a newer file of its kind (issue 12's case 1).
func TestScanTakesOnlyNewCompletions(t *testing.T) {
	e, _ := newFaultEnv(t, state.Settings{UsersPatterns: []string{"users_*.csv"}}, settled, nil)
	e.upload("users.csv", titledUsersCSV("A", "E1"))
	e.upload("users_20261201.csv", titledUsersCSV("B", "E1"))
	b := e.waitBatch("", 10*time.Second)
	if len(b.Files) != 1 || b.Files[0].Name != "users_20261201.csv" || len(b.Ignored) != 1 || b.Ignored[0].Name != "users.csv" {
		t.Fatalf("batch = %+v ignored %+v; want users_20261201.csv taken, users.csv ignored", b.Files, b.Ignored)
	}
	if rep, _ := e.db.BatchReport(e.org, b.ID); !bytes.Contains(rep, []byte("users.csv was ignored")) {
		t.Errorf("report does not name the ignored file:\n%s", rep)
	}
	for range 2 {
		e.stop()
		e.start(settled)
	}
	// A file placed while the daemon is down is taken by the scan.
	e.stop()
	old := time.Now().Add(-time.Hour)
	p := filepath.Join(e.orgDir, "groups.csv")
	os.WriteFile(p, []byte("group_name\nEng\n"), 0o600)
	os.Chtimes(p, old, old)
	e.start(settled)
	g := e.waitBatch(b.ID, 10*time.Second)
	if len(g.Files) != 1 || g.Files[0].Name != "groups.csv" || e.title("E1") != "B" {
		t.Errorf("after restarts: batch %+v, E1 %q; want groups.csv only, E1 still B", g.Files, e.title("E1"))
	}
	// The completion record names only files in the folder.
	os.Remove(filepath.Join(e.orgDir, "users.csv"))
	e.stop()
	e.start(settled)
	e.waitFor("the scan to forget users.csv", func() bool {
		c, _ := e.db.Completions(e.org)
		_, ok := c.Files["users.csv"]
		return !ok
	})
}

// TestFailedFormingRetried: when the state cannot record a new batch,
// its files are not lost: the batch is formed again after a backoff.
func TestFailedFormingRetried(t *testing.T) {
	e, f := newFaultEnv(t, state.Settings{}, orderDefaults, retryIn(20*time.Millisecond, 20*time.Millisecond))
	var calls int
	f.set(func(p string) error {
		if p == "form" {
			calls++
			if calls <= 2 {
				return syscall.ENOSPC
			}
		}
		return nil
	})
	e.upload("users.csv", titledUsersCSV("A", "E1"))
	b := e.waitBatch("", 10*time.Second)
	if b.Status != state.BatchApplied || e.title("E1") != "A" {
		t.Errorf("batch = %s, E1 %q; want applied after two failed attempts to record it", b.Status, e.title("E1"))
	}
	if got := testutil.ToFloat64(e.p.metrics.retries); got != 2 {
		t.Errorf("retries = %v; want 2", got)
	}
}
