// Package report is the validation report of SPEC §5: the Report type and
// its three renderings, text (for a person), JSON (for programs) and the
// -issues.csv companion (for a spreadsheet), plus Validate, the whole of
// `rosterd validate` over io.Readers.
//
// It owns the layout and wording of reports. It does not decide a batch's
// fate, compute changes or write files: ingest fills a Report for each
// batch (FromChecker copies a schema.Checker's issues and counts) and
// stores it; cmd/rosterd opens the local files for Validate. It imports
// only package schema.
//
// # JSON shape, version 1
//
//	{
//	  "version": 1,                        // this shape; bumped on incompatible change
//	  "batch_id": "01JD...",               // absent for rosterd validate
//	  "organization_id": "acme",           // absent for rosterd validate
//	  "status": "applied",                 // pending|processing|applied|unchanged|rejected|held|superseded|ignored,
//	                                       // or valid|invalid for rosterd validate
//	  "created_at": "2026-11-22T01:02:03Z",
//	  "files": [                           // always an array
//	    {"name": "users.csv", "kind": "users",   // kind: users|user_groups|groups
//	     "size": 1204, "sha256": "3f2a...", "rows": 12,   // rows: data rows read, header and blank lines excluded
//	     "rows_with_errors": 0}            // of rows, those with at least one error
//	    // a compressed or encrypted upload also has "inner" (the CSV file
//	    // inside), "inner_size" (its bytes) and "decoded" ("gzip-compressed",
//	    // "decrypted with key ..., signed by ..."); size and sha256 are the
//	    // uploaded file's
//	  ],
//	  "counts": {"users": 12, "groups": 3, "memberships": 14},
//	                                       // in the batch's valid rows, or in the snapshot after applying
//	  "changes": {"users_created": 0, "users_updated": 0, "users_deactivated": 0,
//	              "users_deleted": 0, "groups_created": 0, "groups_updated": 0,
//	              "groups_deleted": 0, "memberships_added": 0, "memberships_removed": 0},
//	                                       // all zero for rosterd validate (no snapshot)
//	  "issues": [                          // the first 1,000, in file then line order; always an array
//	    {"file": "users.csv",
//	     "line": 9,                        // physical line, header = 1; 0 = the whole file
//	     "column": "user_id",              // "" when the issue is about a row or the file
//	     "value": "E1007",                 // the offending value, at most 80 characters
//	     "code": "duplicate_user_id",      // stable: see the Code* constants of package schema
//	     "severity": "error",              // error|warning
//	     "message": "user_id \"E1007\" also appears on line 5 — each person must appear once"}
//	  ],
//	  "issues_total": 1,                   // all issues, listed or not
//	  "issue_counts": {"duplicate_user_id": 1},  // all issues by code; absent when there are none
//	  "notes": ["..."],                    // optional sentences for the admin (why a batch is held, what to do)
//	  "mapping": {                         // when the files were read with the organization's mapping
//	    "columns": [{"file": "users.csv", "column": "Employee #", "read_as": "user_id"}],
//	                                       // read_as: a column, "custom:NAME" or "drop"
//	    "status_values": {"Terminated": "inactive"}, "date_format": "MM/DD/YYYY",
//	    "groups_from_columns": [           // when groups are derived from users.csv columns and
//	                                       // the batch has users.csv: the setting, and the
//	                                       // distinct memberships each column gave
//	      {"column": "department_name", "template": "Department: {value}", "memberships": 980},
//	      {"column": "groups", "separator": ";", "memberships": 1200}]},
//	  "dry_run": true,                     // only in a plan's report: status is what the files would get
//	  "operator_notes": ["..."],           // optional, for the operator only (the command that approves a
//	                                       // held batch); absent from the copy in the organization's folder
//	  "removed_users_total": 250,          // held batches: how many users it would delete or deactivate
//	  "removed_users": [                   // ... and who, last, one per line: all of them in the report
//	                                       // files, the first 1,000 in the stored report the API serves
//	    {"change":"deleted","id":"E1001","email":"ann@example.com","first_name":"Ann","last_name":"Lee"}
//	  ]
//	}
//
// An ignored report (a .csv upload whose name is not processed) has one
// file with only name and size, no counts or changes to speak of, and
// notes on the names that are processed and how to ask for a pattern.
//
// The text report says the same in plain words: a headline with the
// outcome (VALID, NOT VALID, APPLIED, HELD, ...; a plan's starts "PLAN:
// these files would ..."), the batch, the files
// (with rows read, valid and with errors when there are errors), the
// counts (not for files with errors: nothing is counted then), the
// changes (for a batch, or when any is non-zero), the notes, the
// operator's notes, the first 100 users a held batch would remove,
// then one line per issue (`error    users.csv line 9, column user_id:
// message`) and, when more than 1,000, the counts by code.
//
// Every value taken from an upload (file and column names, values,
// messages quoting them, notes) is shown through Visible in the text and
// the issues CSV, so control characters appear escaped (\x1b); the JSON
// escapes them as \u001b, C1 and bidirectional controls included.
//
// The issues CSV has the columns file, line, column, value, code,
// severity, message; it starts with a UTF-8 BOM and uses CRLF so that
// Excel opens it right, and defuses cells that a spreadsheet would run as
// formulas by prefixing an apostrophe.
//
// # Caveats
//
// The text report's wording may change between releases; programs should
// read the JSON. Validate uses the default schema.Limits, not the daemon's
// configured ones.
package report
