package main

// The README and docs/ are complete on their own and stay true to the
// code: every config key, flag, environment variable and issue code is
// documented, and every relative link resolves.

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoFile reads a file of the repository by its path from the root.
func repoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigurationDocIsComplete(t *testing.T) {
	doc := repoFile(t, "docs/configuration.md")
	for _, key := range configKeys(t) {
		if !strings.Contains(doc, "`"+key+"`") {
			t.Errorf("docs/configuration.md does not document the config key `%s`", key)
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	registerServeFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(doc, "`--"+f.Name) {
			t.Errorf("docs/configuration.md does not document serve's flag --%s", f.Name)
		}
	})
	env := regexp.MustCompile(`ROSTERD_[A-Z_]+`)
	for _, src := range []string{"cmd/rosterd/config.go", "cmd/rosterd/client.go"} {
		for _, v := range env.FindAllString(repoFile(t, src), -1) {
			if !strings.Contains(doc, "`"+v+"`") {
				t.Errorf("docs/configuration.md does not document %s (read in %s)", v, src)
			}
		}
	}
}

func TestFilesDocListsEveryIssueCode(t *testing.T) {
	doc := repoFile(t, "docs/files.md")
	codes := regexp.MustCompile(`(?m)^\s+Code\w+\s+=\s+"([a-z_0-9]+)"`).FindAllStringSubmatch(repoFile(t, "schema/issues.go"), -1)
	if len(codes) < 20 {
		t.Fatalf("found %d issue codes in schema/issues.go; the pattern is out of date", len(codes))
	}
	for _, c := range codes {
		if !strings.Contains(doc, "| `"+c[1]+"` |") {
			t.Errorf("docs/files.md has no row for the issue code %s", c[1])
		}
	}
}

// TestDocsStandAlone: the README and docs/ point to nothing outside the
// repository, and every relative link resolves.
func TestDocsStandAlone(t *testing.T) {
	files := []string{"README.md", "docs/files.md", "docs/events.md", "docs/configuration.md",
		"examples/export/README.md", "examples/webhook-receiver/README.md", "examples/csv/README.md", "examples/workday/README.md", "systemd/README.md"}
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)\s]*)?\)`)
	for _, f := range files {
		text := repoFile(t, f)
		for _, outside := range []string{"shared/", "SPEC.md", "beside this repository"} {
			if strings.Contains(text, outside) {
				t.Errorf("%s mentions %q: the repository must be complete on its own", f, outside)
			}
		}
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			p := filepath.Join("..", "..", filepath.Dir(filepath.FromSlash(f)), filepath.FromSlash(target))
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
			}
		}
	}
	readme := repoFile(t, "README.md")
	for _, want := range []string{"docs/files.md", "docs/events.md", "docs/configuration.md", "docs/openapi.json", "LICENSE"} {
		if !strings.Contains(readme, "("+want) {
			t.Errorf("README.md does not link to %s", want)
		}
	}
}
