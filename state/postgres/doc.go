// Package postgres is rosterd's PostgreSQL store (SPEC §11): the state
// that package state keeps in a bbolt file, kept in a PostgreSQL (13 or
// later) database that several rosterd instances share. It is the only
// importer of pgx.
//
// Its methods have state.DB's names, signatures and semantics, so that the
// consumers' interfaces take either store; the contract suite in
// state/storetest runs against both. So far it implements organizations
// and their settings, keys, setup links, the audit trail, batches and
// their reports, completions, the snapshot reads the HTTP API makes, the
// events feed (reads and retention), webhook delivery state, leases, and
// the shared secrets (SSH host keys, API token) that bbolt deployments
// keep in files. The apply (which writes the snapshot and the events)
// comes next; docs/postgres-design.md has the inventory of what the
// consumers call, the interfaces, and the plan.
//
// The schema is plain SQL in migrations/, embedded, applied in order by
// Open or by Migrate (`rosterd migrate`) under an advisory lock, each
// migration in one transaction with its row in rosterd.schema_migrations.
// Everything lives in schema rosterd; the views directory_users,
// directory_groups, directory_group_members and events are the stable
// interface an application may read, and change only in the transaction
// that applies a batch.
//
// What state.DB gets from bbolt's single writer, DB gets from
// transactions and row locks, across instances: UpdateOrg and
// UseSetupLink hold the row they change; audit ids of an organization are
// drawn under its head row's lock; writes to an organization's batches
// and completions run under its batch head row's lock, one at a time;
// event ids under the one event_clock
// row's lock, taken last in the committing transaction, so that ids
// follow commit order everywhere.
//
// Leases (state/lease.go) say which instance runs an organization's
// batches and an endpoint's delivery to an organization. With
// Config.Fenced, the writes under a lease check it in their own
// transaction, so an instance that lost its lease cannot commit, and a
// takeover waits for a write in flight (leases.go).
//
// Writes notify the other instances (ChannelBatches, ChannelEvents) at
// commit; a Listener per instance hears them and polls as a fallback
// (notify.go).
//
// Caveats: times are kept to the microsecond (bbolt: nanoseconds). Every
// operation is bounded by Config.Timeout, since state.DB's methods take
// no context; Close cancels those in flight. Keys compare in byte order
// (COLLATE "C") whatever the database's collation. Events, delivery
// cursors and failed deliveries name organizations without foreign keys:
// they outlive a removed organization until retention. The secrets table
// holds private keys and the API token: grant it to rosterd's role only.
package postgres
