package main

// End-to-end tests of SPEC §5's ordering promise through the real binary:
// a restart never re-takes a file whose completion was processed, and a
// batch that failed on a full disk is never applied over newer data.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// e2eEvent is one event of the pull API.
type e2eEvent struct {
	ID      string          `json:"id"`
	Event   string          `json:"event"`
	BatchID string          `json:"batch_id"`
	Data    json.RawMessage `json:"data"`
}

// events returns every event of org, oldest first.
func (d *testDaemon) events(org string) []e2eEvent {
	d.t.Helper()
	var out []e2eEvent
	after := ""
	for {
		var page struct {
			Data         []e2eEvent
			ListMetadata struct{ After *string } `json:"list_metadata"`
		}
		if code := d.API("GET", "/v1/events?organization_id="+org+"&limit=1000&after="+url.QueryEscape(after), nil, &page); code != 200 {
			d.t.Fatalf("GET /v1/events = %d", code)
		}
		out = append(out, page.Data...)
		if page.ListMetadata.After == nil || len(page.Data) == 0 {
			return out
		}
		after = *page.ListMetadata.After
	}
}

// userField returns field of user id in org's snapshot, read through the
// recipient-store API ("" when the user does not exist).
func (d *testDaemon) userField(org, id, field string) string {
	d.t.Helper()
	var u map[string]any
	if code := d.API("GET", "/v1/organizations/"+org+"/users/"+id, nil, &u); code != 200 {
		return ""
	}
	s, _ := u[field].(string)
	return s
}

// waitFinal waits until org's newest batch is newer than prev and final
// (not pending or processing), and returns it.
func (d *testDaemon) waitFinal(org, prev string) e2eBatch {
	d.t.Helper()
	var b e2eBatch
	waitFor(d.t, 60*time.Second, "a new batch of "+org+" to finish", func() bool {
		bs := d.batches(org)
		if len(bs) == 0 || bs[0].ID == prev || bs[0].Status == "pending" || bs[0].Status == "processing" {
			return false
		}
		b = bs[0]
		return true
	})
	return b
}

