package ingest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// The differ works in two steps so that neither needs the whole new
// snapshot in memory:
//
//  1. diff, in a read transaction: stream each file through the schema
//     checker, compare every row with the stored record, and append what
//     changes to spills (created, updated, deleted users, added and removed
//     memberships). It keeps only hashes of the user ids and memberships it
//     saw, to find what the files no longer hold. With a users and a
//     user_groups file it compares each user's group-set hash
//     (state.GroupSetHash) with the stored one, and only the users whose
//     hash differs membership by membership (changedMemberships).
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
	mapping        *schema.Mapping // how the organization's exports are read
	decode         string          // what decides how encrypted uploads read (pgpSettings.String)
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

	steps []step // where the time went, for the debug log
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

// fileGroup is one groups.csv row.
type fileGroup struct {
	id, name, desc string
	custom         []schema.Attr
}

type differ struct {
	lookup func(id []byte) (rec []byte, active, ok bool) // s.UserLookup
	s      *state.SnapshotTx
	org    string
	pol    policy
	r      *diffResult
	hasher
	users   hashSet // user ids of the new users file
	skipped hashSet // inactive users of the users file the policy deletes
	// members are the memberships of the new user_groups file, each with
	// its record number in fileMembers (the file's memberships in file
	// order); the scan of the stored memberships marks those it finds.
	members     hashSet
	fileMembers *spill           // user id, uvarint index in groupList
	groupList   []*resolvedGroup // the values of resolved, in order

	haveUsers, haveMembers, haveGroups bool
	// derives: users.csv gives memberships through the organization's
	// groups_from_columns (derived.go); haveMembers is then true.
	derives bool

	// With a users and a user_groups file (byHash), only the users whose
	// group set changed are compared membership by membership: setDiff
	// holds, per user of the users file (in the order of the file, its
	// val in users), the stored group-set hash minus the file's (once
	// changedUsers has added the stored ones), zero when they agree; rows
	// the file's memberships in file order, each the user's index in
	// setDiff (high 32 bits) and the group's in groupList. With no stored
	// memberships (allNew) every membership of the file is added as read.
	byHash, allNew bool
	setDiff        []state.GroupSetHash
	userA          []uint64 // by setDiff index: the user's hkey.a
	nextRow        uint32   // the index user_groups' next user likely has
	nextSet        uint32   // the same for the scan of the stored group sets
	rows           []uint64
	lastRowUID     []byte
	lastRowIdx     uint32
	dirty          []bool            // by setDiff index: the group set changed
	cmp            [][]byte          // ids of the users whose memberships to compare
	dirtyIDs       map[uint32][]byte // setDiff index -> user id, of the changed users

	fileGroups map[string]*fileGroup     // groups.csv by resolved id
	fileNames  map[string]string         // groups.csv name -> resolved id
	resolved   map[string]*resolvedGroup // user_groups name -> id, memo
	memNames   map[string]string         // id -> name of groups user_groups names
	memCount   map[string]int            // id -> members in the new user_groups
	memDelta   map[string]int            // id -> change of members without user_groups

	buf         []byte
	attrs       []schema.Attr
	rec         state.UserRecord
	key, uid    []byte
	idb         []byte       // compareUser's copy of the user id
	stored      *storedUsers // the stored users, with a users or user_groups file
	lastExists  []byte       // the user exists asked for last, and its answer
	existsOK    bool
	sealed      chan struct{} // closed when users is sealed, if a goroutine seals it
	lastUID     []byte        // memberKey's last user and its hash
	lastUIDHash uint64
}

// customOf fills d.rec.Custom with u's custom attributes as the snapshot
// record holds them: sorted by name, none empty.
func (d *differ) customOf(u *schema.User) []state.Attr {
	r := &d.rec
	r.Custom = r.Custom[:0]
	d.attrs = sortedAttrs(d.attrs, u.Custom)
	for _, a := range d.attrs {
		r.Custom = append(r.Custom, state.Attr(a))
	}
	return r.Custom
}

