#!/usr/bin/env bash
# PuTTY's psftp and pscp in rosterd's interop suite, run by
# cmd/rosterd/interop_test.go; see gosftp/main.go for the step language.
#
# Usage: putty.sh psftp|pscp STEP...
#
# EXPORT_KEY is a .ppk key made by puttygen; EXPORT_HOSTKEY_FPS lists the
# server's host key fingerprints (SHA256:...), each given to -hostkey, so
# nothing is asked and PuTTY's registry of known hosts is not used. One
# connection per step, so that a refused step (a "!" step) is seen alone.
# psftp: ls (dir), put, rename (mv), chmod, resume (reput), get (psftp
# cannot set times). pscp: ls (-ls), put (-sftp -p: times and mode kept),
# get.
set -uo pipefail
tool=$1
shift
common=(-batch -P "$EXPORT_PORT" -i "$EXPORT_KEY")
for fp in $EXPORT_HOSTKEY_FPS; do
	common+=(-hostkey "$fp")
done
remote="$EXPORT_USER@$EXPORT_HOST"

# psftp_run runs one psftp batch command and prints its output.
psftp_run() {
	local script
	script=$(mktemp)
	printf '%s\n' "$1" >"$script"
	psftp "${common[@]}" -b "$script" "$remote" 2>&1
	local rc=$?
	rm -f "$script"
	return $rc
}

# step performs one step and prints what it listed; a non-zero status
# means the step failed, with PuTTY's message printed.
step() {
	local op=$1
	case "$tool $op" in
	"psftp ls")
		local out
		out=$(psftp_run "dir $2") || { echo "$out"; return 1; }
		echo "ls $2: $(echo "$out" | names -l)"
		;;
	"psftp put") quiet psftp_run "put $2 $3" ;;
	"psftp rename") quiet psftp_run "mv $2 $3" ;;
	"psftp chmod") quiet psftp_run "chmod $2 $3" ;;
	"psftp resume") quiet psftp_run "reput $2 $3" ;;
	"psftp get") quiet psftp_run "get $2 $3" ;;
	"pscp ls")
		local out
		out=$(pscp -sftp "${common[@]}" -ls "$remote:$2" 2>&1) || { echo "$out"; return 1; }
		echo "ls $2: $(echo "$out" | names -l)"
		;;
	"pscp put") quiet pscp -sftp -q -p "${common[@]}" "$2" "$remote:$3" ;;
	"pscp get") quiet pscp -sftp -q "${common[@]}" "$remote:$2" "$3" ;;
	*)
		echo "unknown step $op for $tool"
		return 2
		;;
	esac
}

# shellcheck source=steps.sh
source "$(dirname "$0")/steps.sh"
run_steps "$@"
