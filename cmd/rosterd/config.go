package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/sftpd"
)

// Config is everything `rosterd serve` can be told, with SPEC's defaults.
// It is filled from defaults, then the TOML file, then the environment,
// then flags: each later source beats the earlier ones.
type Config struct {
	Data string `toml:"data"`
	// Store is where the state lives: "" for the bbolt file in Data, or a
	// postgres:// URL that several instances share (SPEC §11; ingest does
	// not run on it yet).
	Store string `toml:"store"`
	// Instance names this instance in a fleet on PostgreSQL: the holder
	// of the leases it takes. "" = the host name, the process id and a
	// random suffix.
	Instance string `toml:"instance"`
	// LeaseTTL is how long a lease of a fleet's instance lasts without a
	// renewal: how soon another instance takes over the work of one that
	// died. Renewed every third of it.
	LeaseTTL        Duration `toml:"lease_ttl"`
	SFTPAddr        string   `toml:"sftp_addr"`
	HTTPAddr        string   `toml:"http_addr"`
	Settle          Duration `toml:"settle"`
	LogFormat       string   `toml:"log_format"`
	APIToken        string   `toml:"api_token"`
	AllowSHA1RSA    bool     `toml:"allow_sha1_rsa"`
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// TLSCert and TLSKey are PEM files: set, the HTTP listener (API,
	// console, setup pages) speaks HTTPS only.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`

	Limits    LimitsConfig    `toml:"limits"`
	HTTP      HTTPConfig      `toml:"http"`
	Defaults  DefaultsConfig  `toml:"defaults"`
	Retention RetentionConfig `toml:"retention"`
	Delivery  DeliveryConfig  `toml:"delivery"`
	Webhooks  []WebhookConfig `toml:"webhook"`

	// The web console and setup pages (SPEC §10).
	Console   ConsoleConfig    `toml:"console"`
	Operators []OperatorConfig `toml:"operator"`
}

// ConsoleConfig is the [console] table: the web console and the setup
// pages (SPEC §10).
type ConsoleConfig struct {
	// PublicURL is where people reach the HTTP listener
	// ("https://rosterd.example.com"), for setup links; empty: the scheme
	// and host of the request that creates the link.
	PublicURL string `toml:"public_url"`
	// PublicSFTPAddr is the host:port the setup page tells admins to
	// connect to; empty: sftp_addr, with the page's host when sftp_addr
	// has none.
	PublicSFTPAddr string   `toml:"public_sftp_addr"`
	SessionTimeout Duration `toml:"session_timeout"`
}

// OperatorConfig is one [[operator]]: a person who may sign in to the
// console with a password, besides the API token.
type OperatorConfig struct {
	Name         string `toml:"name"`
	PasswordHash string `toml:"password_hash"`
}

// LimitsConfig is the [limits] table (SPEC §3, §4).
type LimitsConfig struct {
	MaxUploadSize Size     `toml:"max_upload_size"`
	MaxSessions   int      `toml:"max_sessions"`
	IdleTimeout   Duration `toml:"idle_timeout"`
	BanFailures   int      `toml:"ban_failures"`
	BanWindow     Duration `toml:"ban_window"`
	BanDuration   Duration `toml:"ban_duration"`
	MaxColumns    int      `toml:"max_columns"`
	MaxFieldSize  Size     `toml:"max_field_size"`
	// MaxCompressionRatio is how many times its size a compressed or
	// encrypted upload may expand before it is refused as a zip bomb.
	MaxCompressionRatio int `toml:"max_compression_ratio"`
	// Disk space (SPEC §3): uploads are refused while the file system of
	// the organization folders (or of the data directory) has less free
	// than MinFreeSpace or MinFreePercent of its size, whichever is
	// larger, and while an organization holds StorageQuota (its folder,
	// reports and archive; its storage_quota setting wins).
	StorageQuota   Size    `toml:"storage_quota"`
	MinFreeSpace   Size    `toml:"min_free_space"`
	MinFreePercent float64 `toml:"min_free_percent"`
	// Memory is the Go runtime's soft memory limit (runtime/debug.SetMemoryLimit):
	// the garbage collector works harder as the heap nears it instead of
	// letting it grow to twice what is live. 0 = no limit. GOMEMLIMIT in
	// the environment wins over it.
	Memory Size `toml:"memory"`

	// Connections that have not authenticated (SPEC §3): OpenSSH's
	// MaxStartups "start:rate:full", a cap per IP address, and the time
	// they get to authenticate.
	MaxStartups           sftpd.Startups `toml:"max_startups"`
	MaxStartupsPerAddress int            `toml:"max_startups_per_address"`
	LoginGraceTime        Duration       `toml:"login_grace_time"`
	// KeyRecheckInterval is how often an open SFTP session's key is
	// checked against the store again (a removal through another instance
	// reaches it within this time).
	KeyRecheckInterval Duration `toml:"key_recheck_interval"`
}