// userRecord fills d.rec with the snapshot record of u, whose custom
// attributes customOf has filled in.
func (d *differ) userRecord(u *schema.User) *state.UserRecord {
	r := &d.rec
	r.ID, r.Email, r.FirstName, r.LastName = u.ID, u.Email, u.FirstName, u.LastName
	r.Known = r.Known[:0]
	for k := schema.KnownField(0); k < schema.NumKnown; k++ {
		if v := u.Known[k]; v != "" {
			r.Known = append(r.Known, state.Attr{Name: k.Name(), Value: v})
		}
	}
	return r
}

func (d *differ) hash(b []byte) hkey { return d.hasher.key(b) }

func (d *differ) pairHash(uid, gid []byte) hkey {
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
		usersCreated: newKeyedSpill(tmp, 3),
		usersUpdated: newKeyedSpill(tmp, 4),
		usersDeleted: newSpill(tmp, 1),
		membersAdded: newKeyedSpill(tmp, 2),
		membersRemov: newSpill(tmp, 2),
	}
	d := &differ{
		s: s, lookup: s.UserLookup(), org: org, pol: pol, r: r, hasher: newHasher(),
		fileMembers: newSpill(tmp, 2),
		fileGroups:  map[string]*fileGroup{}, fileNames: map[string]string{},
		resolved: map[string]*resolvedGroup{}, memNames: map[string]string{},
		memCount: map[string]int{}, memDelta: map[string]int{},
	}
	defer d.fileMembers.close()
	r.checker = schema.NewChecker(lim, func(id string) bool { return d.exists([]byte(id)) })
	r.checker.SetMapping(pol.mapping)
	byKind := map[schema.Kind]input{}
	for _, f := range files {
		byKind[f.kind] = f
	}
	_, d.haveUsers = byKind[schema.Users]
	_, d.haveMembers = byKind[schema.UserGroups]
	_, d.haveGroups = byKind[schema.Groups]
	if d.haveUsers && pol.mapping.DerivesGroups() {
		// SPEC §4: the batch's memberships are those users.csv gives,
		// joined with its user_groups.csv.
		d.derives, d.haveMembers = true, true
	}
	d.byHash = d.haveUsers && d.haveMembers && !noGroupSetHashes
	d.allNew = d.haveMembers && c.Memberships == 0
	// Day 2 looks much like day 1: size the per-user and per-membership
	// arrays for the stored counts and a little more, so that a million
	// users do not cost a series of copies as they grow.
	if d.haveUsers {
		n := c.Users + c.Users/16
		d.users.keys = make([]hkey, 0, n)
		if d.byHash {
			d.setDiff = make([]state.GroupSetHash, 0, n)
			d.userA = make([]uint64, 0, n)
			if !d.allNew {
				d.rows = make([]uint64, 0, c.Memberships+c.Memberships/16)
			}
		}
	}
	r.haveUsers = d.haveUsers
	if (d.haveUsers || d.haveMembers) && c.Users > 0 {
		t := time.Now()
		if err := d.readStored(c.Users); err != nil {
			r.close()
			return nil, err
		}
		r.timed("read_stored", t)
	}
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
		t := time.Now()
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
		r.timed("read_"+string(st.kind), t)
		if st.kind == schema.Users {
			r.usersRows = res.Rows
			if d.byHash { // changedMemberships finds the deleted users
				// Sorting the user set takes a fifth of a second at a
				// million users, and user_groups.csv rarely needs it
				// (userIndex tries the users file's order first): sort
				// it while user_groups.csv is read.
				d.sealed = make(chan struct{})
				go func() {
					d.users.seal()
					close(d.sealed)
				}()
				defer d.waitSealed() // no goroutine outlives diff
				d.skipped.seal()
				continue
			}
			t = time.Now()
			if err := d.deletedUsers(); err != nil {
				r.close()
				return nil, err
			}
			r.timed("deleted_users", t)
		}
	}
	if r.errors() > 0 {
		return r, nil // rejected: the rest would be wasted work
	}
	if d.byHash {
		t := time.Now()
		if err := d.changedUsers(); err != nil {
			r.close()
			return nil, err
		}
		r.timed("deleted_users", t)
	}
	t := time.Now()
	if err := d.memberships(); err != nil {
		r.close()
		return nil, err
	}
	r.timed("removed_members", t)
	t = time.Now()
	if err := d.groups(); err != nil {
		r.close()
		return nil, err
	}
	r.timed("groups", t)
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

