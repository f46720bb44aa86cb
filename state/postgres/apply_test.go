package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state"
)

// applyUsers applies batch id of org: users ids[i] created (or updated:
// title), then deleted, as a diff would stream them, with a membership of
// each created user in "all".
func applyUsers(t *testing.T, db *DB, org, id string, want state.SnapshotCounts, created, updated, deleted []string, title string) error {
	t.Helper()
	if _, err := db.Batch(org, id); errors.Is(err, state.ErrNotFound) {
		if _, err := db.CreateBatch(state.Batch{ID: id, Org: org, Status: state.BatchProcessing}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := db.Apply(org, func(s *state.SnapshotTx) (state.Outcome, error) {
		if c := s.Counts(); c != want {
			t.Errorf("batch %s: the diff reads %+v; want %+v", id, c, want)
		}
		b := state.Batch{ID: id, Org: org, Status: state.BatchApplied}
		write := func(w state.Writer) error {
			if _, _, _, ok := s.Group([]byte("all")); !ok {
				if err := w.PutGroup([]byte("all"), "All", state.GroupInFile, []byte(`{"object":"directory_group","id":"all"}`)); err != nil {
					return err
				}
			}
			for _, set := range []struct {
				ids []string
				typ string
			}{{created, state.EventUserCreated}, {updated, state.EventUserUpdated}} {
				for _, u := range set.ids {
					r := state.UserRecord{ID: u, Email: u + "@x.test", FirstName: "F", LastName: "L", Known: []state.Attr{{Name: "job_title", Value: title}}}
					if err := w.PutUser([]byte(u), true, r.AppendBinary(nil)); err != nil {
						return err
					}
					var prev []byte
					if set.typ == state.EventUserUpdated {
						prev = []byte(`{"job_title":"old"}`)
					}
					if err := w.EmitUser(set.typ, []byte(u), prev); err != nil {
						return err
					}
				}
			}
			for _, u := range created {
				if err := w.AddMember([]byte(u), []byte("all")); err != nil {
					return err
				}
				if err := w.EmitMember(state.EventGroupUserAdded, []byte(u), []byte("all")); err != nil {
					return err
				}
			}
			for _, u := range deleted {
				if err := w.EmitMember(state.EventGroupUserRemoved, []byte(u), []byte("all")); err != nil {
					return err
				}
				if err := w.RemoveMember([]byte(u), []byte("all")); err != nil {
					return err
				}
				if err := w.EmitUser(state.EventUserDeleted, []byte(u), nil); err != nil {
					return err
				}
				if err := w.DeleteUser([]byte(u)); err != nil {
					return err
				}
			}
			return nil
		}
		return state.Outcome{Batch: b, Write: write, Changes: len(created)*2 + len(updated) + len(deleted)*2}, nil
	})
	return err
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%06d", prefix, i))
	}
	return out
}

// TestViewsNeverShowHalfABatch: a reader of the stable views, in
// repeatable-read transactions, while large batches apply, sees each
// batch whole or not at all: users, memberships and events agree.
func TestViewsNeverShowHalfABatch(t *testing.T) {
	db := openTest(t)
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	const n = 20000
	// What a reader may see: (users, active with title "day2", members,
	// events) before, after day 1 and after day 2.
	type seen struct{ users, day2, members, events int }
	allowed := map[seen]bool{
		{0, 0, 0, 0}:     true,
		{n, 0, n, 2 * n}: true,
		{n + 2000 - 3000, 7000, n + 2000 - 3000, 2*n + 2*2000 + 5000 + 2*3000}: true,
	}
	conn, err := pgx.Connect(context.Background(), db.pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stop atomic.Bool
	done := make(chan error, 1)
	var reads atomic.Int64
	saw := map[seen]int{}
	go func() {
		ctx := context.Background()
		for !stop.Load() {
			var s seen
			err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM rosterd.directory_users WHERE organization_id = 'acme'),
  (SELECT count(*) FROM rosterd.directory_users WHERE organization_id = 'acme' AND job_title = 'day2' AND data->>'job_title' = 'day2'),
  (SELECT count(*) FROM rosterd.directory_group_members WHERE organization_id = 'acme'),
  (SELECT count(*) FROM rosterd.events WHERE organization_id = 'acme')`).Scan(&s.users, &s.day2, &s.members, &s.events)
			})
			if err != nil {
				done <- err
				return
			}
			reads.Add(1)
			saw[s]++
			if !allowed[s] {
				done <- fmt.Errorf("a reader saw half a batch: %+v", s)
				return
			}
		}
		done <- nil
	}()
	if err := applyUsers(t, db, "acme", "B1", state.SnapshotCounts{}, ids("u", 0, n), nil, nil, "day1"); err != nil {
		t.Fatal(err)
	}
	if err := applyUsers(t, db, "acme", "B2", state.SnapshotCounts{Users: n, Active: n, Groups: 1, Memberships: n},
		ids("v", 0, 2000), ids("u", 3000, 8000), ids("u", 0, 3000), "day2"); err != nil {
		t.Fatal(err)
	}
	// A last look after both.
	deadline := time.Now().Add(30 * time.Second)
	for start := reads.Load(); reads.Load() < start+2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("reads: %v", saw)
	if len(saw) < 2 || reads.Load() < 3 {
		t.Errorf("the reader saw %v: not enough to tell", saw)
	}
}

// TestApplyReplicaAcrossInstances: two instances apply batches of one
// organization in turn; each one's differ reads what the other applied
// (its copy is reloaded), and an apply whose diff read a snapshot that
// changed meanwhile is refused, then succeeds when retried.
func TestApplyReplicaAcrossInstances(t *testing.T) {
	url := newDB(t)
	open := func(name string) *DB {
		db, err := Open(context.Background(), Config{URL: url, Instance: name, ReplicaDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open("a"), open("b")
	if err := a.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := applyUsers(t, a, "acme", "B1", state.SnapshotCounts{}, ids("u", 0, 10), nil, nil, "t"); err != nil {
		t.Fatal(err)
	}
	if err := applyUsers(t, b, "acme", "B2", state.SnapshotCounts{Users: 10, Active: 10, Groups: 1, Memberships: 10}, ids("u", 10, 15), nil, ids("u", 0, 2), "t"); err != nil {
		t.Fatal(err)
	}
	if err := applyUsers(t, a, "acme", "B3", state.SnapshotCounts{Users: 13, Active: 13, Groups: 1, Memberships: 13}, nil, ids("u", 2, 4), nil, "t2"); err != nil {
		t.Fatal(err)
	}

	// B4 on a: while its diff runs, b applies B5.
	if _, err := a.CreateBatch(state.Batch{ID: "B4", Org: "acme", Status: state.BatchProcessing}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Apply("acme", func(s *state.SnapshotTx) (state.Outcome, error) {
		if err := applyUsers(t, b, "acme", "B5", state.SnapshotCounts{Users: 13, Active: 13, Groups: 1, Memberships: 13}, ids("w", 0, 1), nil, nil, "t"); err != nil {
			t.Error(err)
		}
		return state.Outcome{Batch: state.Batch{ID: "B4", Org: "acme", Status: state.BatchApplied}, Write: func(w state.Writer) error {
			return w.DeleteUser([]byte("u000005"))
		}, Changes: 1}, nil
	})
	if !errors.Is(err, errStale) {
		t.Fatalf("Apply(B4) after B5 = %v; want errStale", err)
	}
	if bt, err := a.Batch("acme", "B4"); err != nil || bt.Status != state.BatchProcessing {
		t.Fatalf("Batch(B4) = %+v, %v; want still processing", bt, err)
	}
	if err := applyUsers(t, a, "acme", "B4", state.SnapshotCounts{Users: 14, Active: 14, Groups: 1, Memberships: 14}, nil, nil, ids("u", 5, 6), "t"); err != nil {
		t.Fatalf("Apply(B4) retried: %v", err)
	}
	c, err := b.SnapshotCounts("acme")
	if err != nil || c != (state.SnapshotCounts{Users: 13, Active: 13, Groups: 1, Memberships: 13}) {
		t.Errorf("SnapshotCounts = %+v, %v; want 13 users and memberships", c, err)
	}

	// An outcome that changes nothing holds only for the snapshot read.
	if _, err := a.CreateBatch(state.Batch{ID: "B6", Org: "acme", Status: state.BatchProcessing}); err != nil {
		t.Fatal(err)
	}
	_, err = a.Apply("acme", func(s *state.SnapshotTx) (state.Outcome, error) {
		if err := applyUsers(t, b, "acme", "B7", state.SnapshotCounts{Users: 13, Active: 13, Groups: 1, Memberships: 13}, ids("w", 1, 2), nil, nil, "t"); err != nil {
			t.Error(err)
		}
		return state.Outcome{Batch: state.Batch{ID: "B6", Org: "acme", Status: state.BatchUnchanged}}, nil
	})
	if !errors.Is(err, errStale) {
		t.Fatalf("Apply(B6, unchanged) after B7 = %v; want errStale", err)
	}
	if bt, err := a.Batch("acme", "B6"); err != nil || bt.Status != state.BatchProcessing {
		t.Fatalf("Batch(B6) = %+v, %v; want still processing", bt, err)
	}
}

// TestDeleteOrgDropsSnapshot: users and memberships have no foreign key
// (migration 0003): DeleteOrg removes them itself, so an organization
// made again under the name starts empty, and its first apply reads an
// empty snapshot.
func TestDeleteOrgDropsSnapshot(t *testing.T) {
	db := openTest(t)
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := applyUsers(t, db, "acme", "B1", state.SnapshotCounts{}, ids("u", 0, 5), nil, nil, "t"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteOrg("acme"); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	var users, members int
	err := db.pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM rosterd.users), (SELECT count(*) FROM rosterd.memberships)").Scan(&users, &members)
	if err != nil || users != 0 || members != 0 {
		t.Fatalf("after DeleteOrg: %d users, %d memberships, %v; want none", users, members, err)
	}
	if err := applyUsers(t, db, "acme", "B2", state.SnapshotCounts{}, ids("v", 0, 2), nil, nil, "t"); err != nil {
		t.Fatal(err)
	}
}
