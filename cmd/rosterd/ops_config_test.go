package main

import (
	"encoding"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// configKeys lists every TOML key of Config as a dotted path
// ("limits.max_sessions", "webhook.url"), from its struct tags.
func configKeys(t *testing.T) []string {
	t.Helper()
	textType := reflect.TypeFor[encoding.TextUnmarshaler]()
	var walk func(reflect.Type, string) []string
	walk = func(typ reflect.Type, prefix string) []string {
		var keys []string
		for f := range typ.Fields() {
			if !f.IsExported() {
				continue
			}
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if tag == "" || tag == "-" {
				t.Errorf("config field %s%s has no toml tag", prefix, f.Name)
				continue
			}
			key, ft := prefix+tag, f.Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(textType) {
				keys = append(keys, walk(ft, key+".")...)
				continue
			}
			keys = append(keys, key)
		}
		return keys
	}
	return walk(reflect.TypeFor[Config](), "")
}

// definedKeys decodes the TOML file at path through readConfigFile (so it
// is accepted as a config file: no unknown key) and returns the dotted keys
// it sets.
func definedKeys(t *testing.T, path string) map[string]bool {
	t.Helper()
	cfg := defaultConfig()
	if err := readConfigFile(path, &cfg); err != nil {
		t.Fatalf("readConfigFile(%s): %v", path, err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatalf("%s does not validate: %v", path, err)
	}
	var scratch Config
	md, err := toml.DecodeFile(path, &scratch)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, k := range md.Keys() {
		set[k.String()] = true
	}
	return set
}

// commentedSetting is a commented-out setting in examples/rosterd.toml:
// "#key = value" or "#[table]", as opposed to prose ("# text").
var commentedSetting = regexp.MustCompile(`^#(\[\[?[a-z_]+\]\]?\s*$|[a-z_0-9]+ = )`)

// uncommentExample writes examples/rosterd.toml with its commented-out
// settings enabled and returns the new file's path.
func uncommentExample(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir(t), "rosterd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		if commentedSetting.MatchString(l) {
			lines[i] = l[1:]
		}
	}
	p := filepath.Join(t.TempDir(), "rosterd.toml")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExampleConfigIsTheDefaults checks that examples/rosterd.toml, as
// shipped, sets every value it sets to the built-in default, so the
// defaults it documents are the real ones and copying it changes nothing.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	var got Config
	path := filepath.Join(examplesDir(t), "rosterd.toml")
	if err := readConfigFile(path, &got); err != nil {
		t.Fatalf("readConfigFile(%s): %v", path, err)
	}
	if diff := cmp.Diff(defaultConfig(), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("examples/rosterd.toml differs from defaultConfig() (-default +example):\n%s", diff)
	}
}

// TestExampleConfigSetsEveryKey checks that examples/rosterd.toml names
// every key of Config, set or commented out, and that with its commented
// examples enabled it is a valid config file: a new key without an entry
// there fails here.
func TestExampleConfigSetsEveryKey(t *testing.T) {
	defined := definedKeys(t, uncommentExample(t))
	keys := configKeys(t)
	if len(keys) < 30 {
		t.Fatalf("configKeys found only %d keys: %v", len(keys), keys)
	}
	for _, k := range keys {
		if !defined[k] {
			t.Errorf("examples/rosterd.toml does not document key %s", k)
		}
	}
}

// allKeysChanged sets every key of Config to a valid value other than its
// default. TestSIGHUPReload checks that it names every key, so it cannot go
// stale either.
const allKeysChanged = `
data = "/elsewhere"
store = "postgres://rosterd@db.invalid/rosterd"
instance = "elsewhere"
lease_ttl = "10s"
sftp_addr = "127.0.0.1:1"
http_addr = "127.0.0.1:2"
settle = "1s"
log_format = "text"
api_token = "changed-token"
allow_sha1_rsa = true
shutdown_timeout = "5s"
tls_cert = "/elsewhere/cert.pem"
tls_key = "/elsewhere/key.pem"

[limits]
max_upload_size = "10MiB"
max_sessions = 2
idle_timeout = "1m"
ban_failures = 3
ban_window = "1m"
ban_duration = "1m"
max_columns = 64
max_field_size = "1KiB"
max_compression_ratio = 50
memory = "512MiB"
max_startups = "5:50:20"
max_startups_per_address = 3
login_grace_time = "10s"
key_recheck_interval = "30s"
storage_quota = "20GiB"
min_free_space = "512MiB"
min_free_percent = 1.0

[http]
max_connections = 64
read_header_timeout = "5s"
read_timeout = "30s"
write_timeout = "30s"
idle_timeout = "10s"

[defaults]
inactive_users = "delete"
delete_threshold_percent = 50.0
delete_threshold_count = 3
users_patterns = ["users_*.csv"]
user_groups_patterns = ["user_groups_*.csv"]
groups_patterns = ["groups_*.csv"]

[retention]
events = "24h"
archive = "240h"
archive_batches = 5
reports = 10

[delivery]
timeout = "3s"
schedule = ["1s", "2s"]

[[webhook]]
id = "app"
url = "http://127.0.0.1:9/hook"
secret = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ="
organizations = ["acme"]
signature = "workos"

[console]
public_url = "https://rosterd.example.com"
public_sftp_addr = "sftp.example.com:22"
session_timeout = "1h"

[[operator]]
name = "alice"
password_hash = "$2b$04$RyECdZtel9BG4UDjufiBveIkNiiVK8HtrnuHzk7z6VyuKQ9AzGOEi"
`

