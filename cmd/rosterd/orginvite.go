package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// runOrgInvite is `rosterd org invite ORG [--expires 7d] [--create]`
// (SPEC §2, §10): it creates a setup link for the organization's admin and
// prints its URL, which is shown only this once.
func runOrgInvite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "org invite ORG [--expires 7d] [--create]"
	fs := flag.NewFlagSet("org invite", flag.ContinueOnError)
	opts := clientFlags(fs)
	expires := fs.String("expires", "7d", "how long the link works: days (7d) or a duration (36h), at most 90d")
	create := fs.Bool("create", false, "create the organization when the link is first used, if it does not exist")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rosterd %s\n\n"+
			"Create a setup link for an organization's admin and print its URL. The admin\n"+
			"opens it to read the file requirements and the connection details, add their\n"+
			"public keys, check files and follow their uploads. The URL is shown only now;\n"+
			"revoke the link in the console or with DELETE /v1/organizations/ORG/setup_links/ID.\n"+
			"Set [console] public_url in the config for the address people reach.\n\n", use)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError(use)
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	var l struct {
		ID        string    `json:"id"`
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	body := map[string]any{"expires_in": *expires, "create_organization": *create}
	if err := c.do(ctx, http.MethodPost, "/v1/organizations/"+url.PathEscape(pos[0])+"/setup_links", jsonBody(body), "application/json", &l); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return fmt.Errorf("invite %s: no such organization; give --create to have the link create it", pos[0])
		}
		return fmt.Errorf("invite %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "setup link %s for %s, valid until %s:\n%s\n", l.ID, pos[0], l.ExpiresAt.UTC().Format(time.RFC3339), l.URL)
	return nil
}
