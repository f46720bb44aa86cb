package ingest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strings"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// The differ works in two steps so that neither needs the whole new
// snapshot in memory:
//
//  1. diff, in a read transaction: stream each file through the schema
//     checker, compare every row with the stored record, and append what
//     changes to spills (created, updated, deleted users, added and removed
//     memberships). It keeps only 128-bit hashes of the user ids and
//     memberships it saw, to find what the files no longer hold.
//  2. apply, in the one write transaction of the batch: replay the spills
//     into the snapshot and emit the events in the order of SPEC §6.
//
// Both run under the organization's loop, so the snapshot cannot change
// between them.

// policy is what an organization's settings decide for one batch.
type policy struct {
	inactiveDelete bool
	guard          bool // false for an approved batch
	pct            float64
	count          int
}

// input is one file of a batch.
type input struct {
	kind schema.Kind
	name string
	open func() (io.ReadCloser, error)
}

// groupChange is the new state of one group that the batch creates or
// changes.
type groupChange struct {
	id, name string
	flags    byte
	rec      []byte
	event    string // state.EventGroupCreated, state.EventGroupUpdated or "" (flags only)
}

// diffResult is the outcome of step 1.
type diffResult struct {
	org     string
	checker *schema.Checker
	results map[schema.Kind]schema.FileResult
	issues  []schema.Issue // the differ's own, beside the checker's

	changes state.BatchChanges
	counts  state.BatchCounts

	groups        []groupChange
	groupsDeleted []string
	usersCreated  *spill // id, state, rec
	usersUpdated  *spill // id, state, rec, previous_attributes
	usersDeleted  *spill // id
	membersAdded  *spill // user id, group id
	membersRemov  *spill // user id, group id

	activeBefore, usersBefore int
	activeLost                int // active users the batch deletes or deactivates
	usersRows                 int
	haveUsers                 bool
	skippedMembers            int // memberships of users the policy deletes
}

// empty reports whether the batch changes nothing at all.
func (r *diffResult) empty() bool {
	return len(r.groups) == 0 && len(r.groupsDeleted) == 0 && r.usersCreated.Len() == 0 &&
		r.usersUpdated.Len() == 0 && r.usersDeleted.Len() == 0 && r.membersAdded.Len() == 0 && r.membersRemov.Len() == 0
}

func (r *diffResult) close() {
	for _, s := range []*spill{r.usersCreated, r.usersUpdated, r.usersDeleted, r.membersAdded, r.membersRemov} {
		s.close()
	}
}

// errors returns the number of errors, the checker's and the differ's.
func (r *diffResult) errors() int {
	n := r.checker.Errors()
	for _, is := range r.issues {
		if is.Severity == schema.SeverityError {
			n++
		}
	}
	return n
}

// hash128 identifies a user id or a membership in the seen sets; two
// independent 64-bit hashes make a collision (a missed deletion) about as
// likely as a disk returning wrong bytes.
type hash128 struct{ a, b uint64 }

type hashSet []hash128

func (h hashSet) sort() {
	slices.SortFunc(h, func(x, y hash128) int {
		if x.a != y.a {
			if x.a < y.a {
				return -1
			}
			return 1
		}
		if x.b < y.b {
			return -1
		} else if x.b > y.b {
			return 1
		}
		return 0
	})
}

func (h hashSet) has(k hash128) bool {
	i, j := 0, len(h)
	for i < j {
		m := int(uint(i+j) >> 1)
		if h[m].a < k.a || (h[m].a == k.a && h[m].b < k.b) {
			i = m + 1
		} else {
			j = m
		}
	}
	return i < len(h) && h[i] == k
}

// fileGroup is one groups.csv row.
type fileGroup struct {
	id, name, desc string
	custom         []schema.Attr
}

