// Command webhook-receiver is a small receiver for rosterd's webhooks: it
// verifies every request's signature (Standard Webhooks, or WorkOS's
// header), refuses stale timestamps, drops repeated event ids, and prints
// or appends each event as one JSON line. It uses only the standard
// library, so it can be copied into an app as a starting point.
//
//	webhook-receiver -addr 127.0.0.1:9000 -secret whsec_... [-verify standard|workos|both] [-out events.jsonl]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on")
	secret := flag.String("secret", os.Getenv("WEBHOOK_SECRET"), "the endpoint's secret, whsec_... (default $WEBHOOK_SECRET)")
	verify := flag.String("verify", "standard", "which signature to check: standard, workos or both")
	out := flag.String("out", "", "append events to this file as JSON lines (default: print to stdout)")
	tolerance := flag.Duration("tolerance", 5*time.Minute, "reject timestamps further than this from now")
	flag.Parse()

	v, err := NewVerifier(*secret, *verify, *tolerance)
	if err != nil {
		log.Fatal(err)
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		// Ids already stored are repeats after a restart too.
		if err := v.LoadSeen(f); err != nil {
			log.Fatal(err)
		}
		w = f
	}
	srv := &http.Server{Addr: *addr, Handler: &Receiver{Verifier: v, Out: w}, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("listening on http://%s/ (verify %s)", *addr, *verify)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// Verifier checks signatures and remembers the ids it accepted.
type Verifier struct {
	raw       string // the secret as configured, the WorkOS HMAC key
	key       []byte // its base64-decoded part, the Standard Webhooks HMAC key
	standard  bool
	workos    bool
	tolerance time.Duration
	now       func() time.Time

	mu   sync.Mutex
	seen map[string]bool
}

// NewVerifier returns a Verifier for secret ("whsec_" + base64) checking
// the given style: "standard", "workos" or "both".
func NewVerifier(secret, style string, tolerance time.Duration) (*Verifier, error) {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("the secret must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if key, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			return nil, errors.New("the secret after whsec_ is not base64")
		}
	}
	v := &Verifier{raw: secret, key: key, tolerance: tolerance, now: time.Now, seen: map[string]bool{}}
	switch style {
	case "standard":
		v.standard = true
	case "workos":
		v.workos = true
	case "both":
		v.standard, v.workos = true, true
	default:
		return nil, fmt.Errorf("-verify %q: want standard, workos or both", style)
	}
	return v, nil
}

// Verify checks the request's signature headers against body.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	if v.standard {
		if err := v.verifyStandard(h, body); err != nil {
			return err
		}
	}
	if v.workos {
		if err := v.verifyWorkOS(h, body); err != nil {
			return err
		}
	}
	return nil
}

// verifyStandard checks webhook-signature: "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>", one or more separated by spaces (key rotation).
func (v *Verifier) verifyStandard(h http.Header, body []byte) error {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad webhook-timestamp")
	}
	if err := v.fresh(time.Unix(sec, 0)); err != nil {
		return err
	}
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if ver, s, ok := strings.Cut(sig, ","); ok && ver == "v1" && hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("no valid webhook-signature")
}

// verifyWorkOS checks WorkOS-Signature: "t=<ms>, v1=<hex HMAC-SHA256 of
// t.body>", keyed with the secret string as WorkOS SDKs do.
func (v *Verifier) verifyWorkOS(h http.Header, body []byte) error {
	var t, sig string
	for _, part := range strings.Split(h.Get("WorkOS-Signature"), ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t = val
		case "v1":
			sig = val
		}
	}
	ms, err := strconv.ParseInt(t, 10, 64)
	if err != nil || sig == "" {
		return errors.New("missing or bad WorkOS-Signature")
	}
	if err := v.fresh(time.UnixMilli(ms)); err != nil {
		return err
	}
	m := hmac.New(sha256.New, []byte(v.raw))
	m.Write([]byte(t + "."))
	m.Write(body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(m.Sum(nil)))) {
		return errors.New("WorkOS-Signature does not match")
	}
	return nil
}

// errStale marks a timestamp outside the tolerance (a replayed request).
var errStale = errors.New("timestamp too old or too far in the future")

func (v *Verifier) fresh(t time.Time) error {
	if d := v.now().Sub(t); d > v.tolerance || d < -v.tolerance {
		return errStale
	}
	return nil
}

// FirstTime records id and reports whether it is new.
func (v *Verifier) FirstTime(id string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen[id] {
		return false
	}
	v.seen[id] = true
	return true
}

// LoadSeen reads stored JSON lines and remembers their ids.
func (v *Verifier) LoadSeen(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.ID != "" {
			v.seen[e.ID] = true
		}
	}
	return sc.Err()
}

// Receiver is the HTTP handler: 204 for an event it stored (or had
// already stored: rosterd then stops retrying it), 400 for a stale or
// malformed request, 401 for a bad signature.
type Receiver struct {
	Verifier *Verifier
	Out      io.Writer
	mu       sync.Mutex
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := rc.Verifier.Verify(r.Header, body); err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, errStale) {
			status = http.StatusBadRequest
		}
		log.Printf("rejected: %v", err)
		http.Error(w, err.Error(), status)
		return
	}
	var e struct {
		ID    string `json:"id"`
		Event string `json:"event"`
		Org   string `json:"organization_id"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.ID == "" {
		http.Error(w, "body is not an event", http.StatusBadRequest)
		return
	}
	if !rc.Verifier.FirstTime(e.ID) {
		log.Printf("repeat of %s dropped", e.ID)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var line bytes.Buffer
	if err := json.Compact(&line, body); err != nil {
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	line.WriteByte('\n')
	rc.mu.Lock()
	_, err = rc.Out.Write(line.Bytes())
	rc.mu.Unlock()
	if err != nil {
		// Not stored: answer 500 so that rosterd sends it again.
		rc.Verifier.mu.Lock()
		delete(rc.Verifier.seen, e.ID)
		rc.Verifier.mu.Unlock()
		http.Error(w, "could not store the event", http.StatusInternalServerError)
		return
	}
	log.Printf("%s %s %s", e.Org, e.Event, e.ID)
	w.WriteHeader(http.StatusNoContent)
}
