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
}

const batchUsage = "batch list ORG | batch show ORG BATCH [--json] | batch approve ORG BATCH"

// runBatch is `rosterd batch list|show|approve` (SPEC §2): the batches of
// an organization, one batch's report, and the release of a held batch.
func runBatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError(batchUsage)
	}
	fs := flag.NewFlagSet("batch "+args[0], flag.ContinueOnError)
	opts := clientFlags(fs)
	jsonOut := fs.Bool("json", false, "print the report as JSON (show, approve)")
	pos, err := parseFlags(fs, args[1:], stderr)
	if err != nil {
		return err
	}
	want := map[string]int{"list": 1, "show": 2, "approve": 2}
	n, ok := want[args[0]]
	if !ok || len(pos) != n {
		return usageError(batchUsage)
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	org := url.PathEscape(pos[0])
	switch args[0] {
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BATCH\tSTATUS\tCREATED\tFILES\tCHANGES")
		after := ""
		for {
			var page struct {
				Data         []batchView
				ListMetadata struct{ After *string } `json:"list_metadata"`
			}
			if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+org+"/batches?limit=1000&after="+url.QueryEscape(after), nil, "", &page); err != nil {
				return fmt.Errorf("list batches of %s: %w", pos[0], err)
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
	case "show":
		var b batchView
		if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+org+"/batches/"+url.PathEscape(pos[1]), nil, "", &b); err != nil {
			return fmt.Errorf("batch %s: %w", pos[1], err)
		}
		return printBatchReport(stdout, b, *jsonOut)
	default: // approve
		var b batchView
		if err := c.do(ctx, http.MethodPost, "/v1/organizations/"+org+"/batches/"+url.PathEscape(pos[1])+"/approve", nil, "", &b); err != nil {
			return fmt.Errorf("approve batch %s: %w", pos[1], err)
		}
		if !*jsonOut {
			fmt.Fprintf(stdout, "batch %s approved: %s\n\n", b.ID, b.Status)
		}
		return printBatchReport(stdout, b, *jsonOut)
	}
}

func changeSummary(b batchView) string {
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
func printBatchReport(w io.Writer, b batchView, asJSON bool) error {
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
