package state

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// emitN commits one batch of n events for org and returns their ids.
func emitN(t *testing.T, db *DB, org, batch string, n int) []string {
	t.Helper()
	b := Batch{ID: batch, Org: org, Status: BatchPending}
	if _, err := db.CreateBatch(b); err != nil {
		t.Fatal(err)
	}
	b.Status = BatchApplied
	var ids []string
	err := db.ApplyBatch(b, nil, func(a *ApplyTx) error {
		for i := range n {
			id, err := a.Emit(EventUserCreated, fmt.Appendf(nil, `{"n":%d}`, i))
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestDeliveryCursors(t *testing.T) {
	db, path := openTest(t)
	if err := db.CreateOrg(Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	before := emitN(t, db, "acme", "B1", 3)
	st, err := db.RegisterEndpoint("wh_1", "http://a")
	if err != nil || st.Start != before[2] {
		t.Fatalf("RegisterEndpoint = %+v, %v; want Start %s", st, err, before[2])
	}
	ids := emitN(t, db, "acme", "B2", 3)
	if c, err := db.Cursor("wh_1", "acme"); err != nil || c.After != before[2] {
		t.Errorf("Cursor(new endpoint) = %+v, %v; want after %s", c, err, before[2])
	}
	if n, _ := db.CountEvents("acme", before[2]); n != 3 {
		t.Errorf("CountEvents(after start) = %d; want 3", n)
	}
	retry := &Retry{EventID: ids[1], Attempts: 2, NextAt: time.Unix(1e9, 0).UTC(), LastStatus: 500}
	if err := db.SaveCursors(CursorUpdate{"wh_1", "acme", Cursor{After: ids[0], Retry: retry}}); err != nil {
		t.Fatal(err)
	}
	// A late writer with an older position changes nothing.
	if err := db.SaveCursors(CursorUpdate{"wh_1", "acme", Cursor{After: before[0]}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveCursors(CursorUpdate{"nope", "acme", Cursor{}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SaveCursors(unknown endpoint) = %v; want ErrNotFound", err)
	}
	if err := db.MarkFailed(FailedDelivery{Endpoint: "wh_1", EventID: ids[1], Org: "acme", Attempts: 10}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Cursor("wh_1", "acme")
	if err != nil || c.After != ids[1] || c.Retry != nil {
		t.Errorf("Cursor after MarkFailed = %+v, %v; want after %s, no retry", c, err, ids[1])
	}
	f, err := db.FailedDeliveries("wh_1", "", 0)
	if err != nil || len(f) != 1 || f[0].EventID != ids[1] {
		t.Errorf("FailedDeliveries = %+v, %v", f, err)
	}
	if n, _ := db.CountFailed("wh_1"); n != 1 {
		t.Errorf("CountFailed = %d; want 1", n)
	}
	if err := db.ClearFailed("wh_1", ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FailedDelivery("wh_1", ids[1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("FailedDelivery after clear = %v; want ErrNotFound", err)
	}

	// Disabled by a 410, enabled again when the URL changes.
	if _, err := db.SetEndpointDisabled("wh_1", true, "410"); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.RegisterEndpoint("wh_1", "http://a"); !st.Disabled || st.Start != before[2] {
		t.Errorf("RegisterEndpoint(same URL) = %+v; want still disabled, same start", st)
	}
	if st, _ := db.RegisterEndpoint("wh_1", "http://b"); st.Disabled || st.URL != "http://b" {
		t.Errorf("RegisterEndpoint(new URL) = %+v; want enabled with the new URL", st)
	}
	if all, _ := db.Endpoints(); len(all) != 1 || all[0].ID != "wh_1" {
		t.Errorf("Endpoints() = %+v", all)
	}
	raw, err := db.EventJSON(ids[0])
	if err != nil || len(raw) == 0 || raw[0] != '{' {
		t.Errorf("EventJSON = %s, %v", raw, err)
	}
}

func TestPurgeEventsKeepsPending(t *testing.T) {
	db, _ := openTest(t)
	for _, o := range []string{"acme", "other"} {
		if err := db.CreateOrg(Org{Name: o}); err != nil {
			t.Fatal(err)
		}
	}
	acme := emitN(t, db, "acme", "B1", purgeTxSize+20) // more than one transaction
	emitN(t, db, "other", "B2", 5)
	if err := db.MarkFailed(FailedDelivery{Endpoint: "wh", EventID: acme[0], Org: "acme"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkFailed(unregistered) = %v; want ErrNotFound", err)
	}
	db.RegisterEndpoint("wh", "http://x")
	if err := db.MarkFailed(FailedDelivery{Endpoint: "wh", EventID: acme[0], Org: "acme"}); err != nil {
		t.Fatal(err)
	}
	keep := acme[purgeTxSize+9] // delivered up to here
	n, err := db.PurgeEvents(context.Background(), time.Now().Add(time.Hour), func(org string) (string, bool) {
		return keep, org == "acme"
	})
	if err != nil || n != purgeTxSize+10+5 {
		t.Fatalf("PurgeEvents = %d, %v; want %d", n, err, purgeTxSize+15)
	}
	evs, _ := db.Events("", "", 0)
	if len(evs) != 10 || evs[0].ID != acme[purgeTxSize+10] {
		t.Errorf("after purge: %d events from %v; want 10 from %s", len(evs), evs[0].ID, acme[purgeTxSize+10])
	}
	if f, _ := db.FailedDeliveries("wh", "", 0); len(f) != 0 {
		t.Errorf("failed deliveries of purged events remain: %+v", f)
	}
	// Nothing older than the cut-off: nothing purged.
	if n, _ := db.PurgeEvents(context.Background(), time.Now().Add(-time.Hour), func(string) (string, bool) { return "", false }); n != 0 {
		t.Errorf("PurgeEvents(an hour ago) = %d; want 0", n)
	}
	if id := EventIDAt(time.Now().Add(-time.Hour)); id >= evs[0].ID {
		t.Errorf("EventIDAt(an hour ago) = %s; want below %s", id, evs[0].ID)
	}
}