type differ struct {
	s       *state.SnapshotTx
	org     string
	pol     policy
	r       *diffResult
	seedA   maphash.Seed
	seedB   maphash.Seed
	users   hashSet // user ids of the new users file
	members hashSet // memberships of the new user_groups file

	haveUsers, haveMembers, haveGroups bool

	fileGroups map[string]*fileGroup // groups.csv by resolved id
	fileNames  map[string]string     // groups.csv name -> resolved id
	resolved   map[string]string     // user_groups name -> id, memo
	memNames   map[string]string     // id -> name of groups user_groups names
	memCount   map[string]int        // id -> members in the new user_groups
	memDelta   map[string]int        // id -> change of members without user_groups

	buf              []byte
	jsonOld, jsonNew []byte
	attrs            []schema.Attr
	rec              state.UserRecord
	key              []byte
}

// encodeUser appends the compact snapshot record of u to b.
func (d *differ) encodeUser(b []byte, u *schema.User) []byte {
	r := &d.rec
	r.ID, r.Email, r.FirstName, r.LastName = u.ID, u.Email, u.FirstName, u.LastName
	r.Known, r.Custom = r.Known[:0], r.Custom[:0]
	for k := schema.KnownField(0); k < schema.NumKnown; k++ {
		if v := u.Known[k]; v != "" {
			r.Known = append(r.Known, state.Attr{Name: k.Name(), Value: v})
		}
	}
	d.attrs = sortedAttrs(d.attrs, u.Custom)
	for _, a := range d.attrs {
		r.Custom = append(r.Custom, state.Attr{Name: a.Name, Value: a.Value})
	}
	return r.AppendBinary(b)
}

func (d *differ) hash(b []byte) hash128 {
	return hash128{maphash.Bytes(d.seedA, b), maphash.Bytes(d.seedB, b)}
}

func (d *differ) pairHash(uid, gid []byte) hash128 {
	d.key = binary.AppendUvarint(d.key[:0], uint64(len(uid)))
	d.key = append(d.key, uid...)
	d.key = append(d.key, gid...)
	return d.hash(d.key)
}

// diff runs step 1 on s for the given files (at most one per kind). tmp is
// where large spills go.
func diff(s *state.SnapshotTx, pol policy, lim schema.Limits, files []input, tmp string) (*diffResult, error) {
	org := s.Org()
	c := s.Counts()
	r := &diffResult{
		org:          org,
		results:      map[schema.Kind]schema.FileResult{},
		activeBefore: c.Active,
		usersBefore:  c.Users,
		usersCreated: newSpill(tmp, 3),
		usersUpdated: newSpill(tmp, 4),
		usersDeleted: newSpill(tmp, 1),
		membersAdded: newSpill(tmp, 2),
		membersRemov: newSpill(tmp, 2),
	}
	d := &differ{
		s: s, org: org, pol: pol, r: r,
		seedA: maphash.MakeSeed(), seedB: maphash.MakeSeed(),
		fileGroups: map[string]*fileGroup{}, fileNames: map[string]string{},
		resolved: map[string]string{}, memNames: map[string]string{},
		memCount: map[string]int{}, memDelta: map[string]int{},
	}
	r.checker = schema.NewChecker(lim, func(id string) bool {
		_, _, ok := s.User([]byte(id))
		return ok
	})
	byKind := map[schema.Kind]input{}
	for _, f := range files {
		byKind[f.kind] = f
	}
	_, d.haveUsers = byKind[schema.Users]
	_, d.haveMembers = byKind[schema.UserGroups]
	_, d.haveGroups = byKind[schema.Groups]
	r.haveUsers = d.haveUsers
	if !d.haveUsers && c.Users == 0 {
		r.issues = append(r.issues, schema.Issue{
			File: "users.csv", Code: "users_file_required", Severity: schema.SeverityError,
			Message: "the first upload of an organization must include users.csv; upload it together with the other files",
		})
	}
	// groups.csv first: it decides the ids user_groups.csv names resolve to.
	// Then users.csv, which user_groups.csv references are checked against.
	steps := []struct {
		kind schema.Kind
		run  func(io.Reader, string) (schema.FileResult, error)
	}{{schema.Groups, d.readGroups}, {schema.Users, d.readUsers}, {schema.UserGroups, d.readMembers}}
	for _, st := range steps {
		in, ok := byKind[st.kind]
		if !ok {
			continue
		}
		rc, err := in.open()
		if err != nil {
			r.close()
			return nil, fmt.Errorf("open %s: %w", in.name, err)
		}
		res, err := st.run(rc, in.name)
		rc.Close()
		if err != nil {
			r.close()
			return nil, fmt.Errorf("read %s: %w", in.name, err)
		}
		r.results[st.kind] = res
		if st.kind == schema.Users {
			r.usersRows = res.Rows
			if err := d.deletedUsers(); err != nil {
				r.close()
				return nil, err
			}
		}
	}
	if r.errors() > 0 {
		return r, nil // rejected: the rest would be wasted work
	}
	if err := d.memberships(); err != nil {
		r.close()
		return nil, err
	}
	if err := d.groups(); err != nil {
		r.close()
		return nil, err
	}
	r.counts.Users = c.Users + r.usersCreated.Len() - r.usersDeleted.Len()
	r.counts.Memberships = c.Memberships + r.membersAdded.Len() - r.membersRemov.Len()
	r.counts.Groups = c.Groups + r.changes.GroupsCreated - r.changes.GroupsDeleted
	r.changes.UsersCreated = r.usersCreated.Len()
	r.changes.UsersDeleted = r.usersDeleted.Len()
	r.changes.UsersUpdated = r.usersUpdated.Len() - r.changes.UsersDeactivated
	r.changes.MembershipsAdded = r.membersAdded.Len()
	r.changes.MembershipsRemoved = r.membersRemov.Len()
	return r, nil
}

