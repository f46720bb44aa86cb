package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// unitFile is a parsed systemd unit: section -> key -> values in order
// (a key may repeat, as SystemCallFilter= does).
type unitFile struct {
	path string
	raw  string
	sec  map[string]map[string][]string
}

func (u unitFile) get(section, key string) []string { return u.sec[section][key] }

// readUnit parses systemd/rosterd.service.
func readUnit(t *testing.T) unitFile {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "systemd", "rosterd.service"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{path: path, raw: string(raw), sec: map[string]map[string][]string{}}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(u.raw))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			u.sec[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot parse line %q", path, l)
			}
			u.sec[section][k] = append(u.sec[section][k], v)
		}
	}
	return u
}

// TestSystemdUnitSpec pins what SPEC §9 asks of systemd/rosterd.service,
// so an edit cannot silently drop it.
func TestSystemdUnitSpec(t *testing.T) {
	u := readUnit(t)
	want := map[string]string{
		"Type":                    "notify",
		"User":                    "rosterd",
		"StateDirectory":          "rosterd",
		"StateDirectoryMode":      "0700",
		"Restart":                 "on-failure",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"NotifyAccess":            "main",
	}
	for k, v := range want {
		if got := u.get("Service", k); !slices.Equal(got, []string{v}) {
			t.Errorf("[Service] %s = %q; want exactly %q", k, got, v)
		}
	}
	if !slices.Contains(u.get("Service", "SystemCallFilter"), "@system-service") {
		t.Errorf("SystemCallFilter = %q; want @system-service", u.get("Service", "SystemCallFilter"))
	}
	for _, k := range []string{"DynamicUser", "PrivateUsers", "ReadWritePaths"} {
		if v := u.get("Service", k); v != nil {
			t.Errorf("[Service] %s = %q; want it unset (a fixed user the operator can sudo to; PrivateUsers would void CAP_NET_BIND_SERVICE; StateDirectory is the only writable path)", k, v)
		}
	}
	cmdline := strings.Fields(strings.Join(u.get("Service", "ExecStart"), ""))
	if len(cmdline) < 2 || cmdline[1] != "serve" {
		t.Fatalf("ExecStart = %q; want rosterd serve", cmdline)
	}
	if i := slices.Index(cmdline, "--data"); i < 0 || i+1 >= len(cmdline) || cmdline[i+1] != "/var/lib/rosterd" {
		t.Errorf("ExecStart %q; want --data /var/lib/rosterd, the StateDirectory", cmdline)
	}
	// The stop timeout must cover the upload drain (shutdown_timeout).
	stop, err := time.ParseDuration(strings.Join(u.get("Service", "TimeoutStopSec"), ""))
	if err != nil || stop <= defaultConfig().ShutdownTimeout.D() {
		t.Errorf("TimeoutStopSec = %q (%v); want a duration above shutdown_timeout's default %v", u.get("Service", "TimeoutStopSec"), err, defaultConfig().ShutdownTimeout.D())
	}
}

// verifiableUnit writes the unit to a temp dir with ExecStart pointing at
// the test binary (systemd-analyze verify checks that it exists and is
// executable) and returns its path.
func verifiableUnit(t *testing.T) string {
	t.Helper()
	u := readUnit(t)
	text := strings.ReplaceAll(u.raw, "/usr/local/bin/rosterd", rosterdBin)
	if text == u.raw {
		t.Fatal("ExecStart does not run /usr/local/bin/rosterd, the path systemd/README.md installs to")
	}
	p := filepath.Join(t.TempDir(), "rosterd.service")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on the unit. It
// exits non-zero only for some errors and merely warns about unknown keys
// or bad values, so any line it prints about the unit fails the test too.
func TestSystemdAnalyzeVerify(t *testing.T) {
	bin := sftptest.LookPath(t, "systemd-analyze")
	unit := verifiableUnit(t)
	out, err := exec.Command(bin, "verify", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, "rosterd") {
			t.Errorf("systemd-analyze verify: %s", l)
		} else if l != "" {
			t.Logf("systemd-analyze verify (about another unit): %s", l)
		}
	}
}

// TestSystemdAnalyzeSecurity rates the unit's sandbox offline and wants an
// exposure of at most 2.0 ("OK"; the unit rates 1.5 on systemd 252). It
// needs systemd 250 or later for --offline.
func TestSystemdAnalyzeSecurity(t *testing.T) {
	bin := sftptest.LookPath(t, "systemd-analyze")
	ver, _ := exec.Command(bin, "--version").Output()
	m := regexp.MustCompile(`^systemd (\d+)`).FindSubmatch(ver)
	if m == nil {
		t.Fatalf("systemd-analyze --version = %q; want systemd N", ver)
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 250 {
		t.Skipf("systemd %d has no security --offline (250 or later)", n)
	}
	unit := verifiableUnit(t)
	out, err := exec.Command(bin, "security", "--offline=true", "--threshold=20", unit).CombinedOutput()
	level := regexp.MustCompile(`Overall exposure level for rosterd.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || level == nil {
		t.Fatalf("systemd-analyze security: %v; exposure %q; want at most 2.0\n%s", err, level, out)
	}
	t.Logf("exposure level %s", level[1])
}

// TestSysusersFile checks that rosterd.sysusers creates the unit's user
// with the state directory as home and no login shell, and that
// systemd-sysusers accepts it (a dry run into an empty root).
func TestSysusersFile(t *testing.T) {
	path, err := filepath.Abs(filepath.Join("..", "..", "systemd", "rosterd.sysusers"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.SplitSeq(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	re := regexp.MustCompile(`^u rosterd - "[^"]+" /var/lib/rosterd /usr/sbin/nologin$`)
	if len(lines) != 1 || !re.MatchString(lines[0]) {
		t.Errorf("rosterd.sysusers entries = %q; want one user rosterd, home /var/lib/rosterd, shell nologin", lines)
	}
	bin := sftptest.LookPath(t, "systemd-sysusers")
	out, err := exec.Command(bin, "--dry-run", "--root="+t.TempDir(), path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user 'rosterd'") || strings.Contains(string(out), path) {
		t.Errorf("systemd-sysusers --dry-run: %v\n%s\nwant it to create user rosterd without complaint", err, out)
	}
}