// restartKeys returns the keys examples/rosterd.toml marks "[restart]" in
// the comment block right above them.
func restartKeys(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir(t), "rosterd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	keyLine := regexp.MustCompile(`^#?([a-z_0-9]+) = `)
	table := regexp.MustCompile(`^#?\[\[?([a-z_]+)\]\]?\s*$`)
	var keys []string
	prefix, block := "", ""
	for l := range strings.SplitSeq(string(raw), "\n") {
		switch {
		case table.MatchString(l):
			prefix, block = table.FindStringSubmatch(l)[1]+".", ""
		case keyLine.MatchString(l):
			if strings.Contains(block, "[restart]") {
				keys = append(keys, prefix+keyLine.FindStringSubmatch(l)[1])
			}
			block = ""
		case strings.HasPrefix(l, "#"):
			block += l
		default:
			block = ""
		}
	}
	sort.Strings(keys)
	return keys
}

// TestSIGHUPReload runs the daemon from a config file, changes it and sends
// SIGHUP: a reloadable change is applied and logged as reloaded, a change
// of a [restart] key is logged as needing a restart (and exactly the keys
// examples/rosterd.toml marks so are), and an invalid file is refused with
// the running configuration kept.
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	cfgPath, data := filepath.Join(dir, "rosterd.toml"), filepath.Join(dir, "data")
	// The data directory comes from the file too, so that changing it is
	// seen by the reload (a --data flag would override the file).
	base := "data = " + strconv.Quote(data) + "\nsftp_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\nlog_format = \"json\"\n"
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base + "settle = \"1h\"\n[limits]\nmax_sessions = 10\n")
	d := startServeArgs(t, data, []string{"--config", cfgPath}, nil)
	key := addOrg(t, d, "acme")

	// sessions opens n SSH sessions on one new connection and returns how
	// many the daemon granted.
	sessions := func(n int) int {
		t.Helper()
		c, err := dialSSH(t, d, "acme", key)
		if err != nil {
			t.Fatalf("ssh dial: %v", err)
		}
		defer c.Close()
		granted := 0
		for range n {
			if s, err := c.NewSession(); err == nil {
				defer s.Close()
				granted++
			}
		}
		return granted
	}
	if got := sessions(3); got != 3 {
		t.Fatalf("sessions granted with max_sessions = 10: %d; want 3", got)
	}

	reloads := func() []map[string]any { return logMatches(d, msgPrefix("configuration reloaded")) }
	hup := func(what string, n func() int) {
		t.Helper()
		before := n()
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, what, func() bool { return n() > before })
	}

	// A reloadable change: applied, and logged without a restart note.
	write(base + "settle = \"0s\"\n[limits]\nmax_sessions = 2\n[defaults]\ndelete_threshold_percent = 50.0\n" +
		"[[webhook]]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ=\"\n")
	hup("the reload log line", func() int { return len(reloads()) })
	if last := reloads()[len(reloads())-1]; last["msg"] != "configuration reloaded" || last["keys"] != nil {
		t.Errorf("reload of reloadable keys logged %v; want \"configuration reloaded\" with no restart keys", last)
	}
	if got := sessions(3); got != 2 {
		t.Errorf("sessions granted after reloading max_sessions = 2: %d; want 2", got)
	}
	// The settle window went from 1h to 0s: an upload is processed now.
	if ingestWired(t, d, "acme") {
		src := filepath.Join(t.TempDir(), "users.csv")
		os.WriteFile(src, []byte(exportUsers), 0o644)
		if out, ok := sftpBatch(t, d, key, "acme", "put "+src+" users.csv\n"); !ok {
			t.Fatalf("upload: %s", out)
		}
		waitLatestReport(t, d, "acme", 10*time.Second, nil)
	} else {
		t.Log("settle reload not checked: waits on the ingest pipeline")
	}

	// sftp_addr needs a restart: logged as such, and the old address keeps
	// serving.
	write(strings.Replace(base, "sftp_addr = \"127.0.0.1:0\"", "sftp_addr = \"127.0.0.1:1\"", 1) + "[limits]\nmax_sessions = 2\n")
	hup("the reload log line", func() int { return len(reloads()) })
	last := reloads()[len(reloads())-1]
	if keys, _ := last["keys"].(string); !strings.Contains(last["msg"].(string), "restart") || keys != "sftp_addr" {
		t.Errorf("reload after changing sftp_addr logged %v; want a restart note naming sftp_addr", last)
	}
	if c, err := dialSSH(t, d, "acme", key); err != nil {
		t.Errorf("ssh to the running address after the sftp_addr change: %v", err)
	} else {
		c.Close()
	}

	// Every key changed: exactly the keys marked [restart] in
	// examples/rosterd.toml are reported as waiting for a restart.
	changedPath := filepath.Join(t.TempDir(), "all.toml")
	os.WriteFile(changedPath, []byte(allKeysChanged), 0o600)
	defined := definedKeys(t, changedPath)
	for _, k := range configKeys(t) {
		if !defined[k] {
			t.Errorf("allKeysChanged does not set %s", k)
		}
	}
	write(allKeysChanged)
	hup("the reload log line", func() int { return len(reloads()) })
	last = reloads()[len(reloads())-1]
	keys, _ := last["keys"].(string)
	got := strings.Split(keys, ",")
	slices.Sort(got)
	if want := restartKeys(t); !slices.Equal(got, want) {
		t.Errorf("changing every key: reload reports restart keys %v; examples/rosterd.toml marks %v [restart]", got, want)
	}

	// An invalid file is refused, naming the key; the running limits stay.
	write(base + "[limits]\nmax_sessions = 0\n")
	refused := func() []map[string]any { return logMatches(d, msgPrefix("reload refused")) }
	hup("the refused-reload log line", func() int { return len(refused()) })
	if msg, _ := refused()[0]["err"].(string); !strings.Contains(msg, "limits.max_sessions") {
		t.Errorf("refused reload logged err %q; want it to name limits.max_sessions", msg)
	}
	if got := sessions(3); got != 2 {
		t.Errorf("sessions granted after a refused reload: %d; want the running limit, 2", got)
	}

	if strings.Contains(d.Logs(), "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ") || strings.Contains(d.Logs(), "changed-token") {
		t.Error("a webhook secret or API token from the config file appears in the log")
	}
}

