package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSignStandardWebhooksVector checks the example published with the
// Standard Webhooks specification.
func TestSignStandardWebhooksVector(t *testing.T) {
	s, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(s, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got != want {
		t.Errorf("Sign(spec example) = %q; want %q", got, want)
	}
}

// TestSignWorkOS checks the WorkOS-Signature header against the
// computation WorkOS's SDKs do: hex HMAC-SHA256 keyed with the secret
// string over "<t>.<body>", t in milliseconds.
func TestSignWorkOS(t *testing.T) {
	const raw = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	s, _ := ParseSecret(raw)
	body := []byte(`{"id":"evt_1","event":"dsync.user.created"}`)
	ts := time.UnixMilli(1614265330123)
	got := SignWorkOS(s, ts, body)
	m := hmac.New(sha256.New, []byte(raw))
	m.Write([]byte("1614265330123." + string(body)))
	want := "t=1614265330123, v1=" + hex.EncodeToString(m.Sum(nil))
	if got != want {
		t.Errorf("SignWorkOS = %q; want %q", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true},
		{"whsec_" + strings.Repeat("A", 43) + "=", true}, // 32 bytes, padded
		{"whsec_" + strings.Repeat("A", 43), true},       // 32 bytes, unpadded
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false},      // no prefix
		{"whsec_", false},
		{"whsec_not base64!!", false},
		{"whsec_AAAA", false}, // 3 bytes
		{"whsec_" + strings.Repeat("A", 100), false},
	} {
		_, err := ParseSecret(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSecret(%q) = %v; want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrBadSecret) {
				t.Errorf("ParseSecret(%q) = %v; want ErrBadSecret", tc.in, err)
			}
			if len(tc.in) > 10 && strings.Contains(err.Error(), tc.in[6:]) {
				t.Errorf("ParseSecret(%q) error %q repeats the secret", tc.in, err)
			}
		}
	}
}

// TestSecretRedacts is the "never log a webhook secret" regression test.
func TestSecretRedacts(t *testing.T) {
	const raw = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	s, _ := ParseSecret(raw)
	ep := Endpoint{ID: "wh_1", URL: "http://x", Secret: s}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", s, "endpoint", ep)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s, "endpoint", ep)
	j, _ := json.Marshal(ep)
	buf.Write(j)
	fmt.Fprintf(&buf, "%v %+v %#v %s %q", s, ep, ep, s, s)
	if strings.Contains(buf.String(), "MfKQ9r8") {
		t.Errorf("secret leaked: %s", buf.String())
	}
	if s.Reveal() != raw {
		t.Errorf("Reveal() = %q; want %q", s.Reveal(), raw)
	}
	g := GenerateSecret()
	if _, err := ParseSecret(g.Reveal()); err != nil {
		t.Errorf("ParseSecret(GenerateSecret()) = %v", err)
	}
}

func FuzzParseSecret(f *testing.F) {
	f.Add("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Add("whsec_")
	f.Add("whsec_====")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSecret(in)
		if err != nil {
			return
		}
		if s.Reveal() != in || len(s.key) < 16 || len(s.key) > 64 {
			t.Errorf("ParseSecret(%q) = key of %d bytes", in, len(s.key))
		}
	})
}

// FuzzParseRetryAfter: a receiver's Retry-After never yields a negative
// delay or one beyond the cap.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "5", "-1", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := parseRetryAfter(v, now); d < 0 || d > maxRetryAfter {
			t.Errorf("parseRetryAfter(%q) = %v; want within [0, %v]", v, d, maxRetryAfter)
		}
	})
}
