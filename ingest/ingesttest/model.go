// Package ingesttest is a model of what ingest must do with a sequence of
// uploads, for randomized fault tests: it generates random valid and
// invalid files of every kind under canonical names, a case variant and a
// pattern (users_*.csv), and checks what a daemon did with them against
// SPEC §5 and §6: every batch of an outcome takes files in completion
// order and never one twice, every applied batch's events are exactly the
// changes the model computes, rejected batches are those the model finds
// invalid, and the snapshot is the model's after the last applied batch.
//
// It knows nothing of how the daemon is driven: ingest's tests feed it
// from the state in process, cmd/rosterd's from the HTTP API of the real
// binary. Only tests import it.
package ingesttest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
)

// Upload is one generated file.
type Upload struct {
	Name    string
	Kind    string // users, user_groups, groups
	Content []byte
	SHA256  string
	// At is when the test started placing it: its completion is later.
	At time.Time

	seq   int // upload order
	valid bool
	users map[string]string // users: id -> job_title
	pairs [][2]string       // user_groups: (group, user)
	descs map[string]string // groups: name -> description
}

// UsersPatterns is the users_patterns setting the generated names need.
var UsersPatterns = []string{"users_*.csv"}

var (
	userIDs = []string{"U01", "U02", "U03", "U04", "U05", "U06", "U07", "U08", "U09", "U10", "U11", "U12"}
	titles  = []string{"Eng", "Ops", "Lead"}
	groups  = []string{"G1", "G2", "G3", "G4", "G5"}
	descs   = []string{"", "alpha", "beta"}
)

// Generator makes the uploads of each step.
type Generator struct {
	rng       *rand.Rand
	lastUsers []string
	seq       int
}

// NewGenerator returns a generator drawing from rng.
func NewGenerator(rng *rand.Rand) *Generator { return &Generator{rng: rng, lastUsers: userIDs[:4]} }

// Step returns the uploads of step n (one or two files), in the order to
// upload them. Every file's content is unique (trailing blank lines,
// which the reader skips, number it).
func (g *Generator) Step(n int) []Upload {
	count := 1
	if g.rng.IntN(10) < 3 {
		count = 2
	}
	var out []Upload
	for len(out) < count {
		u := g.file(n)
		if slices.ContainsFunc(out, func(o Upload) bool { return o.Name == u.Name }) {
			continue
		}
		out = append(out, u)
	}
	return out
}

func (g *Generator) file(step int) Upload {
	r := g.rng
	g.seq++
	u := Upload{seq: g.seq, valid: true}
	var b strings.Builder
	switch k := r.IntN(10); {
	case k < 5:
		u.Kind = "users"
		switch r.IntN(5) {
		case 0, 1:
			u.Name = "users.csv"
		case 2:
			u.Name = "Users.CSV"
		default:
			u.Name = fmt.Sprintf("users_%05d.csv", step)
		}
		ids := slices.Clone(userIDs)
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		ids = ids[:1+r.IntN(len(ids))]
		u.users = map[string]string{}
		b.WriteString("user_id,email,first_name,last_name,job_title\n")
		for _, id := range ids {
			t := titles[r.IntN(len(titles))]
			u.users[id] = t
			fmt.Fprintf(&b, "%s,%s@acme.test,F%s,L%s,%s\n", id, strings.ToLower(id), id, id, t)
		}
		if r.IntN(10) == 0 {
			u.valid = false
			b.WriteString("U13,broken,F,L,Eng\n")
		} else {
			g.lastUsers = slices.Sorted(maps.Keys(u.users))
		}
	case k < 8:
		u.Kind, u.Name = "user_groups", "user_groups.csv"
		b.WriteString("group_name,user_id\n")
		for range r.IntN(9) {
			pool := g.lastUsers
			if r.IntN(10) < 3 {
				pool = userIDs
			}
			p := [2]string{groups[r.IntN(4)], pool[r.IntN(len(pool))]}
			u.pairs = append(u.pairs, p)
			fmt.Fprintf(&b, "%s,%s\n", p[0], p[1])
		}
		if r.IntN(10) == 0 {
			p := [2]string{"G1", "U99"}
			u.pairs = append(u.pairs, p)
			fmt.Fprintf(&b, "%s,%s\n", p[0], p[1])
		}
	default:
		u.Kind, u.Name = "groups", "groups.csv"
		u.descs = map[string]string{}
		b.WriteString("group_name,description\n")
		for _, name := range groups {
			if r.IntN(2) == 0 {
				d := descs[r.IntN(len(descs))]
				u.descs[name] = d
				fmt.Fprintf(&b, "%s,%s\n", name, d)
			}
		}
	}
	b.WriteString(strings.Repeat("\n", g.seq))
	u.Content = []byte(b.String())
	sum := sha256.Sum256(u.Content)
	u.SHA256 = hex.EncodeToString(sum[:])
	return u
}

