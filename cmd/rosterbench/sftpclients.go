package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// The SFTP clients the sftp mode measures besides the stock OpenSSH sftp:
// each uploads one file with its library's stock settings, in a process
// of its own, and prints "seconds S", the time from opening the remote
// file to its close being answered (so a JVM's start-up is not counted).
// The OpenSSH client and psftp are timed as a whole process (their
// handshakes take a few milliseconds).

// sftpClient uploads one local file to a target.
type sftpClient interface {
	name() string
	// upload uploads local to the target's folder and returns the time
	// the transfer took.
	upload(b *sftpBench, t target, local string) (time.Duration, error)
}

// clientByName returns the client called name, or an error saying why it
// cannot run here.
func clientByName(name string) (sftpClient, error) {
	switch name {
	case "openssh":
		p, err := exec.LookPath("sftp")
		return opensshClient{p}, err
	case "go":
		self, err := os.Executable()
		return goSFTPClient{self}, err
	case "paramiko":
		if err := exec.Command("/usr/bin/python3", "-c", "import paramiko").Run(); err != nil {
			return nil, fmt.Errorf("paramiko: /usr/bin/python3 cannot import paramiko (python3-paramiko): %w", err)
		}
		return paramikoClient{}, nil
	case "jsch":
		if _, err := os.Stat(jschJar); err != nil {
			return nil, fmt.Errorf("jsch: %w (libjsch-java)", err)
		}
		java, err := exec.LookPath("java")
		return jschClient{java}, err
	case "psftp":
		p, err := exec.LookPath("psftp")
		if err != nil {
			return nil, fmt.Errorf("psftp: %w (putty-tools)", err)
		}
		return psftpClient{p}, nil
	}
	return nil, fmt.Errorf("unknown client %q (openssh, go, paramiko, jsch, psftp)", name)
}

// opensshClient is the stock OpenSSH sftp, run with `-b`.
type opensshClient struct{ bin string }

func (opensshClient) name() string { return "openssh sftp" }

func (c opensshClient) upload(b *sftpBench, t target, local string) (time.Duration, error) {
	return c.batch(t, fmt.Sprintf("put %s %s%s\n", local, t.remote, filepath.Base(local)))
}

// batch runs one sftp batch and returns its wall time.
func (c opensshClient) batch(t target, batch string) (time.Duration, error) {
	cmd := exec.Command(c.bin, "-F", t.config, "-b", "-", "bench")
	cmd.Stdin = strings.NewReader(batch)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, out.String())
	}
	return d, nil
}

// runTimed runs a client process and returns the "seconds S" it printed.
func runTimed(cmd *exec.Cmd) (time.Duration, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w\n%s", filepath.Base(cmd.Path), err, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "seconds "); ok {
			s, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(s * float64(time.Second)), nil
		}
	}
	return 0, fmt.Errorf("%s printed no time:\n%s", filepath.Base(cmd.Path), out.String())
}

// goSFTPClient is Go's pkg/sftp client with concurrent writes, as
// File.ReadFrom does them (32 KiB writes, up to 64 in flight), run as
// `rosterbench sftp-go-client` in a process of its own.
type goSFTPClient struct{ self string }

func (goSFTPClient) name() string { return "go pkg/sftp" }

func (c goSFTPClient) upload(b *sftpBench, t target, local string) (time.Duration, error) {
	return runTimed(exec.Command(c.self, "sftp-go-client", t.addr, t.user, b.keyPath, t.remote+filepath.Base(local), local))
}