// readUsers checks users.csv and compares each row with the stored user.
// The checker (reading, rules, uniqueness) and the comparison (the stored
// record's lookup, encoding, spills) each cost about half of the file's
// time, so they run on two goroutines: the checker's callback copies each
// row into a batch of userBatchSize rows and hands full batches to
// compareUsers through a channel of a few batches, and gets emptied ones
// back, so memory stays a few batches whatever the file's size. Rows are
// compared in file order; an error of the comparison stops the checker at
// its next row.
func (d *differ) readUsers(rd io.Reader, file string) (schema.FileResult, error) {
	full := make(chan *userBatch, userBatches+1) // a send never blocks
	free := make(chan *userBatch, userBatches+1)
	for range userBatches + 1 {
		free <- &userBatch{}
	}
	done := make(chan error, 1)
	go func() { done <- d.compareUsers(full, free) }()
	cur := <-free
	var failed error
	res, err := d.r.checker.Users(rd, file, func(u *schema.User) error {
		cur.add(u)
		if len(cur.users) < userBatchSize {
			return nil
		}
		full <- cur
		select {
		case cur = <-free:
			return nil
		case failed = <-done:
			return failed
		}
	})
	if failed == nil {
		full <- cur
		close(full)
		failed = <-done
	}
	if err == nil {
		err = failed
	}
	return res, err
}

// userBatch is a run of users.csv rows on their way from the checker to
// compareUsers. A schema.User's strings stay valid after the checker's
// callback; its Custom and Groups slices do not, so they are copied.
type userBatch struct {
	users  []schema.User
	attrs  []schema.Attr // the users' custom attributes, end to end
	groups []string      // the users' derived groups, end to end
}

const (
	userBatchSize = 256
	userBatches   = 4
)

func (b *userBatch) add(u *schema.User) {
	b.users = append(b.users, *u)
	if c := &b.users[len(b.users)-1]; len(c.Custom) > 0 {
		// A user's slice stays valid when attrs grows: append copies
		// into a new array and leaves the old one as it was.
		start := len(b.attrs)
		b.attrs = append(b.attrs, c.Custom...)
		c.Custom = b.attrs[start:len(b.attrs):len(b.attrs)]
	}
	if c := &b.users[len(b.users)-1]; len(c.Groups) > 0 {
		start := len(b.groups)
		b.groups = append(b.groups, c.Groups...)
		c.Groups = b.groups[start:len(b.groups):len(b.groups)]
	}
}

// compareUsers compares the rows of the batches it receives until full is
// closed, returning each batch through free. After an error it returns at
// once; readUsers then stops the checker.
func (d *differ) compareUsers(full <-chan *userBatch, free chan<- *userBatch) error {
	for b := range full {
		for i := range b.users {
			if err := d.compareUser(&b.users[i]); err != nil {
				return err
			}
			if err := d.derivedMembers(&b.users[i]); err != nil {
				return err
			}
			b.users[i] = schema.User{}
		}
		b.users, b.attrs, b.groups = b.users[:0], b.attrs[:0], b.groups[:0]
		free <- b
	}
	return nil
}

// The state byte of a stored user (state.SnapshotTx.PutUser), for spills,
// which copy it.
var stateActive, stateInactive = []byte{'a'}, []byte{'i'}

