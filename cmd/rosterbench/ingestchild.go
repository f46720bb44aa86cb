package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/schema"
	"github.com/rosterd/rosterd/schema/report"
	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
)

// An ingest benchmark phase runs in a child process of its own (rosterbench
// ingest -phase KIND), so that its wall time, CPU time and memory are its
// own:
//
//   - read: a bare encoding/csv read of the files (the reference);
//   - validate: report.Validate of the files, what `rosterd validate` runs;
//   - apply: the files placed in the organization's folder and run through
//     the pipeline, as the daemon runs an upload (settle 0), until the
//     batch is final and its overlay merged;
//   - approve: apply with a deletion guard of 5 % of the active users, so
//     that the batch is held (not timed), then Approve, as an operator
//     releases it (timed).

// childArgs is what the parent tells a child.
type childArgs struct {
	Kind    string   `json:"kind"` // read, validate, apply, approve
	Data    string   `json:"data"` // the data folder (rosterd.db, orgs/, archive/)
	Dir     string   `json:"dir"`  // the export folder
	Files   []string `json:"files"`
	Prof    string   `json:"prof"` // CPU profile path, "" = none
	StageTx int      `json:"stage_tx"`
	Warm    bool     `json:"warm"`
	Store   string   `json:"store"` // a PostgreSQL database; "" = Data's bbolt file
}

// memoryLimit is the -memory-limit flag.
var memoryLimit string

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
	// Finished is the duration of the pipeline's "batch finished" log
	// record: what the daemon logs for the batch.
	Finished time.Duration `json:"finished"`
	// Peaks of RssAnon during the diff (reading the files against the
	// snapshot) and during the apply (stage, flip, merge).
	// HeldCPU is the CPU time of an approve phase's first run, which held
	// the batch: not the phase's.
	HeldCPU   time.Duration `json:"held_cpu"`
	DiffAnon  int64         `json:"diff_anon"`
	ApplyAnon int64         `json:"apply_anon"`
	DiffHeap  int64         `json:"diff_heap"`
	ApplyHeap int64         `json:"apply_heap"`
	Note      string        `json:"note"`

	wall  time.Duration
	cpu   time.Duration
	steal float64 // share of the machine's CPU time stolen during the phase
}

// stepsLine returns the share of each step of the pipeline's "batch
// timings" in the phase's wall time, and the memory peaks of the diff and
// the apply.
func (r phaseResult) stepsLine() string {
	var b strings.Builder
	if r.DiffAnon > 0 || r.ApplyAnon > 0 {
		fmt.Fprintf(&b, "[peak anon/heap: diff %.0fM/%.0fM, apply %.0fM/%.0fM]  ", float64(r.DiffAnon)/(1<<20), float64(r.DiffHeap)/(1<<20),
			float64(r.ApplyAnon)/(1<<20), float64(r.ApplyHeap)/(1<<20))
	}
	for _, k := range r.Order {
		d := r.Steps[k]
		if k == "open" {
			fmt.Fprintf(&b, "(open %v)  ", d.Round(time.Millisecond))
			continue
		}
		fmt.Fprintf(&b, "%s %v %.0f%%  ", k, d.Round(time.Millisecond), 100*d.Seconds()/r.wall.Seconds())
	}
	return strings.TrimSpace(b.String())
}

// childPhase runs one phase in a child process and measures it. The wall
// time is what the child reports (without process start and exit).
func childPhase(a childArgs) (phaseResult, error) {
	self, err := os.Executable()
	if err != nil {
		return phaseResult{}, err
	}
	js, _ := json.Marshal(a)
	cmd := exec.Command(self, "ingest", "-phase", string(js))
	cmd.Stderr = os.Stderr
	if memoryLimit != "off" && os.Getenv("GOMEMLIMIT") == "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+memoryLimit)
	}
	st0 := readCPUStat()
	out, err := cmd.Output()
	if err != nil {
		return phaseResult{}, fmt.Errorf("phase %s %v: %w", a.Kind, a.Files, err)
	}
	st1 := readCPUStat()
	var r phaseResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("phase %s: %q: %w", a.Kind, out, err)
	}
	if r.wall, err = time.ParseDuration(r.Wall); err != nil {
		return r, fmt.Errorf("phase %s: %q", a.Kind, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.cpu = time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) - r.HeldCPU
	if tot := st1.total - st0.total; tot > 0 {
		r.steal = float64(st1.steal-st0.steal) / float64(tot)
	}
	return r, nil
}

