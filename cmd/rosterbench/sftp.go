package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
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
	"strings"
	"sync"
	"time"

	"github.com/rosterd/rosterd/sftpd"
	"golang.org/x/crypto/ssh"
)

// The sftp mode uploads the same files with the stock OpenSSH sftp client
// (no cipher option, as a customer's export script runs it) to rosterd's
// sftpd, in process, and to OpenSSH's own sshd with internal-sftp and a
// chroot, started from its own config on a loopback port. Runs are
// interleaved (the order alternates per round) and each workload reports
// the median time of both servers and the ratio OpenSSH time / rosterd
// time: above 1.0 rosterd is faster.

type sftpBench struct {
	dir      string
	sftpBin  string
	rosterd  target
	openssh  target
	large    string   // local path of the large file
	small    []string // local paths of the small files
	cipherMu sync.Mutex
	ciphers  map[string]bool // what rosterd negotiated
}

type target struct {
	name   string
	config string // ssh_config path
	remote string // remote folder prefix
	clean  string // local folder the uploads land in
}

type workload struct {
	name  string
	bytes int64
	batch func(t target) string
}

func runSFTP(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rosterbench sftp", flag.ContinueOnError)
	largeMiB := fs.Int("large-mib", 1024, "size of the large file in MiB")
	smallN := fs.Int("small", 200, "number of 64 KiB files in the small workload")
	manyN := fs.Int("many", 1000, "number of 64 KiB files in the many workload")
	rounds := fs.Int("rounds", 5, "rounds per workload")
	only := fs.String("only", "large,small,many", "comma-separated workloads to run")
	sshd := fs.String("sshd", "/usr/sbin/sshd", "OpenSSH sshd binary")
	keep := fs.Bool("keep", false, "keep the work folder")
	base := fs.String("dir", "/run", "folder for the work folder; every component must be root-owned and not group or world writable (sshd's ChrootDirectory rule)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the process (rosterd's side) to this file")
	if err := fs.Parse(args); err != nil {
		return err
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
	sftpBin, err := exec.LookPath("sftp")
	if err != nil {
		return fmt.Errorf("sftp client: %w", err)
	}
	dir, err := os.MkdirTemp(*base, "rosterbench-sftp-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	b := &sftpBench{dir: dir, sftpBin: sftpBin, ciphers: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	fmt.Fprintf(stdout, "preparing files in %s\n", dir)
	if err := b.prepareFiles(int64(*largeMiB)<<20, max(*smallN, *manyN)); err != nil {
		return err
	}
	key, keyPath, err := clientKey(dir)
	if err != nil {
		return err
	}
	stopRosterd, err := b.startRosterd(key, keyPath)
	if err != nil {
		return fmt.Errorf("rosterd sftpd: %w", err)
	}
	defer stopRosterd()
	stopSSHD, err := b.startSSHD(ctx, *sshd, key, keyPath)
	if err != nil {
		return fmt.Errorf("openssh sshd: %w", err)
	}
	defer stopSSHD()

	var workloads []workload
	put := func(files []string) func(t target) string {
		return func(t target) string {
			var s strings.Builder
			for _, f := range files {
				fmt.Fprintf(&s, "put %s %s%s\n", f, t.remote, filepath.Base(f))
			}
			return s.String()
		}
	}
	for _, w := range strings.Split(*only, ",") {
		switch w {
		case "large":
			workloads = append(workloads, workload{fmt.Sprintf("1 file of %d MiB", *largeMiB), int64(*largeMiB) << 20, put([]string{b.large})})
		case "small":
			workloads = append(workloads, workload{fmt.Sprintf("%d files of 64 KiB", *smallN), int64(*smallN) << 16, put(b.small[:*smallN])})
		case "many":
			workloads = append(workloads, workload{fmt.Sprintf("%d files of 64 KiB", *manyN), int64(*manyN) << 16, put(b.small[:*manyN])})
		default:
			return fmt.Errorf("unknown workload %q", w)
		}
	}

	fmt.Fprintf(stdout, "client: %s (stock options); rosterd sftpd vs OpenSSH sshd internal-sftp + chroot; %d rounds, order alternating\n", sftpBin, *rounds)
	for _, w := range workloads {
		var tr, to, ratios []float64
		fmt.Fprintf(stdout, "\n%s\n", w.name)
		for r := range *rounds {
			pair := []target{b.rosterd, b.openssh}
			if r%2 == 1 {
				pair = []target{b.openssh, b.rosterd}
			}
			times := map[string]float64{}
			for _, t := range pair {
				d, err := b.upload(t, w.batch(t))
				if err != nil {
					return fmt.Errorf("%s to %s: %w", w.name, t.name, err)
				}
				times[t.name] = d.Seconds()
			}
			ratio := times["openssh"] / times["rosterd"]
			tr, to, ratios = append(tr, times["rosterd"]), append(to, times["openssh"]), append(ratios, ratio)
			fmt.Fprintf(stdout, "  round %d: rosterd %7.3fs (%7.1f MB/s)  openssh %7.3fs (%7.1f MB/s)  ratio %.2fx\n",
				r+1, times["rosterd"], mbps(w.bytes, times["rosterd"]), times["openssh"], mbps(w.bytes, times["openssh"]), ratio)
		}
		mr, mo := median(tr), median(to)
		fmt.Fprintf(stdout, "  median:  rosterd %7.3fs (%7.1f MB/s)  openssh %7.3fs (%7.1f MB/s)  ratio %.2fx (median of per-round ratios %.2fx)\n",
			mr, mbps(w.bytes, mr), mo, mbps(w.bytes, mo), mo/mr, median(ratios))
	}
	b.cipherMu.Lock()
	var cs []string
	for c := range b.ciphers {
		cs = append(cs, c)
	}
	b.cipherMu.Unlock()
	slices.Sort(cs)
	fmt.Fprintf(stdout, "\nrosterd negotiated: %s; ratio = OpenSSH time / rosterd time (above 1 = rosterd faster)\n", strings.Join(cs, ", "))
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

// upload runs one sftp batch and removes what it uploaded afterwards.
func (b *sftpBench) upload(t target, batch string) (time.Duration, error) {
	cmd := exec.Command(b.sftpBin, "-F", t.config, "-b", "-", "bench")
	cmd.Stdin = strings.NewReader(batch)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, out.String())
	}
	ents, err := os.ReadDir(t.clean)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if !e.IsDir() {
			os.Remove(filepath.Join(t.clean, e.Name()))
		}
	}
	return d, nil
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

func clientKey(dir string) (ssh.PublicKey, string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, "", err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	return pub, path, err
}

// oneKey authorizes a single key for organization "bench".
type oneKey struct{ key ssh.PublicKey }

func (k oneKey) Authorize(_ context.Context, org string, key ssh.PublicKey) error {
	if org == "bench" && bytes.Equal(key.Marshal(), k.key.Marshal()) {
		return nil
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

func (b *sftpBench) startRosterd(key ssh.PublicKey, keyPath string) (func(), error) {
	hostKeys, err := sftpd.LoadHostKeys(filepath.Join(b.dir, "host_keys"))
	if err != nil {
		return nil, err
	}
	root := filepath.Join(b.dir, "orgs")
	srv, err := sftpd.New(sftpd.Config{
		HostKeys: hostKeys,
		Root:     root,
		Keys:     oneKey{key},
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
	cfg, err := writeClientConfig(filepath.Join(b.dir, "rosterd_config"), ln.Addr().String(), "bench", keyPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "bench", "reports"), 0o750); err != nil {
		return nil, err
	}
	b.rosterd = target{name: "rosterd", config: cfg, remote: "", clean: filepath.Join(root, "bench")}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// startSSHD runs OpenSSH's sshd with internal-sftp chrooted to a
// root-owned folder, as a hosting provider would set it up.
func (b *sftpBench) startSSHD(ctx context.Context, bin string, key ssh.PublicKey, keyPath string) (func(), error) {
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
	authKeys := filepath.Join(sdir, "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(key), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
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
`, port, hostKey, filepath.Join(sdir, "sshd.pid"), authKeys, chroot)
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
	ccfg, err := writeClientConfig(filepath.Join(b.dir, "openssh_config"), addr, "root", keyPath)
	if err != nil {
		return nil, err
	}
	b.openssh = target{name: "openssh", config: ccfg, remote: "/upload/", clean: filepath.Join(chroot, "upload")}
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
