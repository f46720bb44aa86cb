package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// orgShowCommand is `rosterd org show ORG`.
func orgShowCommand() *command {
	return &command{
		name: "org show", args: "ORG", summary: "show an organization's settings, keys, counts and last batch",
		about: "Show one organization: every setting with the value in force (its own, or\n" +
			"the daemon's default from [defaults] in the config), its keys, the users,\n" +
			"groups and memberships of its snapshot, and its last batch.",
		example: "rosterd org show acme\nrosterd org show acme --json",
		minArgs: 1, maxArgs: 1,
		setup: func(fs *flag.FlagSet) action {
			opts := clientFlags(fs)
			jsonOut := fs.Bool("json", false, "print the organization, its keys and its last batch as one JSON object")
			return func(ctx context.Context, std stdio, args []string) error {
				c, err := opts.client()
				if err != nil {
					return err
				}
				org := args[0]
				var raw json.RawMessage
				if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+url.PathEscape(org), nil, "", &raw); err != nil {
					return fmt.Errorf("organization %s: %w", org, err)
				}
				var keys, batches struct{ Data []json.RawMessage }
				if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+url.PathEscape(org)+"/keys", nil, "", &keys); err != nil {
					return fmt.Errorf("keys of %s: %w", org, err)
				}
				if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+url.PathEscape(org)+"/batches?limit=1", nil, "", &batches); err != nil {
					return fmt.Errorf("batches of %s: %w", org, err)
				}
				var last json.RawMessage
				if len(batches.Data) > 0 {
					last = batches.Data[0]
				}
				if *jsonOut {
					if keys.Data == nil {
						keys.Data = []json.RawMessage{}
					}
					return writeIndentedJSON(std.out, map[string]any{"organization": raw, "keys": keys.Data, "last_batch": last})
				}
				return printOrg(std.out, raw, keys.Data, last)
			}
		},
	}
}

