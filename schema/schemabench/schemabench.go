// Package schemabench measures package schema on a big users.csv against a
// bare encoding/csv read of the same file, in the same run. It serves the
// testing.B benchmark beside it and the csv mode of cmd/rosterbench.
//
// It writes and reads files (the caller gives the path) and samples the
// heap from a goroutine; it is a measuring tool, not part of the daemon.
package schemabench

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rosterd/rosterd/schema"
)

var (
	firstNames = []string{"Zoë", "José", "Ann", "Øyvind", "Łukasz", "Chloé", "Mohammed", "伟", "Aoife", "Nguyễn", "Sam", "François", "Ingrid", "Dvořák", "Priya", "Mika"}
	lastNames  = []string{"Müller", "García", "Lee", "Ødegård", "Kowalski", "Dubois", "Al-Farsi", "李", "O'Connor", "Trần", "Smith", "Lefèvre", "Svensson", "Novák", "Sharma", "Virtanen"}
	asciiFirst = []string{"zoe", "jose", "ann", "oyvind", "lukasz", "chloe", "mohammed", "wei", "aoife", "nguyen", "sam", "francois", "ingrid", "dvorak", "priya", "mika"}
	titles     = []string{`"Engineer, Platform"`, "Designer", `"Sales Lead, EMEA"`, "Analyst", `"Manager, Operations"`, "Intern", "Accountant", `"Director, People & Culture"`}
	depts      = []string{"Engineering", "Design", "Sales", "Finance", "Operations", "People", "Legal", "Support"}
	cities     = []string{"Zürich", "Sevilla", "København", "Kraków", "Montréal", "北京", "Dublin", "São Paulo"}
	countries  = []string{"CH", "ES", "DK", "PL", "CA", "CN", "IE", "BR"}
	statuses   = []string{"active", "active", "active", "Active", "inactive", "", "active", "terminated"}
)

// Header is the header line WriteUsers writes: 23 columns, the known ones
// and three custom ones.
const Header = "user_id,email,first_name,last_name,display_name,username,job_title,employee_type,employment_start_date," +
	"department_name,division_name,cost_center_name,manager_id,manager_email,status,work_address_street," +
	"work_address_locality,work_address_region,work_address_postal_code,work_address_country," +
	"preferred_language,badge_number,t_shirt_size\r\n"

