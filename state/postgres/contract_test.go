package postgres

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/state/storetest"
)

// TestContract runs the store contract suite against PostgreSQL; state
// runs the same suite against bbolt.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store { return openTest(t) },
		Emit: func(t *testing.T, s storetest.Store, org, batch string, evs []storetest.RawEvent) []string {
			t.Helper()
			recs := make([]eventRecord, len(evs))
			for i, e := range evs {
				recs[i] = eventRecord{Type: e.Type, Data: []byte(e.Data)}
			}
			ids, err := s.(*DB).appendEvents(org, batch, recs, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return ids
		},
		Snapshot: func(t *testing.T, s storetest.Store, org string, snap storetest.Snapshot) {
			t.Helper()
			if err := s.(*DB).putSnapshot(org, snap); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// putSnapshot writes snap as org's directory, in the columns the views
// read: what the apply will write.
func (db *DB) putSnapshot(org string, snap storetest.Snapshot) error {
	return db.tx(func(ctx context.Context, tx pgx.Tx) error {
		active := 0
		for _, u := range snap.Users {
			known, custom := map[string]string{}, map[string]string{}
			for _, a := range u.Rec.Known {
				known[a.Name] = a.Value
			}
			for _, a := range u.Rec.Custom {
				custom[a.Name] = a.Value
			}
			kj, _ := json.Marshal(known)
			cj, _ := json.Marshal(custom)
			_, err := tx.Exec(ctx, `INSERT INTO rosterd.users (org, id, active, email, first_name, last_name, known, custom)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, org, u.Rec.ID, u.Active, u.Rec.Email, u.Rec.FirstName, u.Rec.LastName, string(kj), string(cj))
			if err != nil {
				return err
			}
			if u.Active {
				active++
			}
		}
		for _, g := range snap.Groups {
			_, err := tx.Exec(ctx, "INSERT INTO rosterd.groups (org, id, name, in_file, doc) VALUES ($1, $2, $3, true, $4)", org, g.ID, g.Name, g.Doc)
			if err != nil {
				return err
			}
		}
		for _, m := range snap.Members {
			if _, err := tx.Exec(ctx, "INSERT INTO rosterd.memberships (org, user_id, group_id) VALUES ($1, $2, $3)", org, m[0], m[1]); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "INSERT INTO rosterd.snapshot_counts (org, users, active, groups, memberships) VALUES ($1, $2, $3, $4, $5)",
			org, len(snap.Users), active, len(snap.Groups), len(snap.Members))
		return err
	})
}