// compareUser compares one users.csv row with the stored user and spills
// what changes.
func (d *differ) compareUser(u *schema.User) error {
	r := d.r
	d.idb = append(d.idb[:0], u.ID...)
	id := d.idb
	if !u.Active && d.pol.inactiveDelete {
		d.skipped.add(d.hash(id))
		return nil // SPEC §4: the organization deletes inactive users
	}
	k := d.hash(id)
	k.val = uint32(len(d.users.keys)) // the row's index among the file's users
	if d.byHash {
		d.setDiff = append(d.setDiff, state.GroupSetHash{}) // changedUsers adds the stored hash
		d.userA = append(d.userA, k.a)
	}
	d.users.add(k)
	custom := d.customOf(u)
	st := stateInactive
	if u.Active {
		st = stateActive
	}
	encoded := false
	if d.stored != nil {
		// Most rows of a day-2 export: compared by hash, no lookup.
		i, found := d.stored.find(k, k.val)
		d.buf = d.userRecord(u).AppendBinary(d.buf[:0])
		encoded = true
		if !found {
			return r.usersCreated.add(id, st, d.buf)
		}
		if d.stored.unchanged(i, u.Active, d.buf) {
			return nil
		}
	}
	old, oldActive, ok := d.lookup(id)
	if ok && oldActive == u.Active && state.EqualFields(old, u.ID, u.Email, u.FirstName, u.LastName, &u.Known, custom) {
		return nil // the same user, stored in another encoding
	}
	if !encoded {
		d.buf = d.userRecord(u).AppendBinary(d.buf[:0])
	}
	if !ok {
		return r.usersCreated.add(id, st, d.buf)
	}
	prev, err := previousFromRecords(d.org, oldActive, old, u.Active, d.buf)
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
}

// deletedUsers lists the stored users the new users file does not hold.
func (d *differ) deletedUsers() error {
	d.users.seal()
	d.skipped.seal()
	if d.r.checker.Errors() > 0 {
		return nil
	}
	return d.eachStored(func(id []byte, active bool, fileIdx uint32) error {
		if fileIdx != noUser {
			return nil
		}
		if active {
			d.r.activeLost++
		}
		return d.r.usersDeleted.add(id)
	})
}

// present reports whether a user exists after the batch. The checker
// has already refused memberships of users the users file does not hold,
// so with a users file only those the policy deletes are absent.
func (d *differ) present(uid []byte) bool {
	if d.haveUsers {
		return d.skipped.len() == 0 || !d.skipped.has(d.hash(uid))
	}
	return d.exists(uid)
}

// exists reports whether the snapshot has the user: in memory when the
// stored users were read (readStored), else a lookup, skipped for the
// user asked last (a user's memberships come together).
func (d *differ) exists(uid []byte) bool {
	if d.stored != nil {
		_, ok := d.stored.set.get(d.hash(uid))
		return ok
	}
	if d.lastExists == nil || !bytes.Equal(uid, d.lastExists) {
		d.lastExists = append(d.lastExists[:0], uid...)
		_, _, d.existsOK = d.s.User(uid)
	}
	return d.existsOK
}

// resolvedGroup is what a user_groups.csv group name resolves to, and how
// many memberships of the file name it.
type resolvedGroup struct {
	id  string
	gid []byte
	h   state.GroupSetHash // state.GroupIDHash(gid)
	n   int
	idx []byte // uvarint of its index in differ.groupList
	i   uint32 // its index in differ.groupList
}

// resolve returns the id of the group a user_groups.csv name means: the
// groups.csv group of that name, else the existing group of that name
// (unless groups.csv gives its id to another group), else the derived id.
func (d *differ) resolve(name string) *resolvedGroup {
	if g, ok := d.resolved[name]; ok {
		return g
	}
	id, ok := d.fileNames[name]
	if !ok {
		if sid, found := d.s.GroupByName(name); found && d.fileGroups[sid] == nil {
			id = sid
		} else {
			id = DerivedGroupID(d.org, name)
		}
	}
	if _, ok := d.memNames[id]; !ok {
		d.memNames[id] = name // the first name, in file order, of the group
	}
	g := &resolvedGroup{id: id, gid: []byte(id), h: state.GroupIDHash([]byte(id)), i: uint32(len(d.groupList)), idx: binary.AppendUvarint(nil, uint64(len(d.groupList)))}
	d.groupList = append(d.groupList, g)
	d.resolved[name] = g
	return g
}

// memberKey identifies a membership in d.members. Its top bits are the
// user's hash, so that the memberships of one user share a run of the set
// and the scan of the stored memberships, in user order, finds them in one
// place; the rest are the membership's hashes.
func (d *differ) memberKey(uid, gid []byte) hkey {
	if !bytes.Equal(uid, d.lastUID) { // a user's memberships come together
		d.lastUID = append(d.lastUID[:0], uid...)
		d.lastUIDHash = maphash.Bytes(d.seedA, uid)
	}
	u := d.lastUIDHash
	p := d.pairHash(uid, gid)
	return hkey{a: u&^0xffffffff | p.a&0xffffffff, b: p.b}
}

