package schema

import (
	"bytes"
	"math"
)

// memberSet finds repeated rows of user_groups.csv exactly and at once, so
// that the callback sees each membership once, without a table of every
// membership hit at random (at a million users, 3M random inserts into a
// 128 MB table were most of the checker's time).
//
// Each user keeps the list of its groups: a chain of 12-byte entries,
// newest first, whose head is heads[i] for the i-th user_id of the users
// file (or, when the batch has no usable users file, the aux field of the
// user's slot in users). Exports list a user's memberships together, so a
// row's chain is a few entries written moments before, in cache. A user
// whose chain grows past maxChain moves to big, a set keyed by (user,
// group), so that a user in thousands of groups costs one lookup per row,
// not a walk.
//
// A head: 0 = no membership yet, n > 0 = entry n is the newest, bigUser =
// the memberships are in big.
type memberSet struct {
	entries entryBlocks
	heads   []int32 // by the users file's order of user_ids (window.order)
	big     lineSet // key: pairKey(user hash, group number)
	users   lineSet // the users of the memberships, without a users file
	run     userRun // the current run of rows of one user
}

type memberEntry struct {
	group int32 // the group's number in Checker.allGroups
	line  int32
	next  int32 // index+1 of the user's previous entry, 0 = none
}

// entryBlocks holds the entries in blocks of a fixed size, so that adding
// one never copies the others (a slice grown by append copied 3M entries
// several times over, and held both copies while it did).
type entryBlocks struct {
	blocks [][]memberEntry
	n      int
}

const entryBlockBits = 16

// at returns entry e, counted from 1.
func (b *entryBlocks) at(e int32) *memberEntry {
	i := int(e - 1)
	return &b.blocks[i>>entryBlockBits][i&(1<<entryBlockBits-1)]
}

// add appends ent and returns its number, counted from 1. The first block
// grows as a slice does, so that a small file costs little.
func (b *entryBlocks) add(ent memberEntry) int32 {
	if len(b.blocks) == 0 || len(b.blocks[len(b.blocks)-1]) == 1<<entryBlockBits {
		size := 1 << entryBlockBits
		if len(b.blocks) == 0 {
			size = 64
		}
		b.blocks = append(b.blocks, make([]memberEntry, 0, size))
	}
	last := &b.blocks[len(b.blocks)-1]
	*last = append(*last, ent)
	b.n++
	return int32(b.n)
}

const (
	maxChain = 32
	bigUser  = -1
)

// userRun is what the rows of one user in a row share: rows of one user
// usually come together, so a user_id is looked up once per run.
type userRun struct {
	valid   bool
	user    []byte
	known   bool
	key     uint64 // the user_id's hash
	head    *int32 // the head of the user's chain; nil when unknown
	order   int    // the user's place in the users file, -1 = none yet
	text    string // user as a string, once runText has made it
	hasText bool
}

// predictAhead is how many user_ids after the previous run's user startRun
// tries in the users file's order before it looks the user up.
const predictAhead = 4

// pairKey is the key of a membership in memberSet.big: different for
// different groups of one user, and for different users equal only by
// chance (2⁻⁶⁴).
func pairKey(user uint64, group int32) uint64 {
	return user ^ (uint64(group)+1)*0x9E3779B97F4A7C15
}

// startRun looks up user when it differs from the current run's. It
// reports whether the user exists in the batch's users file or, without
// one, in the caller's lookup (which is called once per run). When the
// users file could not be read whole, every user is taken to exist, so
// that its problem is reported once rather than on every membership.
//
// With a users file, the user is first looked for just after the previous
// run's user in the users file's order (window.order): exports list
// memberships in the order of the users, and this reads the order
// sequentially where a lookup in the user_id set costs a cache and TLB
// miss (0.25 s for 1M users).
func (c *Checker) startRun(user []byte) bool {
	m := &c.members
	r := &m.run
	if r.valid && bytes.Equal(user, r.user) {
		return r.known
	}
	r.valid = true
	r.user = append(r.user[:0], user...)
	r.text, r.hasText = "", false
	r.key = c.hash(user)
	if r.key == 0 {
		r.key = 1 // as the sets store it
	}
	r.head = nil
	if c.haveUsers && !c.usersBroken {
		order := c.userIDs.order
		if len(m.heads) < len(order) {
			m.heads = append(m.heads, make([]int32, len(order)-len(m.heads))...)
		}
		for i := r.order + 1; i <= r.order+predictAhead && i < len(order); i++ {
			if order[i] == r.key {
				r.order, r.head, r.known = i, &m.heads[i], true
				return true
			}
		}
		sl := c.userIDs.set.find(r.key)
		r.known = sl != nil
		if r.known {
			r.order = int(sl.aux)
			r.head = &m.heads[r.order]
		}
		return r.known
	}
	r.known = c.haveUsers || c.userExists != nil && c.userExists(string(user))
	if r.known {
		sl, _ := m.users.insert(r.key, 0)
		r.head = &sl.aux
	}
	return r.known
}

// addMember records that the current run's user is in group (a number
// from groupNumber) on line. When the membership was seen before, it
// returns that line and true.
func (c *Checker) addMember(group int32, line int) (prev int, dup bool) {
	return c.addMemberTo(c.members.run.head, c.members.run.key, group, line)
}

// addMemberTo is addMember for the user whose chain head is head and
// whose user_id hashes to user.
func (c *Checker) addMemberTo(head *int32, user uint64, group int32, line int) (prev int, dup bool) {
	m := &c.members
	if *head != bigUser {
		n := 0
		for e := *head; e > 0; {
			ent := m.entries.at(e)
			if ent.group == group {
				return int(ent.line), true
			}
			e = ent.next
			n++
		}
		if n < maxChain && m.entries.n < math.MaxInt32 {
			*head = m.entries.add(memberEntry{group: group, line: line32(line), next: *head})
			return 0, false
		}
		for e := *head; e > 0; {
			ent := m.entries.at(e)
			m.big.insert(pairKey(user, ent.group), ent.line)
			e = ent.next
		}
		*head = bigUser
	}
	if p, isNew := m.big.insert(pairKey(user, group), line32(line)); !isNew {
		return int(p.line), true
	}
	return 0, false
}

// groupNumber returns the number of the group named name in allGroups
// (0, 1, … in order of first appearance in the batch), adding it when new.
func (c *Checker) groupNumber(name []byte) int32 {
	sl, isNew := c.allGroups.insert(c.hash(name), 0)
	if isNew {
		sl.aux = int32(min(c.allGroups.n-1, math.MaxInt32))
	}
	return sl.aux
}

// runText returns user, the user_id of the current run, as a string made
// once per run of rows of that user rather than once per row.
func (c *Checker) runText(user []byte) string {
	r := &c.members.run
	if !r.valid || !bytes.Equal(user, r.user) {
		return string(user)
	}
	if !r.hasText {
		r.text, r.hasText = string(user), true
	}
	return r.text
}

// groupText returns name, the name of group number num, as a string made
// once per group rather than once per membership.
func (c *Checker) groupText(num int32, name []byte) string {
	n := int(num)
	if n >= len(c.groupTexts) {
		c.groupTexts = append(c.groupTexts, make([]string, n+1-len(c.groupTexts))...)
	}
	if t := c.groupTexts[n]; t == string(name) && t != "" {
		return t
	}
	t := string(name)
	c.groupTexts[n] = t
	return t
}