// TestSIGHUPRaisesUploadLimit raises limits.max_upload_size by SIGHUP and
// uploads a file between the old and the new limit: sftpd and the ingest
// pipeline must both use the new limit, so the batch is applied.
func TestSIGHUPRaisesUploadLimit(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "rosterd.toml")
	os.WriteFile(cfgPath, []byte("settle = \"0s\"\n[limits]\nmax_upload_size = \"1KiB\"\n"), 0o600)
	d := startDaemon(t, daemonOpts{Args: []string{"--config", cfgPath}})
	key := addOrg(t, d, "acme")
	if !ingestWired(t, d, "acme") {
		t.Skip("waits on the ingest pipeline")
	}
	var b strings.Builder
	b.WriteString("user_id,email,first_name,last_name\n")
	for i := range 100 {
		fmt.Fprintf(&b, "E%d,user%d@example.com,First,Last\n", i, i)
	}
	src := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(src, []byte(b.String()), 0o644)
	if out, ok := sftpBatch(t, d, key, "acme", "put "+src+" users.csv\n"); ok {
		t.Fatalf("a %d-byte upload with max_upload_size 1KiB succeeded:\n%s", b.Len(), out)
	}

	os.WriteFile(cfgPath, []byte("settle = \"0s\"\n[limits]\nmax_upload_size = \"1MiB\"\n"), 0o600)
	before := len(logMatches(d, msgPrefix("configuration reloaded")))
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload", func() bool { return len(logMatches(d, msgPrefix("configuration reloaded"))) > before })
	if out, ok := sftpBatch(t, d, key, "acme", "put "+src+" users.csv\n"); !ok {
		t.Fatalf("a %d-byte upload after raising max_upload_size to 1MiB failed:\n%s", b.Len(), out)
	}
	rep := waitLatestReport(t, d, "acme", 10*time.Second, nil)
	if rep["status"] != "applied" || countOf(rep, "users") != 100 {
		t.Errorf("report after raising the limit: status %v, users %d, issues %v; want applied with 100 users", rep["status"], countOf(rep, "users"), rep["issues"])
	}
}
