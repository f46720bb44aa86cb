package schema

import (
	"fmt"
	"io"
	"slices"
)

// users.csv roles: the required columns, status, then the known ones.
const (
	uID = iota
	uEmail
	uFirstName
	uLastName
	uStatus
	uKnown // uKnown+k is KnownField k
)

var userRoles = func() map[string]int {
	m := map[string]int{"user_id": uID, "email": uEmail, "first_name": uFirstName, "last_name": uLastName, "status": uStatus, "state": uStatus}
	for k := KnownField(0); k < NumKnown; k++ {
		m[k.Name()] = uKnown + int(k)
	}
	return m
}()

// Users checks a users.csv read from r and calls fn (when not nil) for
// each row without errors, in file order. file names the file in issues.
// A non-nil error from fn stops the reading and is returned; otherwise the
// error is an I/O error of r. Problems in the data are issues, never
// errors. SPEC §4.
//
// fn sees a row when the row's own checks pass. Duplicate user_ids and
// emails are found a little later (every 65,536 rows and at the end of the
// file), so fn may see both rows of a duplicate. A batch with any error
// must be discarded whole (SPEC §4): use what fn gathered only when
// Errors() is 0 after the whole batch.
//
// When r is also an io.ReadSeeker, its offset at the call is taken as the
// start of the file and, if there are duplicate emails, Users seeks back
// and reads the file again up to the last line whose spelling an issue
// needs (see doc.go); without Seek those issues say less.
func (c *Checker) Users(r io.Reader, file string, fn func(*User) error) (res FileResult, err error) {
	// res is named: the duplicates found when the windows are flushed,
	// after the last row, still count in it.
	c.haveUsers = true
	src := rereadable(r)
	emailCol := -1
	var delim byte
	defer func() {
		c.userIDs.flush(c.dupID)
		c.emails.flush(c.dupEmail)
		c.refillEmails(src, delim, emailCol)
		// A batch has one users file: the emails are not needed again,
		// nor the windows' buffers (the user_ids are, by UserGroups).
		c.emails = window{}
		c.userIDs.buf, c.userIDs.tmp, c.userIDs.arena = nil, nil, nil
	}()
	s, err := c.begin(r, file, &res, userRoles)
	if s == nil || err != nil {
		c.usersBroken = true
		return res, err
	}
	defer s.close()
	if !c.require(s, userRoles, "user_id", "email", "first_name", "last_name") || s.bad {
		c.usersBroken = true
		return res, nil
	}
	idx := [uKnown]int{-1, -1, -1, -1, -1}
	for i, col := range s.cols {
		if col.role >= 0 && col.role < uKnown {
			idx[col.role] = i
		}
	}
	emailCol, delim = idx[uEmail], s.delim
	if c.mapping.DerivesGroups() {
		c.groupColumns(s)
	}
	c.userIDs.ordered = true
	s.presize = func(rows int) {
		c.userIDs.set.reserve(c.userIDs.set.n + rows)
		c.userIDs.order = slices.Grow(c.userIDs.order, rows)
		c.emails.set.reserve(c.emails.set.n + rows)
	}
	dateCol := -1
	for i, col := range s.cols {
		if col.role == uKnown+int(EmploymentStartDate) {
			dateCol = i
		}
	}
	if l := c.mapping.layout(); l != nil && dateCol >= 0 {
		// The reading goroutine writes the dates it can read in the
		// organization's format as YYYY-MM-DD (mapping.go).
		s.rd.dateCol, s.rd.date = dateCol, l
	}
	u := &c.user
	for {
		ok, usable, err := c.next(s)
		if err != nil {
			c.usersBroken = true
			return res, err
		}
		if !ok {
			break
		}
		if !usable {
			continue
		}
		rec := s.rec
		id, email := rec.value(idx[uID]), rec.value(idx[uEmail])
		idLine, emailLine := rec.fields[idx[uID]].line, rec.fields[idx[uEmail]].line

		if len(id) == 0 {
			c.missing(rec, s, idx[uID], "every person needs a user_id, the directory's own stable id")
		} else {
			c.userIDs.add(c.hash(id), idLine, id, c.dupID)
		}

		if len(email) == 0 {
			c.missing(rec, s, idx[uEmail], "every person needs an email address")
		} else if why, fold := checkEmail(email); why != "" {
			c.issue(emailLine, "email", email, CodeInvalidEmail, SeverityError,
				msgf("%q is not a valid email address: it %s", email, why))
		} else {
			c.emails.add(c.hashFold(email, fold), emailLine, email, c.dupEmail)
		}
		if len(rec.value(idx[uFirstName])) == 0 {
			c.missing(rec, s, idx[uFirstName], "every person needs a first name and a last name")
		}
		if len(rec.value(idx[uLastName])) == 0 {
			c.missing(rec, s, idx[uLastName], "every person needs a first name and a last name")
		}
		active := true
		if i := idx[uStatus]; i >= 0 {
			var known bool
			active, known = c.mapping.statusOf(rec.value(i))
			if !known {
				c.issue(rec.fields[i].line, s.cols[i].name, rec.value(i), CodeInvalidStatus, SeverityError,
					msgf("%q is not a known %s: use active (or leave it empty) for people who are active, and inactive, suspended, disabled, terminated or deprovisioned for people who are not", rec.value(i), s.cols[i].key)+
						c.mapping.statusHint())
			}
		}
		if dateCol >= 0 {
			if v := rec.value(dateCol); len(v) > 0 {
				if ok, form := dateForm(v); !ok {
					c.badDate(rec.fields[dateCol].line, s.cols[dateCol].name, v, form)
				}
			}
		}
		if c.rowErr {
			continue
		}
		c.stats.Users++
		c.derive(s)
		if fn == nil {
			continue
		}
		c.fillUser(u, s, active)
		if err := fn(u); err != nil {
			return res, err
		}
	}
	if res.Rows == 0 && res.Errors == 0 {
		c.issue(0, "", nil, CodeNoRows, SeverityWarning, "the file has a header but no rows: uploaded, it would remove every user (such a batch is held until someone approves it)")
	}
	return res, nil
}

