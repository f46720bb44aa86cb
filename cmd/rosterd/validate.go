package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
)

// ExitCodeError asks main to exit with Code. Err, when not nil, is what to
// print on stderr; the command has already printed everything else.
type ExitCodeError struct {
	Code int
	Err  error
}

func (e *ExitCodeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitCodeError) Unwrap() error { return e.Err }

// validateCommand is `rosterd validate [--json] [--kind K] [--issues-csv
// FILE] FILE...`: it checks local CSV files as one batch and prints the
// report an upload of them would get (SPEC §2, §5). Exit 0 valid
// (warnings allowed), 1 invalid, 2 usage or I/O error. Flags may also
// follow the file names.
func validateCommand() *command {
	return &command{
		name: "validate", args: "FILE...", summary: "check CSV files offline and print the report an upload would get",
		about: "Check CSV files the way an upload would be checked and print the report.\n" +
			"The kind comes from the file name (users*.csv, user_groups*.csv, groups*.csv)\n" +
			"unless --kind is given. Several files are checked together as one batch\n" +
			"(memberships against the users). It needs no daemon, except with --org.\n" +
			"A .gz or .zip file is read as an upload of it would be; an OpenPGP-encrypted\n" +
			"one only the daemon can decrypt (check it with rosterd plan).\n" +
			"--mapping FILE reads the files with a mapping (the organization settings\n" +
			"columns, status_values, date_format and groups_from_columns, in TOML);\n" +
			"--org ORG with the organization's own, fetched from the running daemon.\n" +
			"Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage or I/O error.",
		example: "rosterd validate users.csv user_groups.csv groups.csv\n" +
			"rosterd validate --kind users export_20261122.csv\n" +
			"rosterd validate --json --issues-csv issues.csv users.csv\n" +
			"rosterd validate --config /etc/rosterd/rosterd.toml users.csv\n" +
			"rosterd validate --mapping mapping.toml users.csv.gz\n" +
			"rosterd validate --org acme export.zip",
		minArgs: 1, maxArgs: -1,
		setup: func(fs *flag.FlagSet) action {
			var o validateOpts
			fs.BoolVar(&o.json, "json", false, "print the report as JSON instead of text")
			fs.StringVar(&o.kind, "kind", "", "the `KIND` of every FILE: users, user_groups or groups (default: from each file's name)")
			fs.StringVar(&o.issuesCSV, "issues-csv", "", "also write the issues to this CSV `FILE`, for a spreadsheet")
			fs.StringVar(&o.mapping, "mapping", "", "read the files with the mapping in this TOML `FILE` (columns, status_values, date_format, groups_from_columns)")
			fs.StringVar(&o.org, "org", "", "read the files with this organization's mapping, fetched from the running daemon")
			// --config is also the client's: validate checks with its [limits]
			// (default: the built-in limits), and --org reads it to find the
			// daemon.
			o.client = clientFlags(fs)
			return func(ctx context.Context, std stdio, files []string) error {
				return o.run(ctx, files, std.out)
			}
		},
	}
}

// runValidate runs `rosterd validate` with args.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runCommand(ctx, validateCommand(), args, nil, stdio{out: stdout, err: stderr})
}

// validateOpts are validate's flags.
type validateOpts struct {
	json            bool
	kind, issuesCSV string
	mapping, org    string
	client          *clientOpts
}

func (o *validateOpts) run(ctx context.Context, files []string, stdout io.Writer) error {
	k := schema.Kind(o.kind)
	switch k {
	case "", schema.Users, schema.UserGroups, schema.Groups:
	default:
		return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: --kind %q: want users, user_groups or groups", o.kind)}
	}
	mapping, err := o.readMapping(ctx)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &ExitCodeError{Code: 2, Err: err}
	}
	var lim schema.Limits
	ratio := 0
	if p := first(o.client.config, os.Getenv("ROSTERD_CONFIG")); p != "" {
		cfg := defaultConfig()
		if err := readConfigFile(p, &cfg); err != nil {
			return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: %w", err)}
		}
		if err := cfg.validate(); err != nil {
			return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: config %s: %w", p, err)}
		}
		lim, ratio = schemaLimits(cfg), cfg.Limits.MaxCompressionRatio
	}
	// .gz and .zip files are read as an upload of them would be.
	inputs, notes, closeAll, err := validateInputs(files, k, ratio)
	if err != nil {
		return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: %w", err)}
	}
	defer closeAll()
	rep, err := report.ValidateWith(inputs, report.Options{Limits: lim, Mapping: mapping}, time.Now())
	if err != nil {
		return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: %w", err)}
	}
	rep.Notes = append(rep.Notes, notes...)
	if o.json {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: write report: %w", err)}
	}
	if o.issuesCSV != "" {
		f, err := os.Create(o.issuesCSV)
		if err == nil {
			err = rep.WriteIssuesCSV(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: %w", err)}
		}
	}
	if rep.Status == report.StatusInvalid {
		return &ExitCodeError{Code: 1, Err: fmt.Errorf("validate: the files are not valid (%d errors)", rep.IssuesTotal-countWarnings(rep))}
	}
	return nil
}

func countWarnings(r *report.Report) int {
	n := 0
	for code, c := range r.IssueCounts {
		if schema.SeverityOf(code) == schema.SeverityWarning {
			n += c
		}
	}
	return n
}

// readMapping returns the mapping of --mapping or --org, or nil.
func (o *validateOpts) readMapping(ctx context.Context) (*schema.Mapping, error) {
	switch {
	case o.mapping != "" && o.org != "":
		return nil, &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: give --mapping or --org, not both")}
	case o.mapping != "":
		_, m, err := readMappingFile(o.mapping)
		if err != nil {
			return nil, &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: %w", err)}
		}
		return m, nil
	case o.org != "":
		c, err := o.client.client()
		if err != nil {
			return nil, err
		}
		m, err := fetchMapping(ctx, c, o.org)
		if err != nil {
			return nil, fmt.Errorf("validate: %w", err)
		}
		return m, nil
	}
	return nil, nil
}
