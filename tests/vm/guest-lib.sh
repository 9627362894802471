# Helpers for guest test scripts (busybox sh). Source it; then use
#   ok NAME / notok NAME [WHY] / skip NAME WHY   record one result
#   check NAME CMD [ARGS...]     run CMD (output kept), ok if it exits 0
#   check_t SECS NAME CMD...     same with a timeout
#   expect_out NAME PATTERN FILE ok if FILE matches the grep -E PATTERN
#   bg_start NAME SECS CMD...    start CMD in the background with a timeout,
#                                output in $OUT/NAME.out; bg_wait NAME -> its status
#   wait_port PORT [SECS]        wait until something listens on TCP PORT
#   have PROG                    is PROG on $PATH (e.g. have test_verbs)
#   section TITLE                print a header
#   summary                      print "N passed, N failed"; returns 1 on failure
# Binaries from the build dir are in /srdma/bin (on $PATH); the VM's address is
# $VM_IP (10.0.2.15 on eth0, RDMA device rxe0, GID index 1 is IPv4-mapped).

VM_IP=${VM_IP:-10.0.2.15}
RDMA_DEV=${RDMA_DEV:-rxe0}
OUT=${OUT:-/tmp/guest-out}
mkdir -p "$OUT"
PASS=${PASS:-0}
FAIL=${FAIL:-0}
SKIPPED=${SKIPPED:-0}
FAILED_NAMES=${FAILED_NAMES:-}

section() {
	echo "# --- $* ---"
}

ok() {
	PASS=$((PASS + 1))
	echo "ok - $1"
}

notok() {
	FAIL=$((FAIL + 1))
	FAILED_NAMES="$FAILED_NAMES $1"
	echo "not ok - $1${2:+ ($2)}"
}

skip() {
	SKIPPED=$((SKIPPED + 1))
	echo "ok - $1 # SKIP ${2:-}"
}

have() {
	command -v "$1" >/dev/null 2>&1
}

# File name for a check's output.
outfile() {
	echo "$OUT/$(printf '%s' "$1" | tr -c 'A-Za-z0-9_.-' '_').out"
}

# Show the last lines of a failed command's output, indented.
show_tail() {
	tail -n "${2:-40}" "$1" 2>/dev/null | sed 's/^/#   /'
}

check() {
	name=$1
	shift
	f=$(outfile "$name")
	if "$@" >"$f" 2>&1; then
		ok "$name"
	else
		rc=$?
		notok "$name" "exit $rc"
		show_tail "$f"
	fi
}

check_t() {
	secs=$1
	name=$2
	shift 2
	check "$name" timeout "$secs" "$@"
}

expect_out() {
	if grep -qE "$2" "$3" 2>/dev/null; then
		ok "$1"
	else
		notok "$1" "no match for '$2'"
		show_tail "$3"
	fi
}

bg_start() {
	name=$1
	secs=$2
	shift 2
	timeout "$secs" "$@" >"$OUT/$name.bg" 2>&1 &
	eval "BG_PID_$(printf '%s' "$name" | tr -c 'A-Za-z0-9_' '_')=$!"
}

bg_wait() {
	pid=""
	eval "pid=\$BG_PID_$(printf '%s' "$1" | tr -c 'A-Za-z0-9_' '_')"
	wait "$pid"
}

wait_port() {
	port=$1
	n=$(( ${2:-10} * 10 ))
	hex=$(printf ':%04X ' "$port")
	while [ "$n" -gt 0 ]; do
		grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

summary() {
	[ "$SKIPPED" -eq 0 ] || echo "# $SKIPPED skipped"
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ] || echo "# failed:$FAILED_NAMES"
	[ "$FAIL" -eq 0 ]
}
