package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

func testRegisterEndpoint(t *testing.T, h Harness, s Store) {
	before := time.Now()
	st, err := s.RegisterEndpoint("hook1", "https://a.example/hook")
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "hook1" || st.URL != "https://a.example/hook" || st.Start != "" || st.Disabled {
		t.Errorf("RegisterEndpoint(hook1) on an empty feed = %+v; want Start \"\", enabled", st)
	}
	within(t, "FirstSeen", st.FirstSeen, before, time.Now())
	// A new endpoint starts after the feed's last event.
	ids := feed(t, h, s)
	st2, err := s.RegisterEndpoint("hook2", "https://b.example/hook")
	if err != nil || st2.Start != ids[5] {
		t.Errorf("RegisterEndpoint(hook2) = %+v, %v; want Start %s", st2, err, ids[5])
	}
	// Registering again changes nothing, the start included.
	again, err := s.RegisterEndpoint("hook1", "https://a.example/hook")
	if err != nil || !cmp.Equal(st, again) {
		t.Errorf("RegisterEndpoint(hook1) again = %+v, %v; want %+v", again, err, st)
	}
	before = time.Now()
	dis, err := s.SetEndpointDisabled("hook1", true, "410 Gone")
	if err != nil || !dis.Disabled || dis.DisabledReason != "410 Gone" {
		t.Fatalf("SetEndpointDisabled(hook1) = %+v, %v; want disabled with the reason", dis, err)
	}
	within(t, "DisabledAt", dis.DisabledAt, before, time.Now())
	if got, err := s.Endpoint("hook1"); err != nil || !cmp.Equal(dis, got) {
		t.Errorf("Endpoint(hook1) = %+v, %v; want %+v", got, err, dis)
	}
	// The same URL keeps it disabled; a new URL enables it again.
	if got, _ := s.RegisterEndpoint("hook1", "https://a.example/hook"); !got.Disabled {
		t.Errorf("RegisterEndpoint with the same URL = %+v; want still disabled", got)
	}
	moved, err := s.RegisterEndpoint("hook1", "https://c.example/hook")
	want := st
	want.URL = "https://c.example/hook"
	if err != nil || !cmp.Equal(want, moved) {
		t.Errorf("RegisterEndpoint with a new URL = %+v, %v; want %+v", moved, err, want)
	}
	if got, _ := s.SetEndpointDisabled("hook2", true, "x"); !got.Disabled {
		t.Fatalf("SetEndpointDisabled(hook2) = %+v", got)
	}
	en, err := s.SetEndpointDisabled("hook2", false, "ignored")
	want2 := st2
	if err != nil || !cmp.Equal(want2, en) {
		t.Errorf("SetEndpointDisabled(hook2, false) = %+v, %v; want %+v", en, err, want2)
	}
	all, err := s.Endpoints()
	if err != nil || !cmp.Equal([]state.EndpointState{want, want2}, all) {
		t.Errorf("Endpoints() = %+v, %v; want %+v", all, err, []state.EndpointState{want, want2})
	}
	if _, err := s.Endpoint("nope"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Endpoint(nope) = %v; want ErrNotFound", err)
	}
	if _, err := s.SetEndpointDisabled("nope", true, "x"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("SetEndpointDisabled(nope) = %v; want ErrNotFound", err)
	}
}

