package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// openN opens n stores on one database: the instances of a fleet.
func openN(t *testing.T, n int) []*DB {
	t.Helper()
	url := newDB(t)
	var dbs []*DB
	for range n {
		db, err := Open(context.Background(), Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	return dbs
}

// TestSecretSharedByInstances: instances starting at once each make a
// host key, and all of them keep the one stored first.
func TestSecretSharedByInstances(t *testing.T) {
	dbs := openN(t, 4)
	if _, err := dbs[0].Secret("host_key/ed25519"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Secret(absent) = %v; want ErrNotFound", err)
	}
	values := make([][]byte, len(dbs))
	created := make([]bool, len(dbs))
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			var err error
			values[i], created[i], err = db.LoadOrCreateSecret("host_key/ed25519", func() ([]byte, error) {
				return fmt.Appendf(nil, "key of instance %d", i), nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	for i := range dbs {
		if !bytes.Equal(values[i], values[0]) {
			t.Errorf("instance %d got %q; instance 0 got %q", i, values[i], values[0])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d instances say they created the secret; want 1", n)
	}
	got, err := dbs[1].Secret("host_key/ed25519")
	if err != nil || !bytes.Equal(got, values[0]) {
		t.Errorf("Secret = %q, %v; want %q", got, err, values[0])
	}
	// A stored secret is returned without calling gen.
	v, made, err := dbs[2].LoadOrCreateSecret("host_key/ed25519", func() ([]byte, error) { return nil, errors.New("called") })
	if err != nil || made || !bytes.Equal(v, values[0]) {
		t.Errorf("LoadOrCreateSecret(stored) = %q, %v, %v; want the stored value", v, made, err)
	}
	boom := errors.New("no entropy")
	if _, _, err := dbs[0].LoadOrCreateSecret("api_token", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("LoadOrCreateSecret with failing gen = %v; want its error", err)
	}
}

// TestAuditAppendsAcrossInstances: instances appending to one
// organization's trail at once never draw the same id, and ids follow
// commit order.
func TestAuditAppendsAcrossInstances(t *testing.T) {
	dbs := openN(t, 3)
	if err := dbs[0].CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	const per = 20
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			for j := range per {
				r := state.AuditRecord{Org: "acme", Time: time.Now(), Event: fmt.Sprintf("i%d-%d", i, j)}
				if err := db.AppendAudit([]state.AuditRecord{r}, 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	recs, err := dbs[0].AuditRecords("acme", "", 0, state.OldestFirst)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(dbs)*per {
		t.Fatalf("%d records; want %d", len(recs), len(dbs)*per)
	}
	// Each instance's records are in its own append order.
	last := map[string]int{}
	for i, r := range recs {
		if i > 0 && r.ID <= recs[i-1].ID {
			t.Errorf("ids not ascending at %d: %s, %s", i, recs[i-1].ID, r.ID)
		}
		var inst, j int
		fmt.Sscanf(r.Event, "i%d-%d", &inst, &j)
		key := fmt.Sprint(inst)
		if prev, ok := last[key]; ok && j <= prev {
			t.Errorf("instance %d's record %d after its %d", inst, j, prev)
		}
		last[key] = j
	}
}

// TestOpenErrorHidesPassword: a URL that does not parse is not quoted
// back, password and all.
func TestOpenErrorHidesPassword(t *testing.T) {
	for _, url := range []string{"postgres://rosterd:s3cret-pw@db.example.com:notaport/rosterd", "host=x password=s3cret-pw port=x"} {
		_, err := Open(context.Background(), Config{URL: url})
		if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Open(%q) = %v; want an error without the password", url, err)
		}
		_, err = Migrate(context.Background(), url)
		if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Migrate(%q) = %v; want an error without the password", url, err)
		}
	}
}

// TestClosedStoreFails: after Close, operations fail at once.
func TestClosedStoreFails(t *testing.T) {
	db := openTest(t)
	db.Close()
	done := make(chan error, 1)
	go func() { _, err := db.Orgs("", 0); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Orgs after Close = nil; want an error")
		}
	case <-time.After(time.Minute):
		t.Fatal("Orgs after Close did not return")
	}
}
