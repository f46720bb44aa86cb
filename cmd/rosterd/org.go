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
}

func runOrg(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("org add ORG [--key FILE|-] | org list | org remove ORG | org pgp ORG")
	}
	if args[0] == "pgp" {
		return runOrgPGP(ctx, args[1:], stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("org "+args[0], flag.ContinueOnError)
	opts := clientFlags(fs)
	keyFile := ""
	if args[0] == "add" {
		fs.StringVar(&keyFile, "key", "", "public key file of the organization (authorized_keys or RFC 4716), - for standard input")
	}
	pos, err := parseFlags(fs, args[1:], stderr)
	if err != nil {
		return err
	}
	want := map[string]int{"add": 1, "list": 0, "remove": 1}
	n, ok := want[args[0]]
	if !ok || len(pos) != n {
		return usageError("org add ORG [--key FILE|-] | org list | org remove ORG")
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	switch args[0] {
	case "add":
		body := map[string]string{"name": pos[0]}
		if keyFile != "" {
			key, err := readKeyArg(keyFile, stdin)
			if err != nil {
				return err
			}
			body["public_key"] = key
		}
		var o orgView
		if err := c.do(ctx, http.MethodPost, "/v1/organizations", jsonBody(body), "application/json", &o); err != nil {
			return fmt.Errorf("add organization %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "organization %s created\n", o.ID)
		return nil
	case "list":
		after := ""
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ORGANIZATION\tCREATED")
		for {
			var page struct {
				Data         []orgView
				ListMetadata struct{ After *string } `json:"list_metadata"`
			}
			if err := c.do(ctx, http.MethodGet, "/v1/organizations?limit=1000&after="+after, nil, "", &page); err != nil {
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
	default:
		if err := c.do(ctx, http.MethodDelete, "/v1/organizations/"+pos[0], nil, "", nil); err != nil {
			return fmt.Errorf("remove organization %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "organization %s removed\n", pos[0])
		return nil
	}
}

func runKey(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const use = "key add ORG FILE|- | key list ORG | key remove ORG FINGERPRINT"
	if len(args) == 0 {
		return usageError(use)
	}
	fs := flag.NewFlagSet("key "+args[0], flag.ContinueOnError)
	opts := clientFlags(fs)
	pos, err := parseFlags(fs, args[1:], stderr)
	if err != nil {
		return err
	}
	want := map[string]int{"add": 2, "list": 1, "remove": 2}
	n, ok := want[args[0]]
	if !ok || len(pos) != n {
		return usageError(use)
	}
	c, err := opts.client()
	if err != nil {
		return err
	}
	type keyView struct {
		Fingerprint, Type, Comment string
		CreatedAt                  time.Time `json:"created_at"`
	}
	var page struct{ Data []keyView }
	switch args[0] {
	case "add":
		key, err := readKeyArg(pos[1], stdin)
		if err != nil {
			return err
		}
		if err := c.do(ctx, http.MethodPost, "/v1/organizations/"+pos[0]+"/keys", jsonBody(map[string]string{"public_key": key}), "application/json", &page); err != nil {
			return fmt.Errorf("add key to %s: %w", pos[0], err)
		}
		for _, k := range page.Data {
			fmt.Fprintf(stdout, "key %s (%s %s) added to %s\n", k.Fingerprint, k.Type, k.Comment, pos[0])
		}
		return nil
	case "list":
		if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+pos[0]+"/keys", nil, "", &page); err != nil {
			return fmt.Errorf("list keys of %s: %w", pos[0], err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FINGERPRINT\tTYPE\tCOMMENT\tADDED")
		for _, k := range page.Data {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Fingerprint, k.Type, k.Comment, k.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	default:
		fp := strings.TrimPrefix(pos[1], "SHA256:")
		if err := c.do(ctx, http.MethodDelete, "/v1/organizations/"+pos[0]+"/keys/"+url.PathEscape("SHA256:"+fp), nil, "", nil); err != nil {
			return fmt.Errorf("remove key from %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "key SHA256:%s removed from %s\n", fp, pos[0])
		return nil
	}
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