// HTTPConfig is the [http] table: the HTTP listener's connection cap and
// timeouts. They change only at a restart.
type HTTPConfig struct {
	MaxConnections    int      `toml:"max_connections"`
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	ReadTimeout       Duration `toml:"read_timeout"`
	WriteTimeout      Duration `toml:"write_timeout"`
	IdleTimeout       Duration `toml:"idle_timeout"`
}

// DefaultsConfig is the [defaults] table: organization settings that
// apply where an organization has not chosen its own (SPEC §5).
type DefaultsConfig struct {
	InactiveUsers          string   `toml:"inactive_users"`
	DeleteThresholdPercent float64  `toml:"delete_threshold_percent"`
	DeleteThresholdCount   int      `toml:"delete_threshold_count"`
	UsersPatterns          []string `toml:"users_patterns"`
	UserGroupsPatterns     []string `toml:"user_groups_patterns"`
	GroupsPatterns         []string `toml:"groups_patterns"`
}

// RetentionConfig is the [retention] table.
type RetentionConfig struct {
	Events Duration `toml:"events"`
	// An archive copy is kept while it is younger than Archive ("0s":
	// forever) or among its organization's newest ArchiveBatches.
	Archive        Duration `toml:"archive"`
	ArchiveBatches int      `toml:"archive_batches"`
	Reports        int      `toml:"reports"`
}

// DeliveryConfig is the [delivery] table (SPEC §7).
type DeliveryConfig struct {
	Timeout  Duration   `toml:"timeout"`
	Schedule []Duration `toml:"schedule"`
}

// WebhookConfig is one [[webhook]] endpoint.
type WebhookConfig struct {
	ID            string   `toml:"id"`
	URL           string   `toml:"url"`
	Secret        string   `toml:"secret"`
	Organizations []string `toml:"organizations"`
	Signature     string   `toml:"signature"`
}

// DefaultMemoryLimit is [limits] memory's default: what a batch of a
// million users needs with the garbage collector's headroom cut, so that
// the daemon stays under 300 MB (see README, Performance).
const DefaultMemoryLimit = 256 << 20

