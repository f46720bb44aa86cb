package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rosterd/rosterd/ingest/webhook"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// request builds a request signed by rosterd's own signer.
func request(t *testing.T, id string, ts time.Time, body string, workos bool) *http.Request {
	s, err := webhook.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	r.Header.Set("webhook-id", id)
	r.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set("webhook-signature", webhook.Sign(s, id, ts, []byte(body)))
	if workos {
		r.Header.Set("WorkOS-Signature", webhook.SignWorkOS(s, ts, []byte(body)))
	}
	return r
}

func TestReceiver(t *testing.T) {
	for _, style := range []string{"standard", "workos", "both"} {
		t.Run(style, func(t *testing.T) {
			v, err := NewVerifier(secret, style, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			rc := &Receiver{Verifier: v, Out: &out}
			now := time.Now()
			body := `{"id": "evt_1", "event": "dsync.user.created", "organization_id": "acme", "data": {}}`
			serve := func(r *http.Request) int {
				w := httptest.NewRecorder()
				rc.ServeHTTP(w, r)
				return w.Code
			}
			if c := serve(request(t, "evt_1", now, body, true)); c != http.StatusNoContent {
				t.Errorf("valid request = %d; want 204", c)
			}
			if c := serve(request(t, "evt_1", now, body, true)); c != http.StatusNoContent {
				t.Errorf("repeat = %d; want 204", c)
			}
			if got := strings.Count(out.String(), "\n"); got != 1 || !strings.Contains(out.String(), `"id":"evt_1"`) {
				t.Errorf("stored %q; want the event once", out.String())
			}
			if c := serve(request(t, "evt_2", now.Add(-10*time.Minute), strings.Replace(body, "evt_1", "evt_2", 1), true)); c != http.StatusBadRequest {
				t.Errorf("stale = %d; want 400", c)
			}
			r := request(t, "evt_3", now, strings.Replace(body, "evt_1", "evt_3", 1), true)
			r.Body = http.NoBody
			r2 := request(t, "evt_3", now, `{"id":"evt_3","tampered":true}`, false)
			r2.Header = r.Header
			if c := serve(r2); c != http.StatusUnauthorized {
				t.Errorf("tampered body = %d; want 401", c)
			}
			if style != "standard" {
				if c := serve(request(t, "evt_4", now, strings.Replace(body, "evt_1", "evt_4", 1), false)); c != http.StatusUnauthorized {
					t.Errorf("no WorkOS header = %d; want 401", c)
				}
			}
		})
	}
	if _, err := NewVerifier("nope", "standard", time.Minute); err == nil {
		t.Error("NewVerifier(no prefix) = nil error")
	}
}

func TestLoadSeen(t *testing.T) {
	v, _ := NewVerifier(secret, "standard", time.Minute)
	if err := v.LoadSeen(strings.NewReader("{\"id\":\"evt_9\"}\nnot json\n")); err != nil {
		t.Fatal(err)
	}
	if v.FirstTime("evt_9") || !v.FirstTime("evt_10") {
		t.Error("LoadSeen did not remember evt_9")
	}
}
