package schema

import (
	"io"
)

// user_groups.csv roles.
const (
	mGroupName = iota
	mUserID
)

var memberRoles = map[string]int{"group_name": mGroupName, "user_id": mUserID}

// groups.csv roles.
const (
	gName = iota
	gID
	gDescription
)

var groupRoles = map[string]int{"group_name": gName, "group_id": gID, "description": gDescription}

// UserGroups checks a user_groups.csv and calls fn (when not nil) once per
// distinct valid membership. Each user_id must exist in the batch's users
// file when the batch has one (checked before), otherwise in userExists
// (SPEC §4). A repeated row is a warning and fn sees it once. Columns other
// than group_name and user_id are ignored, with a warning. Errors as for
// Users.
func (c *Checker) UserGroups(r io.Reader, file string, fn func(*Membership) error) (FileResult, error) {
	var res FileResult
	c.members.run.valid, c.members.run.order = false, -1 // the users' slots may have moved
	s, err := c.begin(r, file, &res, memberRoles)
	if s == nil || err != nil {
		return res, err
	}
	defer s.close()
	if c.mapping.DerivesGroups() && !c.haveUsers {
		// The memberships are the derived ones joined with this file's:
		// without users.csv this file alone would end the derived ones.
		c.issue(0, "", nil, CodeUsersFileRequired, SeverityError,
			"the organization derives groups from columns of users.csv (groups_from_columns), so its memberships come with users.csv: upload this file together with users.csv, in one batch")
		return res, nil
	}
	if !c.require(s, memberRoles, "group_name", "user_id") || s.bad {
		return res, nil
	}
	gi, ui := -1, -1
	for i, col := range s.cols {
		switch col.role {
		case mGroupName:
			gi = i
		case mUserID:
			ui = i
		case roleCustom:
			c.issue(1, col.name, nil, CodeIgnoredColumn, SeverityWarning,
				msgf("the column %q is not used: user_groups.csv needs only group_name and user_id", col.name))
		}
	}
	m := &c.member
	for {
		ok, usable, err := c.next(s)
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		if !usable {
			continue
		}
		rec := s.rec
		group, user := rec.value(gi), rec.value(ui)
		if len(group) == 0 {
			c.missing(rec, s, gi, "each row names a group and one of its members")
		}
		if len(user) == 0 {
			c.missing(rec, s, ui, "each row names a group and one of its members")
		} else if !c.startRun(user) {
			where := "in users.csv"
			if !c.haveUsers {
				where = "among the current users (this upload has no users.csv)"
			}
			c.issue(rec.fields[ui].line, s.cols[ui].name, user, CodeUnknownUser, SeverityError,
				msgf("user_id %q is not %s: add the person to users.csv or remove this row", user, where))
		}
		if c.rowErr {
			continue
		}
		line := rec.fields[gi].line
		num := c.groupNumber(group)
		if prev, dup := c.addMember(num, line); dup {
			if prev == derivedLine {
				continue // also derived from users.csv: joined, it counts once
			}
			c.issue(rec.line, "", nil, CodeDuplicateMember, SeverityWarning,
				msgf("user %q in group %q already appears on line %d; the repeat is ignored", user, group, prev))
			continue
		}
		c.stats.Memberships++
		if fn == nil {
			continue
		}
		*m = Membership{Line: rec.line, GroupName: c.groupText(num, group), UserID: c.runText(user)}
		if err := fn(m); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Groups checks a groups.csv and calls fn (when not nil) for each row
// without errors. group_name is required and unique, group_id optional and
// unique; other columns are custom attributes. Errors as for Users.
func (c *Checker) Groups(r io.Reader, file string, fn func(*Group) error) (FileResult, error) {
	var res FileResult
	s, err := c.begin(r, file, &res, groupRoles)
	if s == nil || err != nil {
		return res, err
	}
	defer s.close()
	if !c.require(s, groupRoles, "group_name") || s.bad {
		return res, nil
	}
	ni, ii := -1, -1
	for i, col := range s.cols {
		switch col.role {
		case gName:
			ni = i
		case gID:
			ii = i
		}
	}
	s.presize = func(rows int) {
		c.groupNames.reserve(c.groupNames.n + rows)
		c.allGroups.reserve(c.allGroups.n + rows)
	}
	g := &c.group
	for {
		ok, usable, err := c.next(s)
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		if !usable {
			continue
		}
		rec := s.rec
		name := rec.value(ni)
		line := rec.fields[ni].line
		if len(name) == 0 {
			c.missing(rec, s, ni, "every group needs a name")
		} else if prev, reported, dup := firstSeen(&c.groupNames, c.hash(name), line); dup {
			if !reported {
				c.issue(prev, s.cols[ni].name, name, CodeDuplicateGroupName, SeverityError,
					msgf("group_name %q also appears on line %d — each group must appear once", name, line))
			}
			c.issue(line, s.cols[ni].name, name, CodeDuplicateGroupName, SeverityError,
				msgf("group_name %q also appears on line %d — each group must appear once", name, prev))
		}
		if ii >= 0 {
			if id := rec.value(ii); len(id) > 0 {
				line := rec.fields[ii].line
				if prev, reported, dup := firstSeen(&c.groupIDs, c.hash(id), line); dup {
					if !reported {
						c.issue(prev, s.cols[ii].name, id, CodeDuplicateGroupID, SeverityError,
							msgf("group_id %q also appears on line %d — each group needs its own id", id, line))
					}
					c.issue(line, s.cols[ii].name, id, CodeDuplicateGroupID, SeverityError,
						msgf("group_id %q also appears on line %d — each group needs its own id", id, prev))
				}
			}
		}
		if c.rowErr {
			continue
		}
		c.groupNumber(name)
		if fn == nil {
			continue
		}
		all := string(rec.buf)
		*g = Group{Line: rec.line, Custom: g.Custom[:0]}
		for i, col := range s.cols {
			f := rec.fields[i]
			v := all[f.start:f.end]
			switch col.role {
			case gName:
				g.Name = v
			case gID:
				g.ID = v
			case gDescription:
				g.Description = v
			case roleCustom:
				if v != "" {
					g.Custom = append(g.Custom, Attr{Name: col.attr, Value: v})
				}
			}
		}
		if err := fn(g); err != nil {
			return res, err
		}
	}
	return res, nil
}
