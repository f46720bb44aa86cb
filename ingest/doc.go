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
// together (SPEC §6). A
// crash before that transaction leaves the batch processing: the staging
// is discarded and the batch redone from its archive. Memory therefore
// stays bounded by the staging transaction, not the upload.
//
// Repeated uploads: when every file of a batch has the name, kind and
// SHA-256 (computed while archiving) of the files of the organization's
// last applied or unchanged batch, and the policy and limits are the ones
// that batch ran with, the batch is unchanged without parsing: it is still
// archived, recorded and reported (rows, counts and warnings repeated from
// that batch). identical.go.
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
//	1M    first upload  44.3, 43.9  49.1, 48.5  570 MB   1.3 GB  510 MB  2.1 GB  47, 40      49, 43
//	1M    day 2         10.8, 10.4  11.0, 10.7  549 MB   1.9 GB  475 MB  2.2 GB  13.4, 10.5  12.9, 10.2
//	1M    identical     .36, .35    .46, .43      8 MB    20 MB    3 MB  2.2 GB  0.37, 0.38  0.44, 0.44
//
// (Before this round, day 2 at 1M took 20 to 29 s and 2.1 GB hwm, the
// first upload 67 to 82 s.)
//
// Where day 2 at 1M users goes (wall, the checker's share from a CPU
// profile): archive copy and SHA-256 0.35 s; users.csv checked and
// compared 2.2 s (the checker 1.6 s of it); deleted users (a scan of the
// snapshot's users) 0.7 s; user_groups.csv 2.9 s (the checker 2.2 s);
// removed and added memberships (sorting the seen set, a scan of the
// snapshot's memberships) 1.8 s; staging 0.5 s; flip 1 ms; merge of the
// overlay 1.5 s. The memory peak is in the diff: the checker's sets
// (about 230 MB live) and the differ's (70 MB) with the garbage
// collector's headroom; the apply stays near 110 MB (90 MB for the first
// upload). With GOMEMLIMIT=400MiB the diff peaks at 400 MB anon for about
// the same CPU; with 250MiB at 330 MB for 80 % more CPU.
//
// Caveats:
//   - bbolt has one writer: the transactions of organizations run one at
//     a time (the diffs, in read transactions, run in parallel), and a
//     staged apply interleaves its transactions with other writers.
//   - The differ keeps 16 bytes per user and per membership of the upload
//     (the seen sets) and an index of about 2 bytes each, about 70 MB for
//     a million users with three groups each; the memberships of the file
//     and every change are spilled to temporary files. The schema checker
//     keeps its own sets (about 230 MB at a million users): the diff's
//     peak is theirs together, doubled by the garbage collector's headroom
//     unless the process sets a memory limit. A batch of 100k rows or more
//     returns that memory to the system before it applies.
//   - Day 2 at a million users still costs about 10 times the bare read:
//     the checker alone 3 times; the two scans of the snapshot (deleted
//     users, removed memberships: CPU, not page faults, since reading the
//     whole snapshot first, `rosterbench ingest -warm`, changes little);
//     the seen sets' sort; and the overlay merge, which rewrites about a
//     third of the snapshot's pages (2 % of the users, spread over all).
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
//     have been deleted, or miss a membership's change.
//   - Events within one category (users created, memberships added …)
//     follow the order of the rows in the file; the categories follow
//     SPEC §6.
package ingest
