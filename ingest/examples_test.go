package ingest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

// TestExampleExports uploads the exports of examples/exports/ with their
// organization settings through the pipeline: a BambooHR-style export
// with its own column names, a Workday-style delivery encrypted and
// signed with GnuPG (keys/ holds the example's key pairs), and an HR
// export whose groups come from its columns. Each batch is applied, and
// its report is the committed report.txt and report.json (batch id and
// time fixed); -update rewrites them. An example with an expected/ folder
// (the hand-made WorkOS-format files) gets the events those files get.
func TestExampleExports(t *testing.T) {
	for _, name := range []string{"bamboohr", "workday-encrypted", "hr-groups"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "examples", "exports", name)
			raw, err := os.ReadFile(filepath.Join(dir, "settings.json"))
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Settings state.Settings }
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatal(err)
			}
			keys := filepath.Join(dir, "keys")
			if _, err := os.Stat(keys); err == nil {
				abs, _ := filepath.Abs(filepath.Join(keys, "acme-rosterd-private.asc"))
				body.Settings.PGPKeyFile = abs
			}
			e := newEnv(t, "acme", body.Settings, Defaults{Settle: 200 * time.Millisecond, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
			if signers, err := os.ReadFile(filepath.Join(keys, "workday-signing-public.asc")); err == nil {
				if _, err := e.p.AddPGPSigners("acme", signers); err != nil {
					t.Fatal(err)
				}
			}
			ents, _ := os.ReadDir(dir)
			for _, ent := range ents {
				n := ent.Name()
				if ent.IsDir() || strings.HasPrefix(n, "report") || strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".toml") || strings.HasSuffix(n, ".md") || strings.HasSuffix(n, ".txt") {
					continue
				}
				data, err := os.ReadFile(filepath.Join(dir, n))
				if err != nil {
					t.Fatal(err)
				}
				e.upload(n, data)
			}
			b := e.waitBatch("", 20*time.Second)
			txt := e.reportText(b)
			if b.Status != state.BatchApplied {
				t.Fatalf("status %s; want applied:\n%s", b.Status, txt)
			}
			jsPath := strings.TrimSuffix(e.reportPath(b), ".txt") + ".json"
			var js []byte
			deadline := time.Now().Add(10 * time.Second)
			for js, err = os.ReadFile(jsPath); err != nil && time.Now().Before(deadline); js, err = os.ReadFile(jsPath) {
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "report.txt"), fixReport(txt, b.ID))
			golden(t, filepath.Join(dir, "report.json"), fixReport(string(js), b.ID))
			if _, err := os.Stat(filepath.Join(dir, "expected")); err == nil {
				sameEventsAsExpected(t, e, filepath.Join(dir, "expected"))
			}
		})
	}
}

// sameEventsAsExpected uploads the files of dir to an organization of
// the same name without settings and wants the events e's organization
// got, in the same order.
func sameEventsAsExpected(t *testing.T, e *env, dir string) {
	t.Helper()
	plain := newEnv(t, e.org, state.Settings{}, Defaults{Settle: 200 * time.Millisecond, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep"})
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		data, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		plain.upload(ent.Name(), data)
	}
	if b := plain.waitBatch("", 20*time.Second); b.Status != state.BatchApplied {
		t.Fatalf("expected/: status %s; want applied:\n%s", b.Status, plain.reportText(b))
	}
	events := func(db *state.DB) []string {
		evs, err := db.Events(e.org, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Event+" "+string(ev.Data))
		}
		return out
	}
	want, got := events(plain.db), events(e.db)
	if len(want) == 0 || strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("events differ from those of expected/:\nexpected/:\n%s\nthe export:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

var (
	checkedLine = regexp.MustCompile(`(?m)^Checked: .*$`)
	createdAt   = regexp.MustCompile(`"created_at": "[^"]*"`)
)

// fixReport gives a report a fixed batch id and time.
func fixReport(s, id string) []byte {
	s = strings.ReplaceAll(s, id, "01JDXK2Q7T9Y3M4N5P6R7S8T9V")
	s = checkedLine.ReplaceAllString(s, "Checked:      2026-11-22 01:02:03 UTC")
	s = createdAt.ReplaceAllString(s, `"created_at": "2026-11-22T01:02:03Z"`)
	return []byte(s)
}

// reportPath is the path of the batch's text report in the
// organization's reports folder.
func (e *env) reportPath(b state.Batch) string {
	e.reportText(b) // waits for it
	matches, _ := filepath.Glob(filepath.Join(e.orgDir, "reports", "*-"+b.ID+".txt"))
	return matches[0]
}
