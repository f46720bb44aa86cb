// Package web serves rosterd's pages (SPEC §10): the setup page a setup
// link opens for an organization's admin (/setup/TOKEN) and the operator's
// console (/console/). Pages are html/template, rendered on the server;
// one stylesheet and one small script are embedded in the binary; nothing
// is loaded from anywhere else, and every step works without the script
// (it adds copy buttons, dropping files on a form and confirmations).
//
// No second path to state: every page reads and changes state by requests
// to the HTTP API's handler (Config.API), in process, as an API client
// would. The console's requests carry the API token, so it can do nothing
// the API refuses. The setup page's requests carry the link's token, which
// the API accepts only on its /v1/setup routes, for the link's
// organization: the page cannot reach another organization, and the
// API, not this package, decides which keys the admin sees and removes.
// Checking a file on either page runs the same validation as `rosterd
// validate` (schema/report.Validate, which touches no state) and the API's
// dry run.
//
// The console: sign-in with the API token or an operator's bcrypt-hashed
// password; a session cookie (HttpOnly, SameSite=Strict, Path=/console/,
// Secure when the request came over TLS or X-Forwarded-Proto says https);
// a CSRF token per session in every form, checked on every POST (the
// sign-in form uses a double-submit cookie); sessions end at sign-out or
// after Config.SessionTTL; an address that fails to sign in 10 times in
// 10 minutes is refused for a while (limiter.go). The setup page has no cookie: its address holds
// the token, so no other site can make a browser act on it without the
// token, and every response says Referrer-Policy: no-referrer so that the
// address is not sent on.
//
// Caveats: sessions live in memory, so a restart signs everyone out and
// several instances do not share them. The overview asks the API for each
// organization's summary, one request each, fifty organizations a page.
// Searching users by email reads the organization's users (the snapshot
// has no email index). The remote address in the audit trail is the
// connection's: behind a reverse proxy, the proxy's.
//
// Only cmd/rosterd imports this package.
package web
