package ingest

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

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
	if d.probe {
		if err := d.probeOrder(id); err != nil {
			return err
		}
	}
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

// probeOrder watches the order of users.csv's first probeLimit ids: in
// the snapshot's key order (an export sorted by id), looking each user up
// steps a cursor through the snapshot, which costs less than reading all
// the stored users first; in any other order it costs a search of the
// tree a row, so past probeLimit/10 rows out of order readStored reads
// them, in one scan, and the rest of the file is compared by hash
// (stored.go). The rows compared so far are then marked as found in the
// scan's index.
func (d *differ) probeOrder(id []byte) error {
	if d.probeSeen > 0 && bytes.Compare(id, d.probeLast) <= 0 {
		d.probeDown++
	}
	d.probeLast = append(d.probeLast[:0], id...)
	d.probeSeen++
	if d.probeDown > probeLimit/10 {
		d.probe = false
		t := time.Now()
		if err := d.readStored(d.storedN); err != nil {
			return err
		}
		for _, k := range d.users.keys { // the rows so far, this one too
			d.stored.find(k, k.val)
		}
		d.storedTook = time.Since(t)
		return nil
	}
	if d.probeSeen >= probeLimit {
		d.probe = false // in key order: keep looking the users up
	}
	return nil
}

// probeLimit is how many of users.csv's first rows probeOrder watches;
// more than a tenth of them out of key order, and it reads the stored
// users (tests change it).
var probeLimit = 4096

// readStoredFirst reads the stored users before users.csv, as a file out
// of order from its first rows would (tests compare the paths).
var readStoredFirst = false

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
