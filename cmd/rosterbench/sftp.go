package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rosterd/rosterd/sftpd"
	"golang.org/x/crypto/ssh"
)

// The sftp mode uploads the same files to rosterd's sftpd, in process, and
// to OpenSSH's own sshd with internal-sftp and a chroot, started from its
// own config on a loopback port, with several clients as customers' export
// jobs run them (stock settings, no cipher option): the OpenSSH sftp
// client, Go's pkg/sftp, paramiko, JSch and PuTTY's psftp (see
// sftpclients.go). Runs are interleaved (every client in every round; the
// order of the two servers alternates per round) and each client and
// workload reports the median throughput against both servers and the
// ratio rosterd / OpenSSH: above 1.0 rosterd is faster. The 1-minute load
// average is printed with every round: the figures mean little while
// other work runs. -sshd-option adds lines to sshd's config, to compare
// with an sshd held to rosterd's algorithm policy (an option the config
// sets already keeps its first value: sshd takes the first).

type sftpBench struct {
	dir        string
	keyPath    string // ed25519 client key, OpenSSH format
	pemKeyPath string // ECDSA client key, PEM (for JSch 0.1.x)
	rosterd    target
	openssh    target
	sshdPid    int
	large      string   // local path of the large file
	small      []string // local paths of the small files
	hostKeyFPs []string // SHA256 fingerprints of the host keys both servers use
	sshdOpts   []string // extra sshd_config lines (-sshd-option)
	cipherMu   sync.Mutex
	ciphers    map[string]bool // what rosterd negotiated
}

type target struct {
	name   string
	addr   string // host:port
	user   string
	config string // ssh_config path, for the OpenSSH client
	remote string // remote folder prefix
	clean  string // local folder the uploads land in
}

type workload struct {
	name  string
	bytes int64
	files []string
}

