package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rosterd/rosterd/ingest/webhook"
	"github.com/rosterd/rosterd/state"
)

// runWebhook is `rosterbench webhook`: it delivers -events events (split
// evenly across N organizations, for each N in -orgs) from a real bbolt
// database to a local HTTP receiver that verifies every signature, and
// reports events/s, the delivery lag from the last batch applied to the
// last event received, and CPU time. Sender and receiver share this
// process, so the CPU time covers both.
func runWebhook(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	events := fs.Int("events", 100000, "events per run, split evenly across the organizations")
	orgList := fs.String("orgs", "1,2", "comma-separated organization counts, one run each")
	batch := fs.Int("batch", 5000, "events per applied batch")
	noSync := fs.Bool("nosync", false, "open bbolt without fsync (not the daemon's setting)")
	workos := fs.Bool("workos", false, "also sign and verify the WorkOS-Signature header")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var counts []int
	for _, s := range strings.Split(*orgList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-orgs %q: want positive counts like 1,2", *orgList)
		}
		counts = append(counts, n)
	}
	fmt.Fprintf(stdout, "webhook delivery: %d events per run, batches of %d, GOMAXPROCS %d, fsync %v, workos %v\n",
		*events, *batch, runtime.GOMAXPROCS(0), !*noSync, *workos)
	fmt.Fprintf(stdout, "%-5s %10s %12s %10s %10s %14s %8s\n", "orgs", "events", "events/s", "wall", "lag", "cpu/1k events", "ratio")
	var base float64
	for _, n := range counts {
		r, err := webhookRun(n, *events, *batch, *noSync, *workos)
		if err != nil {
			return err
		}
		if base == 0 {
			base = r.rate / float64(n)
		}
		fmt.Fprintf(stdout, "%-5d %10d %12.0f %10s %10s %14s %7.2fx\n", n, r.events, r.rate,
			r.wall.Round(time.Millisecond), r.lag.Round(time.Millisecond),
			(r.cpu / time.Duration(max(r.events/1000, 1))).Round(time.Microsecond), r.rate/base)
	}
	return nil
}

type webhookResult struct {
	events    int
	rate      float64
	wall, lag time.Duration
	cpu       time.Duration
}

// webhookRun runs one measurement with orgs organizations.
func webhookRun(orgs, events, batchSize int, noSync, workos bool) (webhookResult, error) {
	dir, err := os.MkdirTemp("", "rosterbench-webhook")
	if err != nil {
		return webhookResult{}, err
	}
	defer os.RemoveAll(dir)
	db, err := state.Open(filepath.Join(dir, "rosterd.db"), &state.Options{NoSync: noSync})
	if err != nil {
		return webhookResult{}, err
	}
	defer db.Close()
	names := make([]string, orgs)
	for i := range names {
		names[i] = fmt.Sprintf("org%02d", i)
		if err := db.CreateOrg(state.Org{Name: names[i]}); err != nil {
			return webhookResult{}, err
		}
	}
	secret := webhook.GenerateSecret()
	recv, err := newBenchReceiver(secret.Reveal(), workos, events)
	if err != nil {
		return webhookResult{}, err
	}
	defer recv.close()
	d, err := webhook.New(webhook.Config{DB: db, Endpoints: []webhook.Endpoint{{ID: "bench", URL: recv.url, Secret: secret, WorkOS: workos}}})
	if err != nil {
		return webhookResult{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()

	cpu0 := cpuTime()
	start := time.Now()
	// Apply the batches as ingest would, round-robin over the
	// organizations, waking delivery after each.
	per := events / orgs
	var lastApplied time.Time
	for done := 0; done < per; done += batchSize {
		n := min(batchSize, per-done)
		for _, org := range names {
			if err := benchBatch(db, org, n); err != nil {
				cancel()
				return webhookResult{}, err
			}
			lastApplied = time.Now()
			d.Wake(org)
		}
	}
	total := per * orgs
	select {
	case <-recv.done:
	case <-time.After(10 * time.Minute):
		cancel()
		return webhookResult{}, fmt.Errorf("%d of %d events received after 10 minutes", recv.count.Load(), total)
	}
	end := recv.lastAt()
	cpu := cpuTime() - cpu0
	cancel()
	if err := <-runErr; err != nil {
		return webhookResult{}, err
	}
	if err := recv.err(); err != nil {
		return webhookResult{}, err
	}
	wall := end.Sub(start)
	return webhookResult{events: total, rate: float64(total) / wall.Seconds(), wall: wall, lag: end.Sub(lastApplied), cpu: cpu}, nil
}

var benchBatchSeq atomic.Int64

// benchBatch applies one batch of n events for org.
func benchBatch(db *state.DB, org string, n int) error {
	b := state.Batch{ID: fmt.Sprintf("bench%08d", benchBatchSeq.Add(1)), Org: org, Status: state.BatchPending}
	if _, err := db.CreateBatch(b); err != nil {
		return err
	}
	b.Status = state.BatchApplied
	return db.ApplyBatch(b, nil, func(a *state.ApplyTx) error {
		for i := range n {
			data := fmt.Appendf(nil, `{"object":"directory_user","id":"E%07d","organization_id":%q,"email":"user%d@example.com","first_name":"Ada","last_name":"Lovelace","state":"active","custom_attributes":{}}`, i, org, i)
			if _, err := a.Emit(state.EventUserCreated, data); err != nil {
				return err
			}
		}
		return nil
	})
}

// benchReceiver verifies every request's Standard Webhooks signature (and
// WorkOS's when asked) with its own HMAC code, checks per-organization
// order, and closes done when it has want distinct events.
type benchReceiver struct {
	key, raw []byte
	workos   bool
	want     int64
	srv      *http.Server
	url      string
	count    atomic.Int64
	done     chan struct{}

	mu     sync.Mutex
	last   map[string]string
	seen   map[string]bool
	lastT  time.Time
	failed error
}

func newBenchReceiver(secret string, workos bool, want int) (*benchReceiver, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &benchReceiver{key: key, raw: []byte(secret), workos: workos, want: int64(want), done: make(chan struct{}),
		last: map[string]string{}, seen: map[string]bool{}}
	r.url = "http://" + ln.Addr().String() + "/hook"
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *benchReceiver) close() { r.srv.Close() }

func (r *benchReceiver) lastAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastT
}

func (r *benchReceiver) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *benchReceiver) fail(err error) {
	r.mu.Lock()
	if r.failed == nil {
		r.failed = err
	}
	r.mu.Unlock()
}

func (r *benchReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	if req.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)) {
		r.fail(errors.New("bad signature"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.workos {
		t, sig, _ := strings.Cut(strings.TrimPrefix(req.Header.Get("WorkOS-Signature"), "t="), ", v1=")
		m := hmac.New(sha256.New, r.raw)
		m.Write([]byte(t + "."))
		m.Write(body)
		if !hmac.Equal([]byte(sig), fmt.Appendf(nil, "%x", m.Sum(nil))) {
			r.fail(errors.New("bad WorkOS signature"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	var ev struct {
		ID  string `json:"id"`
		Org string `json:"organization_id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != id {
		r.fail(fmt.Errorf("body: %v", err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	dup := r.seen[ev.ID]
	if !dup {
		if ev.ID <= r.last[ev.Org] {
			r.failed = fmt.Errorf("%s: %s arrived after %s", ev.Org, ev.ID, r.last[ev.Org])
		}
		r.seen[ev.ID], r.last[ev.Org], r.lastT = true, ev.ID, time.Now()
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	if !dup && r.count.Add(1) == r.want {
		close(r.done)
	}
}

// cpuTime returns this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
