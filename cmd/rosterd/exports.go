package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
)

// Exports as they come (SPEC §4) on the command line: a mapping read from
// a TOML file or fetched from the daemon for validate and plan, .gz and
// .zip files for validate, and `rosterd org pgp`.

// mappingSettings are the organization settings that make its mapping,
// as a --mapping file holds them (TOML) and the API sends them (JSON).
type mappingSettings struct {
	Columns           map[string]string    `toml:"columns" json:"columns,omitempty"`
	StatusValues      map[string]string    `toml:"status_values" json:"status_values,omitempty"`
	DateFormat        string               `toml:"date_format" json:"date_format,omitempty"`
	GroupsFromColumns []groupColumnSetting `toml:"groups_from_columns" json:"groups_from_columns,omitempty"`
}

func (m mappingSettings) compile() (*schema.Mapping, error) {
	gs := make([]state.GroupColumn, len(m.GroupsFromColumns))
	for i, g := range m.GroupsFromColumns {
		gs[i] = g.GroupColumn
	}
	return ingest.OrgMapping(state.Settings{Columns: m.Columns, StatusValues: m.StatusValues, DateFormat: m.DateFormat, GroupsFromColumns: gs})
}

// groupColumnSetting is one entry of groups_from_columns: in TOML a
// column's name ("department_name") or a table with column and,
// optionally, template and separator; in JSON the same (state.GroupColumn).
type groupColumnSetting struct{ state.GroupColumn }

// UnmarshalTOML implements toml.Unmarshaler.
func (g *groupColumnSetting) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		g.GroupColumn = state.GroupColumn{Column: v}
		return nil
	case map[string]any:
		g.GroupColumn = state.GroupColumn{}
		for k, x := range v {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("groups_from_columns: %s must be a string", k)
			}
			switch k {
			case "column":
				g.Column = s
			case "template":
				g.Template = &s
			case "separator":
				g.Separator = s
			default:
				return fmt.Errorf("groups_from_columns: unknown key %s (the keys are column, template and separator)", k)
			}
		}
		return nil
	}
	return fmt.Errorf("groups_from_columns: an entry must be a column's name or a table with column, template and separator")
}

