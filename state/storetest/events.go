package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

// feed emits three batches into a store: acme's b1 (3 events), beta's b2
// (2), acme's b3 (1), and returns all the ids in order.
func feed(t *testing.T, h Harness, s Store) []string {
	t.Helper()
	mustCreateOrg(t, s, "acme", "beta")
	var ids []string
	ids = append(ids, h.Emit(t, s, "acme", "b1", []RawEvent{
		{state.EventGroupCreated, `{"object":"directory_group","id":"g1"}`},
		{state.EventUserCreated, `{"object":"directory_user","id":"u1"}`},
		{state.EventGroupUserAdded, `{"user":{"id":"u1"},"group":{"id":"g1"}}`},
	})...)
	ids = append(ids, h.Emit(t, s, "beta", "b2", []RawEvent{
		{state.EventUserCreated, `{"object":"directory_user","id":"x1"}`},
		{state.EventUserDeleted, `{"object":"directory_user","id":"x0"}`},
	})...)
	ids = append(ids, h.Emit(t, s, "acme", "b3", []RawEvent{
		{state.EventUserUpdated, `{"object":"directory_user","id":"u1","previous_attributes":{"email":"a@b"}}`},
	})...)
	if len(ids) != 6 {
		t.Fatalf("Emit returned %d ids; want 6", len(ids))
	}
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 6 {
		t.Fatalf("ids %v; want 6 distinct ids in ascending order", ids)
	}
	return ids
}