// Batch is a daemon's batch as the checker needs it.
type Batch struct {
	ID      string
	Status  string
	Files   []File
	Ignored []File
}

// File is a file of a batch.
type File struct {
	Name        string
	Kind        string
	SHA256      string
	CompletedAt time.Time
}

// Event is an event of the feed.
type Event struct {
	ID      string
	Type    string
	BatchID string
	Data    json.RawMessage
}

// Snapshot is what the daemon serves: users (id -> job_title), groups
// (name -> description) and memberships (user id -> group names, sorted).
type Snapshot struct {
	Users   map[string]string
	Groups  map[string]string
	Members map[string][]string
}

// state is the model's snapshot.
type state struct {
	users   map[string]string
	members map[[2]string]bool // (group, user)
	inFile  map[string]string  // groups of groups.csv -> description
}

func (s state) groupDesc(name string) (string, bool) {
	if d, ok := s.inFile[name]; ok {
		return d, true
	}
	for p := range s.members {
		if p[0] == name {
			return "", true
		}
	}
	return "", false
}

// Checker checks a daemon's batches, events and snapshot, step after
// step, against the model.
type Checker struct {
	uploads  map[string]Upload // by SHA-256
	steps    [][]Upload
	st       state
	checked  string         // batches up to this id are checked
	lastSeq  map[string]int // per kind: the upload taken last
	events   map[string][]string
	lastEvt  string // batch of the last event seen
	applied  map[string]bool
	eventIDs map[string]bool
}

// NewChecker returns a checker of an organization that starts empty.
func NewChecker() *Checker {
	return &Checker{
		uploads: map[string]Upload{}, lastSeq: map[string]int{}, events: map[string][]string{},
		applied: map[string]bool{}, eventIDs: map[string]bool{},
		st: state{users: map[string]string{}, members: map[[2]string]bool{}, inFile: map[string]string{}},
	}
}

// Uploaded records the uploads of a step, once placed.
func (c *Checker) Uploaded(us []Upload) {
	for _, u := range us {
		c.uploads[u.SHA256] = u
	}
	c.steps = append(c.steps, us)
}

