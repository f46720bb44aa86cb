package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// orgView is what the API answers for an organization.
type orgView struct {
	ID        string         `json:"id"`
	Settings  map[string]any `json:"settings"`
	CreatedAt time.Time      `json:"created_at"`
	// Only in the answer about one organization:
	EffectiveSettings map[string]any `json:"effective_settings"`
	Counts            *struct {
		Users       int `json:"users"`
		Active      int `json:"active"`
		Groups      int `json:"groups"`
		Memberships int `json:"memberships"`
	} `json:"counts"`
}

// keyView is what the API answers for a key.
type keyView struct {
	Fingerprint string    `json:"fingerprint"`
	Type        string    `json:"type"`
	Comment     string    `json:"comment"`
	CreatedAt   time.Time `json:"created_at"`
}

// orgCommand is `rosterd org add|list|remove|show|set|invite|pgp` (SPEC §2).
func orgCommand() *command {
	return &command{
		name: "org", summary: "create, list, show, change, invite and remove organizations",
		about: "An organization is one customer. Its name is the SSH user name its uploads\n" +
			"log in with and the name of its SFTP folder: 1 to 63 lowercase letters,\n" +
			"digits and dashes, starting with a letter or digit. These commands talk to\n" +
			"the running daemon.",
		example: "rosterd org add acme --key acme_export.pub\n" +
			"rosterd org show acme\n" +
			"rosterd org set acme inactive_users=delete",
		subs: []*command{
			{
				name: "org add", args: "ORG", summary: "create an organization, optionally with its first key",
				about: "Create an organization and its SFTP folder, optionally with its first public\n" +
					"keys (authorized_keys lines or an RFC 4716 \"SSH2\" block). Add more keys\n" +
					"later with \"rosterd key add\".",
				example: "rosterd org add acme --key acme_export.pub\n" +
					"ssh-keygen -y -f id_ed25519 | rosterd org add acme --key -",
				minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) action {
					opts := clientFlags(fs)
					keyFile := fs.String("key", "", "public key `FILE` of the organization (authorized_keys or RFC 4716), - for standard input")
					return func(ctx context.Context, std stdio, args []string) error {
						c, err := opts.client()
						if err != nil {
							return err
						}
						body := map[string]string{"name": args[0]}
						if *keyFile != "" {
							key, err := readKeyArg(*keyFile, std.in)
							if err != nil {
								return err
							}
							body["public_key"] = key
						}
						var o orgView
						if err := c.do(ctx, http.MethodPost, "/v1/organizations", jsonBody(body), "application/json", &o); err != nil {
							return fmt.Errorf("add organization %s: %w", args[0], err)
						}
						fmt.Fprintf(std.out, "organization %s created\n", o.ID)
						return nil
					}
				},
			},
			{
				name: "org list", summary: "list the organizations",
				about:   "List the organizations, in name order, with the time each was created.",
				example: "rosterd org list\nrosterd --data /var/lib/rosterd org list",
				setup: withClient(func(ctx context.Context, c *apiClient, std stdio, args []string) error {
					return listOrgs(ctx, c, std.out)
				}),
			},
			{
				name: "org remove", args: "ORG", summary: "remove an organization, its keys, snapshot, batches and folder",
				about: "Remove an organization: its keys, snapshot, batches, reports and SFTP folder.\n" +
					"Its open SFTP sessions are closed at once. Its events stay in the feed until\n" +
					"retention removes them, and the archive copies of its batches stay in\n" +
					"DATA/archive/ORG/.",
				example: "rosterd org remove acme",
				minArgs: 1, maxArgs: 1,
				setup: withClient(func(ctx context.Context, c *apiClient, std stdio, args []string) error {
					if err := c.do(ctx, http.MethodDelete, "/v1/organizations/"+url.PathEscape(args[0]), nil, "", nil); err != nil {
						return fmt.Errorf("remove organization %s: %w", args[0], err)
					}
					fmt.Fprintf(std.out, "organization %s removed\n", args[0])
					return nil
				}),
			},
			orgShowCommand(),
			orgSetCommand(),
			orgInviteCommand(),
			orgPGPCommand(),
		},
	}
}

