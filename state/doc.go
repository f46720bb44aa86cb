// Package state is rosterd's durable memory: the only package that imports
// bbolt. It owns organizations and their keys, and (in files of their own)
// each organization's snapshot, batches with their reports, events (the
// outbox), delivery state and the audit trail.
//
// Layout of rosterd.db: top-level buckets are created at Open (or, for
// event_batches and staging, when first needed) and never renamed;
// per-organization data sits in a nested bucket named after the
// organization, so removing an organization is one DeleteBucket per area.
//
//	meta           schema_version, and the last event commit's sequence and time
//	orgs           org name -> Org (JSON)
//	keys           org/ fingerprint -> Key (JSON)
//	snapshots      org/ the snapshot: users (compact records), groups, names,
//	               a user's groups, a group's users, counters; see snapshot.go
//	batches        org/ batch records and stored reports; see batches.go
//	events         the commit log: first event id of a commit -> commit record
//	event_orgs     org/ an organization's commits
//	event_batches  org\x00batch/ a batch's events (type and references) and
//	               the users and groups they name, as they were; see events.go
//	staging        what a staged apply has written before its flip; see apply.go
//	deliveries     endpoint/ webhook delivery cursors, retry state, failed list
//	audit          org/ count, records/ id -> AuditRecord: the SFTP audit trail
//	completions    org/ newest/ kind -> newest Completion processed, files/
//	               name -> Completion: what batches took (completions.go)
//	setup_links    token SHA-256 -> SetupLink: the admins' setup links (setuplinks.go)
//
// Applying a batch makes snapshot, events, batch record and report visible
// together (apply.go): a small batch in one transaction, a large one
// staged over many small transactions and made visible by one small flip,
// so the memory of an apply does not grow with the batch. A staged change
// onto an existing snapshot is read as an overlay over it until
// MergeOverlay, which the caller runs after the batch, copies it in. A
// staged apply onto an empty snapshot (a first upload) writes a new
// generation that nothing reads before the flip: it skips the lookups of
// keys that sort after the last one written and builds the group index
// once, at the end, in key order (fresh.go). A batch's event records are
// stored in blocks of about 2 KB (events.go).
//
// Leases (lease.go) are kept in memory: a bbolt store has one process,
// which holds every lease. ContentHash (contenthash.go) digests an
// organization the same way from any store, to verify a copy.
//
// Caveats: byte slices read from bbolt are valid only inside their
// transaction; every method here copies what it returns. bbolt allows one
// writer at a time, so long write transactions (applying a big batch)
// delay other writers; readers are never blocked. Open fails after a
// second if another process holds the database (bbolt's file lock), which
// is how a second daemon on the same data directory is refused.
package state
