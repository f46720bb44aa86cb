package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rosterd/rosterd/schema/schemabench"
)

// runCSV is `rosterbench csv [--rows N] [--file PATH] [--keep] [--rounds R]`: it writes
// a users.csv of N users (default 1,000,000, 23 columns, non-ASCII names,
// quoted commas) into a temporary directory, or uses PATH, then reads it
// with a bare encoding/csv loop and with the schema checker and prints
// rows/s, MB/s, allocations, peak heap and the ratios.
func runCSV(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("csv", flag.ContinueOnError)
	rows := fs.Int("rows", 1_000_000, "users to generate")
	file := fs.String("file", "", "measure this users.csv instead of generating one")
	keep := fs.Bool("keep", false, "keep the generated file and print its path")
	rounds := fs.Int("rounds", 3, "measure each read this many times and keep the best")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	path := *file
	if path == "" {
		dir, err := os.MkdirTemp("", "rosterbench-csv-")
		if err != nil {
			return fmt.Errorf("csv: %w", err)
		}
		if !*keep {
			defer os.RemoveAll(dir)
		}
		path = filepath.Join(dir, "users.csv")
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("csv: %w", err)
		}
		err = schemabench.WriteUsers(f, *rows)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("csv: write %s: %w", path, err)
		}
		if *keep {
			fmt.Fprintf(stdout, "generated %s\n", path)
		}
	}
	res, err := schemabench.Run(path, *rounds)
	if err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	return res.WriteText(stdout)
}
