package ingest

import (
	"encoding/binary"
	"fmt"
	"io"
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

	buf      []byte
	attrs    []schema.Attr
	rec      state.UserRecord
	key, uid []byte
	idb      []byte       // compareUser's copy of the user id
	stored   *storedUsers // the stored users, with a users or user_groups file
	// probe: compareUser still looks users up one by one and watches the
	// order of the file's ids (probeOrder); storedN is the snapshot's
	// users, storedTook how long reading them took.
	probe                         bool
	probeSeen, probeDown, storedN int
	probeLast                     []byte
	storedTook                    time.Duration
	lastExists                    []byte // the user exists asked for last, and its answer
	existsOK                      bool
	sealed                        chan struct{} // closed when users is sealed, if a goroutine seals it
	lastUID                       []byte        // memberKey's last user and its hash
	lastUIDHash                   uint64
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
	switch {
	case d.haveUsers && c.Users > 0 && !readStoredFirst:
		// compareUser reads the stored users once it has seen that
		// users.csv is not in the snapshot's order (probeOrder).
		d.probe, d.storedN = true, c.Users
	case (d.haveUsers || d.haveMembers) && c.Users > 0:
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
		if st.kind == schema.Users && d.storedTook > 0 {
			// Read during users.csv, on compareUsers' goroutine.
			r.steps[len(r.steps)-1].d -= d.storedTook
			r.steps = append(r.steps, step{"read_stored", d.storedTook})
		}
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
