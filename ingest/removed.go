package ingest

import (
	"encoding/json"
	"errors"
	"os"

	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// SPEC §5: a held batch's report lists who would be deleted or
// deactivated, so that the operator approves knowing who goes: the first
// report.MaxRemovedText in the text, all of them in the JSON report files.
// The list can be every user of the organization (an export that came out
// empty), so it is never held in memory: it is a spill (memory up to 4 MB,
// a temporary file beyond) of one record per user, about 60 bytes plus the
// id, email and names, and the JSON report files are streamed from it. At
// a million users the JSON list is about 110 MB. The stored report (the
// API, rosterd batch show --json) keeps the first report.MaxRemovedListed
// with the total: a bbolt value of 110 MB would cost twice that in memory
// at every held batch, and stay in the database file.

// removedUsers returns the users r would deactivate (in the file's order)
// then those it would delete (in the snapshot's order), as records of
// (change, id, email, first name, last name). The caller closes the
// spill. It runs in the transaction r was diffed in, or one that sees the
// same snapshot.
func removedUsers(s *state.SnapshotTx, r *diffResult) (*spill, error) {
	sp := newSpill(os.TempDir(), 5)
	add := func(change string, id, rec []byte, active bool) error {
		u := userNames(s.Org(), rec, active)
		return sp.add([]byte(change), id, []byte(u.Email), []byte(u.FirstName), []byte(u.LastName))
	}
	err := r.usersUpdated.each(func(f [][]byte) error {
		if f[1][0] != stateInactive[0] {
			return nil
		}
		if _, was, ok := s.User(f[0]); !ok || !was {
			return nil // it was inactive already: an update, not a deactivation
		}
		return add(report.Deactivated, f[0], f[2], false)
	})
	if err == nil {
		err = r.usersDeleted.each(func(f [][]byte) error {
			rec, active, _ := s.User(f[0])
			return add(report.Deleted, f[0], rec, active)
		})
	}
	if err != nil {
		sp.close()
		return nil, err
	}
	return sp, nil
}

// userNames reads the email and names of a stored user record.
func userNames(org string, rec []byte, active bool) report.RemovedUser {
	if u, err := state.DecodeUserRecord(rec); err == nil {
		return report.RemovedUser{Email: u.Email, FirstName: u.FirstName, LastName: u.LastName}
	}
	var u report.RemovedUser // a record stored as JSON
	json.Unmarshal(state.AppendUserJSON(nil, org, active, rec), &u)
	return report.RemovedUser{Email: u.Email, FirstName: u.FirstName, LastName: u.LastName}
}

// eachRemoved yields the users of a removedUsers spill.
func eachRemoved(sp *spill) func(yield func(report.RemovedUser) error) error {
	return func(yield func(report.RemovedUser) error) error {
		return sp.each(func(f [][]byte) error {
			return yield(report.RemovedUser{Change: string(f[0]), ID: string(f[1]), Email: string(f[2]), FirstName: string(f[3]), LastName: string(f[4])})
		})
	}
}

// listRemoved puts the first report.MaxRemovedListed removed users of sp
// and their total into rep.
func listRemoved(rep *report.Report, sp *spill) error {
	if sp.Len() == 0 {
		return nil
	}
	rep.RemovedUsersTotal = sp.Len()
	rep.RemovedUsers = make([]report.RemovedUser, 0, min(sp.Len(), report.MaxRemovedListed))
	err := eachRemoved(sp)(func(u report.RemovedUser) error {
		if len(rep.RemovedUsers) == report.MaxRemovedListed {
			return errListed
		}
		rep.RemovedUsers = append(rep.RemovedUsers, u)
		return nil
	})
	if errors.Is(err, errListed) {
		err = nil
	}
	return err
}

// errListed stops listRemoved's walk of the spill.
var errListed = errors.New("listed")
