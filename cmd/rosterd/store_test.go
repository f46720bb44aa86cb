package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

// storeCopyFixture writes a stopped daemon's data directory: two
// organizations with a key, an applied batch with its events and
// snapshot, a held batch, a batch waiting for a retry, a failed webhook
// delivery, the host key and the API token.
func storeCopyFixture(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	db, err := state.Open(filepath.Join(data, "rosterd.db"), &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []string{"acme", "beta"} {
		must(db.CreateOrg(state.Org{Name: o}))
		must(db.AddKey(o, state.Key{Fingerprint: "SHA256:" + o, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 AAAA"}))
		_, err := db.FormBatch(state.Batch{ID: "B1", Org: o, Status: state.BatchPending}, nil)
		must(err)
		must(db.ApplyBatch(state.Batch{ID: "B1", Org: o, Status: state.BatchApplied}, []byte(`{"status":"applied"}`), func(a *state.ApplyTx) error {
			r := state.UserRecord{ID: "u1", Email: "u1@" + o + ".example", FirstName: "U", LastName: "One"}
			if err := a.PutUser([]byte("u1"), true, r.AppendBinary(nil)); err != nil {
				return err
			}
			return a.EmitUser(state.EventUserCreated, []byte("u1"), nil)
		}))
	}
	_, err = db.FormBatch(state.Batch{ID: "B2", Org: "acme", Status: state.BatchPending}, nil)
	must(err)
	must(db.FinishBatch(state.Batch{ID: "B2", Org: "acme", Status: state.BatchHeld, Reason: "would delete 50 %"}, []byte(`{"status":"held"}`)))
	_, err = db.FormBatch(state.Batch{ID: "B2", Org: "beta", Status: state.BatchPending}, nil)
	must(err)
	retry := time.Now().Add(time.Minute)
	must(db.RecordFailure(state.Batch{ID: "B2", Org: "beta", Attempts: 1, LastError: "no space left on device", RetryAt: &retry}, nil))
	evs, err := db.Events("acme", "", 0)
	must(err)
	_, err = db.RegisterEndpoint("hook", "https://a.example/hook")
	must(err)
	must(db.MarkFailed(state.FailedDelivery{Endpoint: "hook", EventID: evs[0].ID, Event: evs[0].Event, Org: "acme", Attempts: 8, FailedAt: time.Now()}))
	must(os.MkdirAll(filepath.Join(data, "host_keys"), 0o700))
	must(os.WriteFile(filepath.Join(data, "host_keys", "ssh_host_ed25519_key"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), 0o600))
	must(os.WriteFile(filepath.Join(data, "api_token"), []byte("s3cret\n"), 0o600))
	return data
}

// TestStoreCopy: `rosterd store copy` moves a stopped daemon's bbolt
// store into an empty PostgreSQL database and verifies it; it refuses a
// database in use and a daemon still running.
func TestStoreCopy(t *testing.T) {
	data := storeCopyFixture(t)
	url := pgtest.NewDatabase(t)
	out, code := runBinary(t, "", "store", "copy", "--from", data, "--to", url)
	if code != 0 {
		t.Fatalf("rosterd store copy: exit %d\n%s", code, out)
	}
	for _, want := range []string{"copied 2 organizations, 2 keys", "2 users", "acme: verified", "beta: verified",
		"verified: 2 organization(s) and the webhook endpoints match"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, url) {
		t.Errorf("output quotes the store URL:\n%s", out)
	}
	db, err := postgres.Open(context.Background(), postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if b, err := db.Batch("acme", "B2"); err != nil || b.Status != state.BatchHeld {
		t.Errorf("acme's B2 in PostgreSQL = %+v, %v; want held", b, err)
	}
	if b, err := db.Batch("beta", "B2"); err != nil || b.Attempts != 1 || b.RetryAt == nil {
		t.Errorf("beta's B2 in PostgreSQL = %+v, %v; want waiting for its retry", b, err)
	}
	if n, err := db.CountFailed("hook"); err != nil || n != 1 {
		t.Errorf("failed deliveries in PostgreSQL = %d, %v; want 1", n, err)
	}
	for name, want := range map[string]string{"api_token": "s3cret\n", "host_key/ssh_host_ed25519_key": "-----BEGIN OPENSSH PRIVATE KEY-----\n"} {
		if v, err := db.Secret(name); err != nil || string(v) != want {
			t.Errorf("Secret(%s) = %q, %v; want %q", name, v, err, want)
		}
	}

	// Again: the database is not empty any more.
	if out, code := runBinary(t, "", "store", "copy", "--from", data, "--to", url); code == 0 || !strings.Contains(out, "not empty") {
		t.Errorf("a second store copy = exit %d, %q; want a refusal: not empty", code, out)
	}
	// A running daemon holds the bbolt file.
	held, err := state.Open(filepath.Join(data, "rosterd.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if out, code := runBinary(t, "", "store", "copy", "--from", data, "--to", pgtest.NewDatabase(t)); code == 0 || !strings.Contains(out, "stop it first") {
		t.Errorf("store copy of a store in use = exit %d, %q; want a refusal: stop it first", code, out)
	}
	if out, code := runBinary(t, "", "store", "copy", "--to", url); code != 2 || !strings.Contains(out, "--from") {
		t.Errorf("store copy without --from = exit %d, %q; want 2 and a word on --from", code, out)
	}
}