// badDate reports an employment_start_date that is not YYYY-MM-DD (nor,
// under a mapping with a date format, a date in that format). form names
// the form it is recognisably written in, if any: that is a warning.
func (c *Checker) badDate(line int, col string, v []byte, form string) {
	want := "write dates as YYYY-MM-DD (ISO 8601), for example 2024-03-01"
	if f := c.mapping.DateFormat(); f != "" {
		want = fmt.Sprintf("the organization's settings read dates as %s (or YYYY-MM-DD), and this value is not a date written so", f)
	}
	if form != "" {
		c.issue(line, col, v, CodeDateFormat, SeverityWarning, msgf("%q looks like a date written as %s; ", v, form)+want)
		return
	}
	c.issue(line, col, v, CodeInvalidDate, SeverityError, msgf("%q is not a date; ", v)+want)
}

// dupID reports a user_id seen before, on both lines (the earlier one
// once). user_ids are compared as written, so id is also the earlier
// line's value.
func (c *Checker) dupID(id []byte, prev, line int, prevReported bool) {
	c.stats.Users = max(c.stats.Users-1, 0) // the repeat is not another user
	if !prevReported {
		c.issue(prev, "user_id", id, CodeDuplicateUserID, SeverityError,
			msgf("user_id %q also appears on line %d — each person must appear once", id, line))
	}
	c.issue(line, "user_id", id, CodeDuplicateUserID, SeverityError,
		msgf("user_id %q also appears on line %d — each person must appear once", id, prev))
}

// dupEmail reports an email seen before, ignoring case, on both lines
// (the earlier one once). Only email, the later line's spelling, is at
// hand: the earlier line's issue gets its own value, and both messages the
// other line's spelling, after the pass (refillEmails).
func (c *Checker) dupEmail(email []byte, prev, line int, prevReported bool) {
	later := cut(email)
	if !prevReported {
		c.issueRefill(prev, "email", nil, CodeDuplicateEmail, SeverityError,
			dupEmailMsg("", line, later), &refill{line: prev, other: later, otherLine: line})
	}
	c.issueRefill(line, "email", email, CodeDuplicateEmail, SeverityError,
		dupEmailMsg(later, prev, ""), &refill{line: prev})
}

// dupEmailMsg is the message of a duplicate email on a line spelt own,
// whose other occurrence is on otherLine, spelt other. An empty own or
// other is a spelling not known.
func dupEmailMsg(own string, otherLine int, other string) string {
	const why = "(upper and lower case count as the same) — each person needs their own address"
	switch {
	case own == "":
		return msgf("the email on this line also appears on line %d, written %q "+why, otherLine, other)
	case other != "" && other != own:
		return msgf("email %q also appears on line %d, written %q "+why, own, otherLine, other)
	}
	return msgf("email %q also appears on line %d "+why, own, otherLine)
}

// missing reports an empty required value.
func (c *Checker) missing(rec *record, s *scan, i int, why string) {
	c.issue(rec.fields[i].line, s.cols[i].name, nil, CodeMissingValue, SeverityError,
		fmt.Sprintf("%s is empty; %s", s.cols[i].key, why))
}

// statusOf maps a status value to active or inactive (SPEC §4). known is
// false for any other word.
func statusOf(v []byte) (active, known bool) {
	if len(v) > 16 {
		return false, false
	}
	var buf [32]byte
	switch string(appendLower(buf[:0], v)) {
	case "", "active", "true", "1":
		return true, true
	case "inactive", "suspended", "disabled", "terminated", "deprovisioned", "false", "0":
		return false, true
	}
	return false, false
}

// fillUser sets u from the current row: slices of its chunk's text (one
// string allocation per chunk of rows, see pipe.text).
func (c *Checker) fillUser(u *User, s *scan, active bool) {
	rec := s.rec
	all := s.p.text()
	*u = User{Line: rec.line, Active: active, Custom: u.Custom[:0], Groups: c.derived}
	for i, col := range s.cols {
		f := rec.fields[i]
		v := all[f.start:f.end]
		switch {
		case col.role == uID:
			u.ID = v
		case col.role == uEmail:
			u.Email = v
		case col.role == uFirstName:
			u.FirstName = v
		case col.role == uLastName:
			u.LastName = v
		case col.role >= uKnown:
			u.Known[col.role-uKnown] = v
		case col.role == roleCustom && v != "":
			u.Custom = append(u.Custom, Attr{Name: col.attr, Value: v})
		}
	}
}
