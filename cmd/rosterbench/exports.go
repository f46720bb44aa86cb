package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/schema/schemabench"
	"github.com/rosterd/rosterd/state"
)

// runExports is `rosterbench exports`: the day-2 export of N users (23
// columns, a 2 % change) through the real pipeline (archive, decode,
// validate, diff, apply, report) three ways, interleaved round by round:
// plain users.csv; the same people with an HR system's own column names
// and MM/DD/YYYY dates, gzipped, read through a mapping; and the plain file
// OpenPGP-encrypted (RSA 3072, ZIP-compressed, as gpg's defaults make it).
// Each run starts from a copy of the same day-1 database. It prints each
// run's wall and CPU time and each variant's median ratio to the plain
// runs of the same rounds.
func runExports(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("exports", flag.ContinueOnError)
	users := fs.Int("users", 1_000_000, "users in the export")
	rounds := fs.Int("rounds", 3, "rounds; each runs the three variants once")
	dir := fs.String("dir", "", "work folder (default: a new temporary folder, removed after)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "rosterbench-exports-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	t0 := time.Now()
	files, key, err := writeExportVariants(work, *users)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exports: %d users, files written in %v\n", *users, time.Since(t0).Round(time.Millisecond))
	for _, v := range exportVariants {
		st, _ := os.Stat(filepath.Join(work, v.file))
		fmt.Fprintf(stdout, "  %-10s %-14s %7.1f MB\n", v.name, v.file, float64(st.Size())/1e6)
	}
	base := filepath.Join(work, "base")
	t0 = time.Now()
	if _, err := exportRun(base, files["day1"], "users.csv", state.Settings{}, nil, true); err != nil {
		return fmt.Errorf("day 1: %w", err)
	}
	fmt.Fprintf(stdout, "day-1 database made in %v\n", time.Since(t0).Round(time.Millisecond))
	times := map[string][]exportTiming{}
	for r := range *rounds {
		for _, v := range exportVariants {
			runDir := filepath.Join(work, "run")
			os.RemoveAll(runDir)
			if err := exportCopyTree(base, runDir); err != nil {
				return err
			}
			tm, err := exportRun(runDir, files[v.name], v.file, v.settings, key, false)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			times[v.name] = append(times[v.name], tm)
			fmt.Fprintf(stdout, "round %d  %-10s wall %6.2f s  cpu %6.2f s  %s\n", r+1, v.name, tm.wall.Seconds(), tm.cpu.Seconds(), tm.status)
			os.RemoveAll(runDir)
		}
	}
	if *rounds < 1 {
		return nil
	}
	fmt.Fprintf(stdout, "median ratio to plain (per round, wall):\n")
	for _, v := range exportVariants[1:] {
		var ratios, cpuRatios []float64
		for i, tm := range times[v.name] {
			ratios = append(ratios, tm.wall.Seconds()/times["plain"][i].wall.Seconds())
			cpuRatios = append(cpuRatios, tm.cpu.Seconds()/times["plain"][i].cpu.Seconds())
		}
		slices.Sort(ratios)
		slices.Sort(cpuRatios)
		fmt.Fprintf(stdout, "  %-10s %.2f (rounds %s; cpu %.2f)\n", v.name, ratios[len(ratios)/2], fmtRatios(ratios), cpuRatios[len(cpuRatios)/2])
	}
	return nil
}

func fmtRatios(rs []float64) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(s, " ")
}

// exportVariants are the three forms of the day-2 export.
var exportVariants = []struct {
	name, file string
	settings   state.Settings
}{
	{"plain", "users.csv", state.Settings{}},
	{"mapped.gz", "users.csv.gz", state.Settings{
		Columns: map[string]string{
			"Employee ID": "user_id", "Work Email": "email", "First Name": "first_name", "Last Name": "last_name",
			"Department": "department_name", "Employment Status": "status", "Hire Date": "employment_start_date",
		},
		DateFormat: "MM/DD/YYYY",
	}},
	{"pgp", "users.csv.gpg", state.Settings{}},
}

type exportTiming struct {
	wall, cpu time.Duration
	status    string
}

