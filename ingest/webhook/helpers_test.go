package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterd/rosterd/state"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func openDB(t *testing.T, path string) *state.DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "rosterd.db")
	}
	db, err := state.Open(path, &state.Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustOrg(t *testing.T, db *state.DB, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := db.CreateOrg(state.Org{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
}

var batchSeq atomic.Int64

// emit commits one batch of n events for org, applied at "at" (zero:
// now), and returns their ids.
func emit(t testing.TB, db *state.DB, org string, n int, at time.Time) []string {
	t.Helper()
	id := fmt.Sprintf("B%06d", batchSeq.Add(1))
	b := state.Batch{ID: id, Org: org, Status: state.BatchPending}
	if _, err := db.CreateBatch(b); err != nil {
		t.Fatal(err)
	}
	b.Status = state.BatchApplied
	if !at.IsZero() {
		b.FinishedAt = &at
	}
	var ids []string
	err := db.ApplyBatch(b, nil, func(a *state.ApplyTx) error {
		for i := range n {
			eid, err := a.Emit(state.EventUserCreated, fmt.Appendf(nil, `{"object":"directory_user","id":"u%d","organization_id":%q}`, i, org))
			if err != nil {
				return err
			}
			ids = append(ids, eid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// arrival is one request the receiver accepted.
type arrival struct {
	ID, Org, Type string
}

// receiver is a real HTTP receiver that verifies every signature with an
// implementation independent of the package's, and records arrivals.
// respond decides the answer to each verified request (nil: 200).
type receiver struct {
	t       testing.TB
	key     []byte
	raw     string
	workos  bool
	respond func(w http.ResponseWriter, r *http.Request, a arrival, n int) bool // true: accepted

	mu       sync.Mutex
	accepted []arrival
	attempts map[string]int
	badSig   int
	conns    atomic.Int64 // connections opened
	srv      *http.Server
	ln       net.Listener
	url      string
}

func newReceiver(t testing.TB, workos bool, respond func(http.ResponseWriter, *http.Request, arrival, int) bool) *receiver {
	rc := &receiver{t: t, raw: testSecret, workos: workos, respond: respond, attempts: map[string]int{}}
	rc.key, _ = base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecret, "whsec_"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc.url = "http://" + ln.Addr().String() + "/hook"
	rc.start(ln)
	t.Cleanup(rc.stop)
	return rc
}

func (rc *receiver) start(ln net.Listener) {
	rc.ln = ln
	rc.srv = &http.Server{Handler: rc, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			rc.conns.Add(1)
		}
	}}
	go rc.srv.Serve(ln)
}

func (rc *receiver) stop() {
	if rc.srv != nil {
		rc.srv.Close()
		rc.srv = nil
	}
}

// restart listens again on the same address.
func (rc *receiver) restart() {
	addr := strings.TrimSuffix(strings.TrimPrefix(rc.url, "http://"), "/hook")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		rc.t.Fatal(err)
	}
	rc.start(ln)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if !rc.verify(r.Header, body) {
		rc.mu.Lock()
		rc.badSig++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev struct {
		ID    string `json:"id"`
		Event string `json:"event"`
		Org   string `json:"organization_id"`
	}
	json.Unmarshal(body, &ev)
	a := arrival{ev.ID, ev.Org, ev.Event}
	rc.mu.Lock()
	rc.attempts[a.ID]++
	n := rc.attempts[a.ID]
	rc.mu.Unlock()
	ok := true
	if rc.respond != nil {
		ok = rc.respond(w, r, a, n)
	}
	if ok {
		rc.mu.Lock()
		rc.accepted = append(rc.accepted, a)
		rc.mu.Unlock()
	}
}

// verify checks webhook-id, webhook-timestamp (within 5 minutes) and
// webhook-signature, and WorkOS-Signature when expected.
func (rc *receiver) verify(h http.Header, body []byte) bool {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, rc.key)
	fmt.Fprintf(m, "%s.%s.%s", id, ts, body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	found := false
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		found = found || hmac.Equal([]byte(sig), []byte(want))
	}
	if !found {
		return false
	}
	wos := h.Get("WorkOS-Signature")
	if !rc.workos {
		return wos == ""
	}
	var t, v1 string
	for _, part := range strings.Split(wos, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t = v
		case "v1":
			v1 = v
		}
	}
	m = hmac.New(sha256.New, []byte(rc.raw))
	fmt.Fprintf(m, "%s.%s", t, body)
	return hmac.Equal([]byte(v1), []byte(hex.EncodeToString(m.Sum(nil))))
}

func (rc *receiver) got() []arrival {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]arrival(nil), rc.accepted...)
}

func (rc *receiver) tries(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts[id]
}

// ids returns the accepted event ids of org in arrival order.
func (rc *receiver) ids(org string) []string {
	var out []string
	for _, a := range rc.got() {
		if org == "" || a.Org == org {
			out = append(out, a.ID)
		}
	}
	return out
}

func (rc *receiver) endpoint(t testing.TB, orgs ...string) Endpoint {
	s, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return Endpoint{URL: rc.url, Secret: s, Organizations: orgs, WorkOS: rc.workos}
}

// run starts d.Run and returns a stop function that waits for it.
func run(t testing.TB, d *Deliverer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fast is a short retry schedule for tests.
func fast(n int, d time.Duration) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = d
	}
	return s
}