// cpuStat is the first line of /proc/stat: the machine's CPU time in
// ticks, and the part of it stolen by the hypervisor.
type cpuStat struct{ total, steal uint64 }

func readCPUStat() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var s cpuStat
	for i := 1; i < len(f); i++ {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		s.total += v
		if i == 8 {
			s.steal = v
		}
	}
	return s
}

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

func startSampler(heapProf string, on bool) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{}), heapProf: heapProf}
	if !on {
		close(s.done)
		return s
	}
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

// stepLog collects the durations of the pipeline's "batch archived",
// "batch timings" and "batch finished" records.
type stepLog struct {
	mu       sync.Mutex
	steps    map[string]time.Duration
	order    []string
	finished time.Duration
	echo     slog.Handler  // ROSTERBENCH_LOG=1: every record also to stderr
	timings  chan struct{} // a "batch timings" record arrived
	failures chan string   // errors logged
	// Where the diff and the apply ran, worked back from the time of the
	// "batch timings" record and the durations in it.
	diffFrom, diffTo, applyFrom, applyTo time.Time
}

// reset forgets the records so far (of a held batch, before its approval).
func (h *stepLog) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	open := h.steps["open"]
	h.steps, h.order, h.finished = map[string]time.Duration{"open": open}, []string{"open"}, 0
	h.diffFrom, h.diffTo, h.applyFrom, h.applyTo = time.Time{}, time.Time{}, time.Time{}, time.Time{}
}

