package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/state"
)

// runIngest is `rosterbench ingest`: a first upload, a day-2 export with
// changes and an identical re-upload through the real pipeline (archive,
// validate, diff, apply, report), each in its own process so that its
// wall time, CPU time and memory are its own, next to a bare encoding/csv
// read of the same files, also in its own process, just before it.
//
// Memory is reported three ways. anon is the peak of RssAnon (sampled from
// /proc/self/status every 50 ms): the memory the process holds, which the
// target is judged on. hwm is VmHWM, the peak resident set including the
// pages of the mmapped bbolt file the process touched: page cache the
// kernel reclaims under pressure, which at a million users is most of it.
// heap is the peak of the Go heap's objects (runtime/metrics, same
// sampling). Each phase also prints where its wall time went (the
// pipeline's "batch timings" debug log).
func runIngest(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	users := fs.Int("users", 1000000, "users in the export (about 20 columns, 3 groups each)")
	change := fs.Float64("change", 0.02, "share of users the day-2 export changes")
	dir := fs.String("dir", "", "work folder (default: a new temporary folder, removed after); exports and the day-1 database already in it are reused, so -phases day2 can run again")
	rounds := fs.Int("rounds", 2, "runs of each phase (day-2 runs restore the day-1 database first)")
	phases := fs.String("phases", "first,day2,identical", "phases to run, in this order")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of each pipeline run to PREFIX-PHASE-ROUND.pprof, and a heap profile at its peak to .heap")
	warm := fs.Bool("warm", false, "read the whole snapshot before each pipeline run (not in its wall time, but in its CPU time), as a long-running daemon has it mapped")
	stageTx := fs.Int("stage-tx", 0, "changes per staging transaction (ingest.Config.StageTxChanges; 0 = its default)")
	fs.StringVar(&memoryLimit, "memory-limit", "256MiB", "GOMEMLIMIT of the pipeline runs, as rosterd's [limits] memory default sets it (\"off\" = none; GOMEMLIMIT in the environment wins)")
	phase := fs.String("phase", "", "internal: run one phase in this process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *phase != "" {
		return ingestPhase(*phase, *dir, *cpuprofile, *stageTx, *warm, fs.Args())
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
	tag := fmt.Sprintf("%d %g\n", *users, *change)
	if old, err := os.ReadFile(filepath.Join(work, "export.tag")); err != nil || string(old) != tag {
		if err := writeExport(day1, *users, 0, 0); err != nil {
			return err
		}
		if err := writeExport(day2, *users, 1, *change); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(work, "export.tag"), []byte(tag), 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "ingest benchmark: %d users, 3 groups each, day 2 changes %.1f%% (files ready in %v), %d cores\n",
		*users, *change*100, time.Since(t0).Round(time.Millisecond), runtime.NumCPU())
	for _, d := range []string{day1, day2} {
		for _, f := range []string{"users.csv", "user_groups.csv"} {
			if fi, err := os.Stat(filepath.Join(d, f)); err == nil {
				fmt.Fprintf(stdout, "  %s/%s: %.1f MB\n", filepath.Base(d), f, float64(fi.Size())/1e6)
			}
		}
	}
	fmt.Fprintf(stdout, "\nanon = peak RssAnon (judged), hwm = VmHWM (includes mmapped bbolt pages), heap = peak Go heap objects;\n")
	fmt.Fprintf(stdout, "ratios against the mean of two bare encoding/csv reads, run just before and just after; open = opening the database, not in the wall time; vda = validate+diff+apply (diff, stage, flip, merge or record);\napl = the same up to the flip, when the batch is applied (its events, report and snapshot visible), without the merge of the overlay that follows\n\n")
	fmt.Fprintf(stdout, "%-10s %-2s %9s %9s %7s %7s %7s %7s | %6s %6s %6s %6s %6s | %s\n",
		"phase", "#", "wall", "cpu", "anon", "hwm", "heap", "db", "wall×", "cpu×", "vda×", "apl×", "anon×", "load")
	data := filepath.Join(work, "data")
	db := filepath.Join(data, "rosterd.db")
	saved := filepath.Join(work, "day1.db")
	for _, ph := range strings.Split(*phases, ",") {
		files := day2
		if ph == "first" {
			files = day1
		}
		for round := 1; round <= *rounds; round++ {
			switch {
			case ph == "first":
				if err := os.RemoveAll(data); err != nil {
					return err
				}
			case ph == "day2":
				if _, err := os.Stat(saved); err != nil {
					return fmt.Errorf("day2 needs the database of a first upload: %w", err)
				}
				if err := copyFile(saved, db); err != nil {
					return err
				}
			}
			// The archive copies are not needed again.
			os.RemoveAll(filepath.Join(data, "archive"))
			load0 := loadAvg()
			ref, err := childPhase("read", data, files, "", 0, false)
			if err != nil {
				return err
			}
			var val phaseResult
			if ph != "identical" {
				if val, err = childPhase("validate", data, files, "", 0, false); err != nil {
					return err
				}
			}
			prof := ""
			if *cpuprofile != "" {
				prof = fmt.Sprintf("%s-%s-%d.pprof", *cpuprofile, ph, round)
			}
			got, err := childPhase("apply", data, files, prof, *stageTx, *warm)
			if err != nil {
				return err
			}
			// The read again after: the ratios are against the mean of
			// the two, so that the machine's drift during the phase
			// weighs on both sides alike.
			ref2, err := childPhase("read", data, files, "", 0, false)
			if err != nil {
				return err
			}
			ref1 := ref
			ref.wall, ref.cpu = (ref1.wall+ref2.wall)/2, (ref1.cpu+ref2.cpu)/2
			load1 := loadAvg()
			size := int64(0)
			if fi, _ := os.Stat(db); fi != nil {
				size = fi.Size()
			}
			var vda time.Duration
			for _, k := range []string{"diff", "stage", "flip", "record", "identical"} {
				vda += got.Steps[k]
			}
			applied := vda // the batch is visible: events, report, snapshot
			vda += got.Steps["merge"]
			mb := func(n int64) string { return fmt.Sprintf("%.0fM", float64(n)/(1<<20)) }
			fmt.Fprintf(stdout, "%-10s %-2d %9s %9s %7s %7s %7s %7s | %6.2f %6.2f %6.2f %6.2f %6.2f | %.2f→%.2f\n",
				ph, round, got.wall.Round(time.Millisecond), got.cpu.Round(time.Millisecond),
				mb(got.Anon), mb(got.HWM), mb(got.Heap), mb(size),
				got.wall.Seconds()/ref.wall.Seconds(), got.cpu.Seconds()/ref.cpu.Seconds(),
				vda.Seconds()/ref.wall.Seconds(), applied.Seconds()/ref.wall.Seconds(), float64(got.Anon)/float64(ref.Anon), load0, load1)
			fmt.Fprintf(stdout, "%-10s %-2s %9s %9s %7s %7s %7s %7s |  (mean of %v before and %v after)\n", "  csv read", "",
				ref.wall.Round(time.Millisecond), ref.cpu.Round(time.Millisecond), mb(ref.Anon), mb(ref.HWM), mb(ref.Heap), "",
				ref1.wall.Round(time.Millisecond), ref2.wall.Round(time.Millisecond))
			if val.wall > 0 {
				fmt.Fprintf(stdout, "%-10s %-2s %9s %9s %7s %7s %7s %7s | %6.2f %6.2f |  (schema checker alone, no diff)\n", "  validate", "",
					val.wall.Round(time.Millisecond), val.cpu.Round(time.Millisecond), mb(val.Anon), mb(val.HWM), mb(val.Heap), "",
					val.wall.Seconds()/ref.wall.Seconds(), val.cpu.Seconds()/ref.cpu.Seconds())
			}
			fmt.Fprintf(stdout, "%-13s %s\n", "", got.steps())
			if got.Note != "" {
				fmt.Fprintf(stdout, "%-13s %s\n", "", got.Note)
			}
			if ph == "first" && round == *rounds {
				if err := copyFile(db, saved); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// memoryLimit is the -memory-limit flag.
var memoryLimit string

// loadAvg returns the one-minute load average, or -1.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		return -1
	}
	return l
}

// phaseResult is what a child reports (JSON on its stdout) plus what the
// parent measures of it.
type phaseResult struct {
	Wall  string                   `json:"wall"`
	Anon  int64                    `json:"anon"` // peak RssAnon, bytes
	File  int64                    `json:"file"` // peak RssFile, bytes
	HWM   int64                    `json:"hwm"`  // VmHWM, bytes
	Heap  int64                    `json:"heap"` // peak Go heap objects, bytes
	Steps map[string]time.Duration `json:"steps"`
	Order []string                 `json:"order"`
	// Peaks of RssAnon during the diff (reading the files against the
	// snapshot) and during the apply (stage, flip, merge).
	DiffAnon  int64  `json:"diff_anon"`
	ApplyAnon int64  `json:"apply_anon"`
	DiffHeap  int64  `json:"diff_heap"`
	ApplyHeap int64  `json:"apply_heap"`
	Note      string `json:"note"`

	wall time.Duration
	cpu  time.Duration
}

func (r phaseResult) steps() string {
	var b strings.Builder
	if r.DiffAnon > 0 || r.ApplyAnon > 0 {
		fmt.Fprintf(&b, "[peak anon/heap: diff %.0fM/%.0fM, apply %.0fM/%.0fM]  ", float64(r.DiffAnon)/(1<<20), float64(r.DiffHeap)/(1<<20),
			float64(r.ApplyAnon)/(1<<20), float64(r.ApplyHeap)/(1<<20))
	}
	for _, k := range r.Order {
		fmt.Fprintf(&b, "%s %v  ", k, r.Steps[k].Round(time.Millisecond))
	}
	return strings.TrimSpace(b.String())
}

// childPhase runs one phase in a child process and measures it. The wall
// time is what the child reports (without process start and exit).
func childPhase(phase, data, files, prof string, stageTx int, warm bool) (phaseResult, error) {
	self, err := os.Executable()
	if err != nil {
		return phaseResult{}, err
	}
	cmd := exec.Command(self, "ingest", "-phase", phase, "-dir", data, "-cpuprofile", prof, "-stage-tx", strconv.Itoa(stageTx), "-warm="+strconv.FormatBool(warm), files)
	cmd.Stderr = os.Stderr
	if memoryLimit != "off" && os.Getenv("GOMEMLIMIT") == "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+memoryLimit)
	}
	out, err := cmd.Output()
	if err != nil {
		return phaseResult{}, fmt.Errorf("phase %s %s: %w", phase, files, err)
	}
	var r phaseResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("phase %s: %q: %w", phase, out, err)
	}
	if r.wall, err = time.ParseDuration(r.Wall); err != nil {
		return r, fmt.Errorf("phase %s: %q", phase, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return r, nil
}

// sampler records the peaks of RssAnon, RssFile and the Go heap every
// 50 ms until stopped.
type sampler struct {
	stop     chan struct{}
	done     chan struct{}
	res      phaseResult
	heapProf string // write a heap profile here at each new peak
	dumped   int64
	mu       sync.Mutex
	series   []sample
}

type sample struct {
	t          time.Time
	anon, heap int64
}

// peak returns the highest RssAnon and Go heap sampled in [from, to].
func (s *sampler) peak(from, to time.Time) (anon, heap int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.series {
		if !x.t.Before(from) && !x.t.After(to) {
			anon, heap = max(anon, x.anon), max(heap, x.heap)
		}
	}
	return anon, heap
}

func startSampler(heapProf string) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{}), heapProf: heapProf}
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

var heapMetric = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func (s *sampler) sample() {
	metrics.Read(heapMetric)
	h := int64(heapMetric[0].Value.Uint64())
	s.res.Heap = max(s.res.Heap, h)
	if s.heapProf != "" && h > 64<<20 && h > s.dumped*5/4 {
		s.dumped = h
		if f, err := os.Create(s.heapProf); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var kb int64
		fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
		switch k {
		case "RssAnon":
			s.res.Anon = max(s.res.Anon, kb<<10)
			s.mu.Lock()
			s.series = append(s.series, sample{time.Now(), kb << 10, h})
			s.mu.Unlock()
		case "RssFile":
			s.res.File = max(s.res.File, kb<<10)
		case "VmHWM":
			s.res.HWM = kb << 10
		}
	}
}

func (s *sampler) finish() phaseResult {
	close(s.stop)
	<-s.done
	return s.res
}

// stepLog collects the durations of the pipeline's "batch archived" and
// "batch timings" debug records.
type stepLog struct {
	mu    sync.Mutex
	steps map[string]time.Duration
	order []string
	// Where the diff and the apply ran, worked back from the time of the
	// "batch timings" record and the durations in it.
	diffFrom, diffTo, applyFrom, applyTo time.Time
}

func (h *stepLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *stepLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *stepLog) WithGroup(string) slog.Handler            { return h }
func (h *stepLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "batch archived" && r.Message != "batch timings" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Message == "batch timings" {
		var ds []slog.Attr
		r.Attrs(func(a slog.Attr) bool {
			if a.Value.Kind() == slog.KindDuration {
				ds = append(ds, a)
			}
			return true
		})
		t := r.Time
		for i := len(ds) - 1; i >= 0; i-- {
			from := t.Add(-ds[i].Value.Duration())
			switch ds[i].Key {
			case "merge":
				h.applyTo = t
			case "stage":
				h.applyFrom = from
			case "diff":
				h.diffFrom, h.diffTo = from, t
			}
			t = from
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindDuration {
			if _, ok := h.steps[a.Key]; !ok {
				h.order = append(h.order, a.Key)
			}
			h.steps[a.Key] += a.Value.Duration()
		}
		return true
	})
	return nil
}

// ingestPhase is the child: "read" reads the export with encoding/csv,
// "apply" runs it through the pipeline on the data folder. It prints its
// phaseResult as JSON.
func ingestPhase(phase, data, prof string, stageTx int, warm bool, args []string) error {
	if len(args) != 1 {
		return errors.New("ingest -phase: one export folder")
	}
	files := args[0]
	heapProf := ""
	if prof != "" && phase == "apply" {
		heapProf = strings.TrimSuffix(prof, ".pprof") + ".heap"
	}
	smp := startSampler(heapProf)
	var log *stepLog
	start := time.Now()
	var res phaseResult
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
		res.Wall = time.Since(start).String()
	case "validate":
		c := schema.NewChecker(schema.Limits{}, nil)
		for _, name := range []string{"users.csv", "user_groups.csv"} {
			f, err := os.Open(filepath.Join(files, name))
			if err != nil {
				return err
			}
			if name == "users.csv" {
				_, err = c.Users(f, name, func(*schema.User) error { return nil })
			} else {
				_, err = c.UserGroups(f, name, func(*schema.Membership) error { return nil })
			}
			f.Close()
			if err != nil {
				return err
			}
		}
		res.Wall = time.Since(start).String()
		res.Note = fmt.Sprintf("%d errors", c.Errors())
	case "apply":
		log = &stepLog{steps: map[string]time.Duration{}}
		if prof != "" {
			f, err := os.Create(prof)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		wall, note, err := applyPhase(data, files, stageTx, warm, log)
		if prof != "" {
			pprof.StopCPUProfile()
		}
		if err != nil {
			return err
		}
		res.Wall, res.Note, res.Steps, res.Order = wall.String(), note, log.steps, log.order
	default:
		return fmt.Errorf("unknown phase %q", phase)
	}
	m := smp.finish()
	res.Anon, res.File, res.HWM, res.Heap = m.Anon, m.File, m.HWM, m.Heap
	if log != nil && !log.diffFrom.IsZero() {
		res.DiffAnon, res.DiffHeap = smp.peak(log.diffFrom, log.diffTo)
		if !log.applyFrom.IsZero() {
			res.ApplyAnon, res.ApplyHeap = smp.peak(log.applyFrom, log.applyTo)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func applyPhase(data, files string, stageTx int, warm bool, log *stepLog) (time.Duration, string, error) {
	// Open is not in the phase's wall time (a daemon opens its database
	// once, at start), but it is shown: on Linux it maps the whole file.
	t0 := time.Now()
	db, err := state.Open(filepath.Join(data, "rosterd.db"), nil)
	if err != nil {
		return 0, "", err
	}
	log.steps["open"] = time.Since(t0)
	log.order = append(log.order, "open")
	defer db.Close()
	if _, err := db.Org("bench"); err != nil {
		if err := db.CreateOrg(state.Org{Name: "bench"}); err != nil {
			return 0, "", err
		}
	}
	orgDir := filepath.Join(data, "orgs", "bench")
	if err := os.MkdirAll(filepath.Join(orgDir, "reports"), 0o700); err != nil {
		return 0, "", err
	}
	// Place the files as an upload does (they are not timed: the SFTP
	// benchmark measures uploads).
	for _, name := range []string{"users.csv", "user_groups.csv"} {
		if err := copyFile(filepath.Join(files, name), filepath.Join(orgDir, name)); err != nil {
			return 0, "", err
		}
	}
	if warm {
		// Fault in the snapshot's pages first, as a daemon that has run
		// batches before has them mapped (not timed).
		err := db.ViewSnapshot("bench", func(s *state.SnapshotTx) error {
			if err := s.ForEachUser(func([]byte, []byte, bool) error { return nil }); err != nil {
				return err
			}
			return s.ForEachMember(func([]byte, []byte) error { return nil })
		})
		if err != nil {
			return 0, "", err
		}
	}
	before, _ := db.Batches("bench", "", 1)
	p, err := ingest.New(ingest.Config{DB: db, OrgsRoot: filepath.Join(data, "orgs"), Logger: slog.New(log), StageTxChanges: stageTx, Defaults: ingest.Defaults{
		Settle: 0, DeleteThresholdPercent: 20, DeleteThresholdCount: 10, InactiveUsers: "keep",
	}})
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	p.Notify("bench", "users.csv")
	p.Notify("bench", "user_groups.csv")
	var b state.Batch
	for {
		bs, err := db.Batches("bench", "", 1)
		if err != nil {
			return 0, "", err
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
			return 0, "", err
		}
		if !pending {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	wall := time.Since(start)
	cancel()
	<-done
	c := b.Changes
	note := fmt.Sprintf("%s with %d files: %d created, %d updated, %d deactivated, %d deleted users; %d/%d memberships added/removed",
		b.Status, len(b.Files), c.UsersCreated, c.UsersUpdated, c.UsersDeactivated, c.UsersDeleted, c.MembershipsAdded, c.MembershipsRemoved)
	return wall, note, nil
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
	// Written out before the phase starts, so that its writeback does not
	// compete with the phase's own reads and writes (a daemon's database
	// is not freshly copied).
	if err := out.Sync(); err != nil {
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