func (d *differ) readMembers(rd io.Reader, file string) (schema.FileResult, error) {
	return d.r.checker.UserGroups(rd, file, func(m *schema.Membership) error {
		d.uid = append(d.uid[:0], m.UserID...)
		return d.member(d.uid, m.GroupName)
	})
}

// member takes one row of user_groups.csv: user uid in the group named
// name.
func (d *differ) member(uid []byte, name string) error {
	if !d.present(uid) {
		d.r.skippedMembers++ // an inactive user the policy deletes
		return nil
	}
	return d.addMember(uid, name)
}

// addMember takes one membership of the batch of a user that exists
// after it: a row of user_groups.csv or one users.csv gives
// (derivedMembers). The checker lets each through once, whichever gave
// it.
func (d *differ) addMember(uid []byte, name string) error {
	r := d.r
	g := d.resolve(name)
	if d.allNew {
		g.n++
		return r.membersAdded.add(uid, g.gid)
	}
	if d.byHash {
		if !bytes.Equal(uid, d.lastRowUID) {
			d.lastRowUID = append(d.lastRowUID[:0], uid...)
			d.lastRowIdx = d.userIndex(d.hash(uid), &d.nextRow)
		}
		if d.lastRowIdx != noUser { // else the checker has refused the row
			d.setDiff[d.lastRowIdx] = d.setDiff[d.lastRowIdx].Sub(g.h)
		}
		d.rows = append(d.rows, uint64(d.lastRowIdx)<<32|uint64(g.i))
		g.n++
		return nil
	}
	h := d.memberKey(uid, g.gid)
	h.val = uint32(d.fileMembers.Len())
	if h.val >= foundBit {
		return fmt.Errorf("more than %d memberships", foundBit)
	}
	d.members.add(h)
	g.n++
	return d.fileMembers.add(uid, g.idx)
}

// countMembers sums the file's memberships per group id.
func (d *differ) countMembers() {
	for _, g := range d.resolved {
		d.memCount[g.id] += g.n
	}
}

