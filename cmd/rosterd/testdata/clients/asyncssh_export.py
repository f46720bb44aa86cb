#!/usr/bin/python3
"""The Python asyncssh client of rosterd's interop suite.

Run by cmd/rosterd/interop_test.go (see gosftp/main.go there for the step
language): logs in with EXPORT_KEY, checks the host key against
EXPORT_KNOWN_HOSTS, and performs the steps on the command line. put uses
preserve=True (the local file's times and mode go with it), append opens
with 'ab', resume opens with 'r+b' and writes at the remote size,
posixrename uses posix-rename@openssh.com.
"""
import asyncio
import os
import sys
import warnings

warnings.simplefilter("ignore")  # Debian's cryptography warns about old ciphers
import asyncssh  # noqa: E402


async def step(sftp, f):
    op = f[0]
    if op == "ls":
        names = sorted(n for n in await sftp.listdir(f[1]) if n not in (".", ".."))
        print(f"ls {f[1]}: {' '.join(names)}")
    elif op == "put":
        await sftp.put(f[1], f[2], preserve=True)
    elif op in ("append", "resume"):
        size = (await sftp.stat(f[2])).size
        with open(f[1], "rb") as src:
            src.seek(size)
            rest = src.read()
        mode = "ab" if op == "append" else "r+b"
        async with sftp.open(f[2], mode) as dst:
            if op == "resume":
                await dst.seek(size)
            await dst.write(rest)
    elif op == "rename":
        await sftp.rename(f[1], f[2])
    elif op == "posixrename":
        await sftp.posix_rename(f[1], f[2])
    elif op == "chmod":
        await sftp.chmod(f[2], int(f[1], 8))
    elif op == "mtime":
        await sftp.utime(f[2], (int(f[1]), int(f[1])))
    elif op == "get":
        await sftp.get(f[1], f[2])
    else:
        raise ValueError(f"unknown step {op}")


async def main(steps):
    env = os.environ
    async with asyncssh.connect(env["EXPORT_HOST"], port=int(env["EXPORT_PORT"]),
                                username=env["EXPORT_USER"], client_keys=[env["EXPORT_KEY"]],
                                known_hosts=env["EXPORT_KNOWN_HOSTS"], agent_path=None) as conn:
        async with conn.start_sftp_client() as sftp:
            for s in steps:
                must_fail = s.startswith("!")
                s = s.lstrip("!")
                try:
                    await step(sftp, s.split())
                except (asyncssh.SFTPError, OSError) as e:
                    if must_fail:
                        print(f"refused {s}: {e}")
                        continue
                    print(f"error {s}: {e}")
                    return 1
                if must_fail:
                    print(f"error {s}: succeeded; want a refusal")
                    return 1
                print("ok", s)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
