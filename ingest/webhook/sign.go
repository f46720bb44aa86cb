package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// secretPrefix starts every Standard Webhooks secret.
const secretPrefix = "whsec_"

// redacted is what a Secret prints instead of itself.
const redacted = "whsec_REDACTED"

// Secret is an endpoint's signing secret, "whsec_" followed by the base64
// of 16 to 64 random bytes (Standard Webhooks). It never prints itself:
// String, GoString, LogValue, MarshalJSON and MarshalText all redact it,
// so a Secret can sit in a logged or serialised config safely. The zero
// Secret is invalid; make one with ParseSecret or GenerateSecret.
type Secret struct {
	raw string // as configured, "whsec_..."
	key []byte // the decoded HMAC key of the Standard Webhooks signature
}

// ParseSecret validates s as "whsec_" + standard base64 (padding optional)
// of 16 to 64 bytes and returns it as a Secret. The error never contains
// the secret.
func ParseSecret(s string) (Secret, error) {
	b64, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return Secret{}, fmt.Errorf("parse webhook secret: %w: must start with %q", ErrBadSecret, secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return Secret{}, fmt.Errorf("parse webhook secret: %w: the part after %q is not base64", ErrBadSecret, secretPrefix)
	}
	if len(key) < 16 || len(key) > 64 {
		return Secret{}, fmt.Errorf("parse webhook secret: %w: decodes to %d bytes, want 16 to 64", ErrBadSecret, len(key))
	}
	return Secret{raw: s, key: key}, nil
}

// GenerateSecret returns a new random 32-byte secret.
func GenerateSecret() Secret {
	key := make([]byte, 32)
	rand.Read(key)
	return Secret{raw: secretPrefix + base64.StdEncoding.EncodeToString(key), key: key}
}

// Reveal returns the secret as configured ("whsec_..."), for the one place
// that must show it (printing a freshly generated secret to the operator).
func (s Secret) Reveal() string { return s.raw }

// IsZero reports whether s is the zero (unset) Secret.
func (s Secret) IsZero() bool { return s.raw == "" }

// Equal reports whether two secrets are the same, in constant time.
func (s Secret) Equal(o Secret) bool { return hmac.Equal([]byte(s.raw), []byte(o.raw)) }

func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Sign returns the Standard Webhooks signature header value for one
// message: "v1," + base64(HMAC-SHA256(key, id + "." + unix seconds + "." +
// body)), where key is the base64-decoded part of the secret.
func Sign(s Secret, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignWorkOS returns the WorkOS-Signature header value for body:
// "t=<unix ms>, v1=<hex HMAC-SHA256(secret, t + "." + body)>". WorkOS
// verification code uses the secret string as the HMAC key, so the key
// here is the whole configured secret, "whsec_" included: an app pastes
// that string where its WorkOS code expects the webhook secret.
func SignWorkOS(s Secret, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.UnixMilli(), 10)
	m := hmac.New(sha256.New, []byte(s.raw))
	m.Write([]byte(t))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + t + ", v1=" + hex.EncodeToString(m.Sum(nil))
}

// setSignatureHeaders sets the Standard Webhooks headers (webhook-id,
// webhook-timestamp, webhook-signature) and, when workos is set, the
// WorkOS-Signature header, on a request carrying body.
func setSignatureHeaders(h http.Header, s Secret, workos bool, id string, now time.Time, body []byte) {
	h.Set("Webhook-Id", id)
	h.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("Webhook-Signature", Sign(s, id, now, body))
	if workos {
		h.Set("WorkOS-Signature", SignWorkOS(s, now, body))
	}
}
