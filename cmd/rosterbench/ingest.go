package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/state"
)

// runIngest is `rosterbench ingest`: a first upload, a day-2 export with
// changes and an identical re-upload through the real pipeline (archive,
// validate, diff, apply, report), each in its own process so that its
// wall time, CPU time and peak RSS are its own, next to a bare
// encoding/csv read of the same files, also in its own process.
func runIngest(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	users := fs.Int("users", 1000000, "users in the export (about 20 columns, 3 groups each)")
	change := fs.Float64("change", 0.02, "share of users the day-2 export changes")
	dir := fs.String("dir", "", "work folder (default: a new temporary folder, removed after)")
	phase := fs.String("phase", "", "internal: run one phase in this process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *phase != "" {
		return ingestPhase(*phase, *dir, fs.Args())
	}
	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "rosterbench-ingest-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	day1, day2 := filepath.Join(work, "day1"), filepath.Join(work, "day2")
	t0 := time.Now()
	if err := writeExport(day1, *users, 0, 0); err != nil {
		return err
	}
	if err := writeExport(day2, *users, 1, *change); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ingest benchmark: %d users, 3 groups each, day 2 changes %.1f%% (files written in %v)\n",
		*users, *change*100, time.Since(t0).Round(time.Millisecond))
	for _, d := range []string{day1, day2} {
		for _, f := range []string{"users.csv", "user_groups.csv"} {
			if fi, err := os.Stat(filepath.Join(d, f)); err == nil {
				fmt.Fprintf(stdout, "  %s/%s: %.1f MB\n", filepath.Base(d), f, float64(fi.Size())/1e6)
			}
		}
	}
	fmt.Fprintf(stdout, "\n%-18s %10s %10s %10s %10s | %8s %8s %8s\n", "phase", "wall", "cpu", "peak_rss", "db_size", "wall×", "cpu×", "rss×")
	data := filepath.Join(work, "data")
	steps := []struct{ name, files string }{
		{"first upload", day1}, {"day-2 export", day2}, {"identical again", day2},
	}
	for _, st := range steps {
		ref, err := childPhase("read", data, st.files)
		if err != nil {
			return err
		}
		got, err := childPhase("apply", data, st.files)
		if err != nil {
			return err
		}
		fi, _ := os.Stat(filepath.Join(data, "rosterd.db"))
		size := int64(0)
		if fi != nil {
			size = fi.Size()
		}
		fmt.Fprintf(stdout, "%-18s %10s %10s %9.0fM %9.0fM | %8.2f %8.2f %8.2f\n", st.name,
			got.wall.Round(time.Millisecond), got.cpu.Round(time.Millisecond), float64(got.rss)/(1<<20), float64(size)/(1<<20),
			got.wall.Seconds()/ref.wall.Seconds(), got.cpu.Seconds()/ref.cpu.Seconds(), float64(got.rss)/float64(ref.rss))
		fmt.Fprintf(stdout, "%-18s %10s %10s %9.0fM %10s |  (bare encoding/csv read of the same files)\n", "  csv read",
			ref.wall.Round(time.Millisecond), ref.cpu.Round(time.Millisecond), float64(ref.rss)/(1<<20), "")
		if got.note != "" {
			fmt.Fprintf(stdout, "%-18s %s\n", "", got.note)
		}
	}
	return nil
}

type phaseResult struct {
	wall time.Duration
	cpu  time.Duration
	rss  int64 // bytes
	note string
}

// childPhase runs one phase in a child process and measures it. The wall
// time is what the child reports (without process start and exit).
func childPhase(phase, data, files string) (phaseResult, error) {
	self, err := os.Executable()
	if err != nil {
		return phaseResult{}, err
	}
	cmd := exec.Command(self, "ingest", "-phase", phase, "-dir", data, files)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return phaseResult{}, fmt.Errorf("phase %s %s: %w", phase, files, err)
	}
	var r phaseResult
	lines := strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)
	r.wall, err = time.ParseDuration(lines[0])
	if err != nil {
		return r, fmt.Errorf("phase %s: %q", phase, out)
	}
	if len(lines) > 1 {
		r.note = lines[1]
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	r.rss = ru.Maxrss * 1024
	return r, nil
}

// ingestPhase is the child: "read" reads the export with encoding/csv,
// "apply" runs it through the pipeline on the data folder. It prints the
// wall time.
func ingestPhase(phase, data string, args []string) error {
	if len(args) != 1 {
		return errors.New("ingest -phase: one export folder")
	}
	files := args[0]
	start := time.Now()
	switch phase {
	case "read":
		for _, name := range []string{"users.csv", "user_groups.csv"} {
			f, err := os.Open(filepath.Join(files, name))
			if err != nil {
				return err
			}
			r := csv.NewReader(bufio.NewReaderSize(f, 64<<10))
			r.ReuseRecord = true
			for {
				if _, err := r.Read(); err == io.EOF {
					break
				} else if err != nil {
					f.Close()
					return err
				}
			}
			f.Close()
		}
		fmt.Println(time.Since(start))
		return nil
	case "apply":
		return applyPhase(data, files, start)
	}
	return fmt.Errorf("unknown phase %q", phase)
}

