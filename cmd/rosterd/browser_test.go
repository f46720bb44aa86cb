package main

// Helpers for the browser tests (e2e_console_test.go): a real headless
// Chromium (Debian's chromium) driven with chromedp against the real
// daemon, and screenshots kept as test artifacts.

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/rosterd/rosterd/sftpd/sftptest"
)

// browserTimeout bounds one browser step (a navigation, a form).
const browserTimeout = 60 * time.Second

var (
	artifactsOnce sync.Once
	artifactsDir  string
)

// artifacts returns the folder screenshots go to: $ROSTERD_ARTIFACTS (CI
// keeps it), or a temporary folder named in the test log.
func artifacts(t *testing.T) string {
	artifactsOnce.Do(func() {
		artifactsDir = os.Getenv("ROSTERD_ARTIFACTS")
		if artifactsDir == "" {
			artifactsDir, _ = os.MkdirTemp("", "rosterd-artifacts")
		}
		os.MkdirAll(artifactsDir, 0o755)
	})
	return artifactsDir
}

// browser is one tab of a headless Chromium. Its own browser context
// holds its cookies, apart from other tabs'.
type browser struct {
	t   *testing.T
	ctx context.Context
}

// newBrowser starts Chromium for the test (skipped when it is missing,
// failed under CI=true) with the flags this machine needs: no sandbox (as
// root), no GPU, and no traffic of its own to the outside.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := sftptest.LookPath(t, "chromium")
	profile, err := os.MkdirTemp("", "rosterd-chromium")
	if err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1100, 900))
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(profile)
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx}
	b.acceptDialogs()
	return b
}

// tab opens a new tab with a browser context of its own: no cookies of
// the other tabs (another person at another computer).
func (b *browser) tab() *browser {
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("new tab: %v", err)
	}
	nb := &browser{t: b.t, ctx: ctx}
	nb.acceptDialogs()
	return nb
}

// acceptDialogs answers OK to the confirmations the page's script asks.
func (b *browser) acceptDialogs() {
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	ctx := b.ctx
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
}

func (b *browser) step(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// open loads u and returns the HTTP status of the page.
func (b *browser) open(u string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err == nil && resp == nil {
		// A navigation within the document (the same URL with a
		// fragment, as when polling a page's section) loads nothing:
		// reload it, so the page is read anew.
		resp, err = chromedp.RunResponse(ctx, chromedp.Reload())
	}
	if err != nil {
		b.t.Fatalf("browser: open %s: %v", u, err)
	}
	if resp == nil {
		b.t.Fatalf("browser: open %s: no response", u)
	}
	return resp.Status
}

// submit clicks sel (a form's button) and waits for the page it leads to;
// it returns that page's status.
func (b *browser) submit(sel string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: submit %s: %v", sel, err)
	}
	return resp.Status
}

// fill puts v into the field sel, replacing what it held.
func (b *browser) fill(sel, v string) {
	b.t.Helper()
	b.step("fill "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
}

// text returns the visible text of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return s
}

// page returns the page's text as a reader sees it.
func (b *browser) page() string {
	return b.text("body")
}

// location returns the address of the page shown.
func (b *browser) location() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

var artifactName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// shot saves a screenshot of the whole page as ARTIFACTS/TEST-name.png
// and returns its path.
func (b *browser) shot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifacts(b.t), artifactName.ReplaceAllString(b.t.Name()+"-"+name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// readmeImage writes what the tab shows (the window, not the whole page)
// as DIR/name.png when $ROSTERD_README_IMAGES names DIR: the README's
// pictures are made by `ROSTERD_README_IMAGES=$PWD/docs/images go test
// ./cmd/rosterd -run TestBrowserOnboarding`.
func (b *browser) readmeImage(name string) {
	b.t.Helper()
	dir := os.Getenv("ROSTERD_README_IMAGES")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn signs the tab in to the console of d with the API token.
func (b *browser) signIn(d *testDaemon) {
	b.t.Helper()
	b.open("http://" + d.HTTPAddr + "/console/")
	if !strings.Contains(b.location(), "/console/signin") {
		b.t.Fatalf("signed out, /console/ went to %s; want the sign-in page", b.location())
	}
	b.fill("#secret", d.Token)
	if st := b.submit("form button[type=submit]"); st != http.StatusOK {
		b.t.Fatalf("sign in: status %d", st)
	}
	if !strings.HasSuffix(b.location(), "/console/") {
		b.t.Fatalf("after sign-in the browser is at %s; want /console/", b.location())
	}
}

// consoleClient signs a plain HTTP client in to the console and returns it
// with the session's CSRF token.
func consoleClient(t *testing.T, d *testDaemon) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + d.HTTPAddr
	page := getPage(t, c, base+"/console/signin")
	resp, err := c.PostForm(base+"/console/signin", url.Values{"csrf": {csrfIn(t, page)}, "secret": {d.Token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	return c, csrfIn(t, getPage(t, c, base+"/console/"))
}

func getPage(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfIn(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in:\n%s", page)
	}
	return m[1]
}
