package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// statusView is what GET /v1/status answers.
type statusView struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Ready     bool      `json:"ready"`
	Listeners []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"listeners"`
	Organizations int         `json:"organizations"`
	Batches       []batchView `json:"batches"`
	Webhooks      []struct {
		ID             string  `json:"id"`
		URL            string  `json:"url"`
		Enabled        bool    `json:"enabled"`
		DisabledReason string  `json:"disabled_reason"`
		Pending        int     `json:"pending"`
		Failed         int     `json:"failed"`
		LagSeconds     float64 `json:"lag_seconds"`
		Lag            []struct {
			Org        string  `json:"organization_id"`
			Pending    int     `json:"pending"`
			LagSeconds float64 `json:"lag_seconds"`
		} `json:"lag"`
	} `json:"webhooks"`
}

// statusCommand is `rosterd status` (SPEC §2).
func statusCommand() *command {
	return &command{
		name: "status", summary: "show the running daemon: listeners, organizations, batches in progress, delivery lag",
		about: "Show the running daemon: its version and start time, the addresses it\n" +
			"listens on, how many organizations it serves, the batches not finished\n" +
			"(pending, processing, and held ones waiting for approval), and each webhook\n" +
			"endpoint's delivery: events pending, events failed, and the lag (the age of\n" +
			"the oldest event it is still trying to send), in all and per organization.",
		example: "rosterd status\nrosterd --data /var/lib/rosterd status --json",
		setup: func(fs *flag.FlagSet) action {
			opts := clientFlags(fs)
			jsonOut := fs.Bool("json", false, "print the daemon's status as JSON (GET /v1/status)")
			return func(ctx context.Context, std stdio, args []string) error {
				c, err := opts.client()
				if err != nil {
					return err
				}
				var raw json.RawMessage
				if err := c.do(ctx, http.MethodGet, "/v1/status", nil, "", &raw); err != nil {
					return fmt.Errorf("status: %w", err)
				}
				if *jsonOut {
					_, err := fmt.Fprintf(std.out, "%s\n", strings.TrimSpace(string(raw)))
					return err
				}
				var st statusView
				if err := json.Unmarshal(raw, &st); err != nil {
					return fmt.Errorf("status: decode: %w", err)
				}
				st.write(std.out, time.Now())
				return nil
			}
		},
	}
}

// write prints the status for a person.
func (st statusView) write(w io.Writer, now time.Time) {
	ready := "ready"
	if !st.Ready {
		ready = "not ready (starting or shutting down)"
	}
	fmt.Fprintf(w, "rosterd %s, %s", st.Version, ready)
	if !st.StartedAt.IsZero() {
		fmt.Fprintf(w, ", up %s since %s", now.Sub(st.StartedAt).Round(time.Second), st.StartedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range st.Listeners {
		fmt.Fprintf(tw, "  %s\t%s\n", l.Name, l.Address)
	}
	tw.Flush()
	fmt.Fprintf(w, "Organizations: %d\n", st.Organizations)

	if len(st.Batches) == 0 {
		fmt.Fprintf(w, "\nBatches in progress: none\n")
	} else {
		fmt.Fprintf(w, "\nBatches in progress (%d):\n", len(st.Batches))
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ORGANIZATION\tBATCH\tSTATUS\tCREATED\tWAITING FOR")
		for _, b := range st.Batches {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", b.Org, b.ID, b.Status, b.CreatedAt.UTC().Format(time.RFC3339), waitingFor(b))
		}
		tw.Flush()
	}

	if len(st.Webhooks) == 0 {
		fmt.Fprintf(w, "\nWebhooks: none configured\n")
		return
	}
	fmt.Fprintf(w, "\nWebhooks (%d):\n", len(st.Webhooks))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ENDPOINT\tURL\tSTATE\tPENDING\tFAILED\tLAG")
	for _, e := range st.Webhooks {
		state := "enabled"
		if !e.Enabled {
			state = "disabled"
			if e.DisabledReason != "" {
				state += ": " + e.DisabledReason
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\n", e.ID, e.URL, state, e.Pending, e.Failed, lagText(e.LagSeconds))
		for _, l := range e.Lag { // in organization order
			fmt.Fprintf(tw, "  \t  %s\t\t%d\t\t%s\n", l.Org, l.Pending, lagText(l.LagSeconds))
		}
	}
	tw.Flush()
}

// waitingFor says what an open batch waits for.
func waitingFor(b batchView) string {
	switch b.Status {
	case "held":
		return "approval: rosterd batch approve " + b.Org + " " + b.ID
	case "pending":
		return "its turn: the organization's earlier batches"
	case "processing":
		return "processing to end"
	}
	return ""
}

func lagText(seconds float64) string {
	if seconds <= 0 {
		return "caught up"
	}
	return time.Duration(seconds * float64(time.Second)).Round(time.Second).String()
}
