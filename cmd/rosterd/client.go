package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// errNoDaemon is returned by the client subcommands when no daemon answers
// at the address they found: exit code 2 (SPEC §2).
var errNoDaemon = errors.New("no rosterd daemon is running")

// apiError is an error answer of the HTTP API.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return e.Message }

// clientOpts are the flags every client subcommand takes.
type clientOpts struct {
	data, httpAddr, config string
}

// clientFlags registers --data, --http-addr and --config on fs.
func clientFlags(fs *flag.FlagSet) *clientOpts {
	o := &clientOpts{}
	fs.StringVar(&o.data, "data", "", "the daemon's data `DIR` ($ROSTERD_DATA; default: data in the config file, else ./rosterd-data)")
	fs.StringVar(&o.httpAddr, "http-addr", "", "the daemon's HTTP `host:port` ($ROSTERD_HTTP_ADDR; default: what the daemon wrote into the data directory)")
	fs.StringVar(&o.config, "config", "", "the daemon's config `FILE`, read for data and api_token ($ROSTERD_CONFIG)")
	return o
}

// withClient is the setup of a command that has only the client flags:
// run gets the client they name.
func withClient(run func(ctx context.Context, c *apiClient, std stdio, args []string) error) func(*flag.FlagSet) action {
	return func(fs *flag.FlagSet) action {
		opts := clientFlags(fs)
		return func(ctx context.Context, std stdio, args []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			return run(ctx, c, std, args)
		}
	}
}

// Files the daemon writes into the data directory for its clients.
const (
	fileAPIToken = "api_token"
	fileHTTPAddr = "http_addr"
	fileSFTPAddr = "sftp_addr"
)

// apiClient talks to a running daemon's HTTP API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// client finds the daemon's address and token: flag, then environment,
// then the files the daemon wrote into the data directory.
func (o *clientOpts) client() (*apiClient, error) {
	var cfg Config
	if path := first(o.config, os.Getenv("ROSTERD_CONFIG")); path != "" {
		if err := readConfigFile(path, &cfg); err != nil {
			return nil, &ExitCodeError{Code: 2, Err: err}
		}
	}
	data := first(o.data, os.Getenv("ROSTERD_DATA"), cfg.Data, "./rosterd-data")
	addr := first(o.httpAddr, os.Getenv("ROSTERD_HTTP_ADDR"))
	if addr == "" {
		b, err := os.ReadFile(filepath.Join(data, fileHTTPAddr))
		if err != nil {
			return nil, fmt.Errorf("%w (no %s in data directory %s; is the daemon running with --data %s?)", errNoDaemon, fileHTTPAddr, data, data)
		}
		addr = strings.TrimSpace(string(b))
	}
	token := first(os.Getenv("ROSTERD_API_TOKEN"), cfg.APIToken)
	if token == "" {
		b, err := os.ReadFile(filepath.Join(data, fileAPIToken))
		if err != nil {
			return nil, fmt.Errorf("read API token: %w (set ROSTERD_API_TOKEN or run as the daemon's user)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	base, hc, err := httpClient(data, addr)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: base, token: token, http: hc}, nil
}

// do sends a request and decodes a 2xx JSON answer into out (if not nil).
// It returns errNoDaemon when nothing listens and *apiError for an API
// error answer.
func (c *apiClient) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w at %s", errNoDaemon, strings.TrimPrefix(strings.TrimPrefix(c.base, "http://"), "https://"))
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error.Message == "" {
			e.Error.Message = resp.Status
		}
		return &apiError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// jsonBody encodes v for do.
func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return strings.NewReader(string(b))
}
