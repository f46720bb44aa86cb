#!/bin/sh
# sftp-upload.sh: upload CSV files to rosterd with OpenSSH's sftp in batch
# mode. Each file goes up under a temporary name (.in.NAME) and is then
# renamed onto its final name, so nothing ever sees half a file, even
# through other SFTP servers that lack rosterd's own protection.
#
# usage: sftp-upload.sh HOST PORT ORG KEY FILE...
#   HOST, PORT  rosterd's SFTP address (the operator gives them)
#   ORG         your organization's name: the SSH user name
#   KEY         the private key whose public half the operator registered
#   FILE...     users.csv first, then user_groups.csv and groups.csv
#
# The server's host key is checked against ~/.ssh/known_hosts, or the file
# named by $ROSTERD_KNOWN_HOSTS; add it once with
#   ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts
# and compare its fingerprint with the one the operator gives you.
# Exit status: 0 when every file was uploaded, non-zero otherwise.
set -eu

if [ $# -lt 5 ]; then
	echo "usage: $0 HOST PORT ORG KEY FILE..." >&2
	exit 2
fi
host=$1 port=$2 org=$3 key=$4
shift 4
known_hosts=${ROSTERD_KNOWN_HOSTS:-$HOME/.ssh/known_hosts}

batch=$(mktemp)
trap 'rm -f "$batch"' EXIT
for f in "$@"; do
	if [ ! -r "$f" ]; then
		echo "$0: cannot read $f" >&2
		exit 2
	fi
	name=$(basename "$f")
	# A leading "-" lets sftp go on when there is no leftover to remove.
	printf -- '-rm ".in.%s"\nput "%s" ".in.%s"\nrename ".in.%s" "%s"\n' \
		"$name" "$f" "$name" "$name" "$name" >>"$batch"
done

sftp -b "$batch" -P "$port" -i "$key" \
	-o BatchMode=yes -o IdentitiesOnly=yes \
	-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known_hosts" \
	-o ConnectTimeout=30 -o ServerAliveInterval=15 \
	"$org@$host"
