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
// through a channel (readUsers in diff.go): the three share the cores.
//
// Repeated uploads: when every file of a batch has the name, kind and
// SHA-256 (computed while archiving) of the files of the organization's
// last applied or unchanged batch, and the policy and limits are the ones
// that batch ran with, the batch is unchanged without parsing: it is still
// archived, recorded and reported (rows, counts and warnings repeated from
// that batch). identical.go.
//
// Memberships on day 2: the snapshot keeps, beside each user's
// memberships, an order-independent 128-bit hash of the user's group ids
// (state.GroupSetHash, kept by the state with every membership change).
// With users.csv and user_groups.csv, the differ subtracts the hash of
// each group a user has in the file from the user's stored hash: only the
// users left with a non-zero difference, and the deleted users, have their
// memberships compared one by one (a seek each), in the order a scan of
// all the stored memberships would meet them. The scan of the stored users
// that finds the deleted users also collects those users' ids. Without
// users.csv, or on a snapshot written before the hashes existed, the
// differ sorts the file's memberships and scans the stored ones; onto a
// snapshot with no memberships, every membership of the file is added as
// it is read. changedMemberships in diff.go.
//
// Measured with `rosterbench ingest` (20 columns, 3 groups per user, day
// 2 changes 2 %: 54k snapshot changes at 1M users) on the 2-core VM, each
// phase in its own process with the daemon's default memory limit
// (GOMEMLIMIT=256MiB), ratios to the mean of a bare encoding/csv read of
// the same files run just before and one just after the phase (0.89 to
// 1.59 s at 1M users, 0.10 to 0.12 s at 100k). anon is the peak of
// RssAnon, sampled every 50 ms: the memory the daemon holds, which the
// issue's 300 MB is judged on. applied is validate+diff+apply up to the
// flip (events, report and snapshot visible); +merge adds the merge of
// the overlay that follows it (see Applying). Opening the database is not
// in these times (0.06 to 0.35 s at 1M users: see state's mmapFlags).
//
//	users phase               wall (s)      anon      db       applied×          +merge×
//	100k  first upload (2)    2.2 to 2.5    59 MB     131 MB   18 to 23          same
//	100k  day 2 (4)           0.49 to 0.74  52 MB     159 MB   2.9 to 4.2        4.2, 5.4 (2 runs)
//	100k  identical (2)       .064, .087     6 MB     —        0.47, 0.49 (wall)
//	1M    first upload (1)    51.5 (loaded) 232 MB    1.24 GB  12 (4.3 s read)   same
//	1M    day 2 (8)           4.3 to 5.7    226-243   1.30 GB  1.9 to 3.0, med 2.6  2.9 to 4.4, med 3.7
//	1M    identical (8)       .36 to .43     7-8 MB   —        0.33 to 0.45 (wall)
//
// The first upload at 1M users took 19 and 23 s (15 and 26 times the
// read) in earlier runs on a quieter machine; the one run above had a
// 1-minute load of 1.1 to 1.5 and a bare read four times its usual time.
// Before the database was mapped with MAP_POPULATE, day 2 at 1M users was
// 2.6 to 4.3 times the read to applied (median 3.3 over fourteen runs):
// each page of the snapshot the diff read cost a page fault in a freshly
// started process, 1.3 to 1.4 s of CPU on the comparison goroutine.
//
// Where day 2 at 1M users goes (wall, quieter runs): archive copy and
// SHA-256 0.35 to 0.4 s (not counted above); users.csv checked and
// compared 1.4 s (three goroutines on two cores: the checker's reader
// about 0.5 s of CPU, its checks 0.8 s, the differ's comparison about
// 1 s, a quarter of it the group-set hashes' cursor steps); user_groups.csv
// 0.6 to 0.75 s (with the sort of the user set, 0.25 s of CPU, beside it);
// deleted and changed users (a scan of the snapshot's users) 0.15 s;
// added and removed memberships 50 ms; staging 0.5 to 0.55 s; flip 1 ms;
// then the merge 1.1 to 1.6 s, nearly all bbolt rewriting the pages the
// changes fall on (2 % of the users, spread over all of them) and writing
// them to disk. The memory peak is in the diff: the checker's tables
// (about 85 MB, sized from the file size) and the differ's arrays (about
// 65 MB) under the 256 MiB soft limit; the apply stays near 140 MB.
//
// Caveats:
//   - bbolt has one writer: the transactions of organizations run one at
//     a time (the diffs, in read transactions, run in parallel), and a
//     staged apply interleaves its transactions with other writers.
//   - The differ keeps about 42 bytes per user of the upload (its hash,
//     an index, the group-set hash difference) and 8 per membership (its
//     user and group), about 65 MB for a million users with three groups
//     each; every change is spilled to temporary files. Without the
//     group-set hashes (no users.csv) it keeps 16 bytes per membership
//     instead and spills the file's memberships. The schema checker
//     keeps its own tables (about 85 MB at a million users). Without a
//     memory limit the garbage collector lets the heap grow to about
//     twice that; the daemon sets one ([limits] memory, 256 MiB). A batch
//     of 100k rows or more returns the diff's memory to the system before
//     it applies.
//   - Day 2 at a million users costs 1.9 to 3.0 times the bare read to
//     applied, 2.9 to 4.4 times with the merge: the three goroutines of
//     users.csv use both cores fully, so only less work per row would
//     make it faster; the merge is bounded by the pages it rewrites.
//     Merging every few batches instead would save less than half of it
//     (five days of 2 % changes fall on about three times the pages of
//     one) and make every read and staging look through more than one
//     overlay.
//   - The first upload writes a new generation in key order without
//     lookups, builds the group index once at the end and stores events
//     in blocks of about 2 KB (state); what is left of its 17 to 20 s of
//     staging is about 9M bbolt puts and about 290 commits.
//   - In a staged apply, the events of one category follow key order
//     within chunks of 16,384 changes taken in file order (a batch that
//     fits in one chunk is in key order).
//   - Files the watcher or the scan found are taken only once their size
//     and modification time stood still for the settle window, and at
//     least a second, since nothing says when an outside writer is done.
//   - The deleted users and the added and removed memberships are found
//     through 96-bit hashes of what the files hold; a collision (about
//     2^-50 for three million memberships) would keep a user that should
//     have been deleted, or miss a membership's change; so would two group
//     sets of one user with equal 128-bit group-set hashes (about 2^-128
//     a user).
//   - Events within one category (users created, memberships added …)
//     follow the order of the rows in the file; the categories follow
//     SPEC §6.
package ingest