// runSFTPGoClient is the hidden mode sftp-go-client: ADDR USER KEY REMOTE
// LOCAL uploads LOCAL with pkg/sftp and prints the seconds it took.
func runSFTPGoClient(args []string, stdout io.Writer) error {
	if len(args) != 5 {
		return fmt.Errorf("usage: rosterbench sftp-go-client ADDR USER KEY REMOTE LOCAL")
	}
	pem, err := os.ReadFile(args[2])
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return err
	}
	conn, err := ssh.Dial("tcp", args[0], &ssh.ClientConfig{
		User:            args[1],
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // loopback benchmark
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := sftp.NewClient(conn, sftp.UseConcurrentWrites(true))
	if err != nil {
		return err
	}
	defer c.Close()
	src, err := os.Open(args[4])
	if err != nil {
		return err
	}
	defer src.Close()
	start := time.Now()
	dst, err := c.Create(args[3])
	if err != nil {
		return err
	}
	if _, err := dst.ReadFrom(src); err != nil {
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seconds %.6f\n", time.Since(start).Seconds())
	return nil
}

// paramikoClient is paramiko's SFTPClient.put (32 KiB writes, pipelined).
type paramikoClient struct{}

func (paramikoClient) name() string { return "paramiko" }

const paramikoBench = `
import sys, time, paramiko
host, port, user, key, remote, local = sys.argv[1:]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect(host, port=int(port), username=user, key_filename=key, look_for_keys=False, allow_agent=False)
sftp = client.open_sftp()
start = time.monotonic()
sftp.put(local, remote)
print("seconds %.6f" % (time.monotonic() - start))
sftp.close()
client.close()
`

func (paramikoClient) upload(b *sftpBench, t target, local string) (time.Duration, error) {
	host, port, _ := net.SplitHostPort(t.addr)
	return runTimed(exec.Command("/usr/bin/python3", "-c", paramikoBench, host, port, t.user, b.keyPath, t.remote+filepath.Base(local), local))
}

// jschClient is Java JSch's ChannelSftp.put with its stock settings. JSch
// 0.1.54 reads PEM keys only and knows no ed25519: it logs in with an
// ECDSA key and checks no host key.
type jschClient struct{ java string }

const jschJar = "/usr/share/java/jsch.jar"

func (jschClient) name() string { return "jsch" }

const jschBench = `import com.jcraft.jsch.*;

public class JSchBench {
    public static void main(String[] a) throws Exception {
        JSch jsch = new JSch();
        jsch.addIdentity(a[3]);
        Session s = jsch.getSession(a[2], a[0], Integer.parseInt(a[1]));
        s.setConfig("StrictHostKeyChecking", "no");
        s.setConfig("PreferredAuthentications", "publickey");
        s.connect(30000);
        ChannelSftp c = (ChannelSftp) s.openChannel("sftp");
        c.connect(30000);
        long start = System.nanoTime();
        c.put(a[5], a[4]);
        System.out.printf("seconds %.6f%n", (System.nanoTime() - start) / 1e9);
        c.disconnect();
        s.disconnect();
    }
}
`

func (c jschClient) upload(b *sftpBench, t target, local string) (time.Duration, error) {
	src := filepath.Join(b.dir, "JSchBench.java")
	if _, err := os.Stat(src); err != nil {
		if err := os.WriteFile(src, []byte(jschBench), 0o644); err != nil {
			return 0, err
		}
	}
	host, port, _ := net.SplitHostPort(t.addr)
	return runTimed(exec.Command(c.java, "-cp", jschJar, src, host, port, t.user, b.pemKeyPath, t.remote+filepath.Base(local), local))
}

// psftpClient is PuTTY's psftp with `-b` (put), timed as a whole process
// like the OpenSSH client. It logs in with the ed25519 key converted to a
// .ppk by puttygen and checks the host key against the fingerprints given
// with -hostkey (both servers use the same host keys).
type psftpClient struct{ bin string }

func (psftpClient) name() string { return "psftp" }

func (c psftpClient) upload(b *sftpBench, t target, local string) (time.Duration, error) {
	ppk, err := b.puttyKey()
	if err != nil {
		return 0, err
	}
	script := filepath.Join(b.dir, "psftp_batch")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("put %s %s%s\n", local, t.remote, filepath.Base(local))), 0o600); err != nil {
		return 0, err
	}
	host, port, _ := net.SplitHostPort(t.addr)
	args := []string{"-batch", "-b", script, "-P", port, "-i", ppk}
	for _, fp := range b.hostKeyFPs {
		args = append(args, "-hostkey", fp)
	}
	cmd := exec.Command(c.bin, append(args, t.user+"@"+host)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, out.String())
	}
	return d, nil
}

// puttyKey converts the ed25519 client key to PuTTY's format once and
// returns its path.
func (b *sftpBench) puttyKey() (string, error) {
	ppk := filepath.Join(b.dir, "id_ed25519.ppk")
	if _, err := os.Stat(ppk); err == nil {
		return ppk, nil
	}
	puttygen, err := exec.LookPath("puttygen")
	if err != nil {
		return "", fmt.Errorf("psftp: %w (putty-tools)", err)
	}
	empty := filepath.Join(b.dir, "empty_passphrase")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return "", err
	}
	if out, err := exec.Command(puttygen, b.keyPath, "-O", "private", "--new-passphrase", empty, "-o", ppk).CombinedOutput(); err != nil {
		return "", fmt.Errorf("puttygen: %w\n%s", err, out)
	}
	return ppk, nil
}
