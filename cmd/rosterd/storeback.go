package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
)

// storeCopyBack copies the PostgreSQL store at url into a new bbolt store
// in the data directory data (a rollback, SPEC §11), with the secrets
// into their files, and verifies the copy. The bbolt file is written
// aside (rosterd.db.copy), verified, and only then renamed into place, so
// that a failed copy leaves no store behind.
func storeCopyBack(ctx context.Context, out io.Writer, url, data string) error {
	path := filepath.Join(data, "rosterd.db")
	if err := emptyBolt(path, data); err != nil {
		return err
	}
	src, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer src.Close()
	secrets, err := src.Secrets()
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	files, err := secretFiles(data, secrets)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}

	tmp := path + ".copy"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store copy: %w", err)
	}
	dst, err := state.Open(tmp, &state.Options{NoSync: true})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	done := false
	defer func() {
		if !done {
			dst.Close()
			os.Remove(tmp)
		}
	}()
	var rep postgres.ImportReport
	err = dst.Import(func(w *state.Importer) error {
		var err error
		rep, err = src.Export(ctx, w)
		return err
	})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	rep.Counts["secrets"] = len(secrets)
	fmt.Fprintf(out, "copied %s into %s\n", countsLine(rep.Counts,
		"organization", "keys", "setup_links", "audit", "batches", "completions", "users", "groups", "memberships",
		"events", "endpoints", "delivery", "secrets"), path)
	if err := verifyCopy(out, src, dst, rep.Orgs, "PostgreSQL", "bbolt"); err != nil {
		return fmt.Errorf("store copy: %w: nothing was put in place; report it", err)
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	done = true
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store copy: %w", err)
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			return fmt.Errorf("store copy: %w", err)
		}
		if err := sftpd.WriteFileAtomic(f.path, f.value, f.perm); err != nil {
			return fmt.Errorf("store copy: write %s: %w", f.path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	if d, err := os.Open(data); err == nil {
		d.Sync()
		d.Close()
	}
	fmt.Fprintf(out, "wrote %d secret file(s); the bbolt store is in place: start rosterd without --store on %s\n", len(files), data)
	return nil
}

// emptyBolt returns nil when the bbolt store at path (of data) holds no
// state, or does not exist; an error saying why otherwise.
func emptyBolt(path, data string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(data, 0o700)
	} else if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	db, err := state.Open(path, nil)
	if errors.Is(err, state.ErrLocked) {
		return fmt.Errorf("store copy: another rosterd is using %s (its database is locked): stop it first", data)
	}
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	empty, err := db.Empty()
	db.Close()
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	if !empty {
		return fmt.Errorf("store copy: %s is not empty: it holds a bbolt store already (the one from before a copy to PostgreSQL?); move it away or copy into another directory", path)
	}
	return nil
}

// secretFile is a secret as a bbolt deployment keeps it.
type secretFile struct {
	path  string
	value []byte
	perm  os.FileMode
}

// secretFiles returns the files the secrets go into (see fileSecrets):
// host_key/NAME is DATA/host_keys/NAME, api_token is DATA/api_token. A
// file that exists already must hold the same bytes: it is left alone.
func secretFiles(data string, secrets map[string][]byte) ([]secretFile, error) {
	var out []secretFile
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		f := secretFile{value: secrets[name], perm: 0o600}
		var ok bool
		if f.path, ok = (fileSecrets{dir: data}).path(name); !ok {
			return nil, fmt.Errorf("the store holds a secret %q that a data directory has no file for", name)
		}
		if strings.HasPrefix(name, secretHostKey) && strings.HasSuffix(name, ".pub") {
			f.perm = 0o644
		}
		switch old, err := os.ReadFile(f.path); {
		case err == nil && bytes.Equal(old, f.value):
			continue
		case err == nil:
			return nil, fmt.Errorf("%s exists and differs from the store's: move it away, or copy into another directory", f.path)
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}
