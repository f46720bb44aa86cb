package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

// fleet is instances of a pipeline in one process, sharing one store and
// one folder (SPEC §11). On "postgres" each instance has its own
// PostgreSQL store (Config.Instance, writes fenced by their leases), as
// a fleet's processes do. On "bbolt" the pipelines share one bbolt store
// in-process and take their batch leases from PostgreSQL, each as an
// instance of its own.
type fleet struct {
	t      *testing.T
	kind   string
	db     readStore // the test's own reads and writes
	url    string
	root   string
	orgDir string
	ttl    time.Duration
	leases map[string]*postgres.DB
	pipes  map[string]*Pipeline
	logs   map[string]*syncBuffer
	stops  map[string]func()

	mu      sync.Mutex
	applied []appliedBy // OnApplied calls, with the lease's holder then
}

type appliedBy struct{ instance, holder string }

// syncBuffer is a log buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFleet(t *testing.T, kind string, ttl time.Duration, settle time.Duration, instances ...string) *fleet {
	t.Helper()
	root := t.TempDir()
	url := pgtest.NewDatabase(t)
	var db readStore
	if kind == "bbolt" {
		b, err := state.Open(filepath.Join(root, "rosterd.db"), &state.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		db = b
	} else {
		pg, err := postgres.Open(context.Background(), postgres.Config{URL: url, Instance: "test", ReplicaDir: filepath.Join(root, "replica-test")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		db = pg
	}
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, kind: kind, db: db, url: url, root: root, orgDir: filepath.Join(root, "orgs", "acme"), ttl: ttl,
		leases: map[string]*postgres.DB{}, pipes: map[string]*Pipeline{}, logs: map[string]*syncBuffer{}, stops: map[string]func(){}}
	if err := os.MkdirAll(filepath.Join(f.orgDir, "reports"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, in := range instances {
		f.start(in, settle)
	}
	return f
}

// start runs the pipeline of instance in.
func (f *fleet) start(in string, settle time.Duration) {
	f.t.Helper()
	ls, err := postgres.Open(context.Background(), postgres.Config{URL: f.url, Instance: in, Fenced: f.kind == "postgres",
		ReplicaDir: filepath.Join(f.root, "replica-"+in)})
	if err != nil {
		f.t.Fatal(err)
	}
	var db Store = ls // its leases are the store's own
	if f.kind == "bbolt" {
		db = f.db
	}
	log := &syncBuffer{}
	p, err := New(Config{DB: db, OrgsRoot: filepath.Join(f.root, "orgs"), Leases: ls, LeaseTTL: f.ttl,
		Defaults: Defaults{Settle: settle, DeleteThresholdPercent: 100, DeleteThresholdCount: 1000, InactiveUsers: "keep"},
		Logger:   slog.New(slog.NewTextHandler(log, nil)),
		OnApplied: func(org string) {
			holder := ""
			if l, err := ls.Leases(); err == nil {
				for _, x := range l {
					if x.Name == state.BatchLease(org) && x.ExpiresAt.After(time.Now()) {
						holder = x.Holder
					}
				}
			}
			f.mu.Lock()
			f.applied = append(f.applied, appliedBy{in, holder})
			f.mu.Unlock()
		}})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	f.leases[in], f.pipes[in], f.logs[in] = ls, p, log
	stopped := false
	f.stops[in] = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Run of %s: %v", in, err)
		}
		ls.Close()
	}
	f.t.Cleanup(f.stops[in])
}

// upload places users.csv the way sftpd does and notifies the instance
// that took the upload; it returns the file's SHA-256.
func (f *fleet) upload(in string, data []byte) string {
	f.t.Helper()
	tmp := filepath.Join(f.orgDir, ".in.users.csv")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(f.orgDir, "users.csv")); err != nil {
		f.t.Fatal(err)
	}
	f.pipes[in].Notify("acme", "users.csv")
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// batchesOf returns the batches that took the file of sha.
func (f *fleet) batchesOf(sha string) []state.Batch {
	f.t.Helper()
	bs, err := f.db.Batches("acme", "", 0)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []state.Batch
	for _, b := range bs {
		for _, file := range b.Files {
			if file.SHA256 == sha {
				out = append(out, b)
			}
		}
	}
	return out
}

// waitApplied waits for the batch that took the file of sha to be applied.
func (f *fleet) waitApplied(sha string, timeout time.Duration) state.Batch {
	f.t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		for _, b := range f.batchesOf(sha) {
			if b.Status == state.BatchApplied {
				return b
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the upload %s was not applied within %v: %+v", sha[:8], timeout, f.batchesOf(sha))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBatchLeaseOneHolder: two instances share the store and the folder;
// uploads reach one or the other (or both). Each upload becomes one
// batch, applied once, by the instance that holds the organization's
// lease at the time; a holder gives the lease up when it is idle, so the
// uploads that reach the other instance go on.
func TestBatchLeaseOneHolder(t *testing.T) {
	for _, kind := range []string{"postgres", "bbolt"} {
		t.Run(kind, func(t *testing.T) { testBatchLeaseOneHolder(t, kind) })
	}
}

func testBatchLeaseOneHolder(t *testing.T, kind string) {
	f := newFleet(t, kind, 3*time.Second, 0, "a", "b")
	var last []byte
	for i := range 6 {
		last = usersCSV(1, 3+i, nil)
		var sha string
		switch i % 3 {
		case 0:
			sha = f.upload("a", last)
		case 1:
			sha = f.upload("b", last)
		default: // both instances see it (a scan, a watcher)
			sha = f.upload("a", last)
			f.pipes["b"].Notify("acme", "users.csv")
		}
		f.waitApplied(sha, 15*time.Second)
	}
	// Every upload is one batch: a second instance noting the same file
	// finds its completion processed.
	bs, err := f.db.Batches("acme", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	applied := 0
	for _, b := range bs {
		switch b.Status {
		case state.BatchApplied:
			applied++
		default:
			t.Errorf("batch %s is %s; want every batch applied once", b.ID, b.Status)
		}
	}
	if applied != 6 {
		t.Errorf("%d batches applied; want 6", applied)
	}
	if c, _ := f.db.SnapshotCounts("acme"); c.Users != 8 {
		t.Errorf("snapshot has %d users; want the last upload's 8", c.Users)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	by := map[string]int{}
	for _, a := range f.applied {
		by[a.instance]++
		if a.holder != a.instance {
			t.Errorf("instance %s applied a batch while the lease was %q's", a.instance, a.holder)
		}
	}
	// Which instance ran which batch is a race: both watch the folder
	// here (on a network filesystem only the instance that took the
	// upload learns of it).
	t.Logf("batches applied per instance: %v", by)
}

// TestBatchLeaseLostAndTakenOver: an instance that loses its lease (here
// taken over after its expiry, as when it was cut off from the database)
// stops: it does not run the organization's batch while the new holder
// has the lease. Once that holder is gone and its lease expired, the
// instance takes the lease over and runs the batch.
func TestBatchLeaseLostAndTakenOver(t *testing.T) {
	for _, kind := range []string{"postgres", "bbolt"} {
		t.Run(kind, func(t *testing.T) { testBatchLeaseLostAndTakenOver(t, kind) })
	}
}

func testBatchLeaseLostAndTakenOver(t *testing.T, kind string) {
	const ttl = time.Second
	// The settle window keeps a's loop holding the lease while it waits.
	f := newFleet(t, kind, ttl, 3*time.Second, "a")
	sha := f.upload("a", usersCSV(1, 5, nil))
	name := state.BatchLease("acme")
	holder := func() state.Lease {
		ls, err := f.leases["a"].Leases()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if l.Name == name {
				return l
			}
		}
		return state.Lease{}
	}
	for deadline := time.Now().Add(5 * time.Second); holder().Holder != "a"; {
		if time.Now().After(deadline) {
			t.Fatalf("a did not take the lease: %+v", holder())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Another instance, b, takes the lease over as after its expiry (a
	// was cut off), in one statement (a renews meanwhile), and then dies
	// without giving it up.
	conn, err := pgx.Connect(context.Background(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	taken := state.Lease{Name: name, Holder: "b"}
	err = conn.QueryRow(context.Background(), `UPDATE rosterd.leases SET holder = 'b', token = token + 1,
    expires_at = now() + make_interval(secs => $2) WHERE name = $1 RETURNING token, expires_at`, name, ttl.Seconds()).
		Scan(&taken.Token, &taken.ExpiresAt)
	if err != nil {
		t.Fatal(err)
	}
	if kind == "postgres" {
		// a's writes to the organization's batches are refused from the
		// takeover on.
		_, err := f.leases["a"].FormBatch(state.Batch{ID: ulid.Make().String(), Org: "acme", Status: state.BatchPending}, nil)
		if !errors.Is(err, state.ErrLeaseLost) {
			t.Errorf("a batch write by a after the takeover = %v; want ErrLeaseLost", err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(f.logs["a"].String(), "batch lease lost"); {
		if time.Now().After(deadline) {
			t.Fatalf("a did not notice it lost its lease:\n%s", f.logs["a"].String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	b := f.waitApplied(sha, 30*time.Second)
	// Not before b's lease expired: a stopped while b held it.
	if b.FinishedAt == nil || b.FinishedAt.Before(taken.ExpiresAt) {
		t.Errorf("batch finished at %v, while b held the lease (until %v)", b.FinishedAt, taken.ExpiresAt)
	}
	if l := holder(); l.Token <= taken.Token {
		t.Errorf("lease after the batch = %+v; want a's takeover after b's token %d", l, taken.Token)
	}
	// OnApplied comes after the batch is visible.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.mu.Lock()
		n := len(f.applied)
		f.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) != 1 || f.applied[0].holder != "a" {
		t.Errorf("applied = %+v; want one batch, by a under its lease", f.applied)
	}
}

// TestBatchLeaseWakeTakesOver: an instance that recorded a batch and died
// in the middle of it (its lease left to expire) has its batch redone by
// another instance that the store's notification woke (Pipeline.Wake),
// once the dead one's lease expired; the batch is applied once, as
// recorded.
func TestBatchLeaseWakeTakesOver(t *testing.T) {
	for _, kind := range []string{"postgres", "bbolt"} {
		t.Run(kind, func(t *testing.T) { testBatchLeaseWakeTakesOver(t, kind) })
	}
}

func testBatchLeaseWakeTakesOver(t *testing.T, kind string) {
	const ttl = time.Second
	f := newFleet(t, kind, ttl, 0, "a")
	other, err := postgres.Open(context.Background(), postgres.Config{URL: f.url, Instance: "dead", Fenced: true,
		ReplicaDir: filepath.Join(f.root, "replica-dead")})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	dead, err := other.AcquireLease(state.BatchLease("acme"), ttl)
	if err != nil {
		t.Fatal(err)
	}
	// What the dead instance did: record the batch and archive its file
	// (outside the folder, which a's watcher would see).
	data := usersCSV(1, 4, nil)
	id := ulid.Make().String()
	if err := os.MkdirAll(filepath.Join(f.root, "archive", "acme", id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "archive", "acme", id, "users.csv"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	file := state.BatchFile{Name: "users.csv", Kind: "users", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		ModTime: time.Now().UTC(), CompletedAt: time.Now().UTC()}
	var rec Store = other // under its lease
	if kind == "bbolt" {
		rec = f.db
	}
	if _, err := rec.FormBatch(state.Batch{ID: id, Org: "acme", Status: state.BatchPending, Files: []state.BatchFile{file}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.RecordArchived("acme", id, []state.BatchFile{file}); err != nil {
		t.Fatal(err)
	}
	f.pipes["a"].Wake("acme")
	b := f.waitApplied(file.SHA256, 15*time.Second)
	if b.ID != id {
		t.Errorf("applied batch %s; want the recorded %s redone", b.ID, id)
	}
	if b.FinishedAt == nil || b.FinishedAt.Before(dead.ExpiresAt) {
		t.Errorf("batch finished at %v, before the dead instance's lease expired (%v)", b.FinishedAt, dead.ExpiresAt)
	}
	if bs := f.batchesOf(file.SHA256); len(bs) != 1 {
		t.Errorf("batches with the file: %+v; want the one", bs)
	}
}