// writeExportVariants writes day1.csv and the day-2 variants into work,
// and the organization's key pair for the encrypted one.
func writeExportVariants(work string, n int) (map[string]string, []byte, error) {
	files := map[string]string{
		"day1": filepath.Join(work, "day1.csv"), "plain": filepath.Join(work, "users.csv"),
		"mapped.gz": filepath.Join(work, "users.csv.gz"), "pgp": filepath.Join(work, "users.csv.gpg"),
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.Create(files["day1"])
	if err != nil {
		return nil, nil, err
	}
	if err := schemabench.WriteUsers(f, n); err != nil {
		return nil, nil, err
	}
	f.Close()
	// Day 2: every 50th user has a new employee type.
	if err := transformLines(files["day1"], files["plain"], func(i int, line []byte) []byte {
		if i > 0 && i%50 == 0 {
			return bytes.Replace(line, []byte(",Full-time,"), []byte(",Part-time,"), 1)
		}
		return line
	}); err != nil {
		return nil, nil, err
	}
	// The HR system's own names, and dates as MM/DD/YYYY.
	names := map[string]string{
		"user_id": "Employee ID", "email": "Work Email", "first_name": "First Name", "last_name": "Last Name",
		"department_name": "Department", "status": "Employment Status", "employment_start_date": "Hire Date",
	}
	mapped := files["mapped.gz"] + ".csv"
	if err := transformLines(files["plain"], mapped, func(i int, line []byte) []byte {
		if i == 0 {
			cols := strings.Split(strings.TrimRight(string(line), "\r\n"), ",")
			for k, c := range cols {
				if n, ok := names[c]; ok {
					cols[k] = n
				}
			}
			return []byte(strings.Join(cols, ",") + "\r\n")
		}
		// employment_start_date is the only field that is a whole
		// YYYY-MM-DD date.
		if j := schemabench.ISODateField(line); j >= 0 {
			d := line[j:]
			us := append(append(append(append([]byte{}, d[5:7]...), '/'), d[8:10]...), '/')
			us = append(us, d[0:4]...)
			copy(line[j:j+10], us)
		}
		return line
	}); err != nil {
		return nil, nil, err
	}
	if err := gzipFile(mapped, files["mapped.gz"]); err != nil {
		return nil, nil, err
	}
	os.Remove(mapped)
	e, err := openpgp.NewEntity("bench uploads", "rosterd", "", &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 3072, DefaultCompressionAlgo: packet.CompressionZIP})
	if err != nil {
		return nil, nil, err
	}
	var key bytes.Buffer
	w, _ := armor.Encode(&key, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		return nil, nil, err
	}
	w.Close()
	if err := os.WriteFile(filepath.Join(work, "key.asc"), key.Bytes(), 0o600); err != nil {
		return nil, nil, err
	}
	in, err := os.Open(files["plain"])
	if err != nil {
		return nil, nil, err
	}
	defer in.Close()
	out, err := os.Create(files["pgp"])
	if err != nil {
		return nil, nil, err
	}
	pw, err := openpgp.Encrypt(out, []*openpgp.Entity{e}, nil, nil, &packet.Config{
		DefaultCipher: packet.CipherAES256, DefaultCompressionAlgo: packet.CompressionZIP, CompressionConfig: &packet.CompressionConfig{Level: 6}})
	if err != nil {
		return nil, nil, err
	}
	if _, err := io.Copy(pw, in); err != nil {
		return nil, nil, err
	}
	if err := pw.Close(); err != nil {
		return nil, nil, err
	}
	return files, key.Bytes(), out.Close()
}

func transformLines(src, dst string, fn func(i int, line []byte) []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(in, 1<<20)
	bw := bufio.NewWriterSize(out, 1<<20)
	for i := 0; ; i++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			bw.Write(fn(i, line))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return out.Close()
}

func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}

// exportRun runs one batch of file (uploaded as name) through a pipeline
// on the data directory dir (created, or a copy of the day-1 one), and
// returns its wall time from the notification to the batch's end, and
// the process's CPU time meanwhile.
func exportRun(dir, file, name string, st state.Settings, key []byte, create bool) (exportTiming, error) {
	var tm exportTiming
	db, err := state.Open(filepath.Join(dir, "rosterd.db"), nil)
	if err != nil {
		return tm, err
	}
	defer db.Close()
	if create {
		if err := db.CreateOrg(state.Org{Name: "bench"}); err != nil {
			return tm, err
		}
	}
	if _, err := db.UpdateOrg("bench", func(o *state.Org) error { o.Settings = st; return nil }); err != nil {
		return tm, err
	}
	orgDir := filepath.Join(dir, "orgs", "bench")
	if err := os.MkdirAll(filepath.Join(orgDir, "reports"), 0o700); err != nil {
		return tm, err
	}
	if key != nil {
		os.MkdirAll(filepath.Join(dir, "pgp", "bench"), 0o700)
		if err := os.WriteFile(filepath.Join(dir, "pgp", "bench", "private.asc"), key, 0o600); err != nil {
			return tm, err
		}
	}
	if err := exportCopy(file, filepath.Join(orgDir, name)); err != nil {
		return tm, err
	}
	var log *slog.Logger
	if os.Getenv("ROSTERBENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := ingest.New(ingest.Config{DB: db, OrgsRoot: filepath.Join(dir, "orgs"), Logger: log,
		Defaults: ingest.Defaults{Settle: time.Hour, DeleteThresholdPercent: 100, DeleteThresholdCount: 1 << 30, InactiveUsers: "keep"}})
	if err != nil {
		return tm, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The start-up scan notes the file (it was there before Run); a
	// settle of an hour keeps it waiting until the clock starts.
	if _, err := db.UpdateOrg("bench", func(o *state.Org) error { o.Settings.Settle = "0s"; return nil }); err != nil {
		return tm, err
	}
	runtime.GC()
	debug.FreeOSMemory()
	cpu0, start := cpuTime(), time.Now()
	p.Notify("bench", name)
	for {
		bs, err := db.Batches("bench", "", 1)
		if err != nil {
			return tm, err
		}
		if len(bs) > 0 && bs[0].FinishedAt != nil && (create || bs[0].CreatedAt.After(start.Add(-time.Second))) {
			tm.wall, tm.cpu, tm.status = time.Since(start), cpuTime()-cpu0, bs[0].Status
			if bs[0].Status != state.BatchApplied {
				return tm, fmt.Errorf("batch %s is %s: %s", bs[0].ID, bs[0].Status, bs[0].Reason)
			}
			return tm, nil
		}
		if time.Since(start) > 10*time.Minute {
			return tm, errors.New("no batch within 10 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exportCopyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		return exportCopy(path, target)
	})
}

func exportCopy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
