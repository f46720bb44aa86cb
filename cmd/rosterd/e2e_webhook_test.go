package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

const e2eSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// e2eReceiver is a real webhook receiver that verifies both signature
// styles with its own code and records the accepted events in arrival
// order. failFirst makes the first attempt of the n-th distinct event
// answer 500.
type e2eReceiver struct {
	t         *testing.T
	addr      string
	failFirst int

	mu       sync.Mutex
	srv      *http.Server
	accepted []map[string]any
	attempts map[string]int
	distinct int
	bad      []string
}

func newE2EReceiver(t *testing.T) *e2eReceiver {
	r := &e2eReceiver{t: t, attempts: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *e2eReceiver) serve(ln net.Listener) {
	r.mu.Lock()
	r.srv = &http.Server{Handler: r}
	srv := r.srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

func (r *e2eReceiver) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

func (r *e2eReceiver) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("receiver back on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *e2eReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if msg := e2eVerify(req.Header, body); msg != "" {
		r.mu.Lock()
		r.bad = append(r.bad, msg)
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev map[string]any
	json.Unmarshal(body, &ev)
	id, _ := ev["id"].(string)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[id]++
	if r.attempts[id] == 1 {
		r.distinct++
		if r.distinct == r.failFirst {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
	}
	r.accepted = append(r.accepted, ev)
	w.WriteHeader(http.StatusNoContent)
}

// e2eVerify checks the Standard Webhooks and WorkOS signatures; "" when
// both are right.
func e2eVerify(h http.Header, body []byte) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(e2eSecret, "whsec_"))
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return "stale or missing webhook-timestamp " + ts
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	if h.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)) {
		return "bad webhook-signature for " + id
	}
	parts := map[string]string{}
	for _, p := range strings.Split(h.Get("WorkOS-Signature"), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		parts[k] = v
	}
	m = hmac.New(sha256.New, []byte(e2eSecret))
	m.Write([]byte(parts["t"] + "."))
	m.Write(body)
	if parts["v1"] != hex.EncodeToString(m.Sum(nil)) {
		return "bad WorkOS-Signature for " + id
	}
	return ""
}

// got returns the accepted events' ids and types, and any id accepted
// twice.
func (r *e2eReceiver) got() (ids, types, twice []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range r.accepted {
		id, _ := ev["id"].(string)
		if seen[id] {
			twice = append(twice, id)
			continue
		}
		seen[id] = true
		typ, _ := ev["event"].(string)
		ids, types = append(ids, id), append(types, typ)
	}
	return ids, types, twice
}

// feed returns the ids and types of org's events from GET /v1/events.
func (d *testDaemon) feed(org string) (ids, types []string) {
	var page struct {
		Data []struct{ ID, Event string }
	}
	if code := d.API("GET", "/v1/events?limit=1000&organization_id="+org, nil, &page); code != 200 {
		d.t.Fatalf("GET /v1/events = %d", code)
	}
	for _, e := range page.Data {
		ids, types = append(ids, e.ID), append(types, e.Event)
	}
	return ids, types
}

