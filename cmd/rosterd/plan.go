package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
)

// planCommand is `rosterd plan --org ORG [--kind K] FILE...` (SPEC §2): a
// dry run of the files against the running daemon's snapshot. It prints
// the report of what they would do and applies nothing. Exit 0 when the
// files would be accepted (applied, unchanged or held), 1 when they would
// be rejected, 2 on usage or I/O errors or when no daemon runs.
func planCommand() *command {
	return &command{
		name: "plan", args: "--org ORG FILE...", summary: "dry run: what files would change in an organization, applying nothing",
		about: "Send the files to the running daemon, which checks them and compares them\n" +
			"with the organization's current snapshot exactly as an upload would be, and\n" +
			"print the report of what they would do: be applied (with the changes), change\n" +
			"nothing, be rejected (with the errors) or be held by the deletion guard.\n" +
			"Nothing is applied or stored and no event is sent. The files are checked\n" +
			"together as one batch. The kind of each file comes from its name (users*.csv,\n" +
			"user_groups*.csv, groups*.csv, or the organization's name patterns) unless\n" +
			"--kind says. Compressed and encrypted files are read as uploads are, and\n" +
			"--mapping FILE (TOML: columns, status_values, date_format,\n" +
			"groups_from_columns) reads them with that mapping instead of the\n" +
			"organization's, to try one before it is set.\n" +
			"Exit status: 0 the files would be applied, change nothing or be held;\n" +
			"1 they would be rejected; 2 usage or I/O error, or no daemon running.",
		example: "rosterd plan --org acme users.csv user_groups.csv\n" +
			"rosterd plan --org acme --kind users export_20261122.csv\n" +
			"rosterd plan --org acme --json users.csv\n" +
			"rosterd plan --org acme --mapping mapping.toml users.csv.gpg",
		minArgs: 1, maxArgs: -1,
		setup: func(fs *flag.FlagSet) action {
			opts := clientFlags(fs)
			org := fs.String("org", "", "the organization whose snapshot the files are compared with (required)")
			kind := fs.String("kind", "", "the `KIND` of every FILE: users, user_groups or groups (default: from each file's name)")
			jsonOut := fs.Bool("json", false, "print the report as JSON")
			mappingPath := fs.String("mapping", "", "read the files with the mapping in this TOML `FILE` instead of the organization's")
			return func(ctx context.Context, std stdio, files []string) error {
				if *org == "" {
					return usageError("--org ORG is required")
				}
				k := schema.Kind(*kind)
				switch k {
				case "", schema.Users, schema.UserGroups, schema.Groups:
				default:
					return usageError("--kind %q: want users, user_groups or groups", *kind)
				}
				var mapping []byte
				if *mappingPath != "" {
					m, _, err := readMappingFile(*mappingPath)
					if err != nil {
						return &ExitCodeError{Code: 2, Err: fmt.Errorf("plan: %w", err)}
					}
					if mapping, err = json.Marshal(m); err != nil {
						return err
					}
				}
				return runPlan(ctx, opts, *org, k, mapping, *jsonOut, files, std.out)
			}
		},
	}
}

// runPlan sends the files, and the mapping (JSON) when not nil, to the
// daemon's plan route and prints the report.
func runPlan(ctx context.Context, opts *clientOpts, org string, kind schema.Kind, mapping []byte, jsonOut bool, files []string, stdout io.Writer) error {
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return &ExitCodeError{Code: 2, Err: err}
		}
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		if mapping != nil {
			if err := mw.WriteField("mapping", string(mapping)); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(writeParts(mw, kind, files))
	}()
	var raw json.RawMessage
	err = c.do(ctx, http.MethodPost, "/v1/organizations/"+url.PathEscape(org)+"/plan", pr, mw.FormDataContentType(), &raw)
	pr.Close()
	var ae *apiError
	if errors.As(err, &ae) && ae.Code == "invalid_files" {
		return &ExitCodeError{Code: 2, Err: fmt.Errorf("plan: %w", err)} // the files given cannot form a batch
	}
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	var rep report.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("plan: decode report: %w", err)
	}
	rep.DryRun = true // also for a daemon from before dry_run
	if jsonOut {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if rep.Status == "rejected" {
		return &ExitCodeError{Code: 1}
	}
	return nil
}

// writeParts writes one part per file: named "file" (the daemon takes
// the kind from the file name) or, with kind, named after the kind.
func writeParts(mw *multipart.Writer, kind schema.Kind, files []string) error {
	field := "file"
	if kind != "" {
		field = string(kind)
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		part, err := mw.CreateFormFile(field, filepath.Base(name))
		if err == nil {
			_, err = io.Copy(part, f)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return mw.Close()
}
