#!/usr/bin/python3
"""The paramiko client of rosterd's interop suite.

Run by cmd/rosterd/interop_test.go (see gosftp/main.go there for the step
language): SSHClient.connect with the key files of EXPORT_KEY (several,
separated by ':', tried in turn: an unregistered key first is what users
with several keys have), the host key checked against EXPORT_KNOWN_HOSTS,
then the steps on the command line. append opens with 'a', resume with
'r+' at the remote size; mtime is utime.
"""
import os
import sys

import paramiko


def step(sftp, f):
    op = f[0]
    if op == "ls":
        print(f"ls {f[1]}: {' '.join(sorted(sftp.listdir(f[1])))}")
    elif op == "put":
        sftp.put(f[1], f[2])
    elif op in ("append", "resume"):
        size = sftp.stat(f[2]).st_size
        with open(f[1], "rb") as src:
            src.seek(size)
            rest = src.read()
        with sftp.open(f[2], "a" if op == "append" else "r+") as dst:
            if op == "resume":
                dst.seek(size)
            dst.set_pipelined(True)
            dst.write(rest)
    elif op == "rename":
        sftp.rename(f[1], f[2])
    elif op == "posixrename":
        sftp.posix_rename(f[1], f[2])
    elif op == "chmod":
        sftp.chmod(f[2], int(f[1], 8))
    elif op == "mtime":
        sftp.utime(f[2], (int(f[1]), int(f[1])))
    elif op == "get":
        sftp.get(f[1], f[2])
    else:
        raise ValueError(f"unknown step {op}")


def main(steps):
    env = os.environ
    client = paramiko.SSHClient()
    client.load_host_keys(env["EXPORT_KNOWN_HOSTS"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(env["EXPORT_HOST"], port=int(env["EXPORT_PORT"]), username=env["EXPORT_USER"],
                   key_filename=env["EXPORT_KEY"].split(":"), look_for_keys=False, allow_agent=False)
    sftp = client.open_sftp()
    for s in steps:
        must_fail = s.startswith("!")
        s = s.lstrip("!")
        try:
            step(sftp, s.split())
        except (IOError, OSError) as e:
            if must_fail:
                print(f"refused {s}: {e}")
                continue
            print(f"error {s}: {e}")
            return 1
        if must_fail:
            print(f"error {s}: succeeded; want a refusal")
            return 1
        print("ok", s)
    sftp.close()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
