package main

import (
	"github.com/rosterd/rosterd/ingest/httpapi"
	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
)

// Both stores serve what the consumers declare they need, so that serve
// can pass either (SPEC §11: `--store postgres://…`, the bbolt file
// without it). ingest's own Store comes with the apply's reshaping.
var (
	_ webhook.Store = (*state.DB)(nil)
	_ webhook.Store = (*postgres.DB)(nil)
	_ httpapi.Store = (*state.DB)(nil)
	_ httpapi.Store = (*postgres.DB)(nil)
)