func fileNames(b e2eBatch) []string {
	var names []string
	for _, f := range b.Files {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	return names
}

func titleCSV(title string) string {
	return "user_id,email,first_name,last_name,job_title\nE1,ana@acme.test,Ana,Alvarez,\"" + title + "\"\nE2,bo@acme.test,Bo,Chen,Designer\n"
}

// TestE2EStaleFileNotRetakenAtRestart is issue 12's case 1: a file that
// lost to a more recently completed one of its kind stays in the folder,
// and restarts must not take it (SPEC §5: a file's completion is processed
// once). Once with a name pattern, once with a case variant of the
// canonical name; after each restart a groups.csv upload is the barrier
// that shows what the start-up scan did.
func TestE2EStaleFileNotRetakenAtRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		patterns []string
		older    string // uploaded first, loses
		steps    []string
	}{
		{"pattern", []string{"users_*.csv"}, "users.csv", []string{"users_20261201.csv", "users_20261202.csv"}},
		{"case-variant", nil, "users.csv", []string{"Users.CSV"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, daemonOpts{Args: []string{"--settle", "1s"}})
			key := addOrg(t, d, "acme")
			if tc.patterns != nil {
				if code := d.API("PATCH", "/v1/organizations/acme", map[string]any{"settings": map[string]any{"users_patterns": tc.patterns}}, nil); code != 200 {
					t.Fatalf("PATCH settings = %d", code)
				}
			}
			local := t.TempDir()
			put := func(name, content string) {
				t.Helper()
				p := filepath.Join(local, name)
				os.WriteFile(p, []byte(content), 0o600)
				if out, ok := sftpBatch(t, d, key, "acme", "put "+p+" "+name+"\n"); !ok {
					t.Fatalf("put %s: %s", name, out)
				}
			}
			// The older file and the first newer one in one settle window:
			// the newer wins, the older is named as ignored.
			p := filepath.Join(local, tc.older)
			os.WriteFile(p, []byte(titleCSV("Title A")), 0o600)
			first := filepath.Join(local, "first-"+tc.steps[0])
			last := "Title B"
			if len(tc.steps) > 1 {
				os.WriteFile(first, []byte(titleCSV("Title X")), 0o600)
			} else {
				os.WriteFile(first, []byte(titleCSV(last)), 0o600)
			}
			// Two sessions: the second file completes a clear tick later.
			if out, ok := sftpBatch(t, d, key, "acme", "put "+p+" "+tc.older+"\n"); !ok {
				t.Fatalf("put: %s", out)
			}
			if out, ok := sftpBatch(t, d, key, "acme", "put "+first+" "+tc.steps[0]+"\n"); !ok {
				t.Fatalf("put: %s", out)
			}
			b := d.waitFinal("acme", "")
			if b.Status != "applied" || !slices.Equal(fileNames(b), []string{tc.steps[0]}) {
				t.Fatalf("first batch = %s %v; want applied with %s only", b.Status, fileNames(b), tc.steps[0])
			}
			if !strings.Contains(string(d.batch("acme", b.ID).Report), tc.older) {
				t.Errorf("first batch's report does not name the ignored %s:\n%s", tc.older, d.batch("acme", b.ID).Report)
			}
			for _, name := range tc.steps[1:] {
				put(name, titleCSV(last))
				b = d.waitFinal("acme", b.ID)
				if b.Status != "applied" {
					t.Fatalf("batch of %s = %s; want applied", name, b.Status)
				}
			}
			if got := d.userField("acme", "E1", "job_title"); got != last {
				t.Fatalf("job_title before restart = %q; want %q", got, last)
			}

			for restart := range 2 {
				events := len(d.events("acme"))
				d.Restart()
				put("groups.csv", fmt.Sprintf("group_name,description\nEng,restart %d\n", restart))
				bs := d.batches("acme")
				waitFor(t, 60*time.Second, "the groups.csv batch", func() bool {
					bs = d.batches("acme")
					return len(bs) > 0 && bs[0].ID != b.ID && bs[0].Status != "pending" && bs[0].Status != "processing" &&
						slices.Contains(fileNames(bs[0]), "groups.csv")
				})
				var since []e2eBatch
				for _, x := range bs {
					if x.ID == b.ID {
						break
					}
					since = append(since, x)
				}
				if len(since) != 1 || !slices.Equal(fileNames(since[0]), []string{"groups.csv"}) {
					var got [][]string
					for _, x := range since {
						got = append(got, fileNames(x))
					}
					t.Errorf("restart %d: batches since = %v; want one with groups.csv only\n%s", restart, got, d.Logs())
				}
				b = bs[0]
				for _, e := range d.events("acme")[events:] {
					if strings.HasPrefix(e.Event, "dsync.user.") {
						t.Errorf("restart %d: %s event %s", restart, e.Event, e.Data)
					}
				}
				if got := d.userField("acme", "E1", "job_title"); got != last {
					t.Errorf("restart %d: job_title = %q; want %q (the directory went back in time)", restart, got, last)
				}
			}
		})
	}
}