func applyPhase(data, files string, start time.Time) error {
	db, err := state.Open(filepath.Join(data, "rosterd.db"), nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Org("bench"); err != nil {
		if err := db.CreateOrg(state.Org{Name: "bench"}); err != nil {
			return err
		}
	}
	orgDir := filepath.Join(data, "orgs", "bench")
	if err := os.MkdirAll(filepath.Join(orgDir, "reports"), 0o700); err != nil {
		return err
	}
	// Place the files as an upload does (they are not timed: the SFTP
	// benchmark measures uploads).
	for _, name := range []string{"users.csv", "user_groups.csv"} {
		if err := copyFile(filepath.Join(files, name), filepath.Join(orgDir, name)); err != nil {
			return err
		}
	}
	before, _ := db.Batches("bench", "", 1)
	p, err := ingest.New(ingest.Config{DB: db, OrgsRoot: filepath.Join(data, "orgs"), Defaults: ingest.Defaults{
		Settle: 0, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep",
	}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	start = time.Now()
	go func() { done <- p.Run(ctx) }()
	p.Notify("bench", "users.csv")
	p.Notify("bench", "user_groups.csv")
	var b state.Batch
	for {
		bs, err := db.Batches("bench", "", 1)
		if err != nil {
			return err
		}
		if len(bs) > 0 && (len(before) == 0 || bs[0].ID != before[0].ID) && bs[0].Status != state.BatchPending && bs[0].Status != state.BatchProcessing {
			b = bs[0]
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	// A staged apply is visible at once; its overlay is merged into the
	// base after. Count the merge in.
	for {
		pending, err := db.PendingMerge("bench")
		if err != nil {
			return err
		}
		if !pending {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	wall := time.Since(start)
	cancel()
	<-done
	fmt.Println(wall)
	c := b.Changes
	fmt.Printf("%s with %d files: %d created, %d updated, %d deactivated, %d deleted users; %d/%d memberships added/removed\n",
		b.Status, len(b.Files), c.UsersCreated, c.UsersUpdated, c.UsersDeactivated, c.UsersDeleted, c.MembershipsAdded, c.MembershipsRemoved)
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(filepath.Dir(to), ".bench-"+filepath.Base(to))
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}

// writeExport writes users.csv (about 20 columns) and user_groups.csv (3
// groups per user) into dir. version 0 is day 1; version 1 changes a share
// of the users: a third get new attributes, a third move to another
// department group, a sixth leave and as many join.
func writeExport(dir string, n, version int, change float64) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	uf, err := os.Create(filepath.Join(dir, "users.csv"))
	if err != nil {
		return err
	}
	defer uf.Close()
	gf, err := os.Create(filepath.Join(dir, "user_groups.csv"))
	if err != nil {
		return err
	}
	defer gf.Close()
	uw, gw := bufio.NewWriterSize(uf, 1<<20), bufio.NewWriterSize(gf, 1<<20)
	uw.WriteString("user_id,email,first_name,last_name,status,username,display_name,job_title,employee_type,employment_start_date,department_name,division_name,cost_center_name,manager_id,manager_name,manager_email,work_address_locality,work_address_country,preferred_language,badge_number\n")
	gw.WriteString("group_name,user_id\n")
	rng := rand.New(rand.NewPCG(7, uint64(version)))
	names := []string{"Ana", "Bjørn", "Chloé", "Dmitri", "Émile", "Fátima", "Günter", "Hiroshi", "Ingrid", "José"}
	row := func(id string, i int, title, dept string) {
		fn, ln := names[i%len(names)], names[(i/7)%len(names)]+"son"
		fmt.Fprintf(uw, "%s,%s.%s@example.com,%s,%s,active,%s%d,%s %s,%s,Full-time,2019-%02d-%02d,%s,Division %d,CC-%d,M%07d,Manager %d,manager%d@example.com,City %d,DE,de,%d\n",
			id, strings.ToLower(fn), strings.ToLower(id), fn, ln, strings.ToLower(fn), i, fn, ln, title, i%12+1, i%28+1, dept, i%10, i%200, i/50, i/50, i/50, i%500, i)
	}
	for i := range n {
		id := fmt.Sprintf("E%07d", i)
		title, dept := fmt.Sprintf("Title %d", i%300), fmt.Sprintf("Dept %d", i%100)
		if version > 0 && rng.Float64() < change {
			switch rng.IntN(6) {
			case 0, 1:
				title = "Senior " + title
			case 2, 3:
				dept = fmt.Sprintf("Dept %d", (i+1)%100)
			case 4:
				continue // left
			case 5:
				hire := fmt.Sprintf("H%07d", i)
				row(hire, i, title, dept)
				fmt.Fprintf(gw, "%s,%s\nSite %d,%s\nEveryone %d,%s\n", dept, hire, i%20, hire, i%1000, hire)
			}
		}
		row(id, i, title, dept)
		fmt.Fprintf(gw, "%s,%s\nSite %d,%s\nEveryone %d,%s\n", dept, id, i%20, id, i%1000, id)
	}
	if err := uw.Flush(); err != nil {
		return err
	}
	return gw.Flush()
}