// WriteUsers writes a valid users.csv of n users (about 300 bytes a row,
// CRLF, non-ASCII names, quoted commas), the same for the same n.
func WriteUsers(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteString(Header)
	var b []byte
	for i := 0; i < n; i++ {
		h := uint32(i) * 2654435761
		f, l := int(h>>4)%16, int(h>>8)%16
		k := int(h>>12) % 8
		b = b[:0]
		b = append(b, 'E')
		b = strconv.AppendInt(b, int64(1000000+i), 10)
		b = fmt.Appendf(b, ",%s.%d@example.com,%s,%s,%s %s,%s%d,%s,Full-time,20%02d-%02d-%02d,%s,%s Division,CC-%04d,E%d,%s.%d@example.com,%s,",
			asciiFirst[f], i, firstNames[f], lastNames[l], firstNames[f], lastNames[l], asciiFirst[f], i,
			titles[k], 10+int(h>>16)%15, 1+int(h>>20)%12, 1+int(h>>24)%28, depts[k], depts[(k+3)%8], int(h>>6)%10000,
			1000000+(i/10)*10, asciiFirst[(f+1)%16], (i/10)*10, statuses[int(h>>3)%8])
		b = fmt.Appendf(b, "\"%d %s Street, Building %d\",%s,Region %d,%05d,%s,%s,%d,%s\r\n",
			1+i%200, lastNames[(l+5)%16], i%9, cities[k], k, int(h>>10)%100000, countries[k], []string{"en", "fr", "de", "es"}[k%4], int(h>>5)%100000,
			[]string{"S", "M", "L", "XL"}[k%4])
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Measure is one timed read of the file.
type Measure struct {
	Duration   time.Duration // wall clock, the best of the rounds
	CPU        time.Duration // user+system time of the process (GC included), the best of the rounds
	Allocs     uint64        // heap allocations
	AllocBytes uint64        // bytes allocated
	PeakHeap   uint64        // largest sampled heap (live and not yet collected objects)
	Issues     int
}

// Result compares the three reads of one file.
type Result struct {
	Rows       int
	Bytes      int64
	Bare       Measure // encoding/csv with ReuseRecord, nothing else
	Validate   Measure // schema.Checker.Users with a nil callback (rosterd validate)
	ValidateFn Measure // with a callback that sees every *User (the pipeline)
}

// Run reads the users.csv at path three ways, rounds times in turn, and
// keeps the best time of each (the machine may be shared).
func Run(path string, rounds int) (Result, error) {
	var best Result
	for i := 0; i < max(rounds, 1); i++ {
		r, err := runOnce(path)
		if err != nil {
			return r, err
		}
		if i == 0 {
			best = r
			continue
		}
		best.Bare = better(best.Bare, r.Bare)
		best.Validate = better(best.Validate, r.Validate)
		best.ValidateFn = better(best.ValidateFn, r.ValidateFn)
	}
	return best, nil
}

func better(a, b Measure) Measure {
	if b.Duration < a.Duration {
		a.Duration = b.Duration
	}
	if b.CPU < a.CPU {
		a.CPU = b.CPU
	}
	a.PeakHeap = max(a.PeakHeap, b.PeakHeap)
	return a
}

func runOnce(path string) (Result, error) {
	var res Result
	st, err := os.Stat(path)
	if err != nil {
		return res, err
	}
	res.Bytes = st.Size()
	res.Bare, res.Rows, err = measure(path, func(f io.Reader) (int, int, error) {
		r := csv.NewReader(bufio.NewReaderSize(f, 64<<10))
		r.ReuseRecord = true
		r.FieldsPerRecord = -1
		rows := -1
		for {
			_, err := r.Read()
			if err == io.EOF {
				return rows, 0, nil
			}
			if err != nil {
				return rows, 0, err
			}
			rows++
		}
	})
	if err != nil {
		return res, err
	}
	check := func(withFn bool) func(io.Reader) (int, int, error) {
		return func(f io.Reader) (int, int, error) {
			c := schema.NewChecker(schema.Limits{}, nil)
			var fn func(*schema.User) error
			var sink int
			if withFn {
				fn = func(u *schema.User) error { sink += len(u.ID) + len(u.Custom); return nil }
			}
			fr, err := c.Users(f, "users.csv", fn)
			runtime.KeepAlive(sink)
			return fr.Rows, c.Errors() + c.Warnings(), err
		}
	}
	if res.Validate, _, err = measure(path, check(false)); err != nil {
		return res, err
	}
	res.ValidateFn, _, err = measure(path, check(true))
	return res, err
}

// measure runs read over the file and samples the heap while it runs.
func measure(path string, read func(io.Reader) (rows, issues int, err error)) (Measure, int, error) {
	var m Measure
	f, err := os.Open(path)
	if err != nil {
		return m, 0, err
	}
	defer f.Close()
	runtime.GC()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	start := time.Now()
	rows, issues, err := read(f)
	m.Duration = time.Since(start)
	m.CPU = cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	close(stop)
	wg.Wait()
	m.Allocs = after.Mallocs - before.Mallocs
	m.AllocBytes = after.TotalAlloc - before.TotalAlloc
	m.PeakHeap = max(peak, after.HeapAlloc)
	m.Issues = issues
	return m, rows, err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// WriteText prints the figures: rows/s, MB/s, allocations, peak heap and
// the ratio of each validation to the bare parse.
func (r Result) WriteText(w io.Writer) error {
	mb := float64(r.Bytes) / 1e6
	_, err := fmt.Fprintf(w, "users.csv: %d rows, %.1f MB, %s, GOMAXPROCS %d; best of the rounds\n", r.Rows, mb, runtime.Version(), runtime.GOMAXPROCS(0))
	for _, x := range []struct {
		name string
		m    Measure
	}{{"bare encoding/csv", r.Bare}, {"schema, nil callback", r.Validate}, {"schema, with callback", r.ValidateFn}} {
		s := x.m.Duration.Seconds()
		fmt.Fprintf(w, "  %-22s %5.2f s (cpu %5.2f s)  %8.0f rows/s  %6.1f MB/s  %4.2f allocs/row  %6.1f MB allocated  peak heap %5.1f MB  ratio %.2f (cpu %.2f)\n",
			x.name, s, x.m.CPU.Seconds(), float64(r.Rows)/s, mb/s, float64(x.m.Allocs)/float64(max(r.Rows, 1)), float64(x.m.AllocBytes)/1e6,
			float64(x.m.PeakHeap)/1e6, s/r.Bare.Duration.Seconds(), x.m.CPU.Seconds()/r.Bare.CPU.Seconds())
	}
	return err
}

// ISODateField returns where the first field of line that is a whole
// YYYY-MM-DD date starts (employment_start_date, the only date WriteUsers
// writes), or -1.
func ISODateField(line []byte) int {
	for i := 0; i+11 < len(line); i++ {
		if line[i] != ',' {
			continue
		}
		d := line[i+1:]
		if len(d) > 10 && d[4] == '-' && d[7] == '-' && (d[10] == ',' || d[10] == '\r') &&
			isDigits(d[0:4]) && isDigits(d[5:7]) && isDigits(d[8:10]) {
			return i + 1
		}
	}
	return -1
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