// Settled reports whether every upload of the last step is in a batch
// (taken, or set aside as ignored) and no batch is pending or processing:
// the daemon is done with the step.
func (c *Checker) Settled(bs []Batch) bool {
	for _, b := range bs {
		if b.Status == "pending" || b.Status == "processing" {
			return false
		}
	}
	if len(c.steps) == 0 {
		return true
	}
	for _, u := range c.steps[len(c.steps)-1] {
		found := false
		for _, b := range bs {
			if slices.ContainsFunc(b.Files, func(f File) bool { return f.SHA256 == u.SHA256 }) ||
				slices.ContainsFunc(b.Ignored, func(f File) bool {
					// ctime can trail the test's clock by a tick.
					return f.Name == u.Name && !f.CompletedAt.Before(u.At.Add(-20*time.Millisecond))
				}) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Check checks the batches (all of them, any order), the events not seen
// before (in feed order) and the snapshot. It returns the first
// violation.
func (c *Checker) Check(bs []Batch, newEvents []Event, snap Snapshot) error {
	for _, e := range newEvents {
		if c.eventIDs[e.ID] {
			return fmt.Errorf("event %s seen twice", e.ID)
		}
		c.eventIDs[e.ID] = true
		if e.BatchID < c.lastEvt {
			return fmt.Errorf("event %s of batch %s follows events of the newer batch %s: a batch applied after a newer one", e.ID, e.BatchID, c.lastEvt)
		}
		c.lastEvt = e.BatchID
		k, err := eventKey(e)
		if err != nil {
			return err
		}
		c.events[e.BatchID] = append(c.events[e.BatchID], k)
	}
	sorted := slices.Clone(bs)
	slices.SortFunc(sorted, func(a, b Batch) int { return strings.Compare(a.ID, b.ID) })
	for _, b := range sorted {
		if b.ID <= c.checked {
			continue
		}
		if err := c.checkBatch(b); err != nil {
			return fmt.Errorf("batch %s (%s): %w", b.ID, b.Status, err)
		}
		c.checked = b.ID
	}
	for id := range c.events {
		if !c.applied[id] && id <= c.checked {
			return fmt.Errorf("events of batch %s, which is not applied", id)
		}
	}
	return c.checkSnapshot(snap)
}

func (c *Checker) checkBatch(b Batch) error {
	switch b.Status {
	case "pending", "processing":
		return fmt.Errorf("not finished")
	case "superseded", "ignored":
		return nil
	}
	// Completion order: per kind, every batch with an outcome takes a
	// file uploaded after the one taken before.
	files := map[string]Upload{}
	for _, f := range b.Files {
		u, ok := c.uploads[f.SHA256]
		if !ok {
			return fmt.Errorf("%s (%s) is no upload's content", f.Name, f.SHA256)
		}
		if u.seq <= c.lastSeq[u.Kind] {
			return fmt.Errorf("%s (upload %d) taken after upload %d of its kind: back in time, or twice", f.Name, u.seq, c.lastSeq[u.Kind])
		}
		c.lastSeq[u.Kind] = u.seq
		files[u.Kind] = u
	}
	next, valid := c.apply(files)
	want := diffState(c.st, next)
	got := slices.Clone(c.events[b.ID])
	sort.Strings(got)
	switch b.Status {
	case "applied", "unchanged":
		if !valid {
			return fmt.Errorf("the model finds the files invalid")
		}
		if b.Status == "unchanged" && len(want) > 0 {
			return fmt.Errorf("unchanged, but the model changes %v", want)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("events differ from the model's changes:\n got  %v\n want %v", got, want)
		}
		c.st = next
		c.applied[b.ID] = true
	case "rejected":
		if valid {
			return fmt.Errorf("the model finds the files valid")
		}
		if len(got) > 0 {
			return fmt.Errorf("rejected with %d events", len(got))
		}
	default:
		return fmt.Errorf("unexpected status")
	}
	return nil
}

// apply is the model of a batch (SPEC §4 and §5): each file replaces its
// part of the snapshot; a membership's user must be in the batch's
// users.csv, or, without one, in the snapshot; a batch without users.csv
// needs users in the snapshot.
func (c *Checker) apply(files map[string]Upload) (state, bool) {
	next := state{users: c.st.users, members: c.st.members, inFile: c.st.inFile}
	valid := true
	if u, ok := files["users"]; ok {
		valid = valid && u.valid
		next.users = u.users
	} else if len(c.st.users) == 0 {
		valid = false // users.csv is required while there are no users
	}
	if ug, ok := files["user_groups"]; ok {
		next.members = map[[2]string]bool{}
		for _, p := range ug.pairs {
			if _, ok := next.users[p[1]]; !ok {
				valid = false
			}
			next.members[p] = true
		}
	} else if _, ok := files["users"]; ok {
		next.members = map[[2]string]bool{}
		for p := range c.st.members {
			if _, ok := next.users[p[1]]; ok {
				next.members[p] = true
			}
		}
	}
	if g, ok := files["groups"]; ok {
		next.inFile = g.descs
	}
	return next, valid
}

// diffState lists the events from a to b, sorted: type and key.
func diffState(a, b state) []string {
	var out []string
	for id, t := range b.users {
		if old, ok := a.users[id]; !ok {
			out = append(out, "dsync.user.created "+id)
		} else if old != t {
			out = append(out, fmt.Sprintf("dsync.user.updated %s %s>%s", id, old, t))
		}
	}
	for id := range a.users {
		if _, ok := b.users[id]; !ok {
			out = append(out, "dsync.user.deleted "+id)
		}
	}
	for p := range b.members {
		if !a.members[p] {
			out = append(out, "dsync.group.user_added "+p[1]+"|"+p[0])
		}
	}
	for p := range a.members {
		if !b.members[p] {
			out = append(out, "dsync.group.user_removed "+p[1]+"|"+p[0])
		}
	}
	for _, g := range groups {
		od, had := a.groupDesc(g)
		nd, has := b.groupDesc(g)
		switch {
		case !had && has:
			out = append(out, "dsync.group.created "+g)
		case had && !has:
			out = append(out, "dsync.group.deleted "+g)
		case had && has && od != nd:
			out = append(out, "dsync.group.updated "+g)
		}
	}
	sort.Strings(out)
	return out
}

// eventKey is an event as diffState lists it.
func eventKey(e Event) (string, error) {
	var d struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		JobTitle string `json:"job_title"`
		Prev     *struct {
			JobTitle string `json:"job_title"`
		} `json:"previous_attributes"`
		User  struct{ ID string }
		Group struct{ Name string }
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return "", fmt.Errorf("event %s: %w", e.ID, err)
	}
	switch e.Type {
	case "dsync.user.updated":
		if d.Prev == nil {
			return "", fmt.Errorf("event %s: no previous_attributes", e.ID)
		}
		return fmt.Sprintf("%s %s %s>%s", e.Type, d.ID, d.Prev.JobTitle, d.JobTitle), nil
	case "dsync.group.user_added", "dsync.group.user_removed":
		return e.Type + " " + d.User.ID + "|" + d.Group.Name, nil
	case "dsync.group.created", "dsync.group.updated", "dsync.group.deleted":
		return e.Type + " " + d.Name, nil
	}
	return e.Type + " " + d.ID, nil
}

func (c *Checker) checkSnapshot(s Snapshot) error {
	if !maps.Equal(s.Users, c.st.users) && !(len(s.Users) == 0 && len(c.st.users) == 0) {
		return fmt.Errorf("snapshot users %v; the model says %v", s.Users, c.st.users)
	}
	want := map[string]string{}
	for _, g := range groups {
		if d, ok := c.st.groupDesc(g); ok {
			want[g] = d
		}
	}
	if !maps.Equal(s.Groups, want) && !(len(s.Groups) == 0 && len(want) == 0) {
		return fmt.Errorf("snapshot groups %v; the model says %v", s.Groups, want)
	}
	members := map[string][]string{}
	for p := range c.st.members {
		members[p[1]] = append(members[p[1]], p[0])
	}
	for _, gs := range members {
		slices.Sort(gs)
	}
	got := map[string][]string{}
	for u, gs := range s.Members {
		if len(gs) > 0 {
			got[u] = gs
		}
	}
	if !maps.EqualFunc(got, members, slices.Equal) {
		return fmt.Errorf("snapshot memberships %v; the model says %v", got, members)
	}
	return nil
}
