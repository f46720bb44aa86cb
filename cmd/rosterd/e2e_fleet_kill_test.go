package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

// The fleet test of SPEC §11 with the real binary: three instances on one
// database and one shared data directory, uploads with OpenSSH's sftp
// through each, the holder of an organization's batch lease killed
// (SIGKILL) at random moments of large batches.

// fleetLeaseTTL is the fleet's lease_ttl: a dead holder's batch is taken
// over within about twice this.
const fleetLeaseTTL = 2 * time.Second

// TestE2EFleetKillMidBatch: three instances on one database and one data
// directory; organizations upload with OpenSSH's sftp through each
// instance in turn; the big one's batches (tens of thousands of users)
// are cut short by a SIGKILL of the instance holding its batch lease, at
// a random moment of the batch, in each of at least 10 rounds (3 with
// -short). Another instance takes each over within the lease time; in the
// end every applied batch applied its upload once, in upload order, with
// exactly the events the upload makes against the previous one; the
// directory in the views is the last upload; a webhook receiver got
// every event of each organization in order with no gap and no overlap;
// and a reader of the views in repeatable-read transactions never saw
// half a batch. Set ROSTERD_FLEET_SEED to replay a run's moments.
func TestE2EFleetKillMidBatch(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	rounds, users := 10, 20000
	if testing.Short() {
		rounds, users = 3, 10000
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ROSTERD_FLEET_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (ROSTERD_FLEET_SEED=%d replays the moments)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 16))

	url := pgtest.NewDatabase(t)
	rc := newFleetReceiver(t, 0)
	cfg := filepath.Join(t.TempDir(), "rosterd.toml")
	os.WriteFile(cfg, fmt.Appendf(nil, `lease_ttl = %q
settle = "0s"

[defaults]
delete_threshold_percent = 100
delete_threshold_count = 1000000

[[webhook]]
id = "hook"
url = %q
secret = %q
signature = "workos"
`, fleetLeaseTTL.String(), rc.url, e2eSecret), 0o600)
	f := &fleet{t: t, url: url, cfg: cfg, data: filepath.Join(t.TempDir(), "data"), inst: map[string]*testDaemon{}, gen: map[string]int{}}
	for _, n := range []string{"a", "b", "c"} {
		f.start(n)
	}
	defer func() {
		if t.Failed() {
			t.Logf("seed %d; logs:\n%s", seed, f.logs())
		}
	}()
	db := openFleetStore(t, url)
	key := sftptest.GenerateKey(t, t.TempDir(), "id_ed25519").Path
	_, first := f.pick(0)
	big := newFleetOrg(t, first, "acme", key, users)
	small := []*fleetOrg{newFleetOrg(t, first, "globex", key, 300), newFleetOrg(t, first, "initech", key, 300)}

	// A reader of the views, in repeatable-read transactions: what it
	// sees of acme must be the state after some applied batch.
	type seen struct{ users, events int }
	var (
		saw     []seen
		readErr error
		stop    = make(chan struct{})
		readers sync.WaitGroup
	)
	readers.Go(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			readErr = err
			return
		}
		defer conn.Close(ctx)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var s seen
			err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM rosterd.directory_users WHERE organization_id = 'acme'),
  (SELECT count(*) FROM rosterd.events WHERE organization_id = 'acme')`).Scan(&s.users, &s.events)
			})
			if err != nil {
				readErr = err
				return
			}
			saw = append(saw, s)
		}
	})

	var window time.Duration // how long a batch of acme ran, unkilled
	started := time.Now()
	mid, twice, misses := 0, 0, 0
	for round := 0; mid < rounds; round++ {
		if round > 2*rounds+2 {
			t.Fatalf("after %d rounds only %d kills came in the middle of a batch (window %v)", round, mid, window)
		}
		for i, o := range small {
			if round > 0 {
				o.change(rng, round, 20, 3, 2)
			}
			_, d := f.pick(round + i + 1)
			o.upload(t, d)
		}
		if round > 0 {
			big.change(rng, round, 500, 50, 20)
		}
		prev := newestBatch(t, db, "acme").ID
		via, d := f.pick(round)
		big.upload(t, d)
		want := len(big.uploads) - 1
		var b state.Batch
		waitFor(t, 30*time.Second, fmt.Sprintf("round %d: the batch of the upload through %s", round, via), func() bool {
			b = newestBatch(t, db, "acme")
			return b.ID > prev && b.Status != state.BatchPending
		})
		began := time.Now()
		isApplied := func() bool {
			all, err := db.Batches("acme", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range all {
				if x.ID <= prev {
					break
				}
				if big.appliedUpload(x) == want {
					return true
				}
			}
			return false
		}
		if round < 2 {
			// Day 1 and a first day 2, unkilled: how long a day 2 runs
			// gives the window of the random moments.
			waitFor(t, 60*time.Second, fmt.Sprintf("round %d: the batch applied", round), isApplied)
			window = time.Since(began)
			t.Logf("round %d: a batch of %d users ran for %v (from processing to applied, as polled)", round, len(big.model), window)
			continue
		}
		// The random moment of the batch, then the lease holder's death.
		// The window follows the batches: a kill after the batch ended
		// narrows it to that moment, one in the middle widens it.
		u := rng.Float64()
		delay := time.Duration(u * float64(window))
		time.Sleep(delay)
		holder := leaseHolder(db, "acme")
		if !f.alive(holder) {
			misses++
			window = max(delay, 20*time.Millisecond)
			t.Logf("round %d: no holder %q to kill %v into the batch", round, holder, delay.Round(time.Millisecond))
			waitFor(t, 60*time.Second, fmt.Sprintf("round %d: the batch applied", round), isApplied)
			continue
		}
		f.kill(holder)
		killed := time.Now()
		after, err := db.Batch("acme", b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if unfinished(after) {
			mid++
			window += window / 4
		} else {
			misses++
			window = max(delay, 20*time.Millisecond)
		}
		// The dead instance's successor starts while another instance
		// stages an upload in the shared folder (half written, by a Go
		// SFTP client): its start must leave that staging file alone, and
		// the upload completes.
		restart := func(dead string) {
			slow := small[round%len(small)]
			slow.change(rng, round, 5, 1, 1)
			data := mustRead(t, slow.write(t))
			_, through := f.pick(round + 2)
			sc := fleetSFTP(t, db, through, slow.name, slow.key)
			defer sc.Close()
			fh, err := sc.Create("users.csv")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fh.Write(data[:len(data)/2]); err != nil {
				t.Fatal(err)
			}
			successor := f.start(strings.SplitN(dead, "-", 2)[0])
			if _, err := fh.Write(data[len(data)/2:]); err != nil {
				t.Errorf("round %d: the upload to %s in flight while %s started: %v", round, slow.name, successor.name, err)
			}
			if err := fh.Close(); err != nil {
				t.Errorf("round %d: the upload to %s in flight while %s started: %v", round, slow.name, successor.name, err)
			}
			if len(successor.d.logLines("staging file kept")) == 0 {
				t.Errorf("round %d: %s started during an upload in flight and did not log keeping its staging file", round, successor.name)
			}
		}
		takeover := watchTakeover(db, "acme", holder, killed)
		restart(holder)
		var took time.Duration
		if unfinished(after) {
			took = <-takeover
			if took == 0 || took > 2*fleetLeaseTTL+fleetLeaseTTL/2 {
				t.Errorf("round %d: the lease of the dead %s taken over after %v; want within about twice lease_ttl (%v)", round, holder, took, fleetLeaseTTL)
			}
		}
		t.Logf("round %d: upload through %s, %s killed %v into the batch (%.2f of the window; status then %s); lease taken over after %v",
			round, via, holder, delay.Round(time.Millisecond), u, after.Status, took.Round(time.Millisecond))
		if second := leaseHolder(db, "acme"); round%3 == 0 && unfinished(after) && f.alive(second) {
			// The instance that took the batch over dies too, redoing it.
			f.kill(second)
			killed2 := time.Now()
			redo, err := db.Batch("acme", b.ID)
			if err != nil {
				t.Fatal(err)
			}
			takeover := watchTakeover(db, "acme", second, killed2)
			restart(second)
			var took time.Duration
			if unfinished(redo) {
				twice++
				if took = <-takeover; took == 0 || took > 2*fleetLeaseTTL+fleetLeaseTTL/2 {
					t.Errorf("round %d: the lease of the dead %s taken over after %v; want within about twice lease_ttl (%v)", round, second, took, fleetLeaseTTL)
				}
			}
			t.Logf("round %d: %s, which took the batch over, killed too (status then %s); lease taken over after %v", round, second, redo.Status, took.Round(time.Millisecond))
		}
		waitFor(t, 4*fleetLeaseTTL+30*time.Second, fmt.Sprintf("round %d: the batch taken over after %s died", round, holder), isApplied)
		t.Logf("round %d: applied %v after the kill", round, time.Since(killed).Round(time.Millisecond))
		// Taken over, the batch itself is redone: nothing newer came to
		// supersede it.
		if fin, err := db.Batch("acme", b.ID); err != nil || fin.Status != state.BatchApplied {
			t.Errorf("round %d: the batch taken over = %s (superseded by %q), %v; want applied by the instance that took it over", round, fin.Status, fin.SupersededBy, err)
		}
	}
	t.Logf("%d kills in the middle of a batch (%d of them killed the instance that took it over too), %d after it, in %v", mid, twice, misses, time.Since(started).Round(time.Millisecond))

	// Every organization's last upload applied, nothing left unfinished.
	orgs := append([]*fleetOrg{big}, small...)
	for _, o := range orgs {
		waitFor(t, 60*time.Second, o.name+": the last upload applied and nothing unfinished", func() bool {
			bs, err := db.Batches(o.name, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			last := false
			for _, b := range bs {
				if unfinished(b) {
					return false
				}
				last = last || o.appliedUpload(b) == len(o.uploads)-1
			}
			return last
		})
	}
	close(stop)
	readers.Wait()

	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	allowed := map[seen]bool{{0, 0}: true}
	for _, o := range orgs {
		states := checkFleetOrg(t, conn, db, o)
		if o == big {
			for _, s := range states {
				allowed[seen{s[0], s[1]}] = true
			}
		}
	}
	if readErr != nil {
		t.Errorf("the reader of the views: %v", readErr)
	}
	for _, s := range saw {
		if !allowed[s] {
			t.Errorf("a reader of the views saw acme with %d users and %d events: not the state after any batch (%v)", s.users, s.events, allowed)
			break
		}
	}
	t.Logf("the reader of the views looked %d times", len(saw))

	// The webhook receiver: every event of each organization, in order.
	delivering := time.Now()
	for _, o := range orgs {
		want := fleetEventIDs(t, conn, o.name)
		distinct := func() int {
			seen := map[string]bool{}
			for _, id := range rc.got(o.name) {
				seen[id] = true
			}
			return len(seen)
		}
		waitFor(t, 90*time.Second, o.name+": every event delivered", func() bool { return distinct() >= len(want) })
		repeats := inOrderNoGap(t, want, rc.got(o.name))
		t.Logf("%s: %d events, %d arrivals, %d repeated (%v after the checks)", o.name, len(want), len(rc.got(o.name)), repeats, time.Since(delivering).Round(time.Millisecond))
	}
	rc.mu.Lock()
	overlaps, bad := rc.overlaps, rc.bad
	rc.mu.Unlock()
	if overlaps != 0 || len(bad) != 0 {
		t.Errorf("%d requests overlapped another of their organization, %d bad signatures (%v)", overlaps, len(bad), bad)
	}
}

// checkFleetOrg checks o's batches and events against its uploads: each
// applied batch applied a later upload than the one before it (commit
// order), with exactly the events the upload makes against that one, and
// no other batch committed events; the directory in the views is the last
// upload. It returns (users, events) after each applied batch.
func checkFleetOrg(t *testing.T, conn *pgx.Conn, db *postgres.DB, o *fleetOrg) [][2]int {
	t.Helper()
	ctx := context.Background()
	bs, err := db.Batches(o.name, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]state.Batch{}
	for _, b := range bs {
		byID[b.ID] = b
	}
	rows, err := conn.Query(ctx, `SELECT batch_id, event, data->>'id' FROM rosterd.events
