package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/sftpd/sftptest"
	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

// The fleet end-to-end tests run two `rosterd serve --store postgres://…`
// processes on one database (SPEC §11), each with a data directory of its
// own: with ingest not running on PostgreSQL yet, nothing of the
// organizations' folders needs sharing, and the harness finds each
// daemon by the address files in its data directory. Events are
// committed by the test, as a batch's apply will commit them.

// startInstance starts `rosterd serve` on the store at url as instance
// name, with the config file cfg ("" for none).
func startInstance(t *testing.T, url, name, cfg string) *testDaemon {
	t.Helper()
	args := []string{"--store", url}
	if cfg != "" {
		args = append(args, "--config", cfg)
	}
	return startDaemon(t, daemonOpts{Args: args, Env: []string{"ROSTERD_INSTANCE=" + name}})
}

// openFleetStore opens the store at url for the test's own reads and
// writes (not fenced).
func openFleetStore(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{URL: url, Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestE2EFleetSharesHostKeyAndToken: two instances on one database show
// the same host key to OpenSSH's sftp (known_hosts pinned to the keys in
// the store, strict checking) and take the same API token; an
// organization added through one logs in through the other; uploads are
// refused while ingest does not run on PostgreSQL.
func TestE2EFleetSharesHostKeyAndToken(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	url := pgtest.NewDatabase(t)
	a := startInstance(t, url, "a", "")
	b := startInstance(t, url, "b", "")
	if a.Token != b.Token {
		t.Errorf("API tokens differ: %q and %q; want the one in the store", a.Token, b.Token)
	}
	db := openFleetStore(t, url)
	var pinned []ssh.PublicKey
	for _, name := range sftpd.HostKeyFiles {
		v, err := db.Secret(secretHostKey + name)
		if err != nil {
			t.Fatalf("host key %s in the store: %v", name, err)
		}
		s, err := ssh.ParsePrivateKey(v)
		if err != nil {
			t.Fatal(err)
		}
		pinned = append(pinned, s.PublicKey())
	}
	key := sftptest.GenerateKey(t, t.TempDir(), "id_ed25519")
	if out, code := a.CLI("", "org", "add", "acme", "--key", key.Path+".pub"); code != 0 {
		t.Fatalf("org add through a: %d %s", code, out)
	}
	local := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(local, []byte("user_id,email,first_name,last_name\nE1,ana@acme.test,Ana,A\n"), 0o600)
	for _, d := range []*testDaemon{a, b} {
		cfg := sftptest.Setup(t, sftptest.Target{Addr: d.SFTPAddr, Org: "acme", KeyPath: key.Path, HostKeys: pinned})
		if out, err := sftptest.SFTP(t, cfg, "ls\n"); err != nil {
			t.Errorf("sftp to %s with the store's host keys pinned: %v\n%s", d.SFTPAddr, err, out)
		}
		if out, err := sftptest.SFTP(t, cfg, "put "+local+"\n"); err == nil || !strings.Contains(out, "Failure") {
			t.Errorf("sftp put to an instance without ingest = %v %q; want refused", err, out)
		}
	}
	// The refusal's message, which OpenSSH's sftp does not print.
	signer, err := ssh.ParsePrivateKey(mustRead(t, key.Path))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", b.SFTPAddr, &ssh.ClientConfig{User: "acme", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			for _, p := range pinned {
				if bytes.Equal(k.Marshal(), p.Marshal()) {
					return nil
				}
			}
			return errors.New("host key not in the store")
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.Create("users.csv"); err == nil || !strings.Contains(err.Error(), "uploads are paused") {
		t.Errorf("Create(users.csv) through b = %v; want refused, uploads are paused", err)
	}
	var orgs struct{ Data []struct{ ID string } }
	if code := b.API("GET", "/v1/organizations", nil, &orgs); code != 200 || len(orgs.Data) != 1 || orgs.Data[0].ID != "acme" {
		t.Errorf("GET /v1/organizations on b = %d %+v; want acme, added through a", code, orgs)
	}
	if !strings.Contains(a.Logs(), "ingest does not run on a PostgreSQL store yet") {
		t.Errorf("a's log does not say that ingest does not run:\n%s", a.Logs())
	}
}

// fleetReceiver is a real webhook receiver that verifies the signatures
// and records, per organization, the events it answered 2xx to a sender
// still waiting for the answer, in arrival order. The block-th request
// waits for release.
type fleetReceiver struct {
	url     string
	block   int
	blocked chan struct{}
	release chan struct{}

	mu       sync.Mutex
	requests int
	inflight map[string]int
	overlaps int
	ids      map[string][]string
	bad      []string
}

func newFleetReceiver(t *testing.T, block int) *fleetReceiver {
	r := &fleetReceiver{block: block, blocked: make(chan struct{}), release: make(chan struct{}),
		inflight: map[string]int{}, ids: map[string][]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.url = "http://" + ln.Addr().String() + "/hook"
	srv := &http.Server{Handler: r}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *fleetReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var ev struct {
		ID  string `json:"id"`
		Org string `json:"organization_id"`
	}
	json.Unmarshal(body, &ev)
	r.mu.Lock()
	if msg := e2eVerify(req.Header, body); msg != "" {
		r.bad = append(r.bad, msg)
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.requests++
	n := r.requests
	if r.inflight[ev.Org]++; r.inflight[ev.Org] > 1 {
		r.overlaps++
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight[ev.Org]--
		r.mu.Unlock()
	}()
	if n == r.block {
		close(r.blocked)
		<-r.release
		if req.Context().Err() != nil {
			return // the sender is gone: no answer reached it
		}
	}
	r.mu.Lock()
	r.ids[ev.Org] = append(r.ids[ev.Org], ev.ID)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *fleetReceiver) got(org string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids[org]...)
}

// inOrderNoGap checks that got delivers want at least once, in order,
// without a gap: runs of consecutive events, each starting at or before
// the event after the furthest one delivered so far. It returns how many
// arrivals repeat an earlier one.
func inOrderNoGap(t *testing.T, want, got []string) (repeats int) {
	t.Helper()
	pos := map[string]int{}
	for i, id := range want {
		pos[id] = i
	}
	last, furthest := -1, -1
	for i, id := range got {
		p, ok := pos[id]
		switch {
		case !ok:
			t.Errorf("arrival %d: %s was never committed", i, id)
			continue
		case p != last+1 && p > furthest+1:
			t.Errorf("arrival %d: %s (event %d) after event %d: a gap", i, id, p, furthest)
		}
		if p <= furthest {
			repeats++
		}
		last, furthest = p, max(furthest, p)
	}
	if furthest != len(want)-1 {
		t.Errorf("delivered up to event %d of %d", furthest, len(want))
	}
	return repeats
}

// TestE2EFleetDeliveryTakeover: two instances deliver one endpoint's
// events; the one holding the organization's delivery lease is killed
// (SIGKILL) in the middle of a request, and the other takes the
// deliveries over once the lease has expired: every event arrives, in
// order, with no gap, never from both instances at once; events
// committed afterwards arrive once each.
func TestE2EFleetDeliveryTakeover(t *testing.T) {
	url := pgtest.NewDatabase(t)
	rc := newFleetReceiver(t, 6)
	cfg := filepath.Join(t.TempDir(), "rosterd.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("lease_ttl = \"1s\"\n\n[[webhook]]\nid = \"hook\"\nurl = %q\nsecret = %q\nsignature = \"workos\"\n", rc.url, e2eSecret)), 0o600)
	fleet := map[string]*testDaemon{"a": startInstance(t, url, "a", cfg), "b": startInstance(t, url, "b", cfg)}
	db := openFleetStore(t, url)
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	var want []string
	commit := func(batch string, n int) {
		evs := make([]state.Event, n)
		for i := range evs {
			evs[i] = state.Event{Event: state.EventUserCreated, Data: fmt.Appendf(nil, `{"object":"directory_user","id":"%s-u%d","organization_id":"acme"}`, batch, i)}
		}
		ids, err := db.AppendEvents("acme", batch, evs)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ids...)
	}
	commit("B1", 12)
	select {
	case <-rc.blocked:
	case <-time.After(30 * time.Second):
		t.Fatalf("no sixth request; a:\n%s\nb:\n%s", fleet["a"].Logs(), fleet["b"].Logs())
	}
	var holder state.Lease
	ls, err := db.Leases()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Name == state.DeliveryLease("hook", "acme") {
			holder = l
		}
	}
	dead := fleet[holder.Holder]
	if dead == nil {
		t.Fatalf("delivery lease = %+v; want held by a or b", holder)
	}
	dead.Kill()
	close(rc.release)
	delete(fleet, holder.Holder)
	var survivor *testDaemon
	for _, d := range fleet {
		survivor = d
	}
	distinct := func() int {
		seen := map[string]bool{}
		for _, id := range rc.got("acme") {
			seen[id] = true
		}
		return len(seen)
	}
	waitFor(t, 30*time.Second, "every event delivered after the kill", func() bool { return distinct() == len(want) })
	repeats := inOrderNoGap(t, want, rc.got("acme"))
	t.Logf("%s killed at the sixth request; %d arrivals, %d repeated", holder.Holder, len(rc.got("acme")), repeats)
	before := len(rc.got("acme"))
	commit("B2", 5)
	waitFor(t, 30*time.Second, "the events committed after the takeover", func() bool { return distinct() == len(want) })
	if got := rc.got("acme")[before:]; strings.Join(got, ",") != strings.Join(want[len(want)-5:], ",") {
		t.Errorf("arrivals after the takeover = %v; want %v, once each", got, want[len(want)-5:])
	}
	rc.mu.Lock()
	overlaps, bad := rc.overlaps, rc.bad
	rc.mu.Unlock()
	if overlaps != 0 || len(bad) != 0 {
		t.Errorf("%d requests overlapped another of acme, %d bad signatures (%v)", overlaps, len(bad), bad)
	}
	if !strings.Contains(survivor.Logs(), `"instance":"`) {
		t.Errorf("the survivor's log does not name its instance:\n%s", survivor.Logs())
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
