// Package state is rosterd's durable memory: the only package that imports
// bbolt. It owns organizations and their keys, and (in files of their own)
// each organization's snapshot, batches with their reports, events (the
// outbox), delivery state and the audit trail.
//
// Layout of rosterd.db: top-level buckets are created at Open and never
// renamed; per-organization data sits in a nested bucket named after the
// organization, so removing an organization is one DeleteBucket per area.
//
//	meta        schema_version -> uint64 (big endian)
//	orgs        org name -> Org (JSON)
//	keys        org/ fingerprint -> Key (JSON)
//	snapshots   org/ ... (users, groups, memberships, indexes)
//	batches     org/ ... (batch records and stored reports)
//	events      event id -> Event (JSON), ids sort in emission order
//	deliveries  webhook delivery cursors and retry state
//	audit       org/ count, records/ id -> AuditRecord: the SFTP side's audit trail
//
// Caveats: byte slices read from bbolt are valid only inside their
// transaction; every method here copies what it returns. bbolt allows one
// writer at a time, so long write transactions (applying a big batch)
// delay other writers; readers are never blocked. Open fails after a
// second if another process holds the database (bbolt's file lock), which
// is how a second daemon on the same data directory is refused.
package state
