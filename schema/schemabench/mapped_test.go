package schemabench

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/schema"
)

// mappedCopy returns users.csv as an HR system writes it: its own header
// names and dates as MM/DD/YYYY; read through mapping it holds the same
// users.
func mappedCopy(csv []byte) ([]byte, *schema.Mapping) {
	names := map[string]string{
		"user_id": "Employee ID", "email": "Work Email", "first_name": "First Name", "last_name": "Last Name",
		"department_name": "Department", "status": "Employment Status", "employment_start_date": "Hire Date",
	}
	cols := map[string]string{}
	lines := bytes.SplitAfter(csv, []byte("\n"))
	hdr := strings.Split(strings.TrimRight(string(lines[0]), "\r\n"), ",")
	for i, h := range hdr {
		if n, ok := names[h]; ok {
			hdr[i], cols[n] = n, h
		}
	}
	var out bytes.Buffer
	out.WriteString(strings.Join(hdr, ",") + "\r\n")
	for _, line := range lines[1:] {
		if j := ISODateField(line); j >= 0 {
			d := line[j:]
			us := string(d[5:7]) + "/" + string(d[8:10]) + "/" + string(d[0:4])
			line = append(append(append([]byte{}, line[:j]...), us...), line[j+10:]...)
		}
		out.Write(line)
	}
	m, err := schema.NewMapping(cols, map[string]string{"Terminated": "inactive", "On Leave": "active"}, "MM/DD/YYYY")
	if err != nil {
		panic(err)
	}
	return out.Bytes(), m
}

// BenchmarkUsersMapped reads 200,000 users as WriteUsers writes them and
// the same users under an HR system's own names and date form through a
// mapping, in turn in each iteration, with a callback that sees every
// user. Metrics: the mapped read's time and CPU time as ratios to the
// canonical read's, and the allocations per row of each.
//
//	go test -run '^$' -bench UsersMapped -benchtime 5x ./schema/schemabench
func BenchmarkUsersMapped(b *testing.B) {
	var buf bytes.Buffer
	if err := WriteUsers(&buf, 200_000); err != nil {
		b.Fatal(err)
	}
	plain := buf.Bytes()
	mapped, m := mappedCopy(plain)
	read := func(data []byte, m *schema.Mapping) (time.Duration, time.Duration, uint64) {
		runtime.GC()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		c := schema.NewChecker(schema.Limits{}, nil)
		c.SetMapping(m)
		n := 0
		cpu0, t0 := cpuTime(), time.Now()
		if _, err := c.Users(bytes.NewReader(data), "users.csv", func(u *schema.User) error { n += len(u.Known[schema.EmploymentStartDate]); return nil }); err != nil {
			b.Fatal(err)
		}
		d, cpu := time.Since(t0), cpuTime()-cpu0
		runtime.ReadMemStats(&ms1)
		if c.Errors() > 0 || n != 200_000*10 {
			b.Fatalf("%d errors, %d date bytes: %v", c.Errors(), n, c.Issues())
		}
		return d, cpu, ms1.Mallocs - ms0.Mallocs
	}
	var tp, tm, cp, cm time.Duration
	var ap, am uint64
	for b.Loop() {
		d, c, a := read(plain, nil)
		tp, cp, ap = tp+d, cp+c, ap+a
		d, c, a = read(mapped, m)
		tm, cm, am = tm+d, cm+c, am+a
	}
	b.ReportMetric(tm.Seconds()/tp.Seconds(), "mapped/plain")
	b.ReportMetric(cm.Seconds()/cp.Seconds(), "cpu-mapped/plain")
	b.ReportMetric(float64(ap)/float64(b.N)/200_000, "plain-allocs/row")
	b.ReportMetric(float64(am)/float64(b.N)/200_000, "mapped-allocs/row")
}