// defaultConfig returns SPEC's defaults.
func defaultConfig() Config {
	return Config{
		Data:            "./rosterd-data",
		SFTPAddr:        "127.0.0.1:2022",
		HTTPAddr:        "127.0.0.1:8080",
		Settle:          Duration(10 * time.Second),
		LogFormat:       "auto",
		ShutdownTimeout: Duration(30 * time.Second),
		LeaseTTL:        Duration(webhook.DefaultLeaseTTL),
		Limits: LimitsConfig{
			MaxUploadSize: 1 << 30,
			MaxSessions:   10,
			IdleTimeout:   Duration(10 * time.Minute),
			BanFailures:   10,
			BanWindow:     Duration(5 * time.Minute),
			BanDuration:   Duration(15 * time.Minute),
			MaxColumns:    512,
			MaxFieldSize:  64 << 10,
			Memory:        DefaultMemoryLimit,

			MaxCompressionRatio: ingest.DefaultMaxCompressionRatio,
			StorageQuota:        ingest.DefaultStorageQuota,
			MinFreeSpace:        ingest.DefaultMinFree,
			MinFreePercent:      ingest.DefaultMinFreePercent,

			MaxStartups:           sftpd.DefaultStartups,
			MaxStartupsPerAddress: 10,
			LoginGraceTime:        Duration(30 * time.Second),
			KeyRecheckInterval:    Duration(time.Minute),
		},
		HTTP: HTTPConfig{
			MaxConnections:    256,
			ReadHeaderTimeout: Duration(10 * time.Second),
			ReadTimeout:       Duration(time.Minute),
			WriteTimeout:      Duration(time.Minute),
			IdleTimeout:       Duration(30 * time.Second),
		},
		Defaults: DefaultsConfig{
			InactiveUsers:          "keep",
			DeleteThresholdPercent: 20,
			DeleteThresholdCount:   10,
		},
		Retention: RetentionConfig{
			Events:         Duration(30 * 24 * time.Hour),
			Archive:        Duration(ingest.DefaultArchiveKeep),
			ArchiveBatches: ingest.DefaultArchiveBatches,
			Reports:        100,
		},
		Delivery: DeliveryConfig{Timeout: Duration(10 * time.Second)},
		Console:  ConsoleConfig{SessionTimeout: Duration(12 * time.Hour)},
	}
}

// serveFlags are serve's flags; each has an environment variable.
type serveFlags struct {
	fs                               *flag.FlagSet
	config, data, sftpAddr, httpAddr string
	store                            string
	settle, logFormat                string
	webhookURL, webhookSecret        string
	demo                             bool
}

func newServeFlags() *serveFlags {
	return registerServeFlags(flag.NewFlagSet("serve", flag.ContinueOnError))
}

// registerServeFlags registers serve's flags on fs.
func registerServeFlags(fs *flag.FlagSet) *serveFlags {
	f := &serveFlags{fs: fs}
	fs.StringVar(&f.config, "config", "", "TOML config `FILE` ($ROSTERD_CONFIG); examples/rosterd.toml documents every key")
	fs.StringVar(&f.data, "data", "", "data `DIR` ($ROSTERD_DATA; config key data; default ./rosterd-data)")
	fs.StringVar(&f.sftpAddr, "sftp-addr", "", "SFTP listen `host:port` ($ROSTERD_SFTP_ADDR; config key sftp_addr; default 127.0.0.1:2022)")
	fs.StringVar(&f.httpAddr, "http-addr", "", "HTTP listen `host:port` ($ROSTERD_HTTP_ADDR; config key http_addr; default 127.0.0.1:8080)")
	fs.StringVar(&f.store, "store", "", "the store, a postgres:// `URL` that several instances share ($ROSTERD_STORE; config key store; default the bbolt file in the data directory)")
	fs.StringVar(&f.settle, "settle", "", "settle window before a batch starts, a `duration` such as 10s or 0s ($ROSTERD_SETTLE; config key settle; default 10s)")
	fs.StringVar(&f.logFormat, "log-format", "", "log `format`: auto (text on a terminal, JSON otherwise), text or json ($ROSTERD_LOG_FORMAT; config key log_format; default auto)")
	fs.StringVar(&f.webhookURL, "webhook-url", "", "one webhook endpoint `URL` for all organizations ($ROSTERD_WEBHOOK_URL; config: [[webhook]])")
	fs.StringVar(&f.webhookSecret, "webhook-secret", "", "that endpoint's `secret`, whsec_ and base64 ($ROSTERD_WEBHOOK_SECRET)")
	fs.BoolVar(&f.demo, "demo", false, "on the first start, create organization demo with a client key pair and print the sftp command to try it")
	return f
}

