package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rosterd.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func parseServe(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	f := newServeFlags()
	if _, err := parseFlags(f.fs, args, os.Stderr); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return loadConfig(f, func(k string) string { return env[k] })
}

func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, `
sftp_addr = "127.0.0.1:3022"
http_addr = "127.0.0.1:9080"
settle = "30s"
[limits]
max_upload_size = "10MiB"
`)
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		sftp     string
		settle   time.Duration
		httpAddr string
	}{
		{"defaults", nil, nil, "127.0.0.1:2022", 10 * time.Second, "127.0.0.1:8080"},
		{"file", nil, []string{"--config", path}, "127.0.0.1:3022", 30 * time.Second, "127.0.0.1:9080"},
		{"env beats file", map[string]string{"ROSTERD_CONFIG": path, "ROSTERD_SFTP_ADDR": "127.0.0.1:4022", "ROSTERD_SETTLE": "0s"}, nil, "127.0.0.1:4022", 0, "127.0.0.1:9080"},
		{"flag beats env", map[string]string{"ROSTERD_CONFIG": path, "ROSTERD_SFTP_ADDR": "127.0.0.1:4022"}, []string{"--sftp-addr", "127.0.0.1:5022", "--settle", "1s"}, "127.0.0.1:5022", time.Second, "127.0.0.1:9080"},
	}
	for _, tt := range tests {
		cfg, err := parseServe(t, tt.env, tt.args...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if cfg.SFTPAddr != tt.sftp || cfg.Settle.D() != tt.settle || cfg.HTTPAddr != tt.httpAddr {
			t.Errorf("%s: sftp %s settle %v http %s; want %s %v %s", tt.name, cfg.SFTPAddr, cfg.Settle.D(), cfg.HTTPAddr, tt.sftp, tt.settle, tt.httpAddr)
		}
	}
	cfg, _ := parseServe(t, nil, "--config", path)
	if cfg.Limits.MaxUploadSize != 10<<20 {
		t.Errorf("max_upload_size = %d; want 10 MiB", cfg.Limits.MaxUploadSize)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct{ text, want string }{
		{`settle = "soon"`, "settle"},
		{"[limits]\nmax_sesions = 3", "unknown key limits.max_sesions"},
		{"[limits]\nmax_sessions = 0", "limits.max_sessions: must be positive"},
		{"[limits]\nmemory = \"1MiB\"", "limits.memory: 1048576 bytes is too small"},
		{"[limits]\nmax_upload_size = \"lots\"", "max_upload_size"},
		{"[defaults]\ninactive_users = \"purge\"", "defaults.inactive_users"},
		{"[defaults]\ndelete_threshold_percent = 120.0", "defaults.delete_threshold_percent"},
		{`log_format = "xml"`, "log_format"},
		{"[[webhook]]\nurl = \"ftp://x\"\nsecret = \"whsec_AAAA\"", "webhook[0].url"},
		{"[[webhook]]\nurl = \"https://x\"\nsecret = \"nope\"", "webhook[0].secret"},
		{"sftp_addr = ", "line 1"},
	}
	for _, tt := range tests {
		_, err := parseServe(t, nil, "--config", writeConfig(t, tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config %q: error %v; want it to mention %q", tt.text, err, tt.want)
		}
	}
	if _, err := parseServe(t, map[string]string{"ROSTERD_SETTLE": "later"}); err == nil || !strings.Contains(err.Error(), "settle") {
		t.Errorf("ROSTERD_SETTLE=later: error %v; want it to name settle", err)
	}
	if _, err := parseServe(t, nil, "--webhook-url", "https://x"); err == nil || !strings.Contains(err.Error(), "webhook-secret") {
		t.Errorf("--webhook-url alone: error %v; want it to ask for --webhook-secret", err)
	}
}

func TestSizeParse(t *testing.T) {
	for in, want := range map[string]Size{"1048576": 1 << 20, "64KiB": 64 << 10, "1GiB": 1 << 30, "10MB": 10e6, "5 MiB": 5 << 20} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("Size(%q) = %d, %v; want %d", in, s, err, want)
		}
	}
	var s Size
	if err := s.UnmarshalText([]byte("-1")); err == nil {
		t.Error("Size(-1) accepted")
	}
}

// TestSetMemoryLimit: [limits] memory becomes the runtime's soft limit, 0
// lifts it, and GOMEMLIMIT in the environment wins over the config.
func TestSetMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	log := slog.New(slog.DiscardHandler)
	t.Setenv("GOMEMLIMIT", "")
	cfg := defaultConfig()
	setMemoryLimit(cfg, log)
	if got := debug.SetMemoryLimit(-1); got != DefaultMemoryLimit {
		t.Errorf("limit with the default config = %d; want %d", got, DefaultMemoryLimit)
	}
	cfg.Limits.Memory = 0
	setMemoryLimit(cfg, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit with memory = 0: %d; want none", got)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	cfg.Limits.Memory = 64 << 20
	setMemoryLimit(cfg, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit with GOMEMLIMIT set = %d; want the config ignored", got)
	}
}

// parseFlags is parseArgs for the tests of a flag set: it prints fs's
// defaults on -h and returns an *ExitCodeError for -h (0) and for a bad
// flag (2).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	pos, err := parseArgs(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, &ExitCodeError{Code: 0}
	case err != nil:
		return nil, &ExitCodeError{Code: 2}
	}
	return pos, nil
}
