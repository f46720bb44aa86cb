package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rosterd/rosterd/schema/report"
)

// batchView is what the API answers for a batch.
type batchView struct {
	ID         string                  `json:"id"`
	Org        string                  `json:"organization_id"`
	Status     string                  `json:"status"`
	CreatedAt  time.Time               `json:"created_at"`
	FinishedAt *time.Time              `json:"finished_at"`
	Reason     string                  `json:"reason"`
	Approved   bool                    `json:"approved"`
	Files      []struct{ Name string } `json:"files"`
	Changes    report.Changes          `json:"changes"`
	Errors     int                     `json:"errors"`
	Warnings   int                     `json:"warnings"`
	Report     json.RawMessage         `json:"report"`
	// A batch that failed for a reason outside its files (SPEC §5).
	Attempts     int        `json:"attempts"`
	LastError    string     `json:"last_error"`
	RetryAt      *time.Time `json:"retry_at"`
	SupersededBy string     `json:"superseded_by"`
}

// batchCommand is `rosterd batch list|show|approve` (SPEC §2): the
// batches of an organization, one batch's report, and the release of a
// held batch.
func batchCommand() *command {
	reportFlags := func(fs *flag.FlagSet) (*clientOpts, *bool) {
		return clientFlags(fs), fs.Bool("json", false, "print the report as JSON")
	}
	return &command{
		name: "batch", summary: "list an organization's batches, show their reports, approve held ones",
		about: "A batch is the set of files an organization uploaded within the settle\n" +
			"window. Each gets a report; a batch that would delete or deactivate many\n" +
			"users is held until it is approved or a newer upload supersedes it.",
		example: "rosterd batch list acme\n" +
			"rosterd batch show acme 01JD...\n" +
			"rosterd batch approve acme 01JD...",
		subs: []*command{
			{
				name: "batch list", args: "ORG", summary: "list an organization's batches, newest first",
				about: "List an organization's batches, newest first: id, status (pending,\n" +
					"processing, applied, unchanged, rejected, held, superseded, ignored),\n" +
					"creation time, files, and the changes (or why it was held or rejected,\n" +
					"or, for a batch waiting for a retry, its failed attempts).",
				example: "rosterd batch list acme",
				minArgs: 1, maxArgs: 1,
				setup: withClient(func(ctx context.Context, c *apiClient, std stdio, args []string) error {
					return listBatches(ctx, c, args[0], std.out)
				}),
			},
			{
				name: "batch show", args: "ORG BATCH", summary: "print a batch's report",
				about:   "Print a batch's report, the same as in the organization's /reports/ folder.",
				example: "rosterd batch show acme 01JD...\nrosterd batch show acme 01JD... --json",
				minArgs: 2, maxArgs: 2,
				setup: func(fs *flag.FlagSet) action {
					opts, jsonOut := reportFlags(fs)
					return func(ctx context.Context, std stdio, args []string) error {
						c, err := opts.client()
						if err != nil {
							return err
						}
						var b batchView
						if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+url.PathEscape(args[0])+"/batches/"+url.PathEscape(args[1]), nil, "", &b); err != nil {
							return fmt.Errorf("batch %s: %w", args[1], err)
						}
						return printBatchReport(std.out, b, *jsonOut)
					}
				},
			},
			{
				name: "batch approve", args: "ORG BATCH", summary: "apply a held batch",
				about: "Apply a held batch: the deletions the guard stopped are made, and the\n" +
					"report of the applied batch is printed. Only a held batch can be approved.",
				example: "rosterd batch list acme            # find the held batch\n" +
					"rosterd batch show acme 01JD...     # see who would be deleted\n" +
					"rosterd batch approve acme 01JD...",
				minArgs: 2, maxArgs: 2,
				setup: func(fs *flag.FlagSet) action {
					opts, jsonOut := reportFlags(fs)
					return func(ctx context.Context, std stdio, args []string) error {
						c, err := opts.client()
						if err != nil {
							return err
						}
						var b batchView
						if err := c.do(ctx, http.MethodPost, "/v1/organizations/"+url.PathEscape(args[0])+"/batches/"+url.PathEscape(args[1])+"/approve", nil, "", &b); err != nil {
							return fmt.Errorf("approve batch %s: %w", args[1], err)
						}
						if !*jsonOut {
							fmt.Fprintf(std.out, "batch %s approved: %s\n\n", b.ID, b.Status)
						}
						return printBatchReport(std.out, b, *jsonOut)
					}
				},
			},
		},
	}
}