func runSFTP(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rosterbench sftp", flag.ContinueOnError)
	largeMiB := fs.Int("large-mib", 1024, "size of the large file in MiB")
	smallN := fs.Int("small", 200, "number of 64 KiB files in the small workload")
	manyN := fs.Int("many", 1000, "number of 64 KiB files in the many workload")
	rounds := fs.Int("rounds", 5, "rounds per workload")
	only := fs.String("only", "large,small,many", "comma-separated workloads to run")
	clientList := fs.String("clients", "openssh", "comma-separated clients: openssh, go, paramiko, jsch, psftp (only openssh runs the small and many workloads)")
	var sshdOpts stringList
	fs.Var(&sshdOpts, "sshd-option", "an extra sshd_config line for OpenSSH's sshd, such as \"MACs hmac-sha2-256\" (repeatable)")
	sshd := fs.String("sshd", "/usr/sbin/sshd", "OpenSSH sshd binary")
	keep := fs.Bool("keep", false, "keep the work folder")
	base := fs.String("dir", "/run", "folder for the work folder; every component must be root-owned and not group or world writable (sshd's ChrootDirectory rule)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the process (rosterd's side) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var clients []sftpClient
	for _, name := range strings.Split(*clientList, ",") {
		c, err := clientByName(name)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp(*base, "rosterbench-sftp-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	b := &sftpBench{dir: dir, ciphers: map[string]bool{}, sshdOpts: sshdOpts}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	fmt.Fprintf(stdout, "preparing files in %s\n", dir)
	if err := b.prepareFiles(int64(*largeMiB)<<20, max(*smallN, *manyN)); err != nil {
		return err
	}
	keys, err := b.clientKeys()
	if err != nil {
		return err
	}
	stopRosterd, err := b.startRosterd(keys)
	if err != nil {
		return fmt.Errorf("rosterd sftpd: %w", err)
	}
	defer stopRosterd()
	stopSSHD, err := b.startSSHD(ctx, *sshd, keys)
	if err != nil {
		return fmt.Errorf("openssh sshd: %w", err)
	}
	defer stopSSHD()

	var workloads []workload
	for _, w := range strings.Split(*only, ",") {
		switch w {
		case "large":
			workloads = append(workloads, workload{fmt.Sprintf("1 file of %d MiB", *largeMiB), int64(*largeMiB) << 20, []string{b.large}})
		case "small":
			workloads = append(workloads, workload{fmt.Sprintf("%d files of 64 KiB", *smallN), int64(*smallN) << 16, b.small[:*smallN]})
		case "many":
			workloads = append(workloads, workload{fmt.Sprintf("%d files of 64 KiB", *manyN), int64(*manyN) << 16, b.small[:*manyN]})
		default:
			return fmt.Errorf("unknown workload %q", w)
		}
	}

	fmt.Fprintf(stdout, "rosterd sftpd vs OpenSSH sshd internal-sftp + chroot; %d rounds, every client each round, server order alternating\n", *rounds)
	var summary []string
	for _, w := range workloads {
		var cs []sftpClient
		for _, c := range clients {
			if _, ok := c.(opensshClient); ok || len(w.files) == 1 {
				cs = append(cs, c)
			}
		}
		type result struct{ tr, to, ratios, load, cr, co []float64 }
		res := make([]result, len(cs))
		fmt.Fprintf(stdout, "\n%s\n", w.name)
		for r := range *rounds {
			for i, c := range cs {
				pair := []target{b.rosterd, b.openssh}
				if (r+i)%2 == 1 {
					pair = []target{b.openssh, b.rosterd}
				}
				load := loadAvg()
				times, cpus := map[string]float64{}, map[string]float64{}
				for _, t := range pair {
					d, cpu, err := b.upload(c, t, w.files)
					if err != nil {
						return fmt.Errorf("%s, %s to %s: %w", w.name, c.name(), t.name, err)
					}
					times[t.name], cpus[t.name] = d.Seconds(), cpu.Seconds()
				}
				ratio := times["openssh"] / times["rosterd"]
				x := &res[i]
				x.tr, x.to, x.ratios, x.load = append(x.tr, times["rosterd"]), append(x.to, times["openssh"]), append(x.ratios, ratio), append(x.load, load)
				x.cr, x.co = append(x.cr, cpus["rosterd"]), append(x.co, cpus["openssh"])
				fmt.Fprintf(stdout, "  round %d %-13s rosterd %7.3fs (%7.1f MB/s, cpu %5.2fs)  openssh %7.3fs (%7.1f MB/s, cpu %5.2fs)  ratio %.2fx  load %.2f\n",
					r+1, c.name(), times["rosterd"], mbps(w.bytes, times["rosterd"]), cpus["rosterd"], times["openssh"], mbps(w.bytes, times["openssh"]), cpus["openssh"], ratio, load)
			}
		}
		for i, c := range cs {
			x := res[i]
			mr, mo := median(x.tr), median(x.to)
			line := fmt.Sprintf("%-17s %-13s rosterd %7.1f MB/s  openssh %7.1f MB/s  ratio %.2fx (rounds %.2f–%.2fx)  server cpu %.2fs / %.2fs  load %.2f–%.2f",
				w.name, c.name(), mbps(w.bytes, mr), mbps(w.bytes, mo), median(x.ratios), slices.Min(x.ratios), slices.Max(x.ratios), median(x.cr), median(x.co), slices.Min(x.load), slices.Max(x.load))
			summary = append(summary, line)
		}
	}
	fmt.Fprintf(stdout, "\nmedians (ratio: median of the per-round ratios rosterd / OpenSSH throughput, above 1 = rosterd faster; server cpu: rosterd / sshd):\n")
	for _, line := range summary {
		fmt.Fprintf(stdout, "  %s\n", line)
	}
	b.cipherMu.Lock()
	var cs []string
	for c := range b.ciphers {
		cs = append(cs, c)
	}
	b.cipherMu.Unlock()
	slices.Sort(cs)
	fmt.Fprintf(stdout, "rosterd negotiated: %s\n", strings.Join(cs, ", "))
	return nil
}

func mbps(n int64, s float64) float64 { return float64(n) / s / 1e6 }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// upload uploads files to t with client c (a client other than OpenSSH's
// takes one file) and removes what it uploaded afterwards. It returns the
// time the upload took and the CPU time the server used for it.
func (b *sftpBench) upload(c sftpClient, t target, files []string) (d, cpu time.Duration, err error) {
	cpu0 := b.serverCPU(t)
	defer func() { cpu = b.serverCPU(t) - cpu0 }()
	if o, ok := c.(opensshClient); ok {
		var batch strings.Builder
		for _, f := range files {
			fmt.Fprintf(&batch, "put %s %s%s\n", f, t.remote, filepath.Base(f))
		}
		d, err = o.batch(t, batch.String())
	} else {
		d, err = c.upload(b, t, files[0])
	}
	if err != nil {
		return 0, 0, err
	}
	ents, err := os.ReadDir(t.clean)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		if !e.IsDir() {
			os.Remove(filepath.Join(t.clean, e.Name()))
		}
	}
	return d, 0, nil
}

// serverCPU returns the CPU time t's server has used so far: for rosterd,
// this process's (the clients run in processes of their own); for sshd,
// its listener's and that of the sessions it has reaped, once they all
// ended.
func (b *sftpBench) serverCPU(t target) time.Duration {
	if t.name == "rosterd" {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	children := fmt.Sprintf("/proc/%d/task/%d/children", b.sshdPid, b.sshdPid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if c, err := os.ReadFile(children); err != nil || len(bytes.TrimSpace(c)) == 0 {
			break
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.sshdPid))
	if err != nil {
		return 0
	}
	// utime, stime, cutime and cstime are fields 14 to 17, counted
	// after the command name in parentheses (field 2).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	var ticks int64
	for _, v := range f[11:15] {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}

func (b *sftpBench) prepareFiles(large int64, small int) error {
	data := filepath.Join(b.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	rng := mrand.NewChaCha8([32]byte{1})
	b.large = filepath.Join(data, "large.bin")
	f, err := os.Create(b.large)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rng, large); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for i := range small {
		rng.Read(buf)
		p := filepath.Join(data, fmt.Sprintf("f%04d.csv", i))
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return err
		}
		b.small = append(b.small, p)
	}
	return nil
}

// clientKeys writes the client keys, an ed25519 key in OpenSSH format and
// an ECDSA key in PEM (for JSch 0.1.x), and returns their public keys.
func (b *sftpBench) clientKeys() ([]ssh.PublicKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	b.keyPath = filepath.Join(b.dir, "id_ed25519")
	if err := os.WriteFile(b.keyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		return nil, err
	}
	b.pemKeyPath = filepath.Join(b.dir, "id_ecdsa.pem")
	if err := os.WriteFile(b.pemKeyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	var pubs []ssh.PublicKey
	for _, k := range []any{priv.Public(), &ec.PublicKey} {
		pub, err := ssh.NewPublicKey(k)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, pub)
	}
	return pubs, nil
}

// benchKeys authorizes the client keys for organization "bench".
type benchKeys []ssh.PublicKey

func (k benchKeys) Authorize(_ context.Context, org string, key ssh.PublicKey) error {
	for _, have := range k {
		if org == "bench" && bytes.Equal(key.Marshal(), have.Marshal()) {
			return nil
		}
	}
	return errors.New("unknown key")
}

// cipherLog records the cipher of each rosterd session.
type cipherLog struct{ b *sftpBench }

func (h cipherLog) Enabled(context.Context, slog.Level) bool { return true }
func (h cipherLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h cipherLog) WithGroup(string) slog.Handler            { return h }
func (h cipherLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "cipher" {
			h.b.cipherMu.Lock()
			h.b.ciphers[a.Value.String()] = true
			h.b.cipherMu.Unlock()
		}
		return true
	})
	return nil
}

func (b *sftpBench) startRosterd(keys []ssh.PublicKey) (func(), error) {
	hostKeys, err := sftpd.LoadHostKeys(filepath.Join(b.dir, "host_keys"))
	if err != nil {
		return nil, err
	}
	for _, k := range hostKeys {
		b.hostKeyFPs = append(b.hostKeyFPs, sftpd.Fingerprint(k.PublicKey()))
	}
	root := filepath.Join(b.dir, "orgs")
	srv, err := sftpd.New(sftpd.Config{
		HostKeys: hostKeys,
		Root:     root,
		Keys:     benchKeys(keys),
		Limits:   sftpd.Limits{MaxUploadSize: 8 << 30},
		Logger:   slog.New(cipherLog{b}),
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(ln)
	cfg, err := writeClientConfig(filepath.Join(b.dir, "rosterd_config"), ln.Addr().String(), "bench", b.keyPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "bench", "reports"), 0o750); err != nil {
		return nil, err
	}
	b.rosterd = target{name: "rosterd", addr: ln.Addr().String(), user: "bench", config: cfg, remote: "", clean: filepath.Join(root, "bench")}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// startSSHD runs OpenSSH's sshd with internal-sftp chrooted to a
// root-owned folder, as a hosting provider would set it up.
func (b *sftpBench) startSSHD(ctx context.Context, bin string, keys []ssh.PublicKey) (func(), error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("sshd with ChrootDirectory needs root")
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	sdir := filepath.Join(b.dir, "sshd")
	chroot := filepath.Join(b.dir, "chroot")
	for _, d := range []string{sdir, filepath.Join(chroot, "upload")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// ChrootDirectory needs every component root-owned and not group or
	// world writable; say so rather than let sshd fail at login.
	for d := chroot; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return nil, err
		}
		if st.Mode().Perm()&0o022 != 0 {
			return nil, fmt.Errorf("chroot component %s is group or world writable; use -dir", d)
		}
		if d == "/" {
			break
		}
	}
	hostKey := filepath.Join(b.dir, "host_keys", sftpd.HostKeyEd25519)
	// JSch 0.1.54 knows no ed25519 host key: sshd offers the ECDSA one too.
	ecdsaHostKey := filepath.Join(b.dir, "host_keys", sftpd.HostKeyECDSA)
	authKeys := filepath.Join(sdir, "authorized_keys")
	var authorized []byte
	for _, k := range keys {
		authorized = append(authorized, ssh.MarshalAuthorizedKey(k)...)
	}
	if err := os.WriteFile(authKeys, authorized, 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
ChrootDirectory %s
AllowTcpForwarding no
X11Forwarding no
LogLevel ERROR
`, port, hostKey, ecdsaHostKey, filepath.Join(sdir, "sshd.pid"), authKeys, chroot)
	for _, o := range b.sshdOpts {
		cfg += o + "\n"
	}
	cfgPath := filepath.Join(sdir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-D", "-e", "-f", cfgPath)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b.sshdPid = cmd.Process.Pid
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, fmt.Errorf("not listening: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ccfg, err := writeClientConfig(filepath.Join(b.dir, "openssh_config"), addr, "root", b.keyPath)
	if err != nil {
		return nil, err
	}
	b.openssh = target{name: "openssh", addr: addr, user: "root", config: ccfg, remote: "/upload/", clean: filepath.Join(chroot, "upload")}
	return func() {
		cmd.Process.Kill()
		cmd.Wait()
	}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writeClientConfig writes an ssh_config with no algorithm options: the
// client's defaults are what is measured.
func writeClientConfig(path, addr, user, keyPath string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`Host bench
  HostName %s
  Port %s
  User %s
  IdentityFile %s
  IdentitiesOnly yes
  IdentityAgent none
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
`, host, port, user, keyPath)
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, "; ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