func (d *differ) readGroups(rd io.Reader, file string) (schema.FileResult, error) {
	var rows []*fileGroup
	res, err := d.r.checker.Groups(rd, file, func(g *schema.Group) error {
		rows = append(rows, &fileGroup{
			id: g.ID, name: g.Name, desc: g.Description,
			custom: slices.Clone(sortedAttrs(d.attrs, g.Custom)),
		})
		return nil
	})
	if err != nil || d.r.checker.Errors() > 0 {
		return res, err
	}
	given := map[string]bool{}
	for _, g := range rows {
		if g.id != "" {
			given[g.id] = true
		}
	}
	// A group without group_id keeps the id it has (it may have been
	// created from user_groups.csv), else gets the derived one.
	for _, g := range rows {
		if g.id != "" {
			continue
		}
		if id, ok := d.s.GroupByName(g.name); ok && !given[id] {
			g.id = id
		} else {
			g.id = DerivedGroupID(d.org, g.name)
		}
		if given[g.id] {
			d.r.issues = append(d.r.issues, schema.Issue{
				File: file, Column: "group_id", Value: g.id, Code: schema.CodeDuplicateGroupID, Severity: schema.SeverityError,
				Message: fmt.Sprintf("group %q gets the id %q that another group's group_id already has; give it a group_id of its own", g.name, g.id),
			})
		}
		given[g.id] = true
	}
	for _, g := range rows {
		d.fileGroups[g.id] = g
		d.fileNames[g.name] = g.id
	}
	return res, nil
}

