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
// Measured with `rosterbench ingest -rounds 2` (20 columns, 3 groups per
// user, day 2 changes 2 %: 54k snapshot changes at 1M users), 2 cores
// shared with other work (1-minute load 0.8 to 1.4), each phase in its
// own process, ratios to a bare encoding/csv read of the same files run
// just before it (0.8 to 1.1 s at 1M users, 75 to 133 ms at 100k: the
// ratios move 20 to 40 % with it; with load above 1 read the CPU ones).
// anon is the peak of RssAnon, sampled every 50 ms: the memory the daemon
// holds, which the 300 MB is judged on. hwm (VmHWM) adds the
// pages of the mmapped bbolt file the process touched, page cache the
// kernel reclaims; heap is the Go heap's peak, garbage included. The
// schema checker alone (no diff) costs 2.5 to 3.8 times the read and
// holds 360 MB anon at 1M users. Two runs each:
//
//	users phase         wall (s)    cpu (s)     anon    hwm     heap    db      wall×read   cpu×read
//	100k  first upload  4.2, 5.2    4.8, 6.2     86 MB   190 MB   80 MB  226 MB  38, 49      38, 51
//	100k  day 2         0.95, 0.93  1.05, 1.03   87 MB   225 MB   70 MB  226 MB  7.2, 12.3   6.7, 11.2
//	100k  identical     .045, .047  .063, .061    6 MB    18 MB    2 MB  226 MB  0.50, 0.62  0.61, 0.68
//	1M    first upload  40.9        44.7        462 MB   1.3 GB  340 MB  2.2 GB  36          37
//	1M    day 2         7.2, 8.3    7.1, 8.4    519 MB   1.9 GB  482 MB  2.2 GB  11.5, 10.6  10.5, 10.1
//	1M    identical     .36, .35    .46, .43      8 MB    20 MB    3 MB  2.2 GB  0.37, 0.38  0.44, 0.44
//
// The 1M first upload (one run) and day 2 rows are of the group-set
// hashes (third round), at load 0.8 to 1.0; the same machine and load just before, without them: day 2 10.5,
// 9.3 s wall, 10.9, 9.5 s CPU, 592 MB anon; first upload 46.1 s wall,
// 50.5 s CPU, 591 MB anon (the csv read then took 0.9 s; in the runs
// above 0.6 to 1.1 s, hence the ratios). The other rows are of the
// second round. (Before the second round, day 2 at 1M took 20 to 29 s and
// 2.1 GB hwm, the first upload 67 to 82 s.)
//
// Where day 2 at 1M users goes (wall, the checker's share from a CPU
// profile): archive copy and SHA-256 0.35 s; users.csv checked and
// compared 2.6 to 3.0 s (the checker about 1.6 s of it, the lookups of
// the stored record and group-set hash most of the rest); user_groups.csv
// 1.8 to 2.1 s (nearly all the checker); deleted and changed users (a
// scan of the snapshot's users) 0.13 s; added and removed memberships
// (about 25k users compared one by one) 50 ms; staging 0.5 to 0.6 s; flip
// 1 ms; merge of the overlay 1.5 s. Before the group-set hashes the
// memberships took 1.5 s more (sorting 3M hashes, scanning 3M stored
// memberships) and the scan of the users 0.5 s more. The memory peak is
// in the diff: the checker's sets (about 230 MB live) and the differ's
// (about 60 MB) with the garbage collector's headroom; the apply stays
// near 120 MB (90 MB for the first upload). With GOMEMLIMIT=400MiB the diff peaks at 400 MB anon for about
// the same CPU; with 250MiB at 330 MB for 80 % more CPU.
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
//     keeps its own sets (about 230 MB at a million users): the diff's
//     peak is theirs together, doubled by the garbage collector's headroom
//     unless the process sets a memory limit. A batch of 100k rows or more
//     returns that memory to the system before it applies.
//   - Day 2 at a million users still costs 7 to 11 times the bare read:
//     the checker alone 3 times; reading every stored user record and
//     group-set hash to compare (users.csv in the snapshot's order costs
//     a cursor step each, another order a search from the root); and the
//     overlay merge, which rewrites about a third of the snapshot's pages
//     (2 % of the users, spread over all).
//   - The first upload writes every membership into the group index in
//     group order, one page per group per staging transaction: at a
//     million users that page traffic, the event records (one bbolt put
//     each) and the commits are most of its 40 s.
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
