// Package webhook delivers events to webhook endpoints (SPEC §7): one
// event per POST, signed the Standard Webhooks way and optionally the
// WorkOS way, strictly in order per endpoint and organization, retried
// with backoff, with its progress in the store so that a restart loses
// nothing. It also runs the retention purge of the event feed.
//
// It owns: signing (Sign, SignWorkOS, Secret), the HTTP client, the
// Deliverer with its workers, the delivery metrics, Redeliver and the
// retention schedule. It does not own the events (state writes them in the
// transaction that applies a batch), the API handlers (ingest/httpapi), or
// reading the configuration (cmd/rosterd builds the Endpoints).
//
// # Requests
//
// The body is the event's JSON exactly as stored (id, event,
// organization_id, batch_id, created_at, data). Headers: webhook-id (the
// event id, the same on every attempt, so a receiver drops repeats),
// webhook-timestamp (Unix seconds of this attempt), webhook-signature
// ("v1," + base64 HMAC-SHA256 over "id.timestamp.body" keyed with the
// base64-decoded secret), and with Endpoint.WorkOS also WorkOS-Signature
// ("t=<ms>, v1=<hex HMAC-SHA256 over "t.body">", keyed with the whole
// secret string "whsec_..." as configured: paste that string where the
// WorkOS SDK asks for the webhook secret). One attempt is bounded by
// Config.Timeout (10 s), connections are kept alive, redirects are not
// followed (a 3xx is a failure).
//
// # Order, retries and failure
//
// Per (endpoint, organization) one worker goroutine sends the events in
// id order; it sends an event only when the previous one is delivered
// (2xx) or failed. Organizations never wait for each other. A failed
// attempt is retried after the next delay of Config.Schedule (SPEC §7:
// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h), jittered by
// ±20 %, or after the receiver's Retry-After (seconds or HTTP date,
// capped at 24 h) when it sends one. After the last delay the event is
// marked failed: it is listed (state.FailedDeliveries, GET
// /v1/webhooks/{id}/failed) and the next event goes. 410 Gone disables the
// endpoint: nothing more is sent, the event stays pending, the cursor
// stays put.
//
// # Where an endpoint starts, and restarts
//
// An endpoint seen for the first time (by id) starts after the last event
// committed at that moment: adding an endpoint does not replay 30 days of
// events. An organization the endpoint has no cursor for starts there
// too. The cursor (last event delivered or failed) and the retry state of
// the next event (attempts, next time) live in bbolt: after a restart a
// worker resumes exactly there and waits out the stored retry time.
// Cursors of delivered events are written in groups by one flusher (one
// transaction for all delivered meanwhile), so a crash can send the last
// few delivered events again, and an event in flight at a crash is sent
// again: delivery is at least once; receivers drop repeats by webhook-id.
//
// # Redelivery
//
// Redeliver sends one event once more, out of band: it does not wait for
// or change the order of regular deliveries and does not move any
// cursor. By default it targets the endpoints that list the event as
// failed, or else every endpoint covering its organization. A 2xx removes
// it from the failed list and re-enables an endpoint that a 410 disabled;
// the worker then resumes from the cursor. Changing a disabled endpoint's
// URL in the configuration (explicit id) enables it too.
//
// # Wake, not polling
//
// Workers start at Run for every organization with pending events and on
// Wake(org), which the pipeline calls after applying a batch with events,
// and exit when caught up. An idle Deliverer holds no timer except the
// retention ticker; a retry wait is a timer.
//
// # Several instances
//
// Instances of a fleet share one store (state/postgres) and all run a
// Deliverer with the same endpoints (SPEC §11). Each (endpoint,
// organization) is delivered by one instance at a time, under its
// delivery lease (state.DeliveryLease, Config.LeaseTTL): a worker takes
// it when it finds events to send, renews it beside the work
// (state.KeepLease), stops when it is lost, and writes its position
// before it gives it up, so the next holder resumes exactly there. A
// worker that finds the lease held leaves the events to the holder and
// tries again a lease's time later: the work of an instance that died is
// taken over within about twice Config.LeaseTTL, from the last position
// it wrote (the few events it had sent since go again: at least once).
// Wake comes from each instance's own pipeline and from the store's
// notifications (cmd/rosterd wires a postgres.Listener to Wake); at every
// Wake("") (the listener's poll) the Deliverer also reads whether each
// endpoint is disabled, which another instance may have changed. The
// retention purge runs under state.RetentionLease, on one instance at a
// time. On bbolt the leases are the one process's and always granted.
//
// # Retention
//
// Every Config.RetentionEvery (an hour) and at start, events older than
// Config.Retention (30 days) are deleted in transactions of a few hundred,
// so ingest never waits long. An event is kept while any configured
// endpoint covering its organization, enabled or disabled, has not
// delivered or failed it, as written in bbolt. Failed deliveries older
// than the retention are forgotten with their events. Endpoints removed
// from the configuration hold nothing back.
//
// # Caveats
//
//   - A holder cut off from the store, but not from its receivers, goes on
//     sending until state.KeepLease reports the lease lost: up to a third
//     of Config.LeaseTTL after the lease expired (longer while one
//     renewal hangs, up to the store's operation timeout). Another
//     instance may have taken over by then, and the receiver may get
//     those events from both, out of order. A dead instance sends
//     nothing, so a crash never reorders.
//   - There is one worker per (endpoint, organization) with pending
//     events, so thousands of active organizations open up to as many
//     connections to one receiver at once.
//   - Metrics: rosterd_webhook_deliveries_total{endpoint,outcome},
//     rosterd_webhook_delivered_event_age_seconds{endpoint} (commit to
//     2xx), rosterd_webhook_delivery_lag_seconds{endpoint} (age of the
//     oldest event being sent or retried, 0 when caught up; 0 for a
//     disabled endpoint), rosterd_webhook_pending_events{endpoint} and
//     rosterd_webhook_endpoint_enabled{endpoint}. The pending count walks
//     the per-organization event index at each scrape: O(pending events).
package webhook