func (d *differ) readUsers(rd io.Reader, file string) (schema.FileResult, error) {
	r := d.r
	return r.checker.Users(rd, file, func(u *schema.User) error {
		if !u.Active && d.pol.inactiveDelete {
			return nil // SPEC §4: the organization deletes inactive users
		}
		id := []byte(u.ID)
		d.users = append(d.users, d.hash(id))
		d.buf = d.encodeUser(d.buf[:0], u)
		st := []byte{'i'}
		if u.Active {
			st[0] = 'a'
		}
		old, oldActive, ok := d.s.User(id)
		switch {
		case !ok:
			return r.usersCreated.add(id, st, d.buf)
		case oldActive == u.Active && bytes.Equal(old, d.buf):
			return nil
		}
		d.jsonOld = state.AppendUserJSON(d.jsonOld[:0], d.org, oldActive, old)
		d.jsonNew = state.AppendUserJSON(d.jsonNew[:0], d.org, u.Active, d.buf)
		prev, err := previousAttributes(d.jsonOld, d.jsonNew)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.ID, err)
		}
		if prev == nil {
			prev = []byte("{}") // a change only in the encoding of the record
		}
		if oldActive && !u.Active {
			r.changes.UsersDeactivated++
			r.activeLost++
		}
		return r.usersUpdated.add(id, st, d.buf, prev)
	})
}

// deletedUsers lists the stored users the new users file does not hold.
func (d *differ) deletedUsers() error {
	d.users.sort()
	if d.r.checker.Errors() > 0 {
		return nil
	}
	return d.s.ForEachUser(func(id, _ []byte, active bool) error {
		if d.users.has(d.hash(id)) {
			return nil
		}
		if active {
			d.r.activeLost++
		}
		return d.r.usersDeleted.add(id)
	})
}

// present reports whether a user exists after the batch.
func (d *differ) present(uid []byte) bool {
	if d.haveUsers {
		return d.users.has(d.hash(uid))
	}
	_, _, ok := d.s.User(uid)
	return ok
}

// resolve returns the id of the group a user_groups.csv name means: the
// groups.csv group of that name, else the existing group of that name
// (unless groups.csv gives its id to another group), else the derived id.
func (d *differ) resolve(name string) string {
	if id, ok := d.resolved[name]; ok {
		return id
	}
	id, ok := d.fileNames[name]
	if !ok {
		if sid, found := d.s.GroupByName(name); found && d.fileGroups[sid] == nil {
			id = sid
		} else {
			id = DerivedGroupID(d.org, name)
		}
	}
	d.resolved[name] = id
	return id
}

func (d *differ) readMembers(rd io.Reader, file string) (schema.FileResult, error) {
	r := d.r
	return r.checker.UserGroups(rd, file, func(m *schema.Membership) error {
		uid := []byte(m.UserID)
		if !d.present(uid) {
			r.skippedMembers++ // an inactive user the policy deletes
			return nil
		}
		id := d.resolve(m.GroupName)
		if _, ok := d.memNames[id]; !ok {
			d.memNames[id] = m.GroupName
		}
		gid := []byte(id)
		h := d.pairHash(uid, gid)
		d.members = append(d.members, h)
		d.memCount[id]++
		if d.s.IsMember(uid, gid) {
			return nil
		}
		return r.membersAdded.add(uid, gid)
	})
}