// readMappingFile reads a --mapping file: TOML with the keys columns,
// status_values, date_format and groups_from_columns. An unknown key or a
// bad mapping is an error naming it.
func readMappingFile(path string) (mappingSettings, *schema.Mapping, error) {
	var m mappingSettings
	md, err := toml.DecodeFile(path, &m)
	if err != nil {
		return m, nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return m, nil, fmt.Errorf("mapping %s: unknown keys %s (the keys are columns, status_values, date_format and groups_from_columns)", path, strings.Join(keys, ", "))
	}
	cm, err := m.compile()
	if err != nil {
		return m, nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return m, cm, nil
}

// fetchMapping returns org's mapping from the running daemon.
func fetchMapping(ctx context.Context, c *apiClient, org string) (*schema.Mapping, error) {
	var o struct {
		Settings mappingSettings `json:"settings"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+url.PathEscape(org), nil, "", &o); err != nil {
		return nil, fmt.Errorf("organization %s: %w", org, err)
	}
	m, err := o.Settings.compile()
	if err != nil {
		return nil, fmt.Errorf("the mapping of %s: %w", org, err)
	}
	return m, nil
}

// validateInputs opens the files for validate: a plain CSV file as it
// is, a .gz or .zip one decoded as an upload of it would be (each CSV file
// in a zip is an input). It returns notes on what a zip left out, and a
// func that closes everything.
func validateInputs(files []string, kind schema.Kind, maxRatio int) ([]report.Input, []string, func(), error) {
	var ins []report.Input
	var notes []string
	var closers []io.Closer
	done := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	for _, name := range files {
		local, more, c, err := ingest.OpenLocal(name, maxRatio)
		if err != nil {
			done()
			return nil, nil, nil, err
		}
		if c != nil {
			closers = append(closers, c)
		}
		notes = append(notes, more...)
		if local == nil {
			f, err := os.Open(name)
			if err != nil {
				done()
				return nil, nil, nil, err
			}
			closers = append(closers, f)
			ins = append(ins, report.Input{Name: filepath.Base(name), Kind: kind, R: f})
			continue
		}
		for _, l := range local {
			k := l.Kind
			if kind != "" {
				k = kind
			}
			ins = append(ins, report.Input{Name: l.Name, Kind: k, R: l.R,
				Outer: &report.File{Name: l.Outer, Size: l.Size, SHA256: l.SHA256, Decoded: l.Decoded}})
		}
	}
	return ins, notes, done, nil
}

// pgpOpts are `rosterd org pgp`'s flags.
type pgpOpts struct {
	algorithm    string
	rotate       bool
	keyOnly      bool
	jsonOut      bool
	addSigner    string
	removeSigner string
}

// orgPGP is `rosterd org pgp ORG`: it makes the organization's OpenPGP key
// pair when it has none (or --rotate), adds or removes a signing key, and
// shows the set-up with the public key to give the customer.
func orgPGP(ctx context.Context, c *apiClient, org string, o pgpOpts, stdin io.Reader, stdout io.Writer) error {
	base := "/v1/organizations/" + url.PathEscape(org) + "/pgp"
	var info ingest.PGPInfo
	made := false
	switch {
	case o.addSigner != "":
		key, err := readKeyArg(o.addSigner, stdin)
		if err != nil {
			return err
		}
		var added struct{ Data []ingest.PGPKey }
		if err := c.do(ctx, http.MethodPost, base+"/signers", jsonBody(map[string]string{"public_key": key}), "application/json", &added); err != nil {
			return fmt.Errorf("add signing key to %s: %w", org, err)
		}
		if !o.keyOnly && !o.jsonOut {
			for _, k := range added.Data {
				fmt.Fprintf(stdout, "signing key %s (%s, %s) added to %s\n", k.Fingerprint, k.UserID, k.Algorithm, org)
			}
		}
	case o.removeSigner != "":
		if err := c.do(ctx, http.MethodDelete, base+"/signers/"+url.PathEscape(o.removeSigner), nil, "", nil); err != nil {
			return fmt.Errorf("remove signing key from %s: %w", org, err)
		}
		if !o.keyOnly && !o.jsonOut {
			fmt.Fprintf(stdout, "signing key %s removed from %s\n", o.removeSigner, org)
		}
	default:
		var before ingest.PGPInfo
		if err := c.do(ctx, http.MethodGet, base, nil, "", &before); err != nil {
			return fmt.Errorf("OpenPGP key of %s: %w", org, err)
		}
		if !before.KeyFile && (len(before.Keys) == 0 || o.rotate) {
			req := map[string]any{"algorithm": o.algorithm, "rotate": o.rotate}
			if err := c.do(ctx, http.MethodPost, base, jsonBody(req), "application/json", &info); err != nil {
				return fmt.Errorf("make the OpenPGP key of %s: %w", org, err)
			}
			made = true
		} else if o.rotate {
			return fmt.Errorf("rotate the OpenPGP key of %s: its key is the file the operator set (pgp_key_file): replace that file instead", org)
		}
	}
	if !made {
		if err := c.do(ctx, http.MethodGet, base, nil, "", &info); err != nil {
			return fmt.Errorf("OpenPGP key of %s: %w", org, err)
		}
	}
	switch {
	case o.jsonOut:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	case o.keyOnly:
		if len(info.Keys) == 0 {
			return fmt.Errorf("%s has no OpenPGP key yet: run rosterd org pgp %s", org, org)
		}
		_, err := io.WriteString(stdout, info.Keys[0].PublicKey)
		return err
	}
	return printPGP(stdout, org, info, made)
}

// printPGP writes the organization's OpenPGP set-up for a person, ending
// with the armoured public key (text before it is ignored by gpg
// --import, so the whole output can be saved and imported).
func printPGP(w io.Writer, org string, info ingest.PGPInfo, made bool) error {
	if len(info.Keys) == 0 {
		fmt.Fprintf(w, "%s has no OpenPGP key for encrypted uploads yet.\n", org)
		return nil
	}
	k := info.Keys[0]
	state := "made earlier"
	if made {
		state = "made now"
	}
	if info.KeyFile {
		state = "the operator's key file (pgp_key_file)"
	}
	fmt.Fprintf(w, "Organization %s: OpenPGP key for encrypted uploads (%s)\n", org, state)
	fmt.Fprintf(w, "  key         %s  %s, %s, created %s\n", k.Fingerprint, k.UserID, k.Algorithm, k.CreatedAt.Format(time.DateOnly))
	for _, old := range info.Keys[1:] {
		fmt.Fprintf(w, "  older key   %s  %s, created %s (still decrypts)\n", old.Fingerprint, old.Algorithm, old.CreatedAt.Format(time.DateOnly))
	}
	req := "not required"
	if info.RequireSignature {
		req = "required"
	}
	fmt.Fprintf(w, "  signatures  %s\n", req)
	signers := append([]ingest.PGPKey(nil), info.Signers...)
	sort.Slice(signers, func(i, j int) bool { return signers[i].Fingerprint < signers[j].Fingerprint })
	for _, s := range signers {
		fmt.Fprintf(w, "  signing key %s  %s, %s\n", s.Fingerprint, s.UserID, s.Algorithm)
	}
	if len(signers) == 0 {
		fmt.Fprintf(w, "  signing key none (add the customer's with --add-signer FILE)\n")
	}
	fmt.Fprintf(w, "\nThe customer encrypts to this public key (rosterd org pgp %s --key-only > %s-rosterd.asc):\n", org, org)
	fmt.Fprintf(w, "  gpg --import %s-rosterd.asc\n", org)
	fmt.Fprintf(w, "  gpg --encrypt --recipient %s --output users.csv.gpg users.csv\n\n", k.Fingerprint)
	_, err := io.WriteString(w, k.PublicKey)
	return err
}

// orgPGPCommand is `rosterd org pgp ORG` (SPEC §2).
func orgPGPCommand() *command {
	return &command{
		name: "org pgp", args: "ORG", summary: "the organization's OpenPGP key for encrypted uploads",
		about: "Make the organization's OpenPGP key pair if it has none, and show it with the\n" +
			"public key for the customer to encrypt their uploads to (users.csv.gpg,\n" +
			"users.csv.asc). The private key stays in the data directory (pgp/ORG/, 0600),\n" +
			"unless the organization's pgp_key_file setting names the operator's own.\n" +
			"--add-signer and --remove-signer manage the customer's signing keys, which\n" +
			"the setting require_signature=true makes mandatory.",
		example: "rosterd org pgp acme\n" +
			"rosterd org pgp acme --key-only > acme-rosterd.asc\n" +
			"rosterd org pgp acme --algorithm ecc --rotate\n" +
			"rosterd org pgp acme --add-signer hr-signing.asc\n" +
			"rosterd org set acme require_signature=true",
		minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) action {
			opts := clientFlags(fs)
			var o pgpOpts
			fs.StringVar(&o.algorithm, "algorithm", "rsa", "the key pair to make: rsa (RSA 3072, which every OpenPGP tool takes) or ecc (Curve25519)")
			fs.BoolVar(&o.rotate, "rotate", false, "make a new key pair beside the existing one (files encrypted to the old one still decrypt)")
			fs.BoolVar(&o.keyOnly, "key-only", false, "print only the armoured public key, to send to the customer")
			fs.BoolVar(&o.jsonOut, "json", false, "print the set-up as JSON")
			fs.StringVar(&o.addSigner, "add-signer", "", "add the customer's public signing key from `FILE` (armoured or binary; - reads standard input)")
			fs.StringVar(&o.removeSigner, "remove-signer", "", "remove the signing key with this `FINGERPRINT`")
			return func(ctx context.Context, std stdio, args []string) error {
				if o.addSigner != "" && o.removeSigner != "" {
					return usageError("give --add-signer or --remove-signer, not both")
				}
				c, err := opts.client()
				if err != nil {
					return err
				}
				return orgPGP(ctx, c, args[0], o, std.in, std.out)
			}
		},
	}
}
