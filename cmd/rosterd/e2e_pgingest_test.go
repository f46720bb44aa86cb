package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/rosterd/rosterd/sftpd/sftptest"
	"github.com/rosterd/rosterd/state/postgres/pgtest"
)

var (
	e2eEventID = regexp.MustCompile(`"id":"evt_[0-9A-Z]{26}"`)
	e2eCreated = regexp.MustCompile(`"created_at":"[^"]*"`)
	e2eBatchID = regexp.MustCompile(`"batch_id":"[^"]*"`)
)

// TestE2EPostgresIngest: the same uploads, with OpenSSH's sftp, to a
// daemon on PostgreSQL and to one on the bbolt file: both apply them,
// write the same reports, serve the same directory over the API and the
// same events (byte for byte but for ids, times and batch ids); the
// PostgreSQL one's stable views show the directory.
func TestE2EPostgresIngest(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	url := pgtest.NewDatabase(t)
	pg := startDaemon(t, daemonOpts{Args: []string{"--store", url, "--settle", "1s"}, Env: []string{"ROSTERD_INSTANCE=pg"}})
	bolt := startDaemon(t, daemonOpts{Args: []string{"--settle", "1s"}})
	daemons := []*testDaemon{pg, bolt}
	var cfgs []string
	for _, d := range daemons {
		cfgs = append(cfgs, sftpOrg(t, d, "acme"))
	}
	local := t.TempDir()
	upload := func(day int, files map[string]string) {
		t.Helper()
		var cmds strings.Builder
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(local, name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&cmds, "put %s\n", filepath.Join(local, name))
		}
		for i, d := range daemons {
			if out, err := sftptest.SFTP(t, cfgs[i], cmds.String()); err != nil {
				t.Fatalf("sftp put: %v\n%s", err, out)
			}
			waitFor(t, 30*time.Second, fmt.Sprintf("batch %d", day), func() bool {
				bs := d.batches("acme")
				return len(bs) == day && bs[0].Status != "pending" && bs[0].Status != "processing"
			})
		}
		// The report over SFTP, and the batches API, agree.
		var reps [2]map[string]any
		for i := range daemons {
			got := filepath.Join(local, fmt.Sprintf("latest-%d.json", i))
			os.Remove(got)
			if out, err := sftptest.SFTP(t, cfgs[i], fmt.Sprintf("get reports/latest.json %s\n", got)); err != nil {
				t.Fatalf("sftp get the report: %v\n%s", err, out)
			}
			raw, err := os.ReadFile(got)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &reps[i]); err != nil {
				t.Fatal(err)
			}
			if reps[i]["status"] != "applied" {
				t.Fatalf("day %d: report %s; want applied", day, raw)
			}
			for _, k := range []string{"batch_id", "created_at"} {
				delete(reps[i], k)
			}
		}
		if d := cmp.Diff(reps[0], reps[1]); d != "" {
			t.Errorf("day %d: reports (-postgres +bbolt):\n%s", day, d)
		}
	}
	// compare checks that both daemons serve the same directory and events.
	compare := func(day int) []string {
		t.Helper()
		var got [2][]string
		for i, d := range daemons {
			for _, path := range []string{"/v1/organizations/acme/users?limit=100", "/v1/organizations/acme/groups?limit=100", "/v1/events?organization_id=acme&limit=1000"} {
				var page struct{ Data []json.RawMessage }
				if code := d.API("GET", path, nil, &page); code != 200 {
					t.Fatalf("GET %s: %d", path, code)
				}
				for _, r := range page.Data {
					var c bytes.Buffer
					if err := json.Compact(&c, r); err != nil {
						t.Fatal(err)
					}
					s := e2eEventID.ReplaceAllString(c.String(), `"id":"evt"`)
					s = e2eCreated.ReplaceAllString(s, `"created_at":"T"`)
					got[i] = append(got[i], e2eBatchID.ReplaceAllString(s, `"batch_id":"B"`))
				}
			}
		}
		if d := cmp.Diff(got[0], got[1]); d != "" {
			t.Errorf("day %d: directory and events (-postgres +bbolt):\n%s", day, d)
		}
		return got[0]
	}

	users := "user_id,email,first_name,last_name,job_title,state\n" +
		"E1,ana@acme.test,Ana,Álvarez,Engineer,active\nE2,bo@acme.test,Bo,Chén,Designer,active\n" +
		"E3,cy@acme.test,Cy,D'Arc,\"Lead, Ops\",active\nE4,di@acme.test,Di,Ek,Engineer,active\n"
	upload(1, map[string]string{
		"users.csv":       users,
		"user_groups.csv": "group_name,user_id\nEngineering,E1\nEngineering,E4\nDesign,E2\nOps,E3\n",
		"groups.csv":      "group_name,description\nEngineering,Builds\nDesign,Draws\nOps,Runs\n",
	})
	day1 := compare(1)
	if len(day1) < 4+3+4+3+4 {
		t.Fatalf("day 1: %d users, groups and events; want 4 users, 3 groups, 11 events", len(day1))
	}
	// Day 2: E1 promoted, E2 inactive, E4 gone, E3 moves to Engineering,
	// Design's description changes.
	users = strings.Replace(users, "Ana,Álvarez,Engineer,active", "Ana,Álvarez,Staff Engineer,active", 1)
	users = strings.Replace(users, "Bo,Chén,Designer,active", "Bo,Chén,Designer,inactive", 1)
	users = users[:strings.Index(users, "E4,")]
	upload(2, map[string]string{
		"users.csv":       users,
		"user_groups.csv": "group_name,user_id\nEngineering,E1\nEngineering,E3\nDesign,E2\n",
		"groups.csv":      "group_name,description\nEngineering,Builds\nDesign,Draws and paints\nOps,Runs\n",
	})
	all := strings.Join(compare(2), "\n")
	for _, want := range []string{`"previous_attributes":{"job_title":"Engineer"}`, `"previous_attributes":{"state":"active"}`, `"event":"dsync.user.deleted"`, `"event":"dsync.group.user_removed"`} {
		if !strings.Contains(all, want) {
			t.Errorf("day 2: no %s in\n%s", want, all)
		}
	}

	// The stable views (SPEC §11).
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, inactive, members, events int
	err = conn.QueryRow(context.Background(), `SELECT
  (SELECT count(*) FROM rosterd.directory_users WHERE organization_id = 'acme'),
  (SELECT count(*) FROM rosterd.directory_users WHERE organization_id = 'acme' AND state = 'inactive'),
  (SELECT count(*) FROM rosterd.directory_group_members m JOIN rosterd.directory_groups g
     ON g.organization_id = m.organization_id AND g.id = m.group_id WHERE m.organization_id = 'acme' AND g.name = 'Engineering'),
  (SELECT count(*) FROM rosterd.events WHERE organization_id = 'acme')`).Scan(&n, &inactive, &members, &events)
	if err != nil {
		t.Fatal(err)
	}
	// The README's example.
	rows, err := conn.Query(context.Background(), `SELECT u.id, u.email, u.job_title, array_agg(g.name ORDER BY g.name) AS groups
FROM rosterd.directory_users u
LEFT JOIN rosterd.directory_group_members m ON m.organization_id = u.organization_id AND m.user_id = u.id
LEFT JOIN rosterd.directory_groups g ON g.organization_id = m.organization_id AND g.id = m.group_id
WHERE u.organization_id = 'acme' AND u.state = 'active'
GROUP BY u.id, u.email, u.job_title ORDER BY u.id`)
	if err != nil {
		t.Fatal(err)
	}
	var people []string
	for rows.Next() {
		var id, email, title string
		var groups []string
		if err := rows.Scan(&id, &email, &title, &groups); err != nil {
			t.Fatal(err)
		}
		people = append(people, fmt.Sprintf("%s %s %s %v", id, email, title, groups))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"E1 ana@acme.test Staff Engineer [Engineering]", "E3 cy@acme.test Lead, Ops [Engineering]"}; !cmp.Equal(want, people) {
		t.Errorf("the README's query: %q; want %q", people, want)
	}
	var positions []int64
	rows, err = conn.Query(context.Background(), `SELECT position, id, event, data FROM rosterd.events
WHERE position > $1 ORDER BY position LIMIT 1000`, 0)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pos int64
		var id, ev string
		var data json.RawMessage
		if err := rows.Scan(&pos, &id, &ev, &data); err != nil {
			t.Fatal(err)
		}
		positions = append(positions, pos)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var apiEvents struct{ Data []json.RawMessage }
	pg.API("GET", "/v1/events?organization_id=acme&limit=1000", nil, &apiEvents)
	if n != 3 || inactive != 1 || members != 2 || events != len(apiEvents.Data) || len(positions) != events {
		t.Errorf("views: %d users, %d inactive, %d in Engineering, %d events; want 3, 1, 2, %d", n, inactive, members, events, len(apiEvents.Data))
	}
}
