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
//	  "status": "applied",                 // pending|processing|applied|unchanged|rejected|held|superseded,
//	                                       // or valid|invalid for rosterd validate
//	  "created_at": "2026-11-22T01:02:03Z",
//	  "files": [                           // always an array
//	    {"name": "users.csv", "kind": "users",   // kind: users|user_groups|groups
//	     "size": 1204, "sha256": "3f2a...", "rows": 12}   // rows: data rows read, header and blank lines excluded
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
//	  "notes": ["..."],                    // optional sentences for the admin (why a batch is held, ...)
//	  "dry_run": true                      // only in a plan's report: status is what the files would get
//	}
//
// The text report says the same in plain words: a headline with the
// outcome (VALID, NOT VALID, APPLIED, HELD, ...; a plan's starts "PLAN:
// these files would ..."), the batch, the files, the
// counts, the changes (for a batch, or when any is non-zero), the notes,
// then one line per issue (`error    users.csv line 9, column user_id:
// message`) and, when more than 1,000, the counts by code.
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
