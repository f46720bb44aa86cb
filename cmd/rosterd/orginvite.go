package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// orgInviteCommand is `rosterd org invite ORG [--expires 7d] [--create]`
// (SPEC §10): a setup link for the organization's admin, printed once.
func orgInviteCommand() *command {
	return &command{
		name: "org invite", args: "ORG", summary: "create a setup link for an organization's admin",
		about: "Create a setup link for an organization's admin and print its URL. The admin\n" +
			"opens it to read the file requirements and the connection details, add their\n" +
			"public keys, check files and follow their uploads. The URL is shown only now;\n" +
			"revoke the link in the console or with DELETE /v1/organizations/ORG/setup_links/ID.\n" +
			"Set [console] public_url in the config for the address people reach.",
		example: "rosterd org invite acme\n" +
			"rosterd org invite newcustomer --create --expires 14d",
		minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) action {
			opts := clientFlags(fs)
			expires := fs.String("expires", "7d", "how long the link works: days (7d) or a duration (36h), at most 90d")
			create := fs.Bool("create", false, "create the organization when the link is first used, if it does not exist")
			return func(ctx context.Context, std stdio, args []string) error {
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
				if err := c.do(ctx, http.MethodPost, "/v1/organizations/"+url.PathEscape(args[0])+"/setup_links", jsonBody(body), "application/json", &l); err != nil {
					var ae *apiError
					if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
						return fmt.Errorf("invite %s: no such organization; give --create to have the link create it", args[0])
					}
					return fmt.Errorf("invite %s: %w", args[0], err)
				}
				fmt.Fprintf(std.out, "setup link %s for %s, valid until %s:\n%s\n", l.ID, args[0], l.ExpiresAt.UTC().Format(time.RFC3339), l.URL)
				return nil
			}
		},
	}
}