// TestE2EFullDiskBatchSuperseded is issue 12's case 2: a batch that failed
// on a full disk waits for its retry (the test makes the retry far off),
// the newer upload C supersedes it, and after a restart the snapshot is C
// and B is superseded with a report (SPEC §5: a batch is never applied
// after a newer one). "tmpfs" fills a real 64 MiB tmpfs holding the data
// directory (root only); "injected" fails the state's apply writes through
// the test-only ROSTERD_TEST_WRITE_FAULT hook instead.
func TestE2EFullDiskBatchSuperseded(t *testing.T) {
	for _, mode := range []string{"tmpfs", "injected"} {
		t.Run(mode, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			os.MkdirAll(data, 0o700)
			flag := filepath.Join(t.TempDir(), "disk-full")
			env := []string{"ROSTERD_TEST_RETRY=1h"}
			args := []string{"--settle", "0s"}
			if mode == "tmpfs" {
				if os.Geteuid() != 0 {
					t.Skip("mounting a tmpfs needs root; the injected subtest covers the same path")
				}
				if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=64m"); err != nil {
					t.Fatalf("mount tmpfs: %v", err)
				}
				t.Cleanup(func() { syscall.Unmount(data, syscall.MNT_DETACH) })
				// The low-disk threshold (1 GiB by default) would keep the
				// daemon on 64 MiB from being ready: 4 MiB here. B is
				// placed, not uploaded, so that the disk fills up anyway.
				conf := filepath.Join(t.TempDir(), "rosterd.toml")
				os.WriteFile(conf, []byte("[limits]\nmin_free_space = \"4MiB\"\nmin_free_percent = 0\n"), 0o600)
				args = append(args, "--config", conf)
			} else {
				env = append(env, "ROSTERD_TEST_WRITE_FAULT="+flag)
			}
			d := startDaemon(t, daemonOpts{Data: data, Args: args, Env: env})
			defer func() {
				if t.Failed() {
					t.Logf("daemon logs:\n%s", d.Logs())
				}
			}()
			key := addOrg(t, d, "acme")
			folder := filepath.Join(data, "orgs", "acme")
			local := t.TempDir()
			put := func(name, content string) {
				t.Helper()
				p := filepath.Join(local, name)
				os.WriteFile(p, []byte(content), 0o600)
				if out, ok := sftpBatch(t, d, key, "acme", "put "+p+" "+name+"\n"); !ok {
					t.Fatalf("put %s: %s", name, out)
				}
			}

			put("users.csv", titleCSV("Title A"))
			a := d.waitFinal("acme", "")
			if a.Status != "applied" {
				t.Fatalf("A = %s; want applied", a.Status)
			}

			// Fill the disk, then B.
			filler := filepath.Join(data, "filler")
			if mode == "tmpfs" {
				// B (2 MiB) is written while there is room, then the disk
				// is filled but for 1 MiB and B renamed into place: the
				// batch is recorded, its archive copy fails.
				tmp := filepath.Join(folder, ".b.tmp")
				var big strings.Builder
				big.WriteString(titleCSV("Title B"))
				for i := 3; big.Len() < 2<<20; i++ {
					fmt.Fprintf(&big, "E%d,u%d@acme.test,First,Last,Padding\n", i, i)
				}
				os.WriteFile(tmp, []byte(big.String()), 0o600)
				fill(t, filler, 1<<20)
				if err := os.Rename(tmp, filepath.Join(folder, "users.csv")); err != nil {
					t.Fatal(err)
				}
			} else {
				os.WriteFile(flag, nil, 0o600)
				put("users.csv", titleCSV("Title B"))
			}
			var bID string
			waitFor(t, 60*time.Second, "batch B to fail and wait for its retry", func() bool {
				for _, l := range d.logLines("batch failed; it is retried") {
					bID, _ = l["batch"].(string)
					return true
				}
				return false
			})
			var bv struct {
				Status    string `json:"status"`
				Attempts  int    `json:"attempts"`
				LastError string `json:"last_error"`
			}
			d.API("GET", "/v1/organizations/acme/batches/"+bID, nil, &bv)
			if bv.Attempts < 1 || bv.LastError == "" || (bv.Status != "pending" && bv.Status != "processing") {
				t.Errorf("batch B = %+v; want pending or processing with attempts and last_error", bv)
			}
			if out, code := d.CLI("", "batch", "show", "acme", bID); code != 0 || !strings.Contains(out, "no space left on device") || !strings.Contains(out, "retried automatically") {
				t.Errorf("batch show of the waiting batch = %d:\n%s\nwant its last error and the report saying it is retried", code, out)
			}
			if m := metric(t, d, "rosterd_ingest_batches_waiting"); m != 1 {
				t.Errorf("rosterd_ingest_batches_waiting = %v; want 1", m)
			}

			// Free the space; C.
			os.Remove(filler)
			os.Remove(flag)
			put("users.csv", titleCSV("Title C"))
			c := d.waitFinal("acme", bID)
			if c.Status != "applied" {
				t.Fatalf("C = %s; want applied\n%s", c.Status, d.Logs())
			}

			d.Restart()
			put("groups.csv", "group_name\nEng\n") // the barrier: the start-up work is done
			d.waitFinal("acme", c.ID)
			if got := d.userField("acme", "E1", "job_title"); got != "Title C" {
				t.Errorf("job_title after restart = %q; want Title C (B was applied over C)\n%s", got, d.Logs())
			}
			b := d.batch("acme", bID)
			if b.Status != "superseded" || !strings.Contains(string(b.Report), c.ID) {
				t.Errorf("batch B = %s, report %s; want superseded, naming C %s", b.Status, b.Report, c.ID)
			}
			for _, e := range d.events("acme") {
				if e.BatchID == bID {
					t.Errorf("event %s of the superseded batch B", e.Event)
				}
			}
			if n := len(d.logLines("redoing interrupted batch")); n != 0 {
				t.Errorf("%d batches redone at start-up; want none", n)
			}
			if out, code := d.CLI("", "batch", "list", "acme"); code != 0 || !strings.Contains(out, "superseded by "+c.ID) {
				t.Errorf("batch list = %d:\n%s\nwant B superseded by %s", code, out, c.ID)
			}
		})
	}
}

// metric returns the value of an unlabelled metric from /metrics.
func metric(t *testing.T, d *testDaemon, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for l := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// fill writes path until the file system is full, then gives back
// spare bytes.
func fill(t *testing.T, path string, spare int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	small := buf[:4096]
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(fi.Size() - spare); err != nil {
		t.Fatal(err)
	}
}
