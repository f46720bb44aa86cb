#!/usr/bin/env bash
# rclone in rosterd's interop suite, run by cmd/rosterd/interop_test.go;
# see gosftp/main.go for the step language.
#
# Usage: rclone.sh STEP...
#
# An on-the-fly sftp remote with EXPORT_KEY and EXPORT_KNOWN_HOSTS, no
# config file. Steps: ls (lsf), put (copyto), rename (moveto), mtime
# (touch -t), get (copyto from the server), mirror DIR (sync DIR to the
# folder's top level with --exclude 'reports/**', as the README says:
# without it rclone would try to delete the read-only reports).
set -uo pipefail
remote=":sftp,host=$EXPORT_HOST,port=$EXPORT_PORT,user=$EXPORT_USER,key_file=$EXPORT_KEY,known_hosts_file=$EXPORT_KNOWN_HOSTS:"
rc_flags=(--config /dev/null --retries 1 --low-level-retries 1)

step() {
	local out
	case $1 in
	ls)
		out=$(rclone "${rc_flags[@]}" lsf "$remote${2#/}" 2>&1) || { echo "$out"; return 1; }
		echo "ls $2: $(echo "$out" | names)"
		return
		;;
	put) out=$(rclone "${rc_flags[@]}" copyto "$2" "$remote${3#/}" 2>&1) ;;
	rename) out=$(rclone "${rc_flags[@]}" moveto "$remote${2#/}" "$remote${3#/}" 2>&1) ;;
	mtime) out=$(rclone "${rc_flags[@]}" touch --no-create -t "$(date -u -d "@$2" +%Y-%m-%dT%H:%M:%S)" "$remote${3#/}" 2>&1) ;;
	get) out=$(rclone "${rc_flags[@]}" copyto "$remote${2#/}" "$3" 2>&1) ;;
	mirror) out=$(rclone "${rc_flags[@]}" sync "$2" "$remote" --exclude 'reports/**' 2>&1) ;;
	*)
		echo "unknown step $1"
		return 2
		;;
	esac || { echo "$out"; return 1; }
}

# shellcheck source=steps.sh
source "$(dirname "$0")/steps.sh"
run_steps "$@"
