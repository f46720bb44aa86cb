package ingest

import (
	"encoding/binary"
	"fmt"

	"github.com/rosterd/rosterd/schema"
)

// Groups derived from users.csv (SPEC §4, exports as they come): the
// checker gives each valid users.csv row's groups (schema.User.Groups,
// the organization's groups_from_columns), already distinct and counted
// in its membership set, so that user_groups.csv's rows that repeat them
// are not given again. The differ keeps them in the spill derived, one
// record per user, while users.csv is read, and then takes them through
// member, the way user_groups.csv's rows go, once the users are known.
// What follows (the group-set hashes, the scan of the stored memberships,
// groups, events) does not tell them apart.
//
// The spill holds about what the memberships' CSV would (a user id and
// the group names of each user), in memory up to a few MB and on a
// temporary file beyond, so a million users cost no memory per user here.

// spillDerived keeps the groups users.csv gives user u: its id and the
// names, each a uvarint length and its bytes.
func (d *differ) spillDerived(u *schema.User) error {
	if d.derived == nil || len(u.Groups) == 0 {
		return nil
	}
	d.dUID = append(d.dUID[:0], u.ID...)
	d.dGroups = d.dGroups[:0]
	for _, g := range u.Groups {
		d.dGroups = binary.AppendUvarint(d.dGroups, uint64(len(g)))
		d.dGroups = append(d.dGroups, g...)
	}
	return d.derived.add(d.dUID, d.dGroups)
}

// readDerived takes the memberships spillDerived kept, in users.csv's
// order, through member.
func (d *differ) readDerived() error {
	names := map[string]string{} // one string per group, not per membership
	return d.derived.each(func(f [][]byte) error {
		uid, rest := f[0], f[1]
		for len(rest) > 0 {
			n, k := binary.Uvarint(rest)
			if k <= 0 || uint64(len(rest)-k) < n {
				return fmt.Errorf("derived memberships of %s: bad record", uid)
			}
			b := rest[k : k+int(n)]
			rest = rest[k+int(n):]
			name, ok := names[string(b)]
			if !ok {
				name = string(b)
				names[name] = name
			}
			if err := d.member(uid, name); err != nil {
				return err
			}
		}
		return nil
	})
}