func testCursors(t *testing.T, h Harness, s Store) {
	mustCreateOrg(t, s, "seed")
	h.Emit(t, s, "seed", "b0", []RawEvent{{state.EventUserCreated, `{}`}})
	st, err := s.RegisterEndpoint("hook", "https://a.example/hook")
	if err != nil {
		t.Fatal(err)
	}
	if st.Start == "" {
		t.Fatal("Start is empty after an event")
	}
	if c, err := s.Cursor("hook", "acme"); err != nil || !cmp.Equal(state.Cursor{After: st.Start}, c) {
		t.Errorf("Cursor(hook, acme) with none stored = %+v, %v; want After %s", c, err, st.Start)
	}
	if got, err := s.Cursors("hook"); err != nil || len(got) != 0 {
		t.Errorf("Cursors(hook) with none stored = %v, %v; want none", got, err)
	}
	retry := &state.Retry{EventID: "evt_5", Attempts: 2, NextAt: t0, LastStatus: 503, LastError: "Service Unavailable"}
	err = s.SaveCursors(
		state.CursorUpdate{Endpoint: "hook", Org: "acme", Cursor: state.Cursor{After: "evt_4", Retry: retry}},
		state.CursorUpdate{Endpoint: "hook", Org: "beta", Cursor: state.Cursor{After: "evt_2"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]state.Cursor{"acme": {After: "evt_4", Retry: retry}, "beta": {After: "evt_2"}}
	if got, err := s.Cursors("hook"); err != nil || !cmp.Equal(want, got) {
		t.Errorf("Cursors(hook) = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct {
		name string
		u    state.Cursor
		want state.Cursor
	}{
		{"backwards is ignored", state.Cursor{After: "evt_3"}, state.Cursor{After: "evt_4", Retry: retry}},
		{"the same position replaces the retry state", state.Cursor{After: "evt_4"}, state.Cursor{After: "evt_4"}},
		{"forward", state.Cursor{After: "evt_6", Retry: &state.Retry{EventID: "evt_7", Attempts: 1}},
			state.Cursor{After: "evt_6", Retry: &state.Retry{EventID: "evt_7", Attempts: 1}}},
		{"a retry not after the cursor is dropped", state.Cursor{After: "evt_8", Retry: &state.Retry{EventID: "evt_8", Attempts: 3}},
			state.Cursor{After: "evt_8"}},
	} {
		if err := s.SaveCursors(state.CursorUpdate{Endpoint: "hook", Org: "acme", Cursor: tc.u}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Cursor("hook", "acme"); err != nil || !cmp.Equal(tc.want, got) {
			t.Errorf("%s: Cursor(hook, acme) = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	// An unknown endpoint fails the whole call: nothing of it is saved.
	err = s.SaveCursors(
		state.CursorUpdate{Endpoint: "hook", Org: "beta", Cursor: state.Cursor{After: "evt_9"}},
		state.CursorUpdate{Endpoint: "nope", Org: "beta", Cursor: state.Cursor{After: "evt_9"}},
	)
	if !errors.Is(err, state.ErrNotFound) {
		t.Errorf("SaveCursors naming an unknown endpoint = %v; want ErrNotFound", err)
	}
	if c, _ := s.Cursor("hook", "beta"); c.After != "evt_2" {
		t.Errorf("after a failed SaveCursors, Cursor(hook, beta) = %+v; want evt_2 kept", c)
	}
	if err := s.SaveCursors(); err != nil {
		t.Errorf("SaveCursors() = %v", err)
	}
	if _, err := s.Cursors("nope"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Cursors(nope) = %v; want ErrNotFound", err)
	}
	if _, err := s.Cursor("nope", "acme"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Cursor(nope, acme) = %v; want ErrNotFound", err)
	}
}

func testFailedDeliveries(t *testing.T, h Harness, s Store) {
	if _, err := s.RegisterEndpoint("hook", "https://a.example/hook"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterEndpoint("other", "https://b.example/hook"); err != nil {
		t.Fatal(err)
	}
	f := func(ev, org string, status int) state.FailedDelivery {
		return state.FailedDelivery{Endpoint: "hook", EventID: ev, Event: state.EventUserCreated, Org: org, Attempts: 8,
			LastStatus: status, LastError: "HTTP " + ev, FailedAt: t0}
	}
	f2, f1, f3 := f("evt_2", "acme", 500), f("evt_1", "beta", 0), f("evt_3", "acme", 404)
	for _, fd := range []state.FailedDelivery{f2, f1, f3} {
		if err := s.MarkFailed(fd); err != nil {
			t.Fatal(err)
		}
	}
	// The cursor moved past each failed event.
	if c, _ := s.Cursor("hook", "acme"); c.After != "evt_3" {
		t.Errorf("Cursor(hook, acme) = %+v; want After evt_3", c)
	}
	if c, _ := s.Cursor("hook", "beta"); c.After != "evt_1" {
		t.Errorf("Cursor(hook, beta) = %+v; want After evt_1", c)
	}
	for _, tc := range []struct {
		after string
		limit int
		want  []state.FailedDelivery
	}{
		{"", 0, []state.FailedDelivery{f1, f2, f3}},
		{"", 2, []state.FailedDelivery{f1, f2}},
		{"evt_1", 1, []state.FailedDelivery{f2}},
		{"evt_15", 0, []state.FailedDelivery{f2, f3}},
		{"evt_3", 0, nil},
	} {
		got, err := s.FailedDeliveries("hook", tc.after, tc.limit)
		if err != nil || !cmp.Equal(tc.want, got) {
			t.Errorf("FailedDeliveries(hook, %q, %d) = %+v, %v; want %+v", tc.after, tc.limit, got, err, tc.want)
		}
	}
	if got, err := s.FailedDelivery("hook", "evt_2"); err != nil || !cmp.Equal(f2, got) {
		t.Errorf("FailedDelivery(hook, evt_2) = %+v, %v; want %+v", got, err, f2)
	}
	for _, tc := range [][2]string{{"hook", "evt_9"}, {"other", "evt_2"}, {"nope", "evt_2"}} {
		if _, err := s.FailedDelivery(tc[0], tc[1]); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("FailedDelivery(%s, %s) = %v; want ErrNotFound", tc[0], tc[1], err)
		}
	}
	if n, err := s.CountFailed("hook"); err != nil || n != 3 {
		t.Errorf("CountFailed(hook) = %d, %v; want 3", n, err)
	}
	if n, err := s.CountFailed("other"); err != nil || n != 0 {
		t.Errorf("CountFailed(other) = %d, %v; want 0", n, err)
	}
	if err := s.ClearFailed("hook", "evt_2"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearFailed("hook", "evt_2"); err != nil {
		t.Errorf("ClearFailed of an absent entry = %v; want nil", err)
	}
	if err := s.ClearFailed("nope", "evt_2"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("ClearFailed(nope) = %v; want ErrNotFound", err)
	}
	if got, _ := s.FailedDeliveries("hook", "", 0); !cmp.Equal([]state.FailedDelivery{f1, f3}, got) {
		t.Errorf("FailedDeliveries after ClearFailed = %+v; want evt_1, evt_3", got)
	}
	if n, _ := s.CountFailed("hook"); n != 2 {
		t.Errorf("CountFailed(hook) after ClearFailed = %d; want 2", n)
	}
	// Marking the same event failed again replaces the entry.
	f3b := f3
	f3b.Attempts, f3b.LastError = 9, "again"
	if err := s.MarkFailed(f3b); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.FailedDelivery("hook", "evt_3"); !cmp.Equal(f3b, got) {
		t.Errorf("FailedDelivery after marking again = %+v; want %+v", got, f3b)
	}
	if _, err := s.FailedDeliveries("nope", "", 0); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("FailedDeliveries(nope) = %v; want ErrNotFound", err)
	}
	if err := s.MarkFailed(state.FailedDelivery{Endpoint: "nope", EventID: "evt_1", Org: "acme"}); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("MarkFailed for an unknown endpoint = %v; want ErrNotFound", err)
	}
}