func (h *stepLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *stepLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *stepLog) WithGroup(string) slog.Handler            { return h }
func (h *stepLog) Handle(ctx context.Context, r slog.Record) error {
	if h.echo != nil {
		h.echo.Handle(ctx, r)
	}
	if r.Level >= slog.LevelError {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				msg += ": " + a.Value.String()
			}
			return true
		})
		select {
		case h.failures <- msg:
		default:
		}
	}
	switch r.Message {
	case "batch finished":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "duration" {
				h.mu.Lock()
				h.finished = a.Value.Duration()
				h.mu.Unlock()
			}
			return true
		})
		return nil
	case "batch archived", "batch timings":
	default:
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Message == "batch timings" {
		defer func() {
			select {
			case h.timings <- struct{}{}:
			default:
			}
		}()
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
			case "stage":
				h.applyFrom, h.applyTo = from, r.Time
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

// ingestPhase is the child. It prints its phaseResult as JSON.
func ingestPhase(arg string) error {
	var a childArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		return fmt.Errorf("ingest -phase: %w", err)
	}
	heapProf := ""
	if a.Prof != "" && (a.Kind == "apply" || a.Kind == "approve") {
		heapProf = strings.TrimSuffix(a.Prof, ".pprof") + ".heap"
	}
	// ROSTERBENCH_SAMPLE=0 turns the memory sampler off, for runs under
	// callgrind: its work grows with the wall time, which callgrind
	// stretches fifty-fold.
	smp := startSampler(heapProf, os.Getenv("ROSTERBENCH_SAMPLE") != "0")
	var log *stepLog
	start := time.Now()
	var res phaseResult
	if a.Prof != "" {
		f, err := os.Create(a.Prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	switch a.Kind {
	case "read":
		for _, name := range a.Files {
			if err := bareRead(filepath.Join(a.Dir, name)); err != nil {
				return err
			}
		}
		res.Wall = time.Since(start).String()
	case "validate":
		var in []report.Input
		for _, name := range a.Files {
			f, err := os.Open(filepath.Join(a.Dir, name))
			if err != nil {
				return err
			}
			defer f.Close()
			in = append(in, report.Input{Name: name, R: f})
		}
		rep, err := report.Validate(in, schema.Limits{}, time.Now())
		if err != nil {
			return err
		}
		res.Wall = time.Since(start).String()
		res.Note = fmt.Sprintf("%s, %d issues", rep.Status, rep.IssuesTotal)
	case "apply", "approve":
		log = &stepLog{steps: map[string]time.Duration{}, timings: make(chan struct{}, 1), failures: make(chan string, 1)}
		if os.Getenv("ROSTERBENCH_LOG") == "1" {
			log.echo = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
		}
		wall, note, err := applyPhase(a, log)
		if err != nil {
			return err
		}
		res.HeldCPU = heldCPU
		res.Wall, res.Note, res.Steps, res.Order, res.Finished = wall.String(), note, log.steps, log.order, log.finished
	default:
		return fmt.Errorf("unknown phase %q", a.Kind)
	}
	if a.Prof != "" {
		pprof.StopCPUProfile()
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

// bareRead reads a CSV file with encoding/csv, keeping nothing: the
// reference every figure is a ratio to.
func bareRead(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 64<<10))
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	for {
		if _, err := r.Read(); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// heldCPU is the process's CPU time when an approve phase's held run
// ended.
var heldCPU time.Duration

// processCPU returns the CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func applyPhase(a childArgs, log *stepLog) (time.Duration, string, error) {
	// Open is not in the phase's wall time (a daemon opens its database
	// once, at start), but it is shown: on Linux it maps the whole file.
	t0 := time.Now()
	db, err := openBenchStore(a)
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
	orgDir := filepath.Join(a.Data, "orgs", "bench")
	if err := os.MkdirAll(filepath.Join(orgDir, "reports"), 0o700); err != nil {
		return 0, "", err
	}
	// Place the files as an upload does (they are not timed: the SFTP
	// benchmark measures uploads). Files of an earlier phase go first.
	for _, name := range []string{"users.csv", "user_groups.csv", "groups.csv"} {
		os.Remove(filepath.Join(orgDir, name))
	}
	for _, name := range a.Files {
		if err := copyFile(filepath.Join(a.Dir, name), filepath.Join(orgDir, name)); err != nil {
			return 0, "", err
		}
	}
	if a.Warm {
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
	pct := 20.0
	if a.Kind == "approve" {
		pct = 5
	}
	p, err := ingest.New(ingest.Config{DB: db, OrgsRoot: filepath.Join(a.Data, "orgs"), Logger: slog.New(log), StageTxChanges: a.StageTx, Defaults: ingest.Defaults{
		Settle: 0, DeleteThresholdPercent: pct, DeleteThresholdCount: 10, InactiveUsers: "keep",
	}})
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	for _, name := range a.Files {
		p.Notify("bench", name)
	}
	// The pipeline's last record of a batch, after its merge, is "batch
	// timings" (no polling: it would cost the run CPU time).
	select {
	case <-log.timings:
	case err := <-log.failures:
		return 0, "", fmt.Errorf("the pipeline failed: %s", err)
	}
	if a.Kind == "approve" {
		bs, err := db.Batches("bench", "", 1)
		if err != nil || len(bs) == 0 || bs[0].Status != state.BatchHeld {
			return 0, "", fmt.Errorf("the batch to approve: %v %v", bs, err)
		}
		log.reset()
		start = time.Now()
		heldCPU = processCPU()
		if _, err := p.Approve(ctx, "bench", bs[0].ID); err != nil {
			return 0, "", err
		}
		select {
		case <-log.timings:
		case err := <-log.failures:
			return 0, "", fmt.Errorf("the pipeline failed: %s", err)
		}
	}
	wall := time.Since(start)
	cancel()
	<-done
	bs, err := db.Batches("bench", "", 1)
	if err != nil || len(bs) == 0 {
		return 0, "", fmt.Errorf("the batch: %v", err)
	}
	b := bs[0]
	c := b.Changes
	note := fmt.Sprintf("%s with %d files: %d created, %d updated (%d deactivated), %d deleted users; %d/%d/%d groups created/updated/deleted; %d/%d memberships added/removed",
		b.Status, len(b.Files), c.UsersCreated, c.UsersUpdated, c.UsersDeactivated, c.UsersDeleted,
		c.GroupsCreated, c.GroupsUpdated, c.GroupsDeleted, c.MembershipsAdded, c.MembershipsRemoved)
	return wall, note, nil
}

// benchStore is what a phase needs of its store.
type benchStore interface {
	ingest.Store
	CreateOrg(o state.Org) error
	Close() error
}

// openBenchStore opens the phase's store: a.Store's PostgreSQL database
// (with its replica in a.Data) or a.Data's bbolt file.
func openBenchStore(a childArgs) (benchStore, error) {
	if a.Store != "" {
		return postgres.Open(context.Background(), postgres.Config{URL: a.Store, ReplicaDir: filepath.Join(a.Data, "replica"), Instance: "rosterbench"})
	}
	return state.Open(filepath.Join(a.Data, "rosterd.db"), nil)
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
