// Package ingest is rosterd's core: from a completed upload to an applied
// batch (SPEC §5 and §6).
//
// A Pipeline keeps one loop per organization. Notifications (sftpd's
// Notify for completed uploads, an fsnotify watcher and a start-up scan
// for files placed by other means) collect in the loop until the
// organization's settle window passes without a new one; the files then
// form a batch. The batch is recorded, its files are copied into
// archive/ORG/BATCH/ (hashed while copied), checked with package schema,
// compared with the organization's snapshot, guarded against mass
// deletion, and applied with its events in one state transaction. Every
// batch gets a report (text, JSON, issues CSV) in ORG/reports/ and in its
// archive folder. Plan runs the same path and applies nothing; Approve
// releases a held batch.
//
// Order (order.go; SPEC §5: the directory never goes back in time): a
// completion's time is the file's change time, whoever placed it. A batch
// takes only completions the organization has not processed (the state
// keeps, per organization, the newest completion per file name and per
// kind), and of several of one kind the most recently completed, then the
// name that sorts last; the others are named in its report as ignored. A
// run that fails outside the files (a full disk, an I/O error, a state
// error, a panic, recovered) leaves the batch waiting for a retry with
// backoff (Config.RetryMin doubling to RetryMax); the organization's next
// settled upload forms a batch that supersedes it and takes over its file
// of each kind the upload lacks, so the newest file of each kind goes on
// and nothing older is applied after it (its archived copy is linked
// under from/BATCH/, so that a new upload of the same name, a second
// export.zip, never shares it). A .zip upload is one completion of kind
// zip; once archived, its members are the newest files of their kinds
// too, and a member and a plain file of one kind in one batch are
// ordered like two uploads. At start-up an interrupted batch
// older than a batch with an outcome is superseded, never redone. The
// operations ingest asks of the state are per batch (FormBatch,
// RecordArchived, RecordFailure, SupersedeBatch, RecordSetAside, the
// applies), each one transaction.
//
// It does not deliver events (ingest/webhook), serve HTTP (ingest/httpapi)
// or accept uploads (sftpd).
//
// Exports as they come (SPEC §4): an organization's mapping reaches the
// checker through the batch's policy; .gz, .zip and OpenPGP (.gpg, .pgp,
// .asc) uploads are archived as uploaded and decoded from the archive copy
// each time the batch is read, streamed, on a goroutine of their own
// (unwrap.go, unwrap_zip.go, pgp.go); the organization's OpenPGP keys are
// files under Config.KeysRoot (pgp_keys.go). What cannot be decoded is a
// schema.InputError: the file's error in the report, not a retry.
//
// Reports: the organization's copy in ORG/reports/ is Report.ForCustomer
// (no operator's notes); the stored report and the archive copy keep them.
// A held batch lists who would go (removed.go). A completed .csv upload
// that no name or pattern processes gets an ignored notice (ignored.go),
// a record that supersedes nothing.
//
// Disk space: Space (storage.go) is what sftpd asks before and during
// uploads (free space on the file systems, the organization's quota of
// folder, reports and archive) and what /readyz asks; the pipeline keeps
// its counts of archive and reports up to date as it writes and prunes.
// Archive copies keep an upload's holes, and a file with holes is rejected
// (sparse.go). pruneArchive keeps the newest ArchiveBatches or those
// younger than ArchiveKeep, and prunes further, oldest first, while an
// organization is over its quota.
//
// Group ids: a group with a group_id in groups.csv has that id; otherwise
// it keeps the id of the existing group of the same name, or gets
// DerivedGroupID(org, name), "grp_" + 32 hex digits of SHA-256.
//
// Applying: a batch of at most Config.StageAbove changes (default 4096)
// is applied in one state transaction. A larger one is staged
// (state.ApplyBatchStaged): its snapshot changes and events are written in
// transactions of Config.StageTxChanges changes (default 16,384) into
// buckets readers do not see, then one small transaction makes the new
// snapshot, all the events, the batch record and the report visible
// together (SPEC §6): the batch is applied there. A change onto a
// non-empty snapshot is staged as an overlay read over the base; once the
// report is written and delivery woken, the loop merges it into the base
// (state.DB.MergeOverlay), before the organization's next batch. Readers
// see the same snapshot before, during and after the merge, so the batch
// does not wait for it. A crash before the flip leaves the batch
// processing: the staging is discarded and the batch redone from its
// archive; a crash during the merge leaves it to the next apply. Memory
// therefore stays bounded by the staging transaction, not the upload.
//
// Reading users.csv: the schema checker reads and checks the rows (its
// reader tokenises on a goroutine of its own), and the differ compares
// each row with the stored user on another goroutine, fed batches of rows
// through a channel (readUsers in diff_users.go): the three share the cores.
// Unless the file's first rows come in the snapshot's key order (an
// export sorted by user id, whose rows a cursor meets in passing), the
// differ then reads the stored users once, in key order, keeping per user
// the hash of its id and of its stored value (stored.go): a row is then
// compared by hash in memory, whatever the order of the file's rows, and
// only a changed row looks its stored user up (for previous_attributes).
// The scan that lists the deleted users meets the stored users in the
// same order and finds each one's row by index.
//
// Repeated uploads: when every file of a batch has the name, kind and
// SHA-256 (computed while archiving) of the files of the organization's
// last applied or unchanged batch, and the policy and limits are the ones
// that batch ran with, the batch is unchanged without parsing: it is still
// archived, recorded and reported (rows, counts and warnings repeated from
// that batch). identical.go.
//
// Memberships on day 2: each user's groups have an order-independent
// 128-bit hash of their ids (state.GroupSetHash). With users.csv and
// user_groups.csv, the differ subtracts the hash of each group a user has
// in the file, then adds each user's stored one, summed in one scan of the
// membership index (state.SnapshotTx.ForEachGroupSet; nothing stores the
// hashes, so changing memberships writes nothing more): only the users
// left with a non-zero difference, and the deleted users, have their
// memberships compared one by one (a seek each), in the order a scan of
// all the stored memberships would meet them. Without users.csv, the
// differ sorts the file's memberships and scans the stored ones; onto a
// snapshot with no memberships (a first upload, or the groups files after
// users.csv), every membership of the file is added as it is read.
// changedMemberships in diff_members.go.
//
// Groups derived from users.csv (the organization's groups_from_columns):
// the checker gives each row's groups with the row, and the comparison
// goroutine takes them right after the row's user through addMember, the
// function user_groups.csv's rows go through; a batch with users.csv then
// has memberships whether or not it has user_groups.csv, and nothing
// after tells a derived membership from an uploaded one (derived.go).
//
// Order of the writes: the created and updated users and the added
// memberships are spilled in sorted runs and merged (spill.go), so that
// the apply writes every bucket of the snapshot in key order, whatever
// the order of the file: bbolt holds a transaction's new keys in unsplit
// nodes until it commits, and random keys cost a move of half a node at
// every insert and a rewrite of pages all over the tree at every commit.
// The apply writes on one goroutine; the runs are read back and merged
// on another, a few batches of records ahead (spill.sortedAhead). A
// spilled membership is its key alone (the pair of ids). The deleted
// users and removed memberships come from scans, in key order already.
//
// Measured figures (each phase against a bare encoding/csv read of the
// same files, on both shapes of export, with the commands that reproduce
// them) are in BENCHMARKS.md, "Ingest".
//
// Caveats:
//   - bbolt has one writer: the transactions of organizations run one at
//     a time (the diffs, in read transactions, run in parallel), and a
//     staged apply interleaves its transactions with other writers.
//   - The differ keeps about 42 bytes per user of the upload (its hash,
//     an index, the group-set hash difference), 28 per stored user (the
//     hashes of its id and value, the index of its row) and 8 per
//     membership (its user and group): about 95 MB for a million users
//     with three groups each; every change is spilled to temporary files,
//     sorted in runs of 8 MB. Without users.csv, onto a snapshot with
//     memberships, it keeps 16 bytes per membership instead and spills
//     the file's memberships. The schema checker keeps
//     its own tables (about 85 MB at a million users). Without a memory
//     limit the garbage collector lets the heap grow to about twice that;
//     the daemon sets one ([limits] memory, 256 MiB). A batch of 100k rows
//     or more returns the diff's memory to the system before it applies.
//   - A day-2 batch reads the whole snapshot (its users, and its
//     membership index to sum the group-set hashes) whatever the size of
//     the change: its cost grows with the organization, not the change.
//     Its users.csv step keeps both cores busy (the checker's two
//     goroutines and the comparison), so only less work per row would
//     make it faster; the merge after it is bounded by the pages the
//     changes fall on. Merging every few batches instead would save less
//     than half of it (five days of 2 % changes fall on about three times
//     the pages of one) and make every read and staging look through more
//     than one overlay.
//   - The first upload (and the groups files after users.csv) write new
//     buckets in key order without lookups, build the group index once at
//     the end and store events in blocks of about 2 KB (state). rosterd's
//     copy of bbolt (third_party/go.etcd.io/bbolt, PATCHES.md) appends a
//     key greater than the bucket's last to its rightmost leaf without a
//     search, and writes runs of consecutive pages in one call; what is
//     left is about 8 million keys at a million users (users, the batch's
//     copies of them, memberships and the group index), each cloned and
//     held in a node until its staging transaction commits, and 1.6 GB
//     written, each staging commit synced.
//   - Files the watcher or the scan found are taken only once their size
//     and modification time stood still for the settle window, and at
//     least a second, since nothing says when an outside writer is done.
//   - Completion times are change times, whose clock ticks coarsely
//     (milliseconds): two uploads of one kind in one tick are ordered by
//     name. A change of mode or times moves a file's change time: a file
//     already processed is still recognized by its record (size and
//     modification time, or content), but one that was never processed
//     and older than the last of its kind stays older only by its time.
//     A clock set back makes files placed by other means look old until
//     it catches up; they are logged and reported as ignored.
//   - A taken-over file is a hard link to the superseded batch's archived
//     copy, under from/BATCH/ in the new batch's archive folder (a copy
//     where links fail). The quota counts linked blocks once (by inode);
//     du and the operator's own tools may count them per folder.
//   - The deleted users and the added and removed memberships are found
//     through 96-bit hashes of what the files hold; a collision (about
//     2^-50 for three million memberships) would keep a user that should
//     have been deleted, or miss a membership's change; so would two group
//     sets of one user with equal 128-bit group-set hashes (about 2^-128
//     a user). A row is taken as unchanged when the 64-bit hash of its
//     encoded record equals the stored one's (two different records
//     collide with a chance of about 2^-64 each), and a user_groups.csv
//     row without users.csv finds its user by the 96-bit hash of its id.
//   - Events within one category follow the snapshot's key order: user
//     ids for users created and updated, and for memberships added the
//     user id's length, the user id, then the group id; deleted users and
//     removed memberships follow the scans that find them (the same
//     orders, except the memberships a groups.csv rename moves, group by
//     group). The categories follow SPEC §6.
package ingest
