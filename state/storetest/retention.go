package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterd/rosterd/state"
)

func testPurgeEvents(t *testing.T, h Harness, s Store) {
	ids := feed(t, h, s)
	if _, err := s.RegisterEndpoint("hook", "https://a.example/hook"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ids[0], ids[2]} {
		if err := s.MarkFailed(state.FailedDelivery{Endpoint: "hook", EventID: id, Org: "acme", FailedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	// Before every event: nothing goes.
	none := func(string) (string, bool) { return "", false }
	if n, err := s.PurgeEvents(context.Background(), time.Now().Add(-time.Hour), none); err != nil || n != 0 {
		t.Errorf("PurgeEvents(an hour ago) = %d, %v; want 0", n, err)
	}
	if evs, _ := s.Events("", "", 0); len(evs) != 6 {
		t.Fatalf("after purging nothing, %d events; want 6", len(evs))
	}
	// Everything is old, but an endpoint holds acme's events after
	// ids[1] back: acme's first batch goes in part (ids[0], ids[1]),
	// beta's whole.
	var asked []string
	keep := func(org string) (string, bool) {
		asked = append(asked, org)
		if org == "acme" {
			return ids[1], true
		}
		return "", false
	}
	n, err := s.PurgeEvents(context.Background(), time.Now().Add(time.Hour), keep)
	if err != nil || n != 4 {
		t.Errorf("PurgeEvents(an hour ahead, keeping acme after ids[1]) = %d, %v; want 4", n, err)
	}
	if !cmp.Equal([]string{"acme", "beta"}, asked) {
		t.Errorf("keepAfter asked for %v; want acme, beta", asked)
	}
	evs, err := s.Events("", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{ids[2], ids[5]}, eventIDs(evs)); diff != "" {
		t.Errorf("events left mismatch (-want +got):\n%s", diff)
	}
	for _, id := range []string{ids[0], ids[1], ids[3], ids[4]} {
		if _, err := s.EventJSON(id); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("EventJSON(%s) of a purged event = %v; want ErrNotFound", id, err)
		}
	}
	if raw, err := s.EventJSON(ids[2]); err != nil || len(raw) == 0 {
		t.Errorf("EventJSON(%s) of a kept event = %s, %v", ids[2], raw, err)
	}
	for _, tc := range []struct {
		org, after string
		want       int
	}{{"acme", "", 2}, {"beta", "", 0}, {"acme", ids[0], 2}, {"acme", ids[2], 1}} {
		if got, err := s.CountEvents(tc.org, tc.after); err != nil || got != tc.want {
			t.Errorf("CountEvents(%s, %q) after purging = %d, %v; want %d", tc.org, tc.after, got, err, tc.want)
		}
	}
	if id, _ := s.LastEventID(); id != ids[5] {
		t.Errorf("LastEventID() after purging = %s; want %s", id, ids[5])
	}
	// Failed deliveries of events older than the cutoff are forgotten,
	// whatever keepAfter says.
	if got, err := s.FailedDeliveries("hook", "", 0); err != nil || len(got) != 0 {
		t.Errorf("failed deliveries after purging = %+v, %v; want none", got, err)
	}
	// Again with nothing held back: the rest goes.
	if n, err := s.PurgeEvents(context.Background(), time.Now().Add(time.Hour), none); err != nil || n != 2 {
		t.Errorf("PurgeEvents(everything) = %d, %v; want 2", n, err)
	}
	if evs, _ := s.Events("", "", 0); len(evs) != 0 {
		t.Errorf("after purging everything, events %v; want none", eventIDs(evs))
	}
	if n, err := s.PurgeEvents(context.Background(), time.Now().Add(time.Hour), none); err != nil || n != 0 {
		t.Errorf("PurgeEvents on an empty feed = %d, %v; want 0", n, err)
	}
}

func testPurgeEventsStops(t *testing.T, h Harness, s Store) {
	feed(t, h, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.PurgeEvents(ctx, time.Now().Add(time.Hour), func(string) (string, bool) { return "", false }); !errors.Is(err, context.Canceled) {
		t.Errorf("PurgeEvents with a cancelled context = %v; want context.Canceled", err)
	}
	if evs, _ := s.Events("", "", 0); len(evs) != 6 {
		t.Errorf("after a cancelled purge, %d events; want all 6", len(evs))
	}
}