// memberships finds the removed memberships: with a user_groups file, the
// stored ones it does not hold; without one, those of deleted users, and
// those of a group whose name groups.csv now gives to another id (they
// move to that group).
func (d *differ) memberships() error {
	r := d.r
	if d.haveMembers {
		d.countMembers()
	}
	if d.allNew {
		return nil // readMembers has added them all
	}
	if d.byHash {
		return d.changedMemberships()
	}
	if d.haveMembers {
		d.members.seal()
		err := d.s.ForEachMember(func(uid, gid []byte) error {
			if d.members.mark(d.memberKey(uid, gid)) {
				return nil
			}
			return r.membersRemov.add(uid, gid)
		})
		if err != nil {
			return err
		}
		return d.addedMembers()
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

// noGroupSetHashes turns the group-set hash path off (tests compare the
// two paths).
var noGroupSetHashes = false

// noUser is userIndex's answer for a user the users file lacks.
const noUser = ^uint32(0)

// userIndex returns the index in setDiff of the user of hash k, or noUser
// when the users file lacks it. The files usually list users in the same
// order: *next, the index after the last one found, is tried first, which
// saves a random lookup in users.
func (d *differ) userIndex(k hkey, next *uint32) uint32 {
	if n := *next; int(n) < len(d.userA) && d.userA[n] == k.a {
		*next = n + 1
		return n
	}
	d.waitSealed()
	if i, ok := d.users.get(k); ok {
		*next = i + 1
		return i
	}
	return noUser
}

// waitSealed waits until the user set is sorted, when diff sorts it on a
// goroutine of its own.
func (d *differ) waitSealed() {
	if d.sealed != nil {
		<-d.sealed
	}
}

// changedUsers is deletedUsers for the group-set hash path. A scan of the
// stored memberships adds each user's group-set hash to its setDiff (the
// file's hashes were subtracted as user_groups.csv was read); then the
// scan of the stored users that lists the deleted users also collects the
// ids of the users whose group set changed (d.dirty), for
// changedMemberships.
func (d *differ) changedUsers() error {
	r := d.r
	d.waitSealed()
	if !d.allNew {
		err := d.s.ForEachGroupSet(func(uid []byte, h state.GroupSetHash) error {
			if i := d.userIndex(d.hash(uid), &d.nextSet); i != noUser {
				d.setDiff[i] = d.setDiff[i].Add(h)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	d.dirty = make([]bool, len(d.setDiff))
	for i, h := range d.setDiff {
		d.dirty[i] = h != (state.GroupSetHash{})
	}
	d.dirtyIDs = map[uint32][]byte{}
	return d.eachStored(func(id []byte, active bool, i uint32) error {
		if i != noUser {
			if d.dirty[i] {
				id := bytes.Clone(id) // valid only in the transaction's pages
				d.cmp = append(d.cmp, id)
				d.dirtyIDs[i] = id
			}
			return nil
		}
		if active {
			r.activeLost++
		}
		d.cmp = append(d.cmp, bytes.Clone(id))
		return r.usersDeleted.add(id)
	})
}

// changedMemberships finds the added and removed memberships through the
// group-set hashes. Only the users whose stored hash differs from the
// file's and the deleted users (changedUsers) are compared membership by
// membership, with their stored memberships, in the order a scan of all
// the stored memberships would meet them; the added memberships follow
// file order.
func (d *differ) changedMemberships() error {
	r := d.r
	if d.allNew {
		return nil // readMembers has added them all
	}
	// The created users among the changed ones: the scan of the stored
	// users did not meet them.
	err := r.usersCreated.each(func(f [][]byte) error {
		if i, ok := d.users.get(d.hash(f[0])); ok && d.dirty[i] {
			d.dirtyIDs[i] = bytes.Clone(f[0])
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The file's memberships of the changed users, in file order.
	var (
		sel []uint64 // rows of changed users
		set hashSet  // their memberships, val = index in sel
	)
	for _, rw := range d.rows {
		i := uint32(rw >> 32)
		if i == noUser || !d.dirty[i] {
			continue
		}
		k := d.memberKey(d.dirtyIDs[i], d.groupList[uint32(rw)].gid)
		k.val = uint32(len(sel))
		set.add(k)
		sel = append(sel, rw)
	}
	set.seal()
	slices.SortFunc(d.cmp, state.MemberOrder)
	for _, uid := range d.cmp {
		err := d.s.UserGroupIDs(uid, "", func(gid []byte) (bool, error) {
			if set.mark(d.memberKey(uid, gid)) {
				return true, nil
			}
			return true, r.membersRemov.add(uid, gid)
		})
		if err != nil {
			return err
		}
	}
	var recs []uint32
	for _, k := range set.keys {
		if k.val&foundBit == 0 {
			recs = append(recs, k.val)
		}
	}
	slices.Sort(recs)
	for _, n := range recs {
		rw := sel[n]
		if err := r.membersAdded.add(d.dirtyIDs[uint32(rw>>32)], d.groupList[uint32(rw)].gid); err != nil {
			return err
		}
	}
	return nil
}

// addedMembers lists, in file order, the memberships of the user_groups
// file that the scan of the stored ones did not find.
func (d *differ) addedMembers() error {
	var recs []uint32
	for _, k := range d.members.keys {
		if k.val&foundBit == 0 {
			recs = append(recs, k.val)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	slices.Sort(recs)
	i, n := 0, uint32(0)
	return d.fileMembers.each(func(f [][]byte) error {
		for i < len(recs) && recs[i] == n {
			i++
			g, _ := binary.Uvarint(f[1])
			if err := d.r.membersAdded.add(f[0], d.groupList[g].gid); err != nil {
				return err
			}
		}
		n++
		return nil
	})
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
	err := r.usersCreated.sorted(func(f [][]byte) error {
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
	err = r.usersUpdated.sorted(func(f [][]byte) error {
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
	err = r.membersAdded.sorted(func(f [][]byte) error {
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
