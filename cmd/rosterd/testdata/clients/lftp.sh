#!/usr/bin/env bash
# lftp in rosterd's interop suite, run by cmd/rosterd/interop_test.go; see
# gosftp/main.go for the step language.
#
# Usage: lftp.sh STEP...
#
# lftp reaches the server through OpenSSH's ssh (sftp:connect-program)
# with EXPORT_KEY and its own known_hosts, EXPORT_KNOWN_HOSTS. One lftp
# run per step. Steps: ls (cls -1), put (put -o), rename (mv), chmod,
# resume (put -c: continue at the remote size), get, mirror DIR (mirror -R
# DIR /: uploads the folder's files and sets their times).
set -uo pipefail
connect="ssh -a -x -F /dev/null -i $EXPORT_KEY -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$EXPORT_KNOWN_HOSTS -o GlobalKnownHostsFile=/dev/null"

# run runs one lftp command after opening the connection.
run() {
	lftp -c "set cmd:fail-exit yes; set net:max-retries 1; set net:reconnect-interval-base 1; set sftp:connect-program \"$connect\"; open -u $EXPORT_USER, -p $EXPORT_PORT sftp://$EXPORT_HOST; $1" 2>&1
}

step() {
	local out
	case $1 in
	ls)
		out=$(run "cls -1 -B $2") || { echo "$out"; return 1; }
		echo "ls $2: $(echo "$out" | names)"
		return
		;;
	put) out=$(run "put $2 -o $3") ;;
	rename) out=$(run "mv $2 $3") ;;
	chmod) out=$(run "chmod $2 $3") ;;
	resume) out=$(run "put -c $2 -o $3") ;;
	get) out=$(run "get $2 -o $3") ;;
	mirror) out=$(run "mirror -R $2 /") ;;
	*)
		echo "unknown step $1"
		return 2
		;;
	esac || { echo "$out"; return 1; }
}

# shellcheck source=steps.sh
source "$(dirname "$0")/steps.sh"
run_steps "$@"