// loadConfig builds the configuration from defaults, the TOML file, the
// environment and the parsed flags, and validates it.
func loadConfig(f *serveFlags, getenv func(string) string) (Config, error) {
	cfg := defaultConfig()
	path := first(f.config, getenv("ROSTERD_CONFIG"))
	if path != "" {
		if err := readConfigFile(path, &cfg); err != nil {
			return Config{}, err
		}
	}
	type source struct {
		key, flagVal, env string
		set               func(string) error
	}
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	var hookURL, hookSecret string
	sources := []source{
		{"data", f.data, "ROSTERD_DATA", str(&cfg.Data)},
		{"store", f.store, "ROSTERD_STORE", str(&cfg.Store)},
		{"instance", "", "ROSTERD_INSTANCE", str(&cfg.Instance)},
		{"sftp_addr", f.sftpAddr, "ROSTERD_SFTP_ADDR", str(&cfg.SFTPAddr)},
		{"http_addr", f.httpAddr, "ROSTERD_HTTP_ADDR", str(&cfg.HTTPAddr)},
		{"settle", f.settle, "ROSTERD_SETTLE", func(v string) error { return cfg.Settle.UnmarshalText([]byte(v)) }},
		{"log_format", f.logFormat, "ROSTERD_LOG_FORMAT", str(&cfg.LogFormat)},
		{"api_token", "", "ROSTERD_API_TOKEN", str(&cfg.APIToken)},
		{"tls_cert", "", "ROSTERD_TLS_CERT", str(&cfg.TLSCert)},
		{"tls_key", "", "ROSTERD_TLS_KEY", str(&cfg.TLSKey)},
		{"webhook-url", f.webhookURL, "ROSTERD_WEBHOOK_URL", str(&hookURL)},
		{"webhook-secret", f.webhookSecret, "ROSTERD_WEBHOOK_SECRET", str(&hookSecret)},
	}
	for _, s := range sources {
		v := first(s.flagVal, getenv(s.env))
		if v == "" {
			continue
		}
		if err := s.set(v); err != nil {
			return Config{}, fmt.Errorf("%s: %w", s.key, err)
		}
	}
	if hookURL != "" || hookSecret != "" {
		if hookURL == "" || hookSecret == "" {
			return Config{}, errors.New("--webhook-url and --webhook-secret go together: give both or neither")
		}
		cfg.Webhooks = append(cfg.Webhooks, WebhookConfig{URL: hookURL, Secret: hookSecret, Signature: "standard"})
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// readConfigFile decodes the TOML file over cfg, refusing unknown keys so
// a misspelt key is an error rather than a silently ignored setting.
func readConfigFile(path string, cfg *Config) error {
	md, err := toml.DecodeFile(path, cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("config %s: %s", path, perr.ErrorWithPosition())
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("config %s: unknown key %s (see examples/rosterd.toml for the keys)", path, strings.Join(keys, ", "))
	}
	return nil
}

// validate checks every value and names the key of the first bad one.
func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if c.Data == "" {
		bad("data", "must not be empty")
	}
	if err := validStore(c.Store); err != nil {
		bad("store", "%v", err)
	}
	if len(c.Instance) > 128 || strings.ContainsFunc(c.Instance, func(r rune) bool { return !unicode.IsPrint(r) }) {
		bad("instance", "must be at most 128 printable characters")
	}
	if c.LeaseTTL < Duration(time.Second) {
		bad("lease_ttl", "must be at least 1s (it is renewed every third of it)")
	}
	for key, addr := range map[string]string{"sftp_addr": c.SFTPAddr, "http_addr": c.HTTPAddr} {
		if !strings.Contains(addr, ":") {
			bad(key, "%q is not host:port", addr)
		}
	}
	if c.Settle < 0 {
		bad("settle", "must not be negative")
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		bad("log_format", "%q is not auto, text or json", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive")
	}
	l := c.Limits
	positive := map[string]int64{
		"limits.max_upload_size": int64(l.MaxUploadSize), "limits.max_sessions": int64(l.MaxSessions),
		"limits.idle_timeout": int64(l.IdleTimeout), "limits.ban_failures": int64(l.BanFailures),
		"limits.ban_window": int64(l.BanWindow), "limits.ban_duration": int64(l.BanDuration),
		"limits.max_columns": int64(l.MaxColumns), "limits.max_field_size": int64(l.MaxFieldSize),
		"limits.max_compression_ratio": int64(l.MaxCompressionRatio),
		"retention.events":             int64(c.Retention.Events), "retention.reports": int64(c.Retention.Reports),
		"retention.archive_batches": int64(c.Retention.ArchiveBatches), "limits.storage_quota": int64(l.StorageQuota),
		"delivery.timeout": int64(c.Delivery.Timeout), "console.session_timeout": int64(c.Console.SessionTimeout),

		"limits.max_startups_per_address": int64(l.MaxStartupsPerAddress), "limits.login_grace_time": int64(l.LoginGraceTime),
		"limits.key_recheck_interval": int64(l.KeyRecheckInterval), "http.max_connections": int64(c.HTTP.MaxConnections),
		"http.read_header_timeout": int64(c.HTTP.ReadHeaderTimeout), "http.read_timeout": int64(c.HTTP.ReadTimeout),
		"http.write_timeout": int64(c.HTTP.WriteTimeout), "http.idle_timeout": int64(c.HTTP.IdleTimeout),
	}
	for key, v := range positive {
		if v <= 0 {
			bad(key, "must be positive")
		}
	}
	if l.Memory != 0 && l.Memory < 32<<20 {
		bad("limits.memory", "%d bytes is too small to run a batch: give at least 32MiB, or 0 for no limit", l.Memory)
	}
	if l.MinFreePercent < 0 || l.MinFreePercent >= 100 {
		bad("limits.min_free_percent", "%v is not between 0 and 100", l.MinFreePercent)
	}
	if c.Retention.Archive < 0 {
		bad("retention.archive", "must not be negative (0 keeps archives forever)")
	}
	d := c.Defaults
	switch d.InactiveUsers {
	case "keep", "delete":
	default:
		bad("defaults.inactive_users", `%q is not "keep" or "delete"`, d.InactiveUsers)
	}
	if d.DeleteThresholdPercent < 0 || d.DeleteThresholdPercent > 100 {
		bad("defaults.delete_threshold_percent", "%v is not between 0 and 100", d.DeleteThresholdPercent)
	}
	if d.DeleteThresholdCount < 0 {
		bad("defaults.delete_threshold_count", "must not be negative")
	}
	for i, s := range c.Delivery.Schedule {
		if s <= 0 {
			bad(fmt.Sprintf("delivery.schedule[%d]", i), "must be positive")
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert", "tls_cert and tls_key go together: give both files or neither")
	}
	c.validateConsole(bad)
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhook[%d]", i)
		if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			bad(key+".url", "%q is not an http:// or https:// URL", w.URL)
		}
		if !strings.HasPrefix(w.Secret, "whsec_") {
			bad(key+".secret", "must start with whsec_ (Standard Webhooks secret)")
		}
		switch w.Signature {
		case "", "standard", "workos":
		default:
			bad(key+".signature", `%q is not "standard" or "workos"`, w.Signature)
		}
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written as a string ("10s", "5m") in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"10s\", \"5m\" or \"720h\"", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as a number or a string with a unit
// ("64KiB", "1GiB", "10MB").
type Size int64

// UnmarshalText parses "1048576", "64KiB", "1GiB", "10MB" and the like.
func (s *Size) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(str, u.suffix); ok {
			str, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size such as 1048576, \"64KiB\" or \"1GiB\"", b)
	}
	*s = Size(n * mult)
	return nil
}

// UnmarshalTOML accepts a bare integer as well as a string.
func (s *Size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*s = Size(v)
		return nil
	case string:
		return s.UnmarshalText([]byte(v))
	}
	return fmt.Errorf("%v is not a size such as 1048576 or \"1GiB\"", v)
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
