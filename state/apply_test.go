package state

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// view is what a reader sees of an organization: users, groups of g0,
// counts and the event feed.
type view struct {
	Users  []string
	Member []string
	Counts SnapshotCounts
	Events []string
}

func readView(t *testing.T, db *DB, org string) view {
	t.Helper()
	var v view
	us, err := db.Users(org, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	v.Users = rawStrings(us)
	gu, err := db.GroupUsers(org, "g0", "", 0)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	v.Member = rawStrings(gu)
	if v.Counts, err = db.SnapshotCounts(org); err != nil {
		t.Fatal(err)
	}
	err = db.ForEachEventJSON(org, "", 0, func(_ string, raw []byte) error {
		v.Events = append(v.Events, string(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func rec(id, title string) []byte {
	r := UserRecord{ID: id, Email: id + "@acme.test", FirstName: "F", LastName: "L", Known: []Attr{{"job_title", title}}}
	return r.AppendBinary(nil)
}

// seed applies a snapshot of n users, all members of g0, through a staged
// apply of two changes per transaction (a fresh generation).
func seed(t *testing.T, db *DB, org string, n int) {
	t.Helper()
	b := newBatch(t, db, org, org+"-seed")
	b.Status = BatchApplied
	err := db.ApplyBatchStaged(b, []byte(`{}`), 2, func(a *ApplyTx) error {
		if err := a.PutGroup([]byte("g0"), "Group 0", GroupInFile, []byte(`{"object":"directory_group","id":"g0"}`)); err != nil {
			return err
		}
		if err := a.EmitGroup(EventGroupCreated, []byte("g0")); err != nil {
			return err
		}
		for i := range n {
			id := []byte(fmt.Sprintf("u%03d", i))
			if err := a.PutUser(id, true, rec(string(id), "Engineer")); err != nil {
				return err
			}
			if err := a.EmitUser(EventUserCreated, id, nil); err != nil {
				return err
			}
			if err := a.AddMember(id, []byte("g0")); err != nil {
				return err
			}
			if err := a.EmitMember(EventGroupUserAdded, id, []byte("g0")); err != nil {
				return err
			}
			if err := a.Checkpoint(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// change updates u000, deletes the last user and adds a new one.
func change(n int) func(a *ApplyTx) error {
	return func(a *ApplyTx) error {
		if err := a.PutUser([]byte("u000"), false, rec("u000", "Manager")); err != nil {
			return err
		}
		if err := a.EmitUser(EventUserUpdated, []byte("u000"), []byte(`{"job_title":"Engineer","state":"active"}`)); err != nil {
			return err
		}
		if err := a.Checkpoint(); err != nil {
			return err
		}
		last := []byte(fmt.Sprintf("u%03d", n-1))
		if err := a.EmitMember(EventGroupUserRemoved, last, []byte("g0")); err != nil {
			return err
		}
		if err := a.RemoveMember(last, []byte("g0")); err != nil {
			return err
		}
		if err := a.EmitUser(EventUserDeleted, last, nil); err != nil {
			return err
		}
		if err := a.DeleteUser(last); err != nil {
			return err
		}
		if err := a.Checkpoint(); err != nil {
			return err
		}
		if err := a.PutUser([]byte("x001"), true, rec("x001", "Intern")); err != nil {
			return err
		}
		if err := a.EmitUser(EventUserCreated, []byte("x001"), nil); err != nil {
			return err
		}
		return a.Checkpoint()
	}
}

// leftovers lists what staging may leave behind: staging entries, event
// buckets without a commit, snapshot buckets ptr does not name.
func leftovers(t *testing.T, db *DB, org string) []string {
	t.Helper()
	var out []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if st := tx.Bucket(bucketStaging); st != nil {
			st.ForEach(func(k, _ []byte) error { out = append(out, "staging "+string(k)); return nil })
		}
		committed := map[string]bool{}
		tx.Bucket(bucketEvents).ForEach(func(_, v []byte) error {
			c, _ := decodeCommit(v)
			committed[string(dataKey(c.org, c.batch))] = true
			return nil
		})
		if top := tx.Bucket(bucketEventData); top != nil {
			top.ForEachBucket(func(k []byte) error {
				if !committed[string(k)] {
					out = append(out, "event bucket "+string(k))
				}
				return nil
			})
		}
		root := tx.Bucket(bucketSnapshots).Bucket([]byte(org))
		p := readPtr(root)
		root.ForEachBucket(func(k []byte) error {
			if string(k) != p.base {
				out = append(out, "snapshot bucket "+string(k))
			}
			return nil
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStagedApplyInvisibleUntilFlip reads the snapshot and the feed in the
// middle of a staged apply, after several staging transactions committed:
// the readers see the old snapshot and none of the new events; after the
// flip they see all of it, and the same again once the overlay is merged.
func TestStagedApplyInvisibleUntilFlip(t *testing.T) {
	db := openTestOrg(t, "acme")
	const n = 9
	seed(t, db, "acme", n)
	before := readView(t, db, "acme")
	if len(before.Users) != n || len(before.Member) != n || len(before.Events) != 1+2*n {
		t.Fatalf("seeded view: %d users, %d members, %d events", len(before.Users), len(before.Member), len(before.Events))
	}
	lastBefore, _ := db.LastEventID()

	b := newBatch(t, db, "acme", "B2")
	b.Status = BatchApplied
	a := &ApplyTx{db: db, b: b, staged: true, stage: "sB2", txChange: 1}
	now := db.now().UTC()
	a.b.FinishedAt = &now
	mid := 0
	err := db.stage(a, func(a *ApplyTx) error {
		if err := change(n)(a); err != nil {
			return err
		}
		// Staging transactions committed; this one is still open. A
		// reader in another goroutine (bbolt readers run beside the
		// writer) must see the old snapshot.
		var got view
		var wg sync.WaitGroup
		wg.Go(func() { got = readView(t, db, "acme") })
		wg.Wait()
		if diff := cmp.Diff(before, got); diff != "" {
			t.Errorf("reader during staging sees changes (-before +got):\n%s", diff)
		}
		mid++
		return nil
	})
	if err != nil || mid != 1 {
		t.Fatalf("stage = %v", err)
	}
	if got := readView(t, db, "acme"); !cmp.Equal(before, got) {
		t.Errorf("reader after staging, before the flip, sees changes:\n%s", cmp.Diff(before, got))
	}
	if id, _ := db.LastEventID(); id != lastBefore {
		t.Errorf("LastEventID before the flip = %s; want %s", id, lastBefore)
	}
	if st, _ := db.Batch("acme", "B2"); st.Status != BatchProcessing {
		t.Errorf("batch before the flip is %s", st.Status)
	}

	if err := db.flip(a, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if pending, _ := db.PendingMerge("acme"); !pending {
		t.Fatal("no overlay after flipping a staged change")
	}
	flipped := readView(t, db, "acme")
	if len(flipped.Users) != n || flipped.Counts.Users != n || flipped.Counts.Active != n-1 ||
		flipped.Counts.Memberships != n-1 || len(flipped.Member) != n-1 || len(flipped.Events) != len(before.Events)+4 {
		t.Errorf("after the flip: %+v", flipped.Counts)
	}
	u, err := db.User("acme", "u000")
	if err != nil || string(u) != `{"object":"directory_user","id":"u000","organization_id":"acme","email":"u000@acme.test","first_name":"F","last_name":"L","state":"inactive","job_title":"Manager","custom_attributes":{}}` {
		t.Errorf("User(u000) after the flip = %s, %v", u, err)
	}
	if _, err := db.User("acme", fmt.Sprintf("u%03d", n-1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted user still readable: %v", err)
	}
	// One key per merge transaction: readers between them see the same.
	setMergeTxNodes(t, 1)
	txid := func() (id int) {
		db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	tx0 := txid()
	if err := db.MergeOverlay("acme"); err != nil {
		t.Fatal(err)
	}
	if n := txid() - tx0; n < 10 {
		t.Errorf("the merge took %d transactions; want one a key", n)
	}
	if pending, _ := db.PendingMerge("acme"); pending {
		t.Error("overlay left after the merge")
	}
	if merged := readView(t, db, "acme"); !cmp.Equal(flipped, merged) {
		t.Errorf("merge changed what readers see:\n%s", cmp.Diff(flipped, merged))
	}
	// Old events still show the data as it was: the seed's u000 was active.
	evs, _ := db.Events("acme", "", 0)
	if e := evs[1]; e.Event != EventUserCreated || !slices.Contains([]string{string(e.Data)}, `{"object":"directory_user","id":"u000","organization_id":"acme","email":"u000@acme.test","first_name":"F","last_name":"L","state":"active","job_title":"Engineer","custom_attributes":{}}`) {
		t.Errorf("first user event = %s %s", e.Event, e.Data)
	}
	if got := leftovers(t, db, "acme"); len(got) != 0 {
		t.Errorf("leftovers after the apply: %v", got)
	}
}

// TestStagedApplyDiscarded checks that a staged apply that fails, or that
// a crash interrupts before its flip, leaves nothing behind and changes
// nothing readers see.
func TestStagedApplyDiscarded(t *testing.T) {
	db := openTestOrg(t, "acme")
	seed(t, db, "acme", 5)
	before := readView(t, db, "acme")

	b := newBatch(t, db, "acme", "B2")
	b.Status = BatchApplied
	boom := errors.New("boom")
	err := db.ApplyBatchStaged(b, nil, 1, func(a *ApplyTx) error {
		if err := change(5)(a); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("ApplyBatchStaged = %v; want boom", err)
	}
	if got := leftovers(t, db, "acme"); len(got) != 0 {
		t.Errorf("leftovers after a failed staged apply: %v", got)
	}
	if got := readView(t, db, "acme"); !cmp.Equal(before, got) {
		t.Errorf("failed staged apply changed the view:\n%s", cmp.Diff(before, got))
	}

	// A crash after staging, before the flip: the process dies with the
	// staging committed. The next apply (or Recover) discards it.
	a := &ApplyTx{db: db, b: b, staged: true, stage: "sB2", txChange: 1}
	now := db.now().UTC()
	a.b.FinishedAt = &now
	if err := db.stage(a, change(5)); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, db, "acme"); len(got) == 0 {
		t.Fatal("staging left no trace to clean up; the test checks nothing")
	}
	if got := readView(t, db, "acme"); !cmp.Equal(before, got) {
		t.Errorf("staged data visible without a flip:\n%s", cmp.Diff(before, got))
	}
	if err := db.Recover(); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, db, "acme"); len(got) != 0 {
		t.Errorf("leftovers after Recover: %v", got)
	}
	// The batch is redone and applies once.
	if err := db.ApplyBatchStaged(b, []byte(`{}`), 1, change(5)); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyBatchStaged(b, []byte(`{}`), 1, change(5)); !errors.Is(err, ErrBatchFinished) {
		t.Errorf("second apply = %v; want ErrBatchFinished", err)
	}
	if got := readView(t, db, "acme"); len(got.Events) != len(before.Events)+4 || got.Counts.Users != 5 {
		t.Errorf("after the redo: %d events, %+v", len(got.Events), got.Counts)
	}
	if got := leftovers(t, db, "acme"); len(got) != 0 {
		t.Errorf("leftovers after the redo: %v", got)
	}
}

// TestMergeInterrupted checks that an overlay whose merge stopped half
// way (a crash) reads the same and is finished by the next apply.
func TestMergeInterrupted(t *testing.T) {
	db := openTestOrg(t, "acme")
	seed(t, db, "acme", 5)
	b := newBatch(t, db, "acme", "B2")
	b.Status = BatchApplied
	a := &ApplyTx{db: db, b: b, staged: true, stage: "sB2", txChange: 1}
	now := db.now().UTC()
	a.b.FinishedAt = &now
	if err := db.stage(a, change(5)); err != nil {
		t.Fatal(err)
	}
	if err := db.flip(a, nil); err != nil {
		t.Fatal(err)
	}
	want := readView(t, db, "acme")
	// Half a merge: copy the users overlay into the base only.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSnapshots).Bucket([]byte("acme"))
		p := readPtr(root)
		base, over := root.Bucket([]byte(p.base)).Bucket(snapUsers), root.Bucket([]byte(p.overlay)).Bucket(snapUsers)
		return over.ForEach(func(k, v []byte) error {
			if v[0] == opPut {
				return base.Put(k, v[1:])
			}
			return base.Delete(k)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readView(t, db, "acme"); !cmp.Equal(want, got) {
		t.Errorf("half-merged view differs:\n%s", cmp.Diff(want, got))
	}
	b3 := newBatch(t, db, "acme", "B3")
	b3.Status = BatchApplied
	if err := db.ApplyBatch(b3, nil, func(a *ApplyTx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if pending, _ := db.PendingMerge("acme"); pending {
		t.Error("the next apply did not finish the merge")
	}
	if got := readView(t, db, "acme"); !cmp.Equal(want, got) {
		t.Errorf("view after finishing the merge differs:\n%s", cmp.Diff(want, got))
	}
}

// TestEventIDsCommitOrderConcurrent applies staged and direct batches of
// two organizations at once while a poller follows the global feed with
// after=last seen id: the poller must end with every event, in the same
// order as a full read, never missing one committed later with a lower id.
func TestEventIDsCommitOrderConcurrent(t *testing.T) {
	db, _ := openTest(t)
	orgs := []string{"a", "b"}
	for _, o := range orgs {
		if err := db.CreateOrg(Org{Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	const batches, perBatch = 6, 25
	var wg sync.WaitGroup
	applied, done := make(chan struct{}), make(chan struct{})
	var polled []string
	go func() {
		defer close(done)
		after := ""
		for last := false; ; {
			select {
			case <-applied:
				last = true // one more full pass after the appliers finished
			default:
			}
			for {
				evs, err := db.Events("", after, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(evs) == 0 {
					break
				}
				for _, e := range evs {
					polled = append(polled, e.ID)
				}
				after = evs[len(evs)-1].ID
			}
			if last {
				return
			}
		}
	}()
	for _, org := range orgs {
		wg.Go(func() {
			for i := range batches {
				b := Batch{ID: fmt.Sprintf("%s-%d", org, i), Org: org, Status: BatchProcessing}
				if _, err := db.CreateBatch(b); err != nil {
					t.Error(err)
					return
				}
				b.Status = BatchApplied
				fn := func(a *ApplyTx) error {
					for j := range perBatch {
						if _, err := a.Emit(EventUserCreated, fmt.Appendf(nil, `{"n":%d}`, j)); err != nil {
							return err
						}
						if err := a.Checkpoint(); err != nil {
							return err
						}
					}
					return nil
				}
				var err error
				if i%2 == 0 {
					err = db.ApplyBatchStaged(b, nil, 3, fn)
				} else {
					err = db.ApplyBatch(b, nil, fn)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(applied)
	<-done
	var all []string
	evs, _ := db.Events("", "", 0)
	for i, e := range evs {
		all = append(all, e.ID)
		if i > 0 && e.ID <= evs[i-1].ID {
			t.Fatalf("feed out of order: %s after %s", e.ID, evs[i-1].ID)
		}
	}
	if len(all) != len(orgs)*batches*perBatch {
		t.Fatalf("feed has %d events; want %d", len(all), len(orgs)*batches*perBatch)
	}
	if diff := cmp.Diff(all, polled); diff != "" {
		t.Errorf("poller missed or reordered events (-feed +polled):\n%s", diff)
	}
	// Within a batch, events keep emission order and stay together.
	for _, org := range orgs {
		evs, _ := db.Events(org, "", 0)
		for i, e := range evs {
			if want := fmt.Sprintf(`{"n":%d}`, i%perBatch); string(e.Data) != want || e.BatchID != fmt.Sprintf("%s-%d", org, i/perBatch) {
				t.Fatalf("event %d of %s = %s %s; want %s of batch %d", i, org, e.BatchID, e.Data, want, i/perBatch)
			}
		}
	}
}

// setMergeTxNodes bounds MergeOverlay's transactions to n pages (at
// least one key each) for the test.
func setMergeTxNodes(t *testing.T, n int64) {
	old := mergeTxNodes
	mergeTxNodes = n
	t.Cleanup(func() { mergeTxNodes = old })
}

// lookups reads every user of ids through UserLookup and its group-set
// hash through ForEachGroupSet, as the day-2 diff does.
func lookups(t *testing.T, db *DB, org string, ids []string) []string {
	t.Helper()
	var out []string
	err := db.ViewSnapshot(org, func(s *SnapshotTx) error {
		sets := map[string]GroupSetHash{}
		err := s.ForEachGroupSet(func(uid []byte, h GroupSetHash) error {
			sets[string(uid)] = h
			return nil
		})
		if err != nil {
			return err
		}
		look := s.UserLookup()
		for _, id := range ids {
			rec, active, ok := look([]byte(id))
			out = append(out, fmt.Sprintf("%s %x %v %v %x", id, rec, active, ok, sets[id]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStagedApplyLeavesOverlay checks that ApplyBatchStaged applies a
// change at its flip and leaves the overlay: readers and lookups see the
// new snapshot before MergeOverlay, the organization's next staged apply
// merges first, and merges running at once (beside readers) change
// nothing readers see.
func TestStagedApplyLeavesOverlay(t *testing.T) {
	db := openTestOrg(t, "acme")
	const n = 9
	seed(t, db, "acme", n)
	ids := []string{"u000", "u001", fmt.Sprintf("u%03d", n-1), "x001", "zzz"}
	b := newBatch(t, db, "acme", "B2")
	b.Status = BatchApplied
	if err := db.ApplyBatchStaged(b, []byte(`{}`), 1, change(n)); err != nil {
		t.Fatal(err)
	}
	if pending, _ := db.PendingMerge("acme"); !pending {
		t.Fatal("ApplyBatchStaged merged the overlay; the test checks nothing")
	}
	if st, _ := db.Batch("acme", "B2"); st.Status != BatchApplied {
		t.Errorf("batch with its overlay unmerged is %s; want applied", st.Status)
	}
	got := readView(t, db, "acme")
	if got.Counts != (SnapshotCounts{Users: n, Active: n - 1, Groups: 1, Memberships: n - 1}) || len(got.Member) != n-1 {
		t.Errorf("view over the overlay: %+v, %d members", got.Counts, len(got.Member))
	}
	over := lookups(t, db, "acme", ids)

	// The next staged apply merges the leftover overlay first.
	b3 := newBatch(t, db, "acme", "B3")
	b3.Status = BatchApplied
	err := db.ApplyBatchStaged(b3, []byte(`{}`), 1, func(a *ApplyTx) error {
		if err := a.AddMember([]byte("x001"), []byte("g0")); err != nil {
			return err
		}
		if err := a.EmitMember(EventGroupUserAdded, []byte("x001"), []byte("g0")); err != nil {
			return err
		}
		return a.Checkpoint()
	})
	if err != nil {
		t.Fatal(err)
	}
	want := readView(t, db, "acme")
	if want.Counts.Memberships != n || len(want.Events) != len(got.Events)+1 {
		t.Errorf("after B3 over a leftover overlay: %+v, %d events; want %d memberships, %d events",
			want.Counts, len(want.Events), n, len(got.Events)+1)
	}
	wantLook := lookups(t, db, "acme", ids)
	if cmp.Equal(over, wantLook) {
		t.Error("B3 changed no lookup; the test checks nothing")
	}

	setMergeTxNodes(t, 1)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := db.MergeOverlay("acme"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if got := readView(t, db, "acme"); !cmp.Equal(want, got) {
				t.Errorf("view during the merge differs:\n%s", cmp.Diff(want, got))
				return
			}
		}
	})
	wg.Wait()
	if pending, _ := db.PendingMerge("acme"); pending {
		t.Error("overlay left after MergeOverlay")
	}
	if err := db.MergeOverlay("acme"); err != nil {
		t.Errorf("MergeOverlay without an overlay = %v", err)
	}
	if got := readView(t, db, "acme"); !cmp.Equal(want, got) {
		t.Errorf("merge changed what readers see:\n%s", cmp.Diff(want, got))
	}
	if got := lookups(t, db, "acme", ids); !cmp.Equal(wantLook, got) {
		t.Errorf("merge changed the lookups:\n%s", cmp.Diff(wantLook, got))
	}
	if got := leftovers(t, db, "acme"); len(got) != 0 {
		t.Errorf("leftovers after the merge: %v", got)
	}
}

// TestNewGenerationPacksPages checks that a staged apply onto an empty
// snapshot, written in key order, fills its pages (appendFill) instead of
// leaving them half empty, and that a change merged into it later reads
// right.
func TestNewGenerationPacksPages(t *testing.T) {
	db := openTestOrg(t, "acme")
	const n = 3000
	b := newBatch(t, db, "acme", "B1")
	b.Status = BatchApplied
	err := db.ApplyBatchStaged(b, nil, 512, func(a *ApplyTx) error {
		for i := range n {
			id := []byte(fmt.Sprintf("u%05d", i))
			if err := a.PutUser(id, true, rec(string(id), "Engineer")); err != nil {
				return err
			}
			if err := a.EmitUser(EventUserCreated, id, nil); err != nil {
				return err
			}
			if err := a.Checkpoint(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fill := func() float64 {
		var st bolt.BucketStats
		db.bolt.View(func(tx *bolt.Tx) error {
			root := tx.Bucket(bucketSnapshots).Bucket([]byte("acme"))
			st = root.Bucket([]byte(readPtr(root).base)).Bucket(snapUsers).Stats()
			return nil
		})
		return float64(st.LeafInuse) / float64(st.LeafAlloc)
	}
	if f := fill(); f < 0.8 {
		t.Errorf("users pages of a new generation %.0f%% full; want at least 80%%", f*100)
	}
	b2 := newBatch(t, db, "acme", "B2")
	b2.Status = BatchApplied
	err = db.ApplyBatchStaged(b2, nil, 512, func(a *ApplyTx) error {
		for i := 0; i < n; i += 10 {
			id := []byte(fmt.Sprintf("u%05d", i))
			if err := a.EmitUser(EventUserUpdated, id, []byte(`{"job_title":"Engineer"}`)); err != nil {
				return err
			}
			if err := a.PutUser(id, true, rec(string(id), "Principal Engineer")); err != nil {
				return err
			}
			if err := a.Checkpoint(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MergeOverlay("acme"); err != nil {
		t.Fatal(err)
	}
	us, err := db.Users("acme", "", "", 0)
	if err != nil || len(us) != n {
		t.Fatalf("Users = %d, %v; want %d", len(us), err, n)
	}
	for i, u := range us {
		if want := i%10 == 0; strings.Contains(string(u), "Principal") != want {
			t.Fatalf("user %d after the merge: %s", i, u)
		}
	}
}
