package ingest

import (
	"fmt"
	"strings"

	"github.com/rosterd/rosterd/state"
)

// changeCount is the number of snapshot changes the batch makes.
func (r *diffResult) changeCount() int {
	return len(r.groups) + len(r.groupsDeleted) + r.usersCreated.Len() + r.usersUpdated.Len() +
		r.usersDeleted.Len() + r.membersAdded.Len() + r.membersRemov.Len()
}

// apply is step 2: it writes the changes into the snapshot and emits the
// events in the order of SPEC §6, calling Checkpoint after each change so
// that a staged apply commits in bounded transactions.
func (r *diffResult) apply(a state.Writer) error {
	for _, g := range r.groups {
		if err := a.PutGroup([]byte(g.id), g.name, g.flags, g.rec); err != nil {
			return err
		}
		if g.event != "" {
			if err := a.EmitGroup(g.event, []byte(g.id)); err != nil {
				return err
			}
		}
		if err := a.Checkpoint(); err != nil {
			return err
		}
	}
	err := r.usersCreated.sortedAhead(func(f [][]byte) error {
		if err := a.PutUser(f[0], f[1][0] == 'a', f[2]); err != nil {
			return err
		}
		if err := a.EmitUser(state.EventUserCreated, f[0], nil); err != nil {
			return err
		}
		return a.Checkpoint()
	})
	if err != nil {
		return err
	}
	err = r.usersUpdated.sortedAhead(func(f [][]byte) error {
		if err := a.PutUser(f[0], f[1][0] == 'a', f[2]); err != nil {
			return err
		}
		if err := a.EmitUser(state.EventUserUpdated, f[0], f[3]); err != nil {
			return err
		}
		return a.Checkpoint()
	})
	if err != nil {
		return err
	}
	err = r.membersAdded.sortedAhead(func(f [][]byte) error {
		if err := a.AddMember(f[0], f[1]); err != nil {
			return err
		}
		if err := a.EmitMember(state.EventGroupUserAdded, f[0], f[1]); err != nil {
			return err
		}
		return a.Checkpoint()
	})
	if err != nil {
		return err
	}
	err = r.membersRemov.each(func(f [][]byte) error {
		if err := a.EmitMember(state.EventGroupUserRemoved, f[0], f[1]); err != nil {
			return err
		}
		if err := a.RemoveMember(f[0], f[1]); err != nil {
			return err
		}
		return a.Checkpoint()
	})
	if err != nil {
		return err
	}
	err = r.usersDeleted.each(func(f [][]byte) error {
		if err := a.EmitUser(state.EventUserDeleted, f[0], nil); err != nil {
			return err
		}
		if err := a.DeleteUser(f[0]); err != nil {
			return err
		}
		return a.Checkpoint()
	})
	if err != nil {
		return err
	}
	for _, id := range r.groupsDeleted {
		if err := a.EmitGroup(state.EventGroupDeleted, []byte(id)); err != nil {
			return err
		}
		if err := a.DeleteGroup([]byte(id)); err != nil {
			return err
		}
		if err := a.Checkpoint(); err != nil {
			return err
		}
	}
	return nil
}

// guardReason returns why the deletion guard of SPEC §5 holds the batch,
// or "".
func (r *diffResult) guardReason(pol policy) string {
	if !pol.guard || !r.haveUsers {
		return ""
	}
	if r.usersRows == 0 && r.usersBefore > 0 {
		return fmt.Sprintf("users.csv has no rows while the organization has %d users", r.usersBefore)
	}
	if r.activeLost > pol.count && float64(r.activeLost) > pol.pct/100*float64(r.activeBefore) {
		return fmt.Sprintf("the batch would delete or deactivate %d of %d active users (more than %s%% and more than %d)",
			r.activeLost, r.activeBefore, strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", pol.pct), "0"), "."), pol.count)
	}
	return ""
}
