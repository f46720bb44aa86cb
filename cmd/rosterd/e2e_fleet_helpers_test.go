package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
)

// Helpers of TestE2EFleetKillMidBatch: the fleet of instances, the
// organizations and their uploads.

// fleet is the running instances, by name; each instance killed is
// started again under a new name, so that only another one can take its
// leases over.
type fleet struct {
	t     *testing.T
	url   string
	cfg   string
	data  string
	mu    sync.Mutex
	inst  map[string]*testDaemon
	all   []fleetInstance // every instance started, dead ones too
	names []string        // in start order, for rotating uploads
	gen   map[string]int
}

// fleetInstance is a started instance.
type fleetInstance struct {
	name string
	d    *testDaemon
}

func (f *fleet) start(base string) fleetInstance {
	f.t.Helper()
	f.gen[base]++
	name := base
	if g := f.gen[base]; g > 1 {
		name = fmt.Sprintf("%s-%d", base, g)
	}
	d := startDaemon(f.t, daemonOpts{Data: f.data, Shared: true,
		Args: []string{"--store", f.url, "--config", f.cfg}, Env: []string{"ROSTERD_INSTANCE=" + name}})
	f.mu.Lock()
	f.inst[name] = d
	f.names = append(f.names, name)
	f.all = append(f.all, fleetInstance{name, d})
	f.mu.Unlock()
	return fleetInstance{name, d}
}

// pick returns the i-th running instance (rotating).
func (f *fleet) pick(i int) (string, *testDaemon) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := f.names[i%len(f.names)]
	return name, f.inst[name]
}

// kill ends instance name with SIGKILL (its successor is started apart).
func (f *fleet) kill(name string) {
	f.mu.Lock()
	d := f.inst[name]
	delete(f.inst, name)
	f.names = slices.DeleteFunc(f.names, func(n string) bool { return n == name })
	f.mu.Unlock()
	d.Kill()
}

// alive reports whether name is a running instance.
func (f *fleet) alive(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inst[name] != nil
}

