package state_test

import (
	"path/filepath"
	"testing"

	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/storetest"
)

// TestContract runs the store contract suite against bbolt; state/postgres
// runs the same suite against PostgreSQL.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store {
			db, err := state.Open(filepath.Join(t.TempDir(), "rosterd.db"), &state.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		Emit: func(t *testing.T, s storetest.Store, org, batch string, evs []storetest.RawEvent) []string {
			t.Helper()
			db := s.(*state.DB)
			if _, err := db.CreateBatch(state.Batch{ID: batch, Org: org, Status: state.BatchPending}); err != nil {
				t.Fatal(err)
			}
			var ids []string
			err := db.ApplyBatch(state.Batch{ID: batch, Org: org, Status: state.BatchApplied}, []byte(`{}`), func(a *state.ApplyTx) error {
				for _, e := range evs {
					id, err := a.Emit(e.Type, []byte(e.Data))
					if err != nil {
						return err
					}
					ids = append(ids, id)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return ids
		},
		Snapshot: func(t *testing.T, s storetest.Store, org string, snap storetest.Snapshot) {
			t.Helper()
			db := s.(*state.DB)
			id := "snapshot-" + org
			if _, err := db.CreateBatch(state.Batch{ID: id, Org: org, Status: state.BatchPending}); err != nil {
				t.Fatal(err)
			}
			err := db.ApplyBatch(state.Batch{ID: id, Org: org, Status: state.BatchApplied}, []byte(`{}`), func(a *state.ApplyTx) error {
				for _, u := range snap.Users {
					if err := a.PutUser([]byte(u.Rec.ID), u.Active, u.Rec.AppendBinary(nil)); err != nil {
						return err
					}
				}
				for _, g := range snap.Groups {
					if err := a.PutGroup([]byte(g.ID), g.Name, state.GroupInFile, []byte(g.Doc)); err != nil {
						return err
					}
				}
				for _, m := range snap.Members {
					if err := a.AddMember([]byte(m[0]), []byte(m[1])); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		},
	})
}
