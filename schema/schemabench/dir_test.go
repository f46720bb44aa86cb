package schemabench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rosterd/rosterd/schema"
)

// BenchmarkDir checks the users.csv and user_groups.csv of the folder
// named by SCHEMABENCH_DIR (for example the day2 folder of a rosterbench
// ingest work folder) in each iteration, with callbacks that copy each
// User into a batch as ingest does. It is skipped without the variable.
//
//	SCHEMABENCH_DIR=/path/day2 go test -run '^$' -bench Dir -benchtime 3x -cpuprofile cpu.pprof ./schema/schemabench
func BenchmarkDir(b *testing.B) {
	dir := os.Getenv("SCHEMABENCH_DIR")
	if dir == "" {
		b.Skip("SCHEMABENCH_DIR is not set")
	}
	batch := make([]schema.User, 0, 256)
	for b.Loop() {
		c := schema.NewChecker(schema.Limits{}, nil)
		f, err := os.Open(filepath.Join(dir, "users.csv"))
		if err != nil {
			b.Fatal(err)
		}
		_, err = c.Users(f, "users.csv", func(u *schema.User) error {
			if batch = append(batch, *u); len(batch) == cap(batch) {
				batch = batch[:0]
			}
			return nil
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if f, err = os.Open(filepath.Join(dir, "user_groups.csv")); err != nil {
			b.Fatal(err)
		}
		n := 0
		_, err = c.UserGroups(f, "user_groups.csv", func(m *schema.Membership) error { n += len(m.UserID); return nil })
		f.Close()
		if err != nil || c.Errors() != 0 || n == 0 {
			b.Fatalf("err %v, %d errors, %d bytes of user_ids", err, c.Errors(), n)
		}
	}
}