// listBatches prints org's batches, newest first.
func listBatches(ctx context.Context, c *apiClient, org string, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tSTATUS\tCREATED\tFILES\tCHANGES")
	after := ""
	for {
		var page struct {
			Data         []batchView
			ListMetadata struct{ After *string } `json:"list_metadata"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+url.PathEscape(org)+"/batches?limit=1000&after="+url.QueryEscape(after), nil, "", &page); err != nil {
			return fmt.Errorf("list batches of %s: %w", org, err)
		}
		for _, b := range page.Data {
			var names []string
			for _, f := range b.Files {
				names = append(names, report.Visible(f.Name))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.ID, b.Status, b.CreatedAt.Format(time.RFC3339), strings.Join(names, ","), changeSummary(b))
		}
		if page.ListMetadata.After == nil {
			break
		}
		after = *page.ListMetadata.After
	}
	return tw.Flush()
}

func changeSummary(b batchView) string {
	if b.RetryAt != nil {
		return fmt.Sprintf("failed %d times, retried at %s: %s", b.Attempts, b.RetryAt.Format(time.RFC3339), report.Visible(b.LastError))
	}
	if b.SupersededBy != "" {
		return "superseded by " + b.SupersededBy
	}
	if b.Status == "held" || b.Status == "rejected" {
		if b.Reason != "" {
			return report.Visible(b.Reason)
		}
	}
	ch := b.Changes
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{
		{ch.UsersCreated, "users+"}, {ch.UsersUpdated, "users~"}, {ch.UsersDeactivated, "deactivated"}, {ch.UsersDeleted, "users-"},
		{ch.GroupsCreated, "groups+"}, {ch.GroupsUpdated, "groups~"}, {ch.GroupsDeleted, "groups-"},
		{ch.MembershipsAdded, "members+"}, {ch.MembershipsRemoved, "members-"},
	} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%s%d", p.what, p.n))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// printBatchReport prints a batch's stored report as text (or its JSON).
// The text begins with what the operator needs beyond the customer's
// report: failed attempts and their last error, and the superseding
// batch.
func printBatchReport(w io.Writer, b batchView, asJSON bool) error {
	if !asJSON {
		if b.Attempts > 0 {
			fmt.Fprintf(w, "Attempts:     %d failed (outside the files); last error: %s\n", b.Attempts, report.Visible(b.LastError))
			if b.RetryAt != nil {
				fmt.Fprintf(w, "Next attempt: %s\n", b.RetryAt.UTC().Format(time.DateTime+" UTC"))
			}
		}
		if b.SupersededBy != "" {
			fmt.Fprintf(w, "Superseded:   by batch %s\n", b.SupersededBy)
		}
		if b.Attempts > 0 || b.SupersededBy != "" {
			fmt.Fprintln(w)
		}
	}
	if len(b.Report) == 0 {
		fmt.Fprintf(w, "batch %s is %s; it has no report yet\n", b.ID, b.Status)
		return nil
	}
	if asJSON {
		_, err := fmt.Fprintf(w, "%s\n", strings.TrimSpace(string(b.Report)))
		return err
	}
	var rep report.Report
	if err := json.Unmarshal(b.Report, &rep); err != nil {
		return fmt.Errorf("decode report: %w", err)
	}
	rep.Status = b.Status // a held batch may have been superseded since
	return rep.WriteText(w)
}
