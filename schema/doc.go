// Package schema reads and checks the three CSV files of SPEC §4
// (users.csv, user_groups.csv, groups.csv): io.Reader in, typed rows and
// issues out. `rosterd validate` and the ingest pipeline call the same
// Checker.
//
// It owns the reading rules (text encoding, delimiter, quoting, header
// matching, blank lines, trimming), every row rule of SPEC §4, the stable
// issue codes (the Code* constants) and the messages an org admin reads. It
// does not own the report layout (package schema/report), diffs against a
// snapshot, deletion thresholds or anything on disk: it has no file system,
// clock or globals. Its one goroutine reads the rows of the file being
// checked, and ends before the call that started it returns (see Reading
// on two cores).
//
// # Reading
//
// UTF-8 with or without BOM; UTF-16 LE/BE with a BOM is converted; lines
// ending in LF, CRLF or (old Mac exports) CR alone. Quoting per RFC 4180.
// The delimiter is the one of comma, semicolon and tab that the header line
// shows most often outside quotes (comma on a tie). Header names match
// case-insensitively after trimming; values are trimmed of white space
// (including no-break spaces). Blank lines and rows of bare delimiters
// (Excel's empty rows) are skipped. A row may carry extra empty fields at
// its end (trailing delimiters); any other difference from the header's
// column count is a wrong_field_count error. A quote inside an unquoted
// value is kept as a character, and spaces around a quoted value are
// allowed. Invalid UTF-8 is reported once per file, on the first line that
// has it, with how to save the file as UTF-8; a header with zero bytes
// (UTF-16 without BOM, a binary file) or an .xlsx workbook is not_csv.
//
// Lines are physical lines: the header is line 1 and a line break inside a
// quoted value counts. A value's issue names the line where the value
// starts; a row's issue the line where the row starts.
//
// # Rules
//
// users.csv: user_id, email, first_name and last_name are required
// columns with non-empty values; user_id is unique; email is a valid
// address and unique ignoring case (simple Unicode lower-casing); status
// (alias state) is one of the words of SPEC §4; employment_start_date, when
// given, is YYYY-MM-DD (a recognisable other form such as 03/04/2024 is a
// date_format warning naming the form; anything else is invalid_date).
// user_groups.csv: group_name and user_id are required; the user exists in
// the batch's users.csv (or, without one, in the caller's lookup); a repeat
// is a duplicate_membership warning and counts once; other columns are
// ignored with a warning. groups.csv: group_name required and unique,
// group_id unique when given, other columns are custom attributes. A
// duplicate (user_id, email, group_name, group_id) is reported on both
// lines. A missing or duplicate column stops the file after the header:
// the header issues are its only issues.
//
// Email syntax is practical, not RFC 5322: one @, something before it, a
// domain with a dot and no empty label after it, no white space or control
// characters, none of , ; < > ( ) [ ] \ " : (which show two addresses or a
// "Name <address>" pasted into the cell). net/mail.ParseAddress accepts
// display names, comments and quoted local parts that no HR export means,
// and allocates per call; this check is a single pass without allocation
// and gives the admin the reason.
//
// # Mapping
//
// An organization's exports may use their own column names, status words
// and date form (SPEC §4, exports as they come): a Mapping, set with
// SetMapping, reads a source header as a canonical column, keeps it as a
// custom attribute under another name, or drops it, before the header is
// matched; a mapped column is then read exactly as a column whose header
// is its target, so the row loop is the canonical one and a mapped file
// costs nothing more per row. Two things are per row, and only when set:
// a status value is looked up in the value map first (a map lookup on a
// lower-cased copy in a stack buffer, no allocation), and a date in the
// organization's format is rewritten as YYYY-MM-DD by the reading
// goroutine into the chunk's own buffer (the field then points there), so
// the callbacks see the ISO date and no string is made for it. Measured in
// BENCHMARKS.md (Compressed and encrypted uploads). ColumnsRead tells how
// each column of a mapped header was read, for the report.
//
// Groups derived from users.csv (GroupColumn, the setting
// groups_from_columns) are part of the Mapping: each valid users.csv row's
// values in the named columns, split and trimmed, named by a template, are
// memberships of the row's user. They go into the same membership set as
// user_groups.csv's rows as the row is read (the user's chain is the one
// just made), so a group a user gets twice counts once and a
// user_groups.csv row that repeats one is joined with it without a
// warning; User.Groups gives them to the callback. A users file without
// one of the columns is an error (it would end the memberships the column
// gave), and so is a user_groups.csv without a users file.
//
// The reader given may also fail with an *InputError (a compressed or
// encrypted upload that cannot be decoded): the checker reports it as the
// file's error, like a file over the size limit.
//
// # Memory
//
// Rows stream through reused chunks (see Reading on two cores). What the
// uniqueness and reference checks keep is a 64-bit hash (hash/maphash,
// seeded per Checker) and an int32 line number per user_id, email, group
// name and group_id, in open-addressing tables at most three quarters full
// (16 bytes a slot); the user_ids' hashes once more in file order and a
// 4-byte list head per user_id (12 MB at 1M users), so that memberships
// listed in the users' order find their user without a random lookup; and
// a 12-byte entry per distinct membership, chained per user (see
// memberSet) and kept in blocks of 65,536 that are never copied, whatever
// the length of the ids and addresses: 3M memberships cost 36 MB. The
// email table is dropped when the users file is done. When
// the reader tells its size (a Len method, Stat as *os.File has, or Seek),
// the row count is estimated after 1,024 rows from the bytes per row, plus
// a tenth, and the tables are made that size at once, so that none is
// copied while it grows: 1M users then cost 2 × 23.5 MB of user_id and
// email tables. Without the size, tables double when three quarters full
// (2 × 33.5 MB at 1M users, plus the old table during a grow). A wrong
// estimate costs a grow or unused slots, never a result. A field is never
// buffered past Limits.MaxFieldSize, a physical line never past
// MaxColumns×(MaxFieldSize+3) bytes, and reading stops at MaxFileSize.
//
// # Performance: why this reader
//
// The checker must cost little more than reading the files: it reads
// every upload, and `rosterd validate` is run by admins on their own
// exports. The figures (against a bare encoding/csv read of the same
// files, with the commands that reproduce them, and what each change
// below gained) are in BENCHMARKS.md, "Validate".
//
// gocsv's streaming decoder is several times slower than encoding/csv and
// its unmarshal-all holds the whole file, so it is out of the hot path; it
// writes the report's issues CSV (package report), where speed does not
// matter. It does not read groups.csv either: groups.csv needs the same
// encoding, delimiter, line-number and custom-column handling as
// users.csv, which gocsv's struct mapping does not give.
//
// The reader is a small RFC 4180 reader following encoding/csv's
// algorithm (ReadSlice per physical line, IndexByte for delimiters and
// quotes) rather than encoding/csv itself, because encoding/csv buffers a
// whole record with no size limit (a stray quote in a 1 GiB upload would
// hold the rest of the file in memory), allocates a string per record even
// when nothing is kept, and needs FieldPos calls for line numbers. A line
// without quotes is read in one copy, the callback gets one string per
// chunk of rows instead of one per row, emails are checked by table, and
// no row is scanned for unnamed columns: no allocation per row. The fuzz
// test FuzzReader checks that it reads what encoding/csv reads wherever
// both accept the input.
//
// Uniqueness was the other half of the cost: inserting a million random
// 64-bit keys into a Go map (or any hash table) costs more in cache and
// TLB misses than the parse. Keys therefore wait in a window of 65,536
// and go into the table sorted by slot, so memory is swept in order.
// Memberships cannot wait (the callback must see a membership once, when
// its row is read), and random inserts of three million into one table
// cost several times more; instead each user's memberships are a short
// chain checked as the rows come: exports list a user's rows together, so
// the chain is in cache, and the user is looked up once per run of rows
// of that user, first among the next user_ids of users.csv. This also
// cut the checker's held memory to about a third.
//
// # Reading on two cores
//
// Users, UserGroups and Groups read the header themselves, then start a
// goroutine that reads the data rows (line ends, quotes, delimiters,
// trimming, the UTF-8 check) into chunks of about 256 KB and at most 4,096
// records, three chunks in all, while the caller's goroutine checks the
// rows of the previous chunk and calls the callback. The chunks are
// reused, so memory stays under a megabyte whatever the file. When the
// call returns, early (a callback's error, an I/O error) or at the end,
// it first stops the goroutine and waits for it, so the reader given is
// never read after the call. The checker alone then takes about the wall
// time of a bare read for a little more CPU time; a caller that already
// spreads its callback's work over the two cores gains less.
//
// # Caveats
//
//   - Keys are compared by 64-bit hash. Two different values collide with
//     probability about n²/2⁶⁵ (3·10⁻⁸ for a million users); a collision
//     would show as a false duplicate (or a user_groups row accepted for an
//     unknown user).
//   - The callbacks see a row when it passes the row's own checks.
//     Duplicate user_ids and emails are found when the window is flushed
//     (every 65,536 rows and at the end of the file), so the callback may
//     have seen both rows of a duplicate. A batch with any error is
//     discarded whole (SPEC §4): callers must check Errors() after the
//     batch before using what the callbacks gathered. Memberships and
//     groups are checked at once (the callback sees a membership once).
//   - Emails are compared ignoring case and only their hash is kept, so
//     when a repeat is found the earlier line's spelling is not known.
//     When the reader given to Users is an io.ReadSeeker (an *os.File),
//     the lines the kept issues need (at most MaxIssues) are read again
//     after the pass, so every issue shows the value on its own line and
//     its message the other line's spelling; this costs a second read of
//     the file up to the last such line, only when there are duplicate
//     emails. Otherwise the earlier line's issue has no value and its
//     message gives the later line's spelling as such. user_ids, group
//     names and group_ids are compared as written: both lines hold the
//     same value.
//   - The reader given is read ahead of the rows checked, by up to three
//     chunks, on another goroutine; a call that stops early waits for a
//     Read in progress to return.
//   - Without a users file, UserGroups calls the userExists lookup once
//     per run of consecutive rows with the same user_id, not once per row.
//   - A user_groups.csv listed group by group rather than user by user
//     looks its user up at every row, out of users.csv's order, and walks
//     a user's chain out of cache: more time per row (see BENCHMARKS.md),
//     the same memory.
//   - The strings of the Users given to the callback are slices of one
//     string per chunk of rows (about 256 KB): keeping one value keeps its
//     chunk. Memberships' strings are made once per group and once per
//     run of a user's rows.
//   - Issues beyond MaxIssues are counted by code (IssueCounts) but not
//     kept; the kept ones are the first in file then line order.
package schema