func listOrgs(ctx context.Context, c *apiClient, w io.Writer) error {
	after := ""
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORGANIZATION\tCREATED")
	for {
		var page struct {
			Data         []orgView
			ListMetadata struct{ After *string } `json:"list_metadata"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/organizations?limit=1000&after="+url.QueryEscape(after), nil, "", &page); err != nil {
			return fmt.Errorf("list organizations: %w", err)
		}
		for _, o := range page.Data {
			fmt.Fprintf(tw, "%s\t%s\n", o.ID, o.CreatedAt.Format(time.RFC3339))
		}
		if page.ListMetadata.After == nil {
			break
		}
		after = *page.ListMetadata.After
	}
	return tw.Flush()
}

// keyCommand is `rosterd key add|list|remove` (SPEC §2).
func keyCommand() *command {
	return &command{
		name: "key", summary: "add, list and remove an organization's SSH public keys",
		about: "An organization logs in with any of its public keys, so a key is rotated by\n" +
			"adding the new one, letting the customer switch, then removing the old one.\n" +
			"Accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521, and RSA of at least 2048\n" +
			"bits, in authorized_keys form or the RFC 4716 \"SSH2\" form that Workday and\n" +
			"some Windows tools export.",
		example: "rosterd key add acme acme_export_2027.pub\n" +
			"rosterd key list acme\n" +
			"rosterd key remove acme SHA256:q1w2e3...",
		subs: []*command{
			{
				name: "key add", args: "ORG FILE|-", summary: "add public keys to an organization",
				about: "Add the public keys in FILE (or standard input for -) to an organization:\n" +
					"authorized_keys lines, or RFC 4716 \"SSH2\" blocks.",
				example: "rosterd key add acme acme_export_2027.pub\n" +
					"ssh-keygen -y -f id_ed25519 | rosterd key add acme -",
				minArgs: 2, maxArgs: 2,
				setup: withClient(func(ctx context.Context, c *apiClient, std stdio, args []string) error {
					key, err := readKeyArg(args[1], std.in)
					if err != nil {
						return err
					}
					var page struct{ Data []keyView }
					if err := c.do(ctx, http.MethodPost, "/v1/organizations/"+url.PathEscape(args[0])+"/keys", jsonBody(map[string]string{"public_key": key}), "application/json", &page); err != nil {
						return fmt.Errorf("add key to %s: %w", args[0], err)
					}
					for _, k := range page.Data {
						fmt.Fprintf(std.out, "key %s (%s %s) added to %s\n", k.Fingerprint, k.Type, k.Comment, args[0])
					}
					return nil
				}),
			},
			{
				name: "key list", args: "ORG", summary: "list an organization's keys with their fingerprints",
				about: "List an organization's keys: the SHA256 fingerprint (as ssh-keygen -lf\n" +
					"prints it), the type, the comment and when it was added.",
				example: "rosterd key list acme",
				minArgs: 1, maxArgs: 1,
				setup: withClient(func(ctx context.Context, c *apiClient, std stdio, args []string) error {
					keys, err := listKeys(ctx, c, args[0])
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "FINGERPRINT\tTYPE\tCOMMENT\tADDED")
					for _, k := range keys {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Fingerprint, k.Type, k.Comment, k.CreatedAt.Format(time.RFC3339))
					}
					return tw.Flush()
				}),
			},
			{
				name: "key remove", args: "ORG FINGERPRINT", summary: "remove a key; its SFTP sessions are closed",
				about: "Remove a key by its SHA256 fingerprint, as \"rosterd key list\" prints it\n" +
					"(the SHA256: prefix may be left out). The SFTP sessions that logged in\n" +
					"with it are closed at once.",
				example: "rosterd key remove acme SHA256:q1w2e3...",
				minArgs: 2, maxArgs: 2,
				setup: withClient(func(ctx context.Context, c *apiClient, std stdio, args []string) error {
					fp := strings.TrimPrefix(args[1], "SHA256:")
					if err := c.do(ctx, http.MethodDelete, "/v1/organizations/"+url.PathEscape(args[0])+"/keys/"+url.PathEscape("SHA256:"+fp), nil, "", nil); err != nil {
						return fmt.Errorf("remove key from %s: %w", args[0], err)
					}
					fmt.Fprintf(std.out, "key SHA256:%s removed from %s\n", fp, args[0])
					return nil
				}),
			},
		},
	}
}

// listKeys returns org's keys.
func listKeys(ctx context.Context, c *apiClient, org string) ([]keyView, error) {
	var page struct{ Data []keyView }
	if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+url.PathEscape(org)+"/keys", nil, "", &page); err != nil {
		return nil, fmt.Errorf("list keys of %s: %w", org, err)
	}
	return page.Data, nil
}

// readKeyArg reads a public key file, or standard input for "-".
func readKeyArg(name string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return "", fmt.Errorf("read public key: %w", err)
	}
	return string(b), nil
}
