package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter caps a receiver's Retry-After, the longest delay of the
// SPEC §7 schedule.
const maxRetryAfter = 24 * time.Hour

// newClient returns the client every delivery uses: keep-alive
// connections kept per host, redirects not followed (SPEC §7), and the
// whole exchange bounded by timeout.
func newClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// result is the outcome of one attempt.
type result struct {
	status     int           // 0 when no response arrived
	retryAfter time.Duration // from Retry-After, 0 when absent
	err        error         // transport error, or a description of a non-2xx answer
}

func (r result) ok() bool   { return r.err == nil && r.status >= 200 && r.status < 300 }
func (r result) gone() bool { return r.status == http.StatusGone }

// send makes one signed POST of body to ep.
func (d *Deliverer) send(ctx context.Context, ep *Endpoint, id string, body []byte) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rosterd-webhook/1")
	setSignatureHeaders(req.Header, ep.Secret, ep.WorkOS, id, d.now(), body)
	resp, err := d.opt().client.Do(req)
	if err != nil {
		return result{err: scrubURL(err)}
	}
	// Drain a little so the connection can be reused; a receiver that
	// answers with a large body loses its keep-alive, nothing else.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	r := result{status: resp.StatusCode}
	if !r.ok() {
		r.err = fmt.Errorf("receiver answered %s", resp.Status)
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), d.now())
	}
	return r
}

// scrubURL drops the URL from a client error (*url.Error), which may carry
// credentials in its user info or query; the endpoint id is logged beside
// it instead.
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP
// date, capped at maxRetryAfter; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	return min(max(d, 0), maxRetryAfter)
}

// jitter spreads d by ±20 % so that endpoints failing together do not
// retry together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
