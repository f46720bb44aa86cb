// Package httpapi is rosterd's HTTP API (SPEC §8): health, organizations
// and keys, batches and plans, the events feed, the recipient store,
// webhooks and /metrics.
//
// Every handler answers JSON. Everything under /v1 needs the bearer token.
// Lists take limit (default 100, max 1000) and after (an opaque cursor) and
// answer {"data": [...], "list_metadata": {"after": ... or null}}. Errors
// answer {"error": {"code": ..., "message": ...}}: the message is for the
// client and never carries a server path or an internal cause, which is
// logged instead.
//
// Each area registers its routes from its own file (orgs.go, keys.go,
// health.go, batches.go, events.go, directory.go, webhooks.go, audit.go,
// status.go, setuplinks.go, setup.go, summary.go). Additions to SPEC §8's
// list: GET /v1/organizations/{org}/audit, the audit trail; GET
// /v1/status, behind `rosterd status`; /v1/organizations/{org}/setup_links
// and the /v1/setup routes a setup link's token opens (SPEC §10); GET
// /v1/organizations/{org}/summary; users?email= and events?since=.
// docs/openapi.json describes every route; a test keeps the two in step.
//
// The web console and setup page (package web) make their changes through
// this handler, in process, so they can do nothing it refuses.
//
// Only cmd/rosterd imports this package.
package httpapi
