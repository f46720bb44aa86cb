package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/rosterd/rosterd/ingest"
	"github.com/rosterd/rosterd/ingest/httpapi"
	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/sftpd"
	"github.com/rosterd/rosterd/state"
	"github.com/rosterd/rosterd/state/postgres"
)

// Both stores serve what the consumers declare they need, so that serve
// can pass either (SPEC §11: `--store postgres://…`, the bbolt file
// without it).
var (
	_ ingest.Store  = (*state.DB)(nil)
	_ ingest.Store  = (*postgres.DB)(nil)
	_ webhook.Store = (*state.DB)(nil)
	_ webhook.Store = (*postgres.DB)(nil)
	_ httpapi.Store = (*state.DB)(nil)
	_ httpapi.Store = (*postgres.DB)(nil)

	_ daemonStore = boltStore{}
	_ daemonStore = (*postgres.DB)(nil)
)

// daemonStore is what serve needs of its store beyond ingest: the API's
// and the deliverer's operations, the key check of SFTP logins, and the
// secrets every instance of a fleet shares (SPEC §11: one host key and
// one API token, whichever instance answers).
type daemonStore interface {
	ingest.Store
	httpapi.Store
	webhook.Store
	HasKey(org, fingerprint string) (bool, error)
	// LoadOrCreateSecret returns the secret kept under name, keeping the
	// value gen makes when there is none (names as `store copy` writes
	// them: host_key/FILE, api_token).
	LoadOrCreateSecret(name string, gen func() ([]byte, error)) (value []byte, created bool, err error)
	Close() error
}

// Names of the secrets, as `rosterd store copy` writes them.
const (
	secretHostKey  = "host_key/" // + the file name in DATA/host_keys
	secretAPIToken = "api_token"
)

// openStore opens the store cfg names: the bbolt file in the data
// directory, or the PostgreSQL store at cfg.Store (pg is set), as
// instance cfg.Instance of a fleet, its writes fenced by their leases
// (the pipeline's by the organizations' batch leases, the deliverer's by
// the delivery leases).
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (s daemonStore, pg *postgres.DB, err error) {
	if cfg.Store != "" {
		pg, err = postgres.Open(ctx, postgres.Config{URL: cfg.Store, Instance: cfg.Instance, Fenced: true, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		return pg, pg, nil
	}
	// Its lock keeps a second daemon from touching a data directory that
	// one already runs on.
	bolt, err := state.Open(filepath.Join(cfg.Data, "rosterd.db"), testStateOptions(os.Getenv))
	if errors.Is(err, state.ErrLocked) {
		return nil, nil, fmt.Errorf("another rosterd is using %s (its database is locked): stop it first, or give this one another --data", cfg.Data)
	}
	if err != nil {
		return nil, nil, err
	}
	return boltStore{DB: bolt, fileSecrets: fileSecrets{dir: cfg.Data}}, nil, nil
}

// boltStore is the bbolt file, with the secrets in files beside it.
type boltStore struct {
	*state.DB
	fileSecrets
}

// fileSecrets keeps a bbolt deployment's secrets in files of its data
// directory, where `store copy` reads them: host_key/NAME is
// DATA/host_keys/NAME (0600, its NAME.pub written beside it for the
// operator), api_token is DATA/api_token. An empty file counts as none.
type fileSecrets struct{ dir string }

// LoadOrCreateSecret reads the file of name, or writes the value gen
// makes into it (atomically: a crash leaves no half-written key).
func (f fileSecrets) LoadOrCreateSecret(name string, gen func() ([]byte, error)) ([]byte, bool, error) {
	path, ok := f.path(name)
	if !ok {
		return nil, false, fmt.Errorf("secret %s: not kept in the data directory", name)
	}
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return b, false, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	v, err := gen()
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	if err := sftpd.WriteFileAtomic(path, v, 0o600); err != nil {
		return nil, false, fmt.Errorf("write %s: %w", name, err)
	}
	if strings.HasPrefix(name, secretHostKey) {
		signer, err := ssh.ParsePrivateKey(v)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", name, err)
		}
		if err := sftpd.WriteFileAtomic(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
			return nil, false, fmt.Errorf("write %s.pub: %w", name, err)
		}
	}
	return v, true, nil
}

// path is the file secret name is kept in; false for a name that has
// none.
func (f fileSecrets) path(name string) (string, bool) {
	switch key, isKey := strings.CutPrefix(name, secretHostKey); {
	case isKey && key != "" && !strings.ContainsAny(key, `/\`) && key[0] != '.':
		return filepath.Join(f.dir, "host_keys", key), true
	case name == secretAPIToken:
		return filepath.Join(f.dir, fileAPIToken), true
	}
	return "", false
}

// loadHostKeys loads the SSH host keys kept in s, generating the missing
// ones (sftpd.LoadHostKeysFrom): the same ones on every instance of a
// fleet.
func loadHostKeys(s daemonStore) ([]ssh.Signer, error) {
	return sftpd.LoadHostKeysFrom(func(name string, gen func() ([]byte, error)) ([]byte, error) {
		v, _, err := s.LoadOrCreateSecret(secretHostKey+name, gen)
		return v, err
	})
}

// loadAPIToken returns the API token kept in s, creating it with 32
// random bytes on the first start.
func loadAPIToken(s daemonStore) (string, error) {
	v, _, err := s.LoadOrCreateSecret(secretAPIToken, func() ([]byte, error) {
		buf := make([]byte, 32)
		rand.Read(buf)
		return []byte(base64.RawURLEncoding.EncodeToString(buf) + "\n"), nil
	})
	if err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	tok := strings.TrimSpace(string(v))
	if tok == "" {
		return "", errors.New("API token: the store holds an empty one")
	}
	return tok, nil
}
