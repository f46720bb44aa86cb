#!/usr/bin/python3
"""Upload CSV files to rosterd over SFTP with paramiko.

usage: upload.py HOST PORT ORG KEY FILE... [--known-hosts FILE]

HOST and PORT are rosterd's SFTP address, ORG your organization's name
(the SSH user name), KEY the private key whose public half the operator
registered. Put users.csv first. Each file is uploaded under a temporary
name (.in.NAME), checked for size, then renamed onto its final name.

The server's host key must be in ~/.ssh/known_hosts (or the file given by
--known-hosts or $ROSTERD_KNOWN_HOSTS): an unknown server is refused.

Runs with Debian's /usr/bin/python3 and python3-paramiko (paramiko 2.x or
later). Exit status 0 when every file was uploaded, 1 otherwise.
"""

import argparse
import os
import sys

import paramiko


def main():
    p = argparse.ArgumentParser(description="Upload CSV files to rosterd over SFTP.")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("org", help="organization name: the SSH user name")
    p.add_argument("key", help="private key file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--known-hosts",
        default=os.environ.get("ROSTERD_KNOWN_HOSTS", os.path.expanduser("~/.ssh/known_hosts")),
        help="known_hosts file holding the server's host key",
    )
    args = p.parse_args()

    client = paramiko.SSHClient()
    client.load_host_keys(args.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            args.host,
            port=args.port,
            username=args.org,
            key_filename=args.key,
            look_for_keys=False,
            allow_agent=False,
            timeout=30,
            banner_timeout=30,
            auth_timeout=30,
        )
        sftp = client.open_sftp()
        for path in args.files:
            name = os.path.basename(path)
            tmp = ".in." + name
            # confirm=True stats the file after the upload and fails when
            # the size differs from the local file's.
            sftp.put(path, tmp, confirm=True)
            sftp.posix_rename(tmp, name)
            print(f"uploaded {path} as {name} ({sftp.stat(name).st_size} bytes)")
        sftp.close()
    except (OSError, paramiko.SSHException) as e:
        print(f"upload.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
