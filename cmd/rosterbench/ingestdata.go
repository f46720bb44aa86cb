package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/rosterd/rosterd/ingest/ingesttest"
)

// exportOpts are the flags that decide the exports.
type exportOpts struct {
	shape                   string // "real" or "bench"
	users                   int
	change, reorg, deact    float64
	ids, rowOrder, memOrder string
	seed                    uint64
}

func (o exportOpts) tag() string { return fmt.Sprintf("%+v\n", o) }

// exportFiles are the files of one shape's exports, in upload order.
func (o exportOpts) files() []string {
	if o.shape == "bench" {
		return []string{"users.csv", "user_groups.csv"}
	}
	return []string{"users.csv", "user_groups.csv", "groups.csv"}
}

// writeExports writes the exports of every phase into work/NAME (day1,
// day2, reorg, deact), unless work holds them already (export.tag).
func writeExports(work string, o exportOpts) error {
	tagFile := filepath.Join(work, "export.tag")
	if old, err := os.ReadFile(tagFile); err == nil && string(old) == o.tag() {
		return nil
	}
	os.Remove(tagFile)
	if o.shape == "bench" {
		if err := writeExport(filepath.Join(work, "day1"), o.users, 0, 0); err != nil {
			return err
		}
		if err := writeExport(filepath.Join(work, "day2"), o.users, 1, o.change); err != nil {
			return err
		}
		return os.WriteFile(tagFile, []byte(o.tag()), 0o600)
	}
	s := ingesttest.Shape{Users: o.users, Seed: o.seed}
	switch o.ids {
	case "mixed":
	case "uuid":
		s.IDs = ingesttest.UUID
	case "okta":
		s.IDs = ingesttest.Okta
	case "numeric":
		s.IDs = ingesttest.Numeric
	default:
		return fmt.Errorf("-ids %q: want mixed, uuid, okta or numeric", o.ids)
	}
	switch o.rowOrder {
	case "lastname":
	case "department":
		s.Rows = ingesttest.ByDepartment
	case "random":
		s.Rows = ingesttest.Unsorted
	default:
		return fmt.Errorf("-order %q: want lastname, department or random", o.rowOrder)
	}
	switch o.memOrder {
	case "user":
	case "group":
		s.Members = ingesttest.ByGroup
	case "random":
		s.Members = ingesttest.Shuffled
	default:
		return fmt.Errorf("-member-order %q: want user, group or random", o.memOrder)
	}
	day1 := ingesttest.New(s)
	for _, d := range []struct {
		name string
		r    *ingesttest.Roster
	}{
		{"day1", day1},
		{"day2", day1.Next(ingesttest.Workday, o.change, 1)},
		{"reorg", day1.Next(ingesttest.Reorg, o.reorg, 2)},
		{"deact", day1.Next(ingesttest.Deactivate, o.deact, 3)},
	} {
		if err := d.r.WriteDir(filepath.Join(work, d.name)); err != nil {
			return err
		}
	}
	return os.WriteFile(tagFile, []byte(o.tag()), 0o600)
}

// writeExport writes the benchmark's original export (-shape bench), the
// most favourable there is: users.csv (20 columns, ids E0000000… in key
// order) and user_groups.csv (3 groups per user, 1,120 groups of regular
// sizes) into dir. version 0 is day 1; version 1 changes a share of the
// users: a third get new attributes, a third move to another department
// group, a sixth leave and as many join.
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