// memberships finds the removed memberships: with a user_groups file, the
// stored ones it does not hold; without one, those of deleted users, and
// those of a group whose name groups.csv now gives to another id (they
// move to that group).
func (d *differ) memberships() error {
	r := d.r
	if d.haveMembers {
		d.members.sort()
		return d.s.ForEachMember(func(uid, gid []byte) error {
			if d.members.has(d.pairHash(uid, gid)) {
				return nil
			}
			return r.membersRemov.add(uid, gid)
		})
	}
	deleted := map[string]bool{}
	err := r.usersDeleted.each(func(f [][]byte) error {
		uid := f[0]
		deleted[string(uid)] = true
		return d.s.UserGroupIDs(uid, "", func(gid []byte) (bool, error) {
			d.memDelta[string(gid)]--
			return true, r.membersRemov.add(uid, gid)
		})
	})
	if err != nil || !d.haveGroups {
		return err
	}
	type move struct{ from, to string }
	var moves []move
	err = d.s.ForEachGroup(func(id []byte, name string, _ byte, _ []byte) error {
		if to, ok := d.fileNames[name]; ok && to != string(id) && d.fileGroups[string(id)] == nil {
			moves = append(moves, move{string(id), to})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, mv := range moves {
		from, to := []byte(mv.from), []byte(mv.to)
		err := d.s.GroupUserIDs(from, "", func(uid []byte) (bool, error) {
			if deleted[string(uid)] {
				return true, nil // removed above
			}
			d.memDelta[mv.from]--
			if err := r.membersRemov.add(uid, from); err != nil {
				return false, err
			}
			if d.s.IsMember(uid, to) {
				return true, nil
			}
			d.memDelta[mv.to]++
			return true, r.membersAdded.add(uid, to)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// groups decides every group's fate: a group exists when groups.csv holds
// it or it has members (SPEC §4).
func (d *differ) groups() error {
	r := d.r
	type old struct {
		name  string
		flags byte
		rec   []byte
	}
	olds := map[string]old{}
	err := d.s.ForEachGroup(func(id []byte, name string, flags byte, rec []byte) error {
		olds[string(id)] = old{name, flags, bytes.Clone(rec)}
		return nil
	})
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for id := range olds {
		ids[id] = true
	}
	for id := range d.fileGroups {
		ids[id] = true
	}
	for id := range d.memNames {
		ids[id] = true
	}
	for id := range d.memDelta {
		ids[id] = true
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	slices.Sort(sorted)
	for _, id := range sorted {
		o, had := olds[id]
		var members int
		if d.haveMembers {
			members = d.memCount[id]
		} else {
			members = d.s.MemberCount([]byte(id)) + d.memDelta[id]
		}
		g := groupChange{id: id}
		switch fg := d.fileGroups[id]; {
		case fg != nil:
			g.name, g.flags = fg.name, state.GroupInFile
			g.rec = renderGroup(nil, d.org, id, fg.name, fg.desc, fg.custom)
		case !d.haveGroups && had:
			g.name, g.flags, g.rec = o.name, o.flags, o.rec
		default:
			g.name = d.memNames[id]
			if g.name == "" {
				g.name = o.name
			}
			g.rec = renderGroup(nil, d.org, id, g.name, "", nil)
		}
		exists := g.flags&state.GroupInFile != 0 || members > 0
		switch {
		case had && !exists:
			r.groupsDeleted = append(r.groupsDeleted, id)
			r.changes.GroupsDeleted++
		case !had && exists:
			g.event = state.EventGroupCreated
			r.groups = append(r.groups, g)
			r.changes.GroupsCreated++
		case had && exists:
			if !bytes.Equal(o.rec, g.rec) {
				g.event = state.EventGroupUpdated
				r.changes.GroupsUpdated++
			} else if o.flags == g.flags && o.name == g.name {
				continue
			}
			r.groups = append(r.groups, g)
		}
	}
	return nil
}

// changeCount is the number of snapshot changes the batch makes.
func (r *diffResult) changeCount() int {
	return len(r.groups) + len(r.groupsDeleted) + r.usersCreated.Len() + r.usersUpdated.Len() +
		r.usersDeleted.Len() + r.membersAdded.Len() + r.membersRemov.Len()
}

// applyChunk is how many records apply sorts at a time before writing
// them: bbolt keeps a transaction's new keys in unsplit nodes until
// commit, so keys in random order would cost a memmove each over a large
// node. Within a chunk, events follow key order.
const applyChunk = 16384

// apply is step 2: it writes the changes into the snapshot and emits the
// events in the order of SPEC §6, calling Checkpoint after each change so
// that a staged apply commits in bounded transactions.
func (r *diffResult) apply(a *state.ApplyTx) error {
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
	err := r.usersCreated.chunks(applyChunk, pairKeyOf, func(f [][]byte) error {
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
	err = r.usersUpdated.chunks(applyChunk, pairKeyOf, func(f [][]byte) error {
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
	err = r.membersAdded.chunks(applyChunk, pairKeyOf, func(f [][]byte) error {
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
