package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/rosterd/rosterd/schema/report"
)

// runPlan is `rosterd plan --org ORG FILE...` (SPEC §2): a dry run of the
// files against the running daemon's snapshot. It prints the report of
// what would change and applies nothing. Exit 0 when the files would be
// accepted (applied, unchanged or held), 1 when they would be rejected,
// 2 on usage or I/O errors or when no daemon runs.
func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	opts := clientFlags(fs)
	org := fs.String("org", "", "the organization whose snapshot the files are compared with (required)")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	mappingPath := fs.String("mapping", "", "read the files with this mapping (TOML: columns, status_values, date_format) instead of the organization's")
	files, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if *org == "" || len(files) == 0 {
		return usageError("plan --org ORG FILE...")
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return &ExitCodeError{Code: 2, Err: err}
		}
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
		pw.CloseWithError(writeParts(mw, files))
	}()
	var raw json.RawMessage
	err = c.do(ctx, http.MethodPost, "/v1/organizations/"+url.PathEscape(*org)+"/plan", pr, mw.FormDataContentType(), &raw)
	pr.Close()
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	var rep report.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("plan: decode report: %w", err)
	}
	if *jsonOut {
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

func writeParts(mw *multipart.Writer, files []string) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		part, err := mw.CreateFormFile("file", filepath.Base(name))
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