// printOrg writes `rosterd org show` for a person.
func printOrg(w io.Writer, raw json.RawMessage, rawKeys []json.RawMessage, rawLast json.RawMessage) error {
	var o orgView
	if err := json.Unmarshal(raw, &o); err != nil {
		return fmt.Errorf("decode organization: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Organization:\t%s\n", o.ID)
	fmt.Fprintf(tw, "Created:\t%s\n", o.CreatedAt.UTC().Format(time.RFC3339))
	if c := o.Counts; c != nil {
		fmt.Fprintf(tw, "Snapshot:\t%d users (%d active), %d groups, %d memberships\n", c.Users, c.Active, c.Groups, c.Memberships)
	}
	if len(rawLast) == 0 {
		fmt.Fprintf(tw, "Last batch:\tnone yet\n")
	} else {
		var b batchView
		if err := json.Unmarshal(rawLast, &b); err != nil {
			return fmt.Errorf("decode batch: %w", err)
		}
		fmt.Fprintf(tw, "Last batch:\t%s %s, %s, %s\n", b.ID, b.Status, b.CreatedAt.UTC().Format(time.RFC3339), changeSummary(b))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nSettings (\"default\": the daemon's [defaults]; change with rosterd org set):\n")
	writeSettings(w, o)
	fmt.Fprintf(w, "\nKeys (%d):\n", len(rawKeys))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, rk := range rawKeys {
		var k keyView
		if err := json.Unmarshal(rk, &k); err != nil {
			return fmt.Errorf("decode key: %w", err)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\tadded %s\n", k.Fingerprint, k.Type, k.Comment, k.CreatedAt.UTC().Format(time.RFC3339))
	}
	if len(rawKeys) == 0 {
		fmt.Fprintf(tw, "  none: add one with rosterd key add %s FILE\n", o.ID)
	}
	return tw.Flush()
}

// writeSettings lists every setting in force, marking the defaults.
func writeSettings(w io.Writer, o orgView) {
	names := make([]string, 0, len(o.EffectiveSettings))
	for name := range o.EffectiveSettings {
		names = append(names, name)
	}
	for name := range o.Settings {
		if _, ok := o.EffectiveSettings[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, name := range names {
		v, own := o.Settings[name]
		if !own {
			v = o.EffectiveSettings[name]
		}
		if own {
			fmt.Fprintf(tw, "  %s\t%s\n", name, settingText(v))
		} else {
			fmt.Fprintf(tw, "  %s\t%s\tdefault\n", name, settingText(v))
		}
	}
	tw.Flush()
}

// settingText renders a setting's JSON value: lists comma-separated,
// "-" for an empty list.
func settingText(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case []any:
		if len(v) == 0 {
			return "-"
		}
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = fmt.Sprint(x)
			if _, obj := x.(map[string]any); obj {
				b, _ := json.Marshal(x)
				parts[i] = escapeControl(string(b))
			}
		}
		return strings.Join(parts, ",")
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		return escapeControl(v)
	case map[string]any:
		if len(v) == 0 {
			return "-"
		}
		b, _ := json.Marshal(v)
		return escapeControl(string(b))
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// escapeControl shows control characters escaped, as \x1b (SPEC §5).
func escapeControl(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// orgSetCommand is `rosterd org set ORG KEY=VALUE...`.
func orgSetCommand() *command {
	return &command{
		name: "org set", args: "ORG KEY=VALUE...", summary: "change an organization's settings",
		about: "Change an organization's settings: each KEY=VALUE sets one, and KEY= returns\n" +
			"it to the daemon's default ([defaults] in the config). Values are read by\n" +
			"the setting's kind: lists (the *_patterns settings) comma-separated or as a\n" +
			"JSON array, numbers as numbers, durations as 10s or 5m, words as they are.\n" +
			"A bad value changes nothing and the message names the setting.\n\n" +
			"The settings (rosterd org show lists them with their values):\n" +
			"  users_patterns, user_groups_patterns, groups_patterns\n" +
			"      extra file name patterns (* and ?, case-insensitive) for each kind\n" +
			"  delete_threshold_percent, delete_threshold_count\n" +
			"      the deletion guard: hold a batch that would delete or deactivate\n" +
			"      more than this share of the active users and more than this many\n" +
			"  inactive_users\n" +
			"      keep (an inactive user stays, with state inactive) or delete\n" +
			"  settle\n" +
			"      the settle window before a batch starts\n" +
			"  columns, status_values\n" +
			"      how the organization's exports are read: its column names to rosterd's\n" +
			"      (a column, custom:NAME or drop) and its status words to active or\n" +
			"      inactive; a JSON object, or one entry with columns.NAME=VALUE\n" +
			"  date_format\n" +
			"      how employment_start_date is written: MM/DD/YYYY, DD.MM.YYYY, YYYYMMDD,\n" +
			"      excel, ...\n" +
			"  groups_from_columns\n" +
			"      users.csv columns whose values are group memberships: names\n" +
			"      comma-separated, or a JSON array whose entries are a name or an\n" +
			"      object {\"column\", \"template\" (\"Department: {value}\"), \"separator\"}\n" +
			"  pgp_key_file, require_signature\n" +
			"      the operator's own OpenPGP private key (an absolute path; default: the\n" +
			"      one rosterd org pgp makes), and whether uploads must be signed",
		example: "rosterd org set acme inactive_users=delete 'users_patterns=users_*.csv,Workday*.csv'\n" +
			"rosterd org set acme delete_threshold_percent=35 settle=30s\n" +
			"rosterd org set acme settle=          # back to the daemon's default\n" +
			"rosterd org set acme 'columns.Employee ID=user_id' 'columns.Work Email=email' date_format=MM/DD/YYYY\n" +
			"rosterd org set acme 'status_values={\"Terminated\": \"inactive\", \"On Leave\": \"active\"}'\n" +
			"rosterd org set acme 'groups_from_columns=[{\"column\": \"department_name\", \"template\": \"Department: {value}\"}, \"work_address_locality\"]'",
		minArgs: 2, maxArgs: -1,
		setup: withClient(func(ctx context.Context, c *apiClient, std stdio, args []string) error {
			org := args[0]
			var o orgView
			if err := c.do(ctx, http.MethodGet, "/v1/organizations/"+url.PathEscape(org), nil, "", &o); err != nil {
				return fmt.Errorf("organization %s: %w", org, err)
			}
			patch, err := parseSettings(args[1:], o.EffectiveSettings)
			if err != nil {
				return err
			}
			var after orgView
			if err := c.do(ctx, http.MethodPatch, "/v1/organizations/"+url.PathEscape(org), jsonBody(map[string]any{"settings": patch}), "application/json", &after); err != nil {
				return fmt.Errorf("change settings of %s: %w", org, err)
			}
			fmt.Fprintf(std.out, "organization %s: settings changed\n", org)
			writeSettings(std.out, after)
			return nil
		}),
	}
}

// parseSettings turns KEY=VALUE arguments into a PATCH settings object.
// The kind of each setting is that of its value in effective (the
// organization's settings in force), so settings the daemon adds are read
// right without this client knowing them: a list, a number, a boolean or
// a string. An empty value is null: back to the default.
func parseSettings(pairs []string, effective map[string]any) (map[string]json.RawMessage, error) {
	known := make([]string, 0, len(effective))
	for k := range effective {
		known = append(known, k)
	}
	sort.Strings(known)
	out := map[string]json.RawMessage{}
	for _, p := range pairs {
		key, val, ok := strings.Cut(p, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, usageError("%q is not KEY=VALUE", p)
		}
		if base, entry, dotted := strings.Cut(key, "."); dotted {
			// One entry of a map setting: columns.SSN=drop, columns.SSN=
			// to remove it. The rest of the map is kept.
			if cur, isMap := effective[base].(map[string]any); isMap {
				m := map[string]string{}
				if prev, ok := out[base]; ok {
					json.Unmarshal(prev, &m)
				} else {
					for k, v := range cur {
						m[k] = fmt.Sprint(v)
					}
				}
				if val = strings.TrimSpace(val); val == "" {
					delete(m, entry)
				} else {
					m[entry] = val
				}
				out[base], _ = json.Marshal(m)
				continue
			}
		}
		cur, ok := effective[key]
		if !ok {
			return nil, usageError("unknown setting %q: the settings are %s", key, strings.Join(known, ", "))
		}
		raw, err := settingJSON(cur, strings.TrimSpace(val))
		if err != nil {
			return nil, usageError("%s: %v", key, err)
		}
		out[key] = raw
	}
	return out, nil
}

// settingJSON reads val as the same kind of JSON value as cur.
func settingJSON(cur any, val string) (json.RawMessage, error) {
	if val == "" {
		return json.RawMessage("null"), nil
	}
	switch cur.(type) {
	case []any:
		var list []string
		if strings.HasPrefix(val, "[") {
			if err := json.Unmarshal([]byte(val), &list); err != nil {
				// Entries may also be objects (groups_from_columns):
				// the daemon checks them.
				var items []any
				if json.Unmarshal([]byte(val), &items) != nil || !namesOrObjects(items) {
					return nil, fmt.Errorf("%q is not a JSON array of strings", val)
				}
				return json.RawMessage(val), nil
			}
		} else {
			for _, item := range strings.Split(val, ",") {
				if item = strings.TrimSpace(item); item != "" {
					list = append(list, item)
				}
			}
		}
		if list == nil {
			list = []string{}
		}
		return json.Marshal(list)
	case float64:
		if _, err := strconv.ParseFloat(val, 64); err != nil || !json.Valid([]byte(val)) {
			return nil, fmt.Errorf("%q is not a number", val)
		}
		return json.RawMessage(val), nil
	case map[string]any:
		var m map[string]string
		if err := json.Unmarshal([]byte(val), &m); err != nil {
			return nil, fmt.Errorf("%q is not a JSON object of names, such as {\"Employee ID\": \"user_id\"} (or set one entry with KEY.NAME=VALUE)", val)
		}
		return json.Marshal(m)
	case bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", val)
		}
		return json.Marshal(b)
	}
	return json.Marshal(val)
}

// namesOrObjects reports whether every item is a string or an object.
func namesOrObjects(items []any) bool {
	for _, x := range items {
		switch x.(type) {
		case string, map[string]any:
		default:
			return false
		}
	}
	return true
}

// writeIndentedJSON writes v as indented JSON.
func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
