package ingest

import "github.com/rosterd/rosterd/schema"

// Groups derived from users.csv (SPEC §4, exports as they come): the
// checker gives each valid users.csv row's groups (schema.User.Groups,
// from the organization's groups_from_columns), already distinct and
// counted in its membership set, so that the rows of user_groups.csv that
// repeat them are not given again. compareUsers takes them right after it
// has compared their user, through addMember, the way user_groups.csv's
// rows go: what follows (the group-set hashes, the scan of the stored
// memberships, groups, events) does not tell them apart. Nothing is kept
// per user beyond what a user_groups.csv row costs.
//
// compareUsers runs on its own goroutine while the checker reads
// users.csv. It is then the only user of the snapshot's transaction
// (resolve looks groups up by name) and of the membership state
// addMember changes: user_groups.csv is read after users.csv.

// derivedMembers takes the memberships u's row gives, after compareUser.
// u's user is the last compareUser added (or skipped).
func (d *differ) derivedMembers(u *schema.User) error {
	if !d.derives || len(u.Groups) == 0 {
		return nil
	}
	if !u.Active && d.pol.inactiveDelete {
		d.r.skippedMembers += len(u.Groups) // SPEC §4: deleted, with its memberships
		return nil
	}
	id := d.idb // compareUser's copy of u.ID
	if d.byHash {
		// The user's place in setDiff is the last one compareUser made:
		// addMember's lookup of the user is skipped.
		d.lastRowUID = append(d.lastRowUID[:0], id...)
		d.lastRowIdx = uint32(len(d.setDiff) - 1)
	}
	for _, g := range u.Groups {
		if err := d.addMember(id, g); err != nil {
			return err
		}
	}
	return nil
}