// watchTakeover reports how long after killed another instance than dead
// held org's batch lease (0: not within a minute).
func watchTakeover(db *postgres.DB, org, dead string, killed time.Time) <-chan time.Duration {
	c := make(chan time.Duration, 1)
	go func() {
		for time.Since(killed) < time.Minute {
			if h := leaseHolder(db, org); h != "" && h != dead {
				c <- time.Since(killed)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		c <- 0
	}()
	return c
}

func (f *fleet) logs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, i := range f.all {
		fmt.Fprintf(&b, "--- %s:\n%s\n", i.name, i.d.Logs())
	}
	return b.String()
}

// fleetOrg is an organization of the test and its uploads: users by id
// with their job titles, one model per upload.
type fleetOrg struct {
	name    string
	key     string // private key path
	local   string
	model   map[string]string
	next    int
	uploads []map[string]string
	bySHA   map[string]int // users.csv's SHA-256 to the upload's index
}

func newFleetOrg(t *testing.T, d *testDaemon, name, key string, n int) *fleetOrg {
	t.Helper()
	if out, code := d.CLI("", "org", "add", name, "--key", key+".pub"); code != 0 {
		t.Fatalf("org add %s: %d %s", name, code, out)
	}
	o := &fleetOrg{name: name, key: key, local: t.TempDir(), model: map[string]string{}, bySHA: map[string]int{}}
	for range n {
		o.model[o.newID()] = "Hire"
	}
	return o
}

func (o *fleetOrg) newID() string {
	o.next++
	return fmt.Sprintf("E%07d", o.next)
}

// change makes the next upload: updated users' titles change, some users
// are new and some gone.
func (o *fleetOrg) change(rng *rand.Rand, round, updated, created, deleted int) {
	ids := slices.Sorted(maps.Keys(o.model))
	for _, i := range rng.Perm(len(ids))[:updated+deleted] {
		if deleted > 0 {
			delete(o.model, ids[i])
			deleted--
			continue
		}
		o.model[ids[i]] = fmt.Sprintf("Title %d-%d", round, rng.IntN(1000))
	}
	for range created {
		o.model[o.newID()] = fmt.Sprintf("New %d", round)
	}
}

// upload puts the current model as users.csv through instance d.
func (o *fleetOrg) upload(t *testing.T, d *testDaemon) {
	t.Helper()
	if out, err := o.put(t, d, o.write(t)); err != nil {
		t.Fatalf("sftp put to %s for %s: %v\n%s", d.SFTPAddr, o.name, err, out)
	}
}

// write writes the current model as a local users.csv, an upload to be.
func (o *fleetOrg) write(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("user_id,email,first_name,last_name,job_title\n")
	for _, id := range slices.Sorted(maps.Keys(o.model)) {
		fmt.Fprintf(&b, "%s,%s@%s.test,First %s,Last,%s\n", id, strings.ToLower(id), o.name, id, o.model[id])
	}
	sum := sha256.Sum256([]byte(b.String()))
	o.bySHA[hex.EncodeToString(sum[:])] = len(o.uploads)
	o.uploads = append(o.uploads, maps.Clone(o.model))
	path := filepath.Join(o.local, "users.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// put uploads the local file path through d with OpenSSH's sftp (args:
// more of its options).
func (o *fleetOrg) put(t *testing.T, d *testDaemon, path string, args ...string) (string, error) {
	cfg := sftptest.Setup(t, sftptest.Target{Addr: d.SFTPAddr, Org: o.name, KeyPath: o.key})
	out, err := sftptest.SFTP(t, cfg, "put "+path+"\n", args...)
	if err == nil && strings.Contains(out, "Failure") {
		err = fmt.Errorf("sftp: %s", out)
	}
	return out, err
}

// diff is what a batch from upload i after upload j (-1: none) emits:
// "event id" lines, sorted.
func (o *fleetOrg) diff(j, i int) []string {
	var prev map[string]string
	if j >= 0 {
		prev = o.uploads[j]
	}
	cur := o.uploads[i]
	var out []string
	for id, title := range cur {
		old, ok := prev[id]
		switch {
		case !ok:
			out = append(out, "dsync.user.created "+id)
		case old != title:
			out = append(out, "dsync.user.updated "+id)
		}
	}
	for id := range prev {
		if _, ok := cur[id]; !ok {
			out = append(out, "dsync.user.deleted "+id)
		}
	}
	slices.Sort(out)
	return out
}

// appliedUpload returns the index of the upload whose users.csv batch b
// applied, or -1.
func (o *fleetOrg) appliedUpload(b state.Batch) int {
	if b.Status != state.BatchApplied {
		return -1
	}
	for _, f := range b.Files {
		if i, ok := o.bySHA[f.SHA256]; ok && f.Kind == "users" {
			return i
		}
	}
	return -1
}

// newestBatch returns org's newest batch (zero when none).
func newestBatch(t *testing.T, db *postgres.DB, org string) state.Batch {
	t.Helper()
	bs, err := db.Batches(org, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) == 0 {
		return state.Batch{}
	}
	return bs[0]
}

// leaseHolder returns the instance holding org's batch lease, "" when
// none does (or the store did not answer).
func leaseHolder(db *postgres.DB, org string) string {
	ls, _ := db.Leases()
	for _, l := range ls {
		if l.Name == state.BatchLease(org) && l.ExpiresAt.After(time.Now()) {
			return l.Holder
		}
	}
	return ""
}

func unfinished(b state.Batch) bool {
	return b.Status == state.BatchPending || b.Status == state.BatchProcessing
}

// firstDiff describes the first line in one of got, want (sorted) but not
// the other.
func firstDiff(got, want []string) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return "missing " + want[i]
		case i >= len(want):
			return "extra " + got[i]
		case got[i] != want[i]:
			return fmt.Sprintf("got %s, want %s", got[i], want[i])
		}
	}
	return "equal"
}

// fleetEventIDs returns org's event ids in order.
func fleetEventIDs(t *testing.T, conn *pgx.Conn, org string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT id FROM rosterd.events WHERE organization_id = $1 ORDER BY position", org)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// fleetSFTP opens a pkg/sftp client through instance d as org, with the
// fleet's ed25519 host key (from the store) pinned.
func fleetSFTP(t *testing.T, db *postgres.DB, d *testDaemon, org, keyPath string) *sftp.Client {
	t.Helper()
	raw, err := db.Secret(secretHostKey + "ssh_host_ed25519_key")
	if err != nil {
		t.Fatal(err)
	}
	host, err := ssh.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return sftpSessionHost(t, d, org, keyPath, host.PublicKey())
}
