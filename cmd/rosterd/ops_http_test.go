package main

import (
	"bufio"
	"errors"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serverClosed reads from c until the server closes it and reports
// whether it did within 20 s (a read timeout is false; EOF or a reset is
// true). What the server answered before closing is returned.
func serverClosed(t *testing.T, c net.Conn) (string, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return string(got), false
	}
	return string(got), true
}

// startWithConfig starts the daemon with the config file text (plus the
// test's data directory, loopback ports and JSON log).
func startWithConfig(t *testing.T, text string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	data, cfg := filepath.Join(dir, "data"), filepath.Join(dir, "rosterd.toml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServeArgs(t, data, []string{"--config", cfg, "--data", data, "--sftp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json"}, nil)
}

// TestHTTPTimeouts runs the daemon with one-second HTTP timeouts: an idle
// keep-alive connection, a request whose headers never end and a request
// whose body stalls are each closed by the server, while a plan upload
// that trickles in for longer than the read timeout is still answered
// (plan bodies may be GiBs: they get the read timeout per read).
func TestHTTPTimeouts(t *testing.T) {
	d := startWithConfig(t, "[http]\nidle_timeout = \"1s\"\nread_header_timeout = \"1s\"\nread_timeout = \"1s\"\n")

	t.Run("idle", func(t *testing.T) {
		c, err := net.Dial("tcp", d.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: rosterd\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("GET /healthz = %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		if rest, closed := serverClosed(t, c); !closed {
			t.Errorf("idle keep-alive connection still open after 20s (idle_timeout 1s); read %q", rest)
		}
	})

	t.Run("header never ends", func(t *testing.T) {
		c, err := net.Dial("tcp", d.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: rosterd\r\n")
		if rest, closed := serverClosed(t, c); !closed {
			t.Errorf("connection with unfinished headers still open after 20s (read_header_timeout 1s); read %q", rest)
		}
	})

	t.Run("body stalls", func(t *testing.T) {
		c, err := net.Dial("tcp", d.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /v1/organizations HTTP/1.1\r\nHost: rosterd\r\nAuthorization: Bearer "+d.Token+
			"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":")
		if rest, closed := serverClosed(t, c); !closed {
			t.Errorf("connection with a stalled body still open after 20s (read_timeout 1s); read %q", rest)
		}
	})

	t.Run("slow plan", func(t *testing.T) {
		addOrg(t, d, "acme")
		if !ingestWired(t, d, "acme") {
			t.Skip("waits on the ingest pipeline")
		}
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			part, err := mw.CreateFormFile("file", "users.csv")
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			// Four pieces 700 ms apart: the body takes about 2 s to
			// arrive, twice the read timeout, and no read waits 1 s.
			for piece := range strings.SplitAfterSeq(exportUsers, "\n") {
				if piece == "" {
					continue
				}
				time.Sleep(700 * time.Millisecond)
				if _, err := io.WriteString(part, piece); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.CloseWithError(mw.Close())
		}()
		req, err := http.NewRequest("POST", "http://"+d.HTTPAddr+"/v1/organizations/acme/plan", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+d.Token)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("plan with a body slower than read_timeout: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"users": 3`) && !strings.Contains(string(body), `"users":3`) {
			t.Errorf("plan = %d %s; want 200 with 3 users", resp.StatusCode, body)
		}
	})
}

// TestHTTPConnectionCap runs the daemon with http.max_connections = 2:
// with two connections open (and silent), a third client is not served
// until one of them goes; then it is.
func TestHTTPConnectionCap(t *testing.T) {
	d := startWithConfig(t, "[http]\nmax_connections = 2\nread_header_timeout = \"2m\"\n")
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", d.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	if resp, err := client.Get("http://" + d.HTTPAddr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /healthz with max_connections = 2 already open = %d; want no answer while both are held", resp.StatusCode)
	}
	held[0].Close()
	waitFor(t, 20*time.Second, "an answer once a connection is freed", func() bool {
		resp, err := client.Get("http://" + d.HTTPAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
