package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// runIngest is `rosterbench ingest`: the phases of an organization's life
// through the real pipeline (archive, validate, diff, apply, report, merge)
// on exports of the real shape (package ingest/ingesttest: random ids in
// random order, rows sorted by last name, heavy-tailed groups) or, with
// -shape bench, the benchmark's original export (ids in key order, groups
// of regular sizes). Each phase runs in its own process, between two bare
// encoding/csv reads of the same files, each in its own process too; every
// ratio is against the mean of the two reads, so that the machine's drift
// during the phase weighs on both sides alike.
//
// Phases: validate (what `rosterd validate` runs), first (the three files
// onto an empty organization), day2 (a working day: a share of the users
// changed), reorg (a reorganization: a share of the users change groups),
// deactivate (a share of the users set inactive: held by the deletion
// guard, then approved; the approved run is timed), identical (day 1's
// files again), split (users.csv alone onto an empty organization, then
// user_groups.csv and groups.csv in a later batch). Every day-2 phase
// starts from the database the first upload left. The reference of every
// row is the read of all the files of the phase's export, also for the
// split batches, each of which reads only some of them.
//
// Memory is reported three ways. anon is the peak of RssAnon (sampled from
// /proc/self/status every 50 ms): the memory the process holds, which the
// target is judged on. hwm is VmHWM, the peak resident set including the
// pages of the mmapped bbolt file the process touched: page cache the
// kernel reclaims under pressure. heap is the peak of the Go heap's
// objects. Each phase also prints where its wall time went (the pipeline's
// "batch timings" debug log) as shares of it.
func runIngest(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var o exportOpts
	fs.IntVar(&o.users, "users", 1000000, "users in the export")
	fs.StringVar(&o.shape, "shape", "real", "real: ingest/ingesttest's export of a real directory's shape (23 columns, random ids, rows by last name, ~10,000 heavy-tailed groups, groups.csv); bench: the original export (20 columns, ids in key order, 1,120 regular groups, no groups.csv)")
	fs.Float64Var(&o.change, "change", 0.02, "share of users the day2 phase changes")
	fs.Float64Var(&o.reorg, "reorg", 0.3, "share of users the reorg phase moves to other groups (real shape)")
	fs.Float64Var(&o.deact, "deactivate", 0.1, "share of users the deactivate phase sets inactive (real shape)")
	fs.StringVar(&o.ids, "ids", "mixed", "real shape: user ids: mixed, uuid, okta or numeric")
	fs.StringVar(&o.rowOrder, "order", "lastname", "real shape: users.csv's rows: lastname, department or random")
	fs.StringVar(&o.memOrder, "member-order", "user", "real shape: user_groups.csv's rows: user (users.csv's order), group or random")
	fs.Uint64Var(&o.seed, "seed", 1, "real shape: the generator's seed")
	dir := fs.String("dir", "", "work folder (default: a new temporary folder, removed after); exports and the day-1 database already in it are reused")
	rounds := fs.Int("rounds", 3, "runs of each phase")
	phases := fs.String("phases", "validate,first,day2,reorg,deactivate,identical,split", "phases to run, in this order (the bench shape skips reorg and deactivate)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of each run to PREFIX-PHASE-ROUND.pprof, and a heap profile at its peak to .heap")
	warm := fs.Bool("warm", false, "read the whole snapshot before each pipeline run (not in its wall time, but in its CPU time), as a long-running daemon has it mapped")
	store := fs.String("store", "", "run the pipeline on PostgreSQL: a postgres:// `URL` of a server and a role that may create databases (rosterbench_work, rosterbench_day1); default the bbolt file")
	stageTx := fs.Int("stage-tx", 0, "changes per staging transaction (ingest.Config.StageTxChanges; 0 = its default)")
	fs.StringVar(&memoryLimit, "memory-limit", "256MiB", "GOMEMLIMIT of the pipeline runs, as rosterd's [limits] memory default sets it (\"off\" = none; GOMEMLIMIT in the environment wins)")
	phase := fs.String("phase", "", "internal: run one phase in this process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *phase != "" {
		return ingestPhase(*phase)
	}
	if o.shape != "real" && o.shape != "bench" {
		return fmt.Errorf("-shape %q: want real or bench", o.shape)
	}
	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "rosterbench-ingest-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	t0 := time.Now()
	if err := writeExports(work, o); err != nil {
		return err
	}
	b := &ingestBench{work: work, o: o, stageTx: *stageTx, warm: *warm, prof: *cpuprofile, out: stdout}
	if *store != "" {
		var err error
		if b.pg, err = newPGServer(*store); err != nil {
			return err
		}
	}
	storeName := "bbolt"
	if b.pg != nil {
		storeName = "PostgreSQL"
	}
	fmt.Fprintf(stdout, "ingest benchmark on %s, %s shape: %d users (files ready in %v), %d cores, GOMEMLIMIT %s, %s\n",
		storeName, o.shape, o.users, time.Since(t0).Round(time.Millisecond), runtime.NumCPU(), memoryLimit, time.Now().UTC().Format(time.RFC3339))
	if o.shape == "real" {
		fmt.Fprintf(stdout, "  ids %s, users.csv by %s, user_groups.csv by %s, seed %d; day2 changes %.0f%%, reorg moves %.0f%%, deactivate %.0f%%\n",
			o.ids, o.rowOrder, o.memOrder, o.seed, o.change*100, o.reorg*100, o.deact*100)
	} else {
		fmt.Fprintf(stdout, "  day2 changes %.0f%%\n", o.change*100)
	}
	for _, d := range []string{"day1", "day2", "reorg", "deact"} {
		var parts []string
		for _, f := range o.files() {
			if fi, err := os.Stat(filepath.Join(work, d, f)); err == nil {
				parts = append(parts, fmt.Sprintf("%s %.1f MB", f, float64(fi.Size())/1e6))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(stdout, "  %s: %s\n", d, strings.Join(parts, ", "))
		}
	}
	fmt.Fprintf(stdout, "\n×: ratio to the mean of a bare encoding/csv read of the same files just before and just after the phase (read);\n"+
		"wall: the phase (a pipeline run: from the notification until the batch is final and its overlay merged);\n"+
		"done: the pipeline's \"batch finished\" duration (what the daemon logs; the merge and the archive copy are not in it);\n"+
		"anon: peak RssAnon (judged), hwm: VmHWM (with the mmapped database's pages), heap: peak Go heap objects; db: the database's size;\n"+
		"load: 1-minute load average before→after; steal: the share of the machine's CPU time stolen during the phase\n\n")
	fmt.Fprintf(stdout, "%-12s %-2s %9s %9s %9s %6s %6s %6s %7s | %6s %6s %6s | %-11s %5s\n",
		"phase", "#", "wall", "cpu", "done", "anon", "hwm", "heap", "db", "wall×", "cpu×", "done×", "load", "steal")
	for _, ph := range strings.Split(*phases, ",") {
		if o.shape == "bench" && (ph == "reorg" || ph == "deactivate") {
			continue
		}
		for round := 1; round <= *rounds; round++ {
			if err := b.run(ph, round, round == *rounds); err != nil {
				return err
			}
		}
	}
	b.summary()
	return nil
}

// ingestBench runs the phases and keeps their figures for the summary.
type ingestBench struct {
	work     string
	o        exportOpts
	stageTx  int
	warm     bool
	prof     string
	out      io.Writer
	results  map[string][]row
	rowOrder []string
	pg       *pgServer // -store; nil = bbolt
}

// row is one measured run of a phase.
type row struct {
	got, ref phaseResult
	db       int64
}

func (b *ingestBench) data() string   { return filepath.Join(b.work, "data") }
func (b *ingestBench) dbPath() string { return filepath.Join(b.data(), "rosterd.db") }
func (b *ingestBench) saved() string  { return filepath.Join(b.work, "day1.db") }

// run runs one round of a phase (split: two batches, two rows).
func (b *ingestBench) run(ph string, round int, last bool) error {
	all := b.o.files()
	type step struct {
		name, kind, dir string
		files           []string
	}
	var steps []step
	switch ph {
	case "validate":
		steps = []step{{"validate", "validate", "day1", all}}
	case "first":
		steps = []step{{"first", "apply", "day1", all}}
	case "day2":
		steps = []step{{"day2", "apply", "day2", all}}
	case "reorg":
		steps = []step{{"reorg", "apply", "reorg", all}}
	case "deactivate":
		steps = []step{{"deactivate", "approve", "deact", all}}
	case "identical":
		steps = []step{{"identical", "apply", "day1", all}}
	case "split":
		steps = []step{{"split users", "apply", "day1", all[:1]}, {"split groups", "apply", "day1", all[1:]}}
	default:
		return fmt.Errorf("unknown phase %q", ph)
	}
	switch {
	case b.pg != nil && (ph == "first" || ph == "split"):
		if err := os.RemoveAll(b.data()); err != nil {
			return err
		}
		if err := b.pg.recreate(pgWork, ""); err != nil {
			return err
		}
	case b.pg != nil && ph != "validate":
		if !b.pg.exists(pgDay1) {
			return fmt.Errorf("%s needs the database of a first upload (run the phase first before it)", ph)
		}
		if err := os.RemoveAll(b.data()); err != nil {
			return err
		}
		if err := b.pg.recreate(pgWork, pgDay1); err != nil {
			return err
		}
	case ph == "first" || ph == "split":
		if err := os.RemoveAll(b.data()); err != nil {
			return err
		}
	case ph == "day2" || ph == "reorg" || ph == "deactivate" || ph == "identical":
		if _, err := os.Stat(b.saved()); err != nil {
			return fmt.Errorf("%s needs the database of a first upload (run the phase first before it): %w", ph, err)
		}
		if err := os.MkdirAll(b.data(), 0o700); err != nil {
			return err
		}
		if err := copyFile(b.saved(), b.dbPath()); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(b.data(), 0o700); err != nil {
		return err
	}
	for _, st := range steps {
		// The archive copies are not needed again.
		os.RemoveAll(filepath.Join(b.data(), "archive"))
		dir := filepath.Join(b.work, st.dir)
		load0 := loadAvg()
		ref1, err := childPhase(childArgs{Kind: "read", Dir: dir, Files: all})
		if err != nil {
			return err
		}
		a := childArgs{Kind: st.kind, Data: b.data(), Dir: dir, Files: st.files, StageTx: b.stageTx, Warm: b.warm}
		if b.pg != nil {
			a.Store = b.pg.url(pgWork)
		}
		if b.prof != "" {
			a.Prof = fmt.Sprintf("%s-%s-%d.pprof", b.prof, strings.ReplaceAll(st.name, " ", "-"), round)
		}
		got, err := childPhase(a)
		if err != nil {
			return err
		}
		ref2, err := childPhase(childArgs{Kind: "read", Dir: dir, Files: all})
		if err != nil {
			return err
		}
		load1 := loadAvg()
		ref := ref1
		ref.wall, ref.cpu = (ref1.wall+ref2.wall)/2, (ref1.cpu+ref2.cpu)/2
		var size int64
		if fi, _ := os.Stat(b.dbPath()); fi != nil && st.kind != "validate" {
			size = fi.Size()
		}
		if b.pg != nil && st.kind != "validate" {
			size = b.pg.size(pgWork)
		}
		b.record(st.name, row{got, ref, size})
		mb := func(n int64) string {
			if n == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0fM", float64(n)/(1<<20))
		}
		done, doneX := "-", "-"
		if got.Finished > 0 {
			done = got.Finished.Round(time.Millisecond).String()
			doneX = fmt.Sprintf("%6.2f", got.Finished.Seconds()/ref.wall.Seconds())
		}
		fmt.Fprintf(b.out, "%-12s %-2d %9s %9s %9s %6s %6s %6s %7s | %6.2f %6.2f %6s | %4.2f→%-5.2f %4.1f%%\n",
			st.name, round, got.wall.Round(time.Millisecond), got.cpu.Round(time.Millisecond), done,
			mb(got.Anon), mb(got.HWM), mb(got.Heap), mb(size),
			got.wall.Seconds()/ref.wall.Seconds(), got.cpu.Seconds()/ref.cpu.Seconds(), doneX, load0, load1, 100*got.steal)
		fmt.Fprintf(b.out, "%-12s %-2s %9s %9s %9s %6s %6s %6s %7s |  (%v before, %v after)\n", "  read", "",
			ref.wall.Round(time.Millisecond), ref.cpu.Round(time.Millisecond), "", mb(ref.Anon), "", "", "",
			ref1.wall.Round(time.Millisecond), ref2.wall.Round(time.Millisecond))
		if s := got.stepsLine(); s != "" {
			fmt.Fprintf(b.out, "%-15s %s\n", "", s)
		}
		if got.Note != "" {
			fmt.Fprintf(b.out, "%-15s %s\n", "", got.Note)
		}
	}
	if ph == "first" && last && b.pg != nil {
		return b.pg.recreate(pgDay1, pgWork)
	}
	if ph == "first" && last {
		return copyFile(b.dbPath(), b.saved())
	}
	return nil
}

func (b *ingestBench) record(name string, r row) {
	if b.results == nil {
		b.results = map[string][]row{}
	}
	if _, ok := b.results[name]; !ok {
		b.rowOrder = append(b.rowOrder, name)
	}
	b.results[name] = append(b.results[name], r)
}

// summary prints, per phase, the median and range over its rounds.
func (b *ingestBench) summary() {
	fmt.Fprintf(b.out, "\nsummary, %s shape, %d users: median [min–max] over the rounds\n", b.o.shape, b.o.users)
	fmt.Fprintf(b.out, "%-12s %20s %20s %22s %22s %14s %8s\n", "phase", "wall", "cpu", "wall×", "done×", "anon", "db")
	for _, name := range b.rowOrder {
		rs := b.results[name]
		var wall, cpu, wx, dx, anon, db []float64
		for _, r := range rs {
			wall = append(wall, r.got.wall.Seconds())
			cpu = append(cpu, r.got.cpu.Seconds())
			wx = append(wx, r.got.wall.Seconds()/r.ref.wall.Seconds())
			if r.got.Finished > 0 {
				dx = append(dx, r.got.Finished.Seconds()/r.ref.wall.Seconds())
			}
			anon = append(anon, float64(r.got.Anon)/(1<<20))
			db = append(db, float64(r.db)/(1<<20))
		}
		mr := func(xs []float64, unit string, prec int) string {
			if len(xs) == 0 {
				return "-"
			}
			f := "%." + fmt.Sprint(prec) + "f"
			return fmt.Sprintf(f+"%s ["+f+"–"+f+"]", median(xs), unit, slices.Min(xs), slices.Max(xs))
		}
		fmt.Fprintf(b.out, "%-12s %20s %20s %22s %22s %14s %8s\n", name, mr(wall, "s", 2), mr(cpu, "s", 2),
			mr(wx, "×", 2), mr(dx, "×", 2), mr(anon, "M", 0), fmt.Sprintf("%.0fM", median(db)))
	}
}
