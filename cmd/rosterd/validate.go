package main

import (
	"context"
	"errors"
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

// runValidate is `rosterd validate [--json] [--kind K] [--issues-csv FILE]
// FILE...`: it checks local CSV files as one batch and prints the report an
// upload of them would get (SPEC §2, §5). Exit 0 valid (warnings allowed),
// 1 invalid, 2 usage or I/O error. Flags may also follow the file names.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "print the report as JSON instead of text")
	kind := fs.String("kind", "", "the kind of every FILE: users, user_groups or groups (default: from each file's name)")
	issuesCSV := fs.String("issues-csv", "", "also write the issues to this CSV file, for a spreadsheet")
	configPath := fs.String("config", "", "check with the [limits] of this config file ($ROSTERD_CONFIG; default: the built-in limits)")
	mappingPath := fs.String("mapping", "", "read the files with this mapping (TOML: columns, status_values, date_format, as the organization's settings)")
	org := fs.String("org", "", "read the files with this organization's mapping, fetched from the running daemon")
	opts := clientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rosterd validate [--json] [--kind users|user_groups|groups] [--issues-csv FILE] [--config FILE] [--mapping FILE | --org ORG] FILE...\n\n"+
			"Check CSV files the way an upload would be checked and print the report.\n"+
			"The kind comes from the file name (users*.csv, user_groups*.csv, groups*.csv)\n"+
			"unless --kind is given. Several files are checked together as one batch.\n"+
			"Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage or I/O error.\n\n")
		fs.PrintDefaults()
	}
	files, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return &ExitCodeError{Code: 2, Err: errors.New("validate: no files given")}
	}
	k := schema.Kind(*kind)
	switch k {
	case "", schema.Users, schema.UserGroups, schema.Groups:
	default:
		return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: --kind %q: want users, user_groups or groups", *kind)}
	}
	var mapping *schema.Mapping
	switch {
	case *mappingPath != "" && *org != "":
		return &ExitCodeError{Code: 2, Err: errors.New("validate: give --mapping or --org, not both")}
	case *mappingPath != "":
		if _, mapping, err = readMappingFile(*mappingPath); err != nil {
			return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: %w", err)}
		}
	case *org != "":
		c, err := opts.client()
		if err != nil {
			return err
		}
		if mapping, err = fetchMapping(ctx, c, *org); err != nil {
			return fmt.Errorf("validate: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return &ExitCodeError{Code: 2, Err: err}
	}
	var lim schema.Limits
	ratio := 0
	if p := first(*configPath, os.Getenv("ROSTERD_CONFIG")); p != "" {
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
	if *jsonOut {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return &ExitCodeError{Code: 2, Err: fmt.Errorf("validate: write report: %w", err)}
	}
	if *issuesCSV != "" {
		f, err := os.Create(*issuesCSV)
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
