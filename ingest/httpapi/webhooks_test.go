package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/state"
)

func TestWebhooksAPI(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	var delivered atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		delivered.Add(1)
	}))
	defer recv.Close()
	srv, db := dirTestServer(t, Config{})
	if err := db.CreateOrg(state.Org{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	var eps []webhook.Endpoint
	for i := range 5 {
		eps = append(eps, webhook.Endpoint{ID: fmt.Sprintf("wh_%d", i), URL: recv.URL + fmt.Sprintf("/%d", i), Secret: webhook.GenerateSecret(), WorkOS: i == 1})
	}
	eps[4].Organizations = []string{"other"}
	d, err := webhook.New(webhook.Config{DB: db, Endpoints: eps, Schedule: []time.Duration{time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv.Config.Handler = New(Config{DB: db, Token: dirTestToken, Deliverer: d})

	var ids []string
	applySnapshot(t, db, "acme", func(a *state.ApplyTx) error {
		for i := range 5 {
			id, err := a.Emit(state.EventUserCreated, fmt.Appendf(nil, `{"object":"directory_user","id":"u%d"}`, i))
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	d.Wake("acme")
	deadline := time.Now().Add(10 * time.Second)
	// Every endpoint covering acme fails all five before the receiver is
	// mended, or a late retry would be delivered in the count below.
	for _, ep := range []string{"wh_0", "wh_1", "wh_2", "wh_3"} {
		for {
			f, _ := db.FailedDeliveries(ep, "", 0)
			if len(f) == 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("failed deliveries of %s = %d; want 5", ep, len(f))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	if got, want := pageAll(t, srv, "/v1/webhooks", 2), []string{"wh_0", "wh_1", "wh_2", "wh_3", "wh_4"}; !slices.Equal(got, want) {
		t.Errorf("GET /v1/webhooks paged = %v; want %v", got, want)
	}
	var list struct {
		Data []struct {
			Object, ID, URL, Signature string
			Enabled                    bool
			Organizations              []string
			Secret                     *string
		}
	}
	dirGet(t, srv, "GET", "/v1/webhooks", &list)
	if len(list.Data) != 5 || list.Data[1].Signature != "workos" || list.Data[0].Signature != "standard" ||
		!list.Data[0].Enabled || list.Data[0].Object != "webhook_endpoint" || list.Data[0].Secret != nil ||
		!slices.Equal(list.Data[4].Organizations, []string{"other"}) {
		t.Errorf("GET /v1/webhooks = %+v", list.Data)
	}

	var failed struct {
		Data []struct {
			Object   string `json:"object"`
			EventID  string `json:"event_id"`
			Attempts int    `json:"attempts"`
		} `json:"data"`
	}
	dirGet(t, srv, "GET", "/v1/webhooks/wh_0/failed?limit=10", &failed)
	if len(failed.Data) != 5 || failed.Data[0].EventID != ids[0] || failed.Data[0].Attempts != 2 || failed.Data[0].Object != "failed_delivery" {
		t.Errorf("GET failed = %+v", failed.Data)
	}
	// The failed list pages by event id (its "id" is the event id here).
	var got []string
	after := ""
	for {
		var p struct {
			Data []struct {
				EventID string `json:"event_id"`
			} `json:"data"`
			ListMetadata struct {
				After *string `json:"after"`
			} `json:"list_metadata"`
		}
		dirGet(t, srv, "GET", "/v1/webhooks/wh_0/failed?limit=2&after="+after, &p)
		for _, f := range p.Data {
			got = append(got, f.EventID)
		}
		if p.ListMetadata.After == nil {
			break
		}
		after = *p.ListMetadata.After
	}
	if !slices.Equal(got, ids) {
		t.Errorf("failed list paged = %v; want %v", got, ids)
	}
	if st := dirGet(t, srv, "GET", "/v1/webhooks/wh_9/failed", nil); st != http.StatusNotFound {
		t.Errorf("GET failed of an unknown endpoint = %d; want 404", st)
	}

	var red struct {
		Object string `json:"object"`
		Data   []webhook.Redelivery
	}
	if st := dirGet(t, srv, "POST", "/v1/events/"+ids[2]+"/redeliver?endpoint=wh_0", &red); st != 200 || len(red.Data) != 1 || red.Data[0].Delivered {
		t.Errorf("redeliver while broken = %d %+v; want one not delivered", st, red)
	}
	broken.Store(false)
	// No endpoint given: the ones that list it as failed, all four for acme.
	if st := dirGet(t, srv, "POST", "/v1/events/"+ids[2]+"/redeliver", &red); st != 200 || len(red.Data) != 4 || !red.Data[0].Delivered {
		t.Errorf("redeliver = %d %+v; want four delivered", st, red)
	}
	if n := delivered.Load(); n != 4 {
		t.Errorf("receiver got %d; want 4", n)
	}
	dirGet(t, srv, "GET", "/v1/webhooks/wh_0/failed", &failed)
	if len(failed.Data) != 4 || slices.ContainsFunc(failed.Data, func(f struct {
		Object   string `json:"object"`
		EventID  string `json:"event_id"`
		Attempts int    `json:"attempts"`
	}) bool {
		return f.EventID == ids[2]
	}) {
		t.Errorf("failed after redelivery = %+v; want 4 without %s", failed.Data, ids[2])
	}
	if st := dirGet(t, srv, "POST", "/v1/events/evt_nope/redeliver", nil); st != http.StatusNotFound {
		t.Errorf("redeliver unknown event = %d; want 404", st)
	}
	if st := dirGet(t, srv, "POST", "/v1/events/"+ids[2]+"/redeliver?endpoint=wh_4", nil); st != http.StatusNotFound {
		t.Errorf("redeliver to an endpoint not covering the organization = %d; want 404", st)
	}
}

func TestWebhooksWithoutDeliverer(t *testing.T) {
	srv, _ := dirTestServer(t, Config{})
	for _, r := range [][2]string{{"GET", "/v1/webhooks"}, {"GET", "/v1/webhooks/x/failed"}, {"POST", "/v1/events/evt_1/redeliver"}} {
		if st := dirGet(t, srv, r[0], r[1], nil); st != http.StatusServiceUnavailable {
			t.Errorf("%s %s without a deliverer = %d; want 503", r[0], r[1], st)
		}
	}
}