WHERE organization_id = $1 ORDER BY position`, o.name)
	if err != nil {
		t.Fatal(err)
	}
	type run struct {
		batch  string
		events []string
	}
	var runs []run
	for rows.Next() {
		var batch, ev, id string
		if err := rows.Scan(&batch, &ev, &id); err != nil {
			t.Fatal(err)
		}
		if len(runs) == 0 || runs[len(runs)-1].batch != batch {
			runs = append(runs, run{batch: batch})
		}
		runs[len(runs)-1].events = append(runs[len(runs)-1].events, ev+" "+id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var states [][2]int
	applied := map[string]bool{}
	prev, total := -1, 0
	for _, r := range runs {
		b := byID[r.batch]
		i := o.appliedUpload(b)
		switch {
		case applied[r.batch]:
			t.Errorf("%s: batch %s committed events twice (runs apart)", o.name, r.batch)
			continue
		case i < 0:
			t.Errorf("%s: batch %s (%s) committed %d events; want an applied batch of an upload", o.name, r.batch, b.Status, len(r.events))
			continue
		case i <= prev:
			t.Errorf("%s: batch %s applied upload %d after upload %d: out of order", o.name, r.batch, i, prev)
		}
		applied[r.batch] = true
		got := slices.Sorted(slices.Values(r.events))
		if want := o.diff(prev, i); !slices.Equal(got, want) {
			t.Errorf("%s: batch %s (upload %d after %d) has %d events; want %d (%s)", o.name, r.batch, i, prev, len(got), len(want), firstDiff(got, want))
		}
		prev, total = i, total+len(r.events)
		states = append(states, [2]int{len(o.uploads[i]), total})
	}
	for _, b := range bs {
		if b.Status == state.BatchApplied && !applied[b.ID] {
			t.Errorf("%s: batch %s applied without events", o.name, b.ID)
		}
	}
	// The directory: the last upload.
	rows, err = conn.Query(ctx, "SELECT id, job_title FROM rosterd.directory_users WHERE organization_id = $1", o.name)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var id, title string
		if err := rows.Scan(&id, &title); err != nil {
			t.Fatal(err)
		}
		got[id] = title
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if last := o.uploads[len(o.uploads)-1]; !maps.Equal(got, last) {
		t.Errorf("%s: the views hold %d users; want the last upload's %d", o.name, len(got), len(last))
	}
	t.Logf("%s: %d uploads, %d batches applied them, %d events", o.name, len(o.uploads), len(runs), total)
	return states
}