// TestE2EWebhooksFromSFTPUpload uploads with OpenSSH sftp and checks that
// the receiver gets exactly the feed's events, in order, each accepted
// once, signed both ways; a 500 is retried in order; the receiver is then
// down while rosterd restarts twice, and everything arrives when it is
// back.
func TestE2EWebhooksFromSFTPUpload(t *testing.T) {
	sftptest.LookPath(t, "sftp")
	rc := newE2EReceiver(t)
	rc.failFirst = 2
	cfgPath := filepath.Join(t.TempDir(), "rosterd.toml")
	schedule := strings.TrimSuffix(strings.Repeat(`"200ms", `, 100), ", ")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[delivery]
schedule = [%s]

[[webhook]]
id = "app"
url = "http://%s/hook"
secret = %q
signature = "workos"
`, schedule, rc.addr, e2eSecret)), 0o600)
	d := startDaemon(t, daemonOpts{Args: []string{"--settle", "500ms", "--config", cfgPath}})
	sshCfg := sftpOrg(t, d, "acme")
	local := t.TempDir()
	put := func(files map[string]string) {
		t.Helper()
		var script strings.Builder
		for name, content := range files {
			os.WriteFile(filepath.Join(local, name), []byte(content), 0o600)
			fmt.Fprintf(&script, "put %s\n", filepath.Join(local, name))
		}
		if out, err := sftptest.SFTP(t, sshCfg, script.String()); err != nil {
			t.Fatalf("sftp put: %v\n%s", err, out)
		}
	}
	put(map[string]string{
		"users.csv":       "user_id,email,first_name,last_name,job_title\nE1,ana@acme.test,Ana,Alvarez,Engineer\nE2,bo@acme.test,Bo,Chen,Designer\n",
		"user_groups.csv": "group_name,user_id\nEngineering,E1\nDesign,E2\n",
	})
	wantTypes := []string{
		"dsync.group.created", "dsync.group.created", "dsync.user.created", "dsync.user.created",
		"dsync.group.user_added", "dsync.group.user_added",
	}
	waitFor(t, 30*time.Second, "6 webhooks", func() bool { ids, _, _ := rc.got(); return len(ids) >= 6 })
	feedIDs, feedTypes := d.feed("acme")
	ids, types, twice := rc.got()
	if !slices.Equal(feedTypes, wantTypes) {
		t.Errorf("feed types = %v; want %v", feedTypes, wantTypes)
	}
	if !slices.Equal(ids, feedIDs) || !slices.Equal(types, feedTypes) || len(twice) > 0 {
		t.Errorf("received %v %v (twice: %v); want the feed %v %v once each", ids, types, twice, feedIDs, feedTypes)
	}
	rc.mu.Lock()
	second := rc.attempts[feedIDs[1]]
	rc.mu.Unlock()
	if second != 2 {
		t.Errorf("attempts of the second event = %d; want 2 (500, then 200)", second)
	}

	// The receiver goes down; a second upload is applied; rosterd restarts
	// twice; the receiver comes back.
	rc.down()
	put(map[string]string{"users.csv": "user_id,email,first_name,last_name,job_title\nE1,ana@acme.test,Ana,Alvarez,Staff Engineer\n"})
	waitFor(t, 30*time.Second, "the second batch's events in the feed", func() bool {
		ids, _ := d.feed("acme")
		return len(ids) > 6
	})
	d.Restart()
	d.Restart()
	feedIDs, feedTypes = d.feed("acme")
	rc.up()
	waitFor(t, 30*time.Second, "every event", func() bool { ids, _, _ := rc.got(); return len(ids) >= len(feedIDs) })
	ids, types, twice = rc.got()
	if !slices.Equal(ids, feedIDs) || !slices.Equal(types, feedTypes) || len(twice) > 0 {
		t.Errorf("received %v %v (twice: %v); want the feed %v %v once each", ids, types, twice, feedIDs, feedTypes)
	}
	for _, typ := range []string{"dsync.user.updated", "dsync.group.user_removed", "dsync.user.deleted"} {
		if !slices.Contains(feedTypes[6:], typ) {
			t.Errorf("second batch's events %v lack %s", feedTypes[6:], typ)
		}
	}
	rc.mu.Lock()
	if len(rc.bad) > 0 {
		t.Errorf("requests with bad signatures: %v", rc.bad)
	}
	rc.mu.Unlock()

	var hooks struct {
		Data []struct {
			ID        string `json:"id"`
			Enabled   bool   `json:"enabled"`
			Pending   int    `json:"pending"`
			Signature string `json:"signature"`
		} `json:"data"`
	}
	waitFor(t, 10*time.Second, "nothing pending", func() bool {
		d.API("GET", "/v1/webhooks", nil, &hooks)
		return len(hooks.Data) == 1 && hooks.Data[0].Pending == 0
	})
	if h := hooks.Data[0]; h.ID != "app" || !h.Enabled || h.Signature != "workos" {
		t.Errorf("GET /v1/webhooks = %+v", hooks.Data)
	}
	resp, err := http.Get("http://" + d.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`rosterd_webhook_deliveries_total{endpoint="app",outcome="delivered"}`, `rosterd_webhook_pending_events{endpoint="app"} 0`} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if strings.Contains(d.Logs(), "MfKQ9r8") {
		t.Errorf("the daemon's log holds the webhook secret")
	}
}