func eventIDs(evs []state.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func testEventFeed(t *testing.T, h Harness, s Store) {
	if id, err := s.LastEventID(); err != nil || id != "" {
		t.Errorf("LastEventID() on an empty feed = %q, %v; want \"\"", id, err)
	}
	if evs, err := s.Events("", "", 0); err != nil || len(evs) != 0 {
		t.Errorf("Events on an empty feed = %v, %v; want none", evs, err)
	}
	before := time.Now()
	ids := feed(t, h, s)
	after := time.Now()
	evs, err := s.Events("", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ids, eventIDs(evs)); diff != "" {
		t.Fatalf("Events(all) ids mismatch (-want +got):\n%s", diff)
	}
	for _, e := range evs {
		if !strings.HasPrefix(e.ID, "evt_") {
			t.Errorf("event id %q; want evt_ and a ULID", e.ID)
		}
		// created_at is rendered to the millisecond.
		within(t, "created_at of "+e.ID, e.CreatedAt, before.Truncate(time.Millisecond), after)
	}
	wantMeta := []struct{ typ, org, batch, data string }{
		{state.EventGroupCreated, "acme", "b1", `{"object":"directory_group","id":"g1"}`},
		{state.EventUserCreated, "acme", "b1", `{"object":"directory_user","id":"u1"}`},
		{state.EventGroupUserAdded, "acme", "b1", `{"user":{"id":"u1"},"group":{"id":"g1"}}`},
		{state.EventUserCreated, "beta", "b2", `{"object":"directory_user","id":"x1"}`},
		{state.EventUserDeleted, "beta", "b2", `{"object":"directory_user","id":"x0"}`},
		{state.EventUserUpdated, "acme", "b3", `{"object":"directory_user","id":"u1","previous_attributes":{"email":"a@b"}}`},
	}
	for i, w := range wantMeta {
		e := evs[i]
		if e.Event != w.typ || e.OrganizationID != w.org || e.BatchID != w.batch || string(e.Data) != w.data {
			t.Errorf("event %d = %s %s %s %s; want %s %s %s %s", i, e.Event, e.OrganizationID, e.BatchID, e.Data, w.typ, w.org, w.batch, w.data)
		}
	}
	acme, err := s.Events("acme", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{ids[0], ids[1], ids[2], ids[5]}, eventIDs(acme)); diff != "" {
		t.Errorf("Events(acme) mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.Events("nope", "", 0); err != nil || len(got) != 0 {
		t.Errorf("Events(nope) = %v, %v; want none", got, err)
	}
	if id, err := s.LastEventID(); err != nil || id != ids[5] {
		t.Errorf("LastEventID() = %q, %v; want %s", id, err, ids[5])
	}
	// One event: Event decodes what EventJSON returns, which is what the
	// feed renders.
	var raws []string
	err = s.ForEachEventJSON("", "", 0, func(id string, raw []byte) error {
		raws = append(raws, string(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		raw, err := s.EventJSON(id)
		if err != nil || string(raw) != raws[i] {
			t.Errorf("EventJSON(%s) = %s, %v; want %s", id, raw, err, raws[i])
		}
		e, err := s.Event(id)
		if err != nil || !cmp.Equal(evs[i], e) {
			t.Errorf("Event(%s) = %+v, %v; want %+v", id, e, err, evs[i])
		}
		if !json.Valid(raw) {
			t.Errorf("EventJSON(%s) = %s; not valid JSON", id, raw)
		}
	}
	for _, bad := range []string{"", "evt_", "evt_nope", ids[5] + "0", "evt_" + strings.Repeat("Z", 26), strings.TrimSuffix(ids[5], ids[5][len(ids[5])-1:]) + "Z"} {
		if _, err := s.EventJSON(bad); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("EventJSON(%q) = %v; want ErrNotFound", bad, err)
		}
		if _, err := s.Event(bad); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("Event(%q) = %v; want ErrNotFound", bad, err)
		}
	}
	// An error from fn stops the walk and is returned.
	boom := errors.New("boom")
	n := 0
	err = s.ForEachEventJSON("", "", 0, func(string, []byte) error {
		n++
		return boom
	})
	if !errors.Is(err, boom) || n != 1 {
		t.Errorf("ForEachEventJSON with a failing fn = %v after %d calls; want boom after 1", err, n)
	}
}

func testEventFeedPaging(t *testing.T, h Harness, s Store) {
	ids := feed(t, h, s)
	acme := []string{ids[0], ids[1], ids[2], ids[5]}
	for _, tc := range []struct {
		org, after string
		limit      int
		want       []string
	}{
		{"", "", 2, ids[:2]},
		{"", ids[1], 2, ids[2:4]},
		{"", ids[2], 0, ids[3:]},
		{"", ids[5], 0, nil},
		{"", ids[2] + "0", 0, ids[3:]},           // after need not be an id
		{"", "evt_", 1, ids[:1]},                 // before every id
		{"", "evt_~", 0, nil},                    // after every id
		{"", ids[0][:12], 0, ids},                // a prefix sorts before the id
		{"acme", ids[1], 0, acme[2:]},            // across beta's batch
		{"acme", ids[3], 0, acme[3:]},            // after is another organization's id
		{"acme", ids[2], 1, acme[3:]},            //
		{"beta", ids[0], 0, ids[3:5]},            // after an id before beta's
		{"beta", ids[5], 0, nil},                 // after beta's last
		{"beta", "", -1, ids[3:5]},               // limit < 0: all
		{"acme", "evt_~", 0, nil},                //
		{"acme", acme[0][:20], 0, acme},          //
		{"", ids[4][:len(ids[4])-1], 0, ids[3:]}, // a prefix of the commit's ids
	} {
		got, err := s.Events(tc.org, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, eventIDs(got)); diff != "" {
			t.Errorf("Events(%q, %q, %d) mismatch (-want +got):\n%s", tc.org, tc.after, tc.limit, diff)
		}
	}
	// Paging one at a time with the last id seen walks the whole feed.
	var walked []string
	for after := ""; ; {
		page, err := s.Events("", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		walked = append(walked, page[0].ID)
		after = page[0].ID
	}
	if diff := cmp.Diff(ids, walked); diff != "" {
		t.Errorf("paging one by one mismatch (-want +got):\n%s", diff)
	}
}

func testEventJSONVerbatim(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "acme")
	// The data is kept byte for byte: spacing, key order, escapes, and
	// characters a JSON encoder would escape.
	data := `{"z":1,  "a" : "é\u00e9<&>", "n":null,"l":[1.50,2e3],"s":"\u2028"}`
	ids := h.Emit(t, s, "acme", "b\"1", []RawEvent{{state.EventUserCreated, data}})
	raw, err := s.EventJSON(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Event(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + ids[0] + `","event":"dsync.user.created","organization_id":"acme","batch_id":"b\"1","created_at":"` +
		e.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00") + `","data":` + data + `}`
	if string(raw) != want {
		t.Errorf("EventJSON = %s\nwant %s", raw, want)
	}
}

func testCountEvents(t *testing.T, h Harness, s Store) {
	ids := feed(t, h, s)
	for _, tc := range []struct {
		org, after string
		want       int
	}{
		{"acme", "", 4}, {"beta", "", 2}, {"nope", "", 0},
		{"acme", ids[0], 3}, {"acme", ids[2], 1}, {"acme", ids[3], 1}, {"acme", ids[5], 0},
		{"beta", ids[3], 1}, {"beta", ids[1], 2}, {"beta", ids[5], 0},
		{"acme", ids[1] + "0", 2}, {"acme", "evt_", 4}, {"acme", "evt_~", 0},
	} {
		if n, err := s.CountEvents(tc.org, tc.after); err != nil || n != tc.want {
			t.Errorf("CountEvents(%s, %q) = %d, %v; want %d", tc.org, tc.after, n, err, tc.want)
		}
	}
}
