// Package sftpd is rosterd's SSH/SFTP front door (SPEC §3).
//
// It owns the host keys (LoadHostKeys, Fingerprint), client key parsing
// (ParseKeys), the ssh.ServerConfig (public-key authentication only, the
// algorithm policy), the fail-and-ban limiter, the limits (upload size,
// sessions per organization, idle timeout), the refusals (shell, exec,
// forwarding, legacy scp), the audit log, and the pkg/sftp request handlers
// confined by one os.Root per organization folder.
//
// It does not know what the files mean: it signals every completed upload
// or rename target through Uploads.Notify and the consumer (the ingest
// pipeline) decides which names it processes. It knows nothing of CSV,
// bbolt or HTTP; who may log in is asked of the Keys interface.
//
// # Uploads
//
// Every upload is staged in a hidden temporary file (TempPrefix) in the
// organization folder and renamed onto its name when the client closes the
// handle; a dropped connection discards it. The staged file is made when
// the handle first changes the content: at open when it creates or
// truncates the file, else at the first write or size change (which first
// copies the stored file: resume by offset or by append). Rename and
// posix-rename both overwrite. reports/ is read-only; symlinks, hard links
// and folders cannot be created and a symlink found in a folder is never
// followed. A file with more than one hard link is never read, written,
// renamed or chmod-ed, and an organization folder that is itself a symlink
// is never served; both are refused and logged. Staging files left by a
// daemon that crashed are removed by New, before any session.
//
// Config.Storage (when set) admits uploads by disk space and quota: it is
// asked at open for writing and before each AdmitChunk bytes an upload
// writes; a refusal is an SFTP failure with its message, and an upload
// refused half-way is discarded. sftpd knows nothing of what it measures.
//
// # Completions
//
// Uploads.Notify is called for exactly two things: a handle that changed
// the file (created it, truncated it, wrote to it or changed its size)
// closed cleanly, and a rename or posix-rename onto a name. Mode and time
// changes never signal, whether by path or through a handle, and a handle
// opened for writing that changed nothing (touch over sshfs opens for
// writing, sets the times and closes) signals nothing: its mode and time
// changes apply to the stored file in place.
//
// # Order of requests
//
// Requests on one handle take effect in the order the client sent them
// (SPEC §3). pkg/sftp v1.13 runs reads and writes on concurrent workers
// and everything else on one sequential worker, so the framer holds a
// request back until the earlier ones it depends on are answered (see
// order.go): a read or write waits for overlapping writes on its handle,
// any other request on a handle for everything before it on that handle,
// and setstat, rename and remove by path for everything in flight. Writes
// to different ranges stay concurrent. Writes on a handle opened with
// SSH_FXF_APPEND go to the end of the file, in the order sent, wherever
// the client says it writes (as on OpenSSH). While pkg/sftp has no
// request in flight, the framer applies a write to an upload itself and
// queues its reply (see direct.go); replies still go out in request
// order.
//
// # Limits
//
// A session holds at most 256 handles (files and folders), the number
// announced in limits@openssh.com; one more is answered with
// SSH_FX_FAILURE "too many open handles". Handles are given back when
// they are closed or the session ends.
//
// # Connections
//
// Serve never returns on an accept error other than its listener being
// closed: running out of descriptors (EMFILE, ENFILE) is logged, counted
// (rosterd_sftp_accept_errors_total) and retried after a pause doubling
// from 5 ms to 1 s. Connections that have not authenticated are capped in
// total with early random drop (Limits.MaxStartups, OpenSSH's MaxStartups
// rule "start:rate:full") and per IP address
// (Limits.MaxStartupsPerAddress); one over a cap is closed as soon as it
// is accepted, before the banner. One that has not authenticated within
// Limits.LoginGraceTime is closed. Refusals are counted in
// rosterd_sftp_refusals_total by reason (max_startups,
// max_startups_per_address, login_grace_time) and their log lines are
// throttled to one per 10 s with a count of those held back. The caps
// bound the descriptors strangers can take: at most MaxStartups' full
// value, however many connect.
//
// # Revocation
//
// Revoke(org, keyFP) closes at once the connections of org that
// authenticated with that key (all of org's when keyFP is empty); the
// daemon calls it after removing a key or an organization. Each closure
// is logged and recorded as session.revoked, and an upload in flight is
// discarded as with any dropped connection. Revoke reaches only this
// process's connections; every authenticated connection also asks
// Keys.Authorize again every Limits.KeyRecheck (1 min by default: one call
// per open connection per minute, a bbolt read or one indexed query), so a
// key removed through another instance sharing the store closes its
// sessions within that time. Any error from that call closes the
// connection, as it would refuse a login.
//
// # Audit
//
// Each audit log line (session.start and session.end, upload,
// upload.discarded, rename, remove, refused, auth.failure) that belongs to
// an organization also goes to Config.Audit as an AuditRecord, which the
// daemon stores for the API (SPEC §3). Audit.Record is called on the SFTP
// path and must not block. A failed login is recorded under the user name
// the client gave when that is a valid organization name (the sink decides
// whether such an organization exists); refusals of an address (ban,
// failed handshake) name no organization and are only logged.
//
// # Performance
//
// Five things make pkg/sftp keep up with OpenSSH's sftp-server: the cipher
// policy (see algorithms.go: AES-GCM is offered alone to clients that
// support it, because clients pick from their own preference list),
// sftp.WithRSAllocator (packet buffers are reused, so handlers must not
// keep the slices they are given), and the framer, which answers
// limits@openssh.com so OpenSSH clients send 255 KiB writes, and reads the
// channel in 64 KiB chunks: x/crypto's channel sends a window adjustment
// after almost every Read once data is queued, and small reads made it
// several per 32 KiB write (costly for JSch and paramiko, which handle
// each SSH packet slowly); and direct writes (see direct.go), which spare
// a slow client the thread wake-ups of pkg/sftp's goroutine chain on a
// small machine. Measured figures and the command are in BENCHMARKS.md
// ("SFTP").
//
// # Caveats
//
//   - To choose the cipher, the server reads every client's KEXINIT before
//     the SSH library does, waiting up to 3 s for it after the client's
//     identification line, and offers only the fastest cipher and MAC the
//     client lists (AES-GCM, else AES-CTR with an SHA-2 ETM MAC, else
//     chacha20-poly1305). A client that waits for the server's KEXINIT
//     first (allowed, but no client tested does) waits those 3 s and then
//     gets the full lists and chooses itself.
//   - hmac-sha2-256 (non-ETM) is offered, last, for clients that know no
//     ETM MAC and no AEAD cipher: libssh2 1.10 (curl on Debian 12) and JSch
//     0.1.54. A deviation from SPEC §3.
//   - The key and signature policy of SPEC §3 is applied in the auth
//     callbacks, not by x/crypto's PublicKeyAuthAlgorithms, so that every
//     refusal is seen with the offered key. As a consequence the
//     server-sig-algs extension lists ssh-rsa and the security-key
//     algorithms too; clients use it only to choose an RSA signature and
//     prefer SHA-2.
//   - A failed attempt is every refused authentication request but the
//     opening "none": each is logged, audited and counted in the metric at
//     once. The ban list gets them when the connection ends without a
//     login; keys refused before a login on the same connection (a client
//     trying its keys in turn) never count towards a ban. A key x/crypto
//     cannot parse (DSA) is logged without a fingerprint, with its
//     algorithm.
//   - The ECDSA host key is offered only to clients that can use neither
//     the ed25519 key nor the RSA key (see hostKeysFor), so clients that
//     prefer ECDSA keep the key their users pinned.
//   - The build uses a patched x/crypto (third_party/golang.org/x/crypto,
//     see PATCHES.md there) so that paramiko, which sends a service request
//     before every attempt, can try several keys, and so that channels
//     take data packets of 64 KiB (a 32 KiB write in one packet).
//   - MaxStartupsPerAddress counts per IP address, not per network: a
//     client holding an IPv6 /64 has many addresses. The total cap still
//     bounds them all.
//   - The key re-check (Limits.KeyRecheck) closes a session on any error
//     from Keys.Authorize, a store that is briefly unreachable included.
//   - fsync@openssh.com syncs the staged file; the rename at close is not
//     followed by a directory sync.
//   - Hard links are checked when a file is opened or renamed: a link
//     made to a file while a handle on it is open is noticed at the next
//     open. Removing a hard-linked name is allowed (it is how the admin
//     gets rid of one, and leaves the other name alone).
//   - Overlapping writes on one handle are applied in the order sent, by
//     waiting; a client that sends many of them loses concurrency, not
//     data.
//   - The handle limit is fixed at 256 per session, not configurable.
package sftpd
