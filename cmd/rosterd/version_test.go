package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

func TestReadBuildVersion(t *testing.T) {
	vcs := func(rev, tm, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: tm}, {Key: "vcs.modified", Value: modified}}
	}
	rev := "931c96e839def94472c91463aafd897931fe8b11"
	tests := []struct {
		name string
		ld   string
		bi   *debug.BuildInfo
		want buildVersion
	}{
		{"ldflags win", "v9.9.9", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.0.0"}},
			buildVersion{Version: "v9.9.9", GoVersion: "go1.26.8"}},
		{"go install of a release", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
			buildVersion{Version: "v1.2.3", GoVersion: "go1.26.8"}},
		{"go build in a clone", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261203114227-931c96e839de+dirty"}, Settings: vcs(rev, "2026-12-03T11:42:27Z", "true")},
			buildVersion{Version: "v0.0.0-20261203114227-931c96e839de+dirty", Revision: rev, Time: "2026-12-03T11:42:27Z", Modified: true, GoVersion: "go1.26.8"}},
		{"VCS without a pseudo-version", "", &debug.BuildInfo{GoVersion: "go1.22.1", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "2026-12-03T11:42:27Z", "false")},
			buildVersion{Version: "devel-931c96e839de", Revision: rev, Time: "2026-12-03T11:42:27Z", GoVersion: "go1.22.1"}},
		{"modified, no pseudo-version", "", &debug.BuildInfo{GoVersion: "go1.22.1", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "", "true")},
			buildVersion{Version: "devel-931c96e839de+dirty", Revision: rev, Modified: true, GoVersion: "go1.22.1"}},
		{"go run", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			buildVersion{Version: "devel", GoVersion: "go1.26.8"}},
		{"no build information", "", nil, buildVersion{Version: "devel", GoVersion: runtime.Version()}},
	}
	for _, tt := range tests {
		if got := readBuildVersion(tt.ld, tt.bi); got != tt.want {
			t.Errorf("%s: readBuildVersion = %+v; want %+v", tt.name, got, tt.want)
		}
	}
	var b bytes.Buffer
	tests[2].want.write(&b)
	want := "rosterd v0.0.0-20261203114227-931c96e839de+dirty\ncommit  " + rev + " (2026-12-03T11:42:27Z), with changes not committed\ngo      go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if b.String() != want {
		t.Errorf("write = %q; want %q", b.String(), want)
	}
}

// TestVersionOfABuildFromAClone builds rosterd with `go build` in a git
// checkout, as a user of a clone would, and checks that `rosterd version`
// names the commit it was built from rather than "devel". The checkout is
// a fresh repository holding this work tree's files (committed or not),
// so that the code under test is the code being built.
func TestVersionOfABuildFromAClone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rosterd once more")
	}
	git := sftptest.LookPath(t, "git")
	top, err := exec.Command(git, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git work tree: %v", err)
	}
	src := strings.TrimSpace(string(top))
	files, err := exec.Command(git, "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "rosterd")
	for _, name := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(src, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(clone, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(clone, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(git, append([]string{"-C", clone, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitIn("init", "--quiet")
	gitIn("add", "-A")
	gitIn("commit", "--quiet", "-m", "snapshot")
	rev := gitIn("rev-parse", "HEAD")

	bin := filepath.Join(t.TempDir(), "rosterd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/rosterd")
	build.Dir = clone
	// The machine's go env may turn VCS stamping off; a clone's default
	// (-buildvcs=auto) is on.
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=auto")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in the clone: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("rosterd version: %v\n%s", err, out)
	}
	for _, want := range []string{"commit  " + rev + " (", "go      " + runtime.Version()} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rosterd version =\n%s\nwant %q", out, want)
		}
	}
	if first := firstLine(string(out)); first == "rosterd devel" || !strings.Contains(first, rev[:12]) || strings.Contains(string(out), "changes not committed") {
		t.Errorf("rosterd version starts %q; want the pseudo-version of %s, unmodified", first, rev[:12])
	}
}
