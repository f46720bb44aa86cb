#!/bin/sh
# rclone-upload.sh: upload CSV files to rosterd with rclone, using the
# [rosterd] remote of rclone.conf beside this script ($RCLONE_CONFIG
# overrides it) with host, port, user and key from the arguments.
#
# usage: rclone-upload.sh HOST PORT ORG KEY FILE...
#
# rosterd processes an upload only once the client closes it, and never a
# cut-off one, so rclone may write straight to the final name.
# --ignore-times uploads even when size and time look unchanged: every run
# is a delivery, and gets its report in /reports/.
# The host key is checked against known_hosts_file in rclone.conf, or the
# file named by $ROSTERD_KNOWN_HOSTS.
set -eu

if [ $# -lt 5 ]; then
	echo "usage: $0 HOST PORT ORG KEY FILE..." >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
export RCLONE_CONFIG_ROSTERD_HOST="$1" RCLONE_CONFIG_ROSTERD_PORT="$2"
export RCLONE_CONFIG_ROSTERD_USER="$3" RCLONE_CONFIG_ROSTERD_KEY_FILE="$4"
if [ -n "${ROSTERD_KNOWN_HOSTS:-}" ]; then
	export RCLONE_CONFIG_ROSTERD_KNOWN_HOSTS_FILE="$ROSTERD_KNOWN_HOSTS"
fi
shift 4
for f in "$@"; do
	rclone --config "${RCLONE_CONFIG:-$here/rclone.conf}" copyto --ignore-times \
		--retries 3 --low-level-retries 3 "$f" "rosterd:$(basename "$f")"
done
