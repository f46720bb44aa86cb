# steps.sh: the step loop shared by the shell clients of rosterd's interop
# suite (putty.sh, lftp.sh, rclone.sh); see gosftp/main.go for the step
# language. Source it after defining step(), which performs one step
# (its fields as arguments), prints what it listed, and returns 1 when
# the server refused it, 2 for a step the client does not have.

# run_steps performs each argument as a step: "ok STEP" when it worked,
# "refused STEP: MESSAGE" when a "!STEP" failed as it must; anything else
# prints "error STEP: MESSAGE" and exits 1.
run_steps() {
	local s body out rc
	for s in "$@"; do
		body=${s#!}
		# shellcheck disable=SC2086 # the step's fields are split on purpose
		out=$(step $body)
		rc=$?
		if [ "$s" != "$body" ]; then
			if [ $rc = 1 ]; then
				echo "refused $body: $(echo "$out" | tr '\n' ' ')"
				continue
			fi
			echo "error $body: succeeded; want a refusal"
			exit 1
		fi
		if [ $rc != 0 ]; then
			echo "error $body: $(echo "$out" | tr '\n' ' ')"
			exit 1
		fi
		if [ -n "$out" ]; then
			echo "$out"
		fi
		echo "ok $body"
	done
}

# names turns listed names (one per line, or ls -l lines when given -l)
# into one sorted line, without "." and "..", and without a folder's
# trailing slash.
names() {
	if [ "${1:-}" = -l ]; then
		awk '/^[-dl]/ {print $NF}'
	else
		cat
	fi | sed 's#/$##' | grep -v -x -e '' -e '\.' -e '\.\.' | sort | tr '\n' ' ' | sed 's/ $//'
}

# quiet runs a command and prints its output only when it fails.
quiet() {
	local out
	out=$("$@" 2>&1) || {
		echo "$out"
		return 1
	}
}
