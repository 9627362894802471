# Shared helpers for integration tests: they drive the real srdma binary.
# Each test sources this, calls `check NAME CMD...` and ends with `finish`.
set -u
BUILD=${SRDMA_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
SRC=${SRDMA_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
SRDMA="$BUILD/srdma"
T=$(mktemp -d "${TMPDIR:-/tmp}/srdma-it-XXXXXX")
PASS=0
FAIL=0
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
[ -n "${KEEP_T:-}" ] && trap - EXIT

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }

# check NAME CMD...: CMD must exit 0.
check() {
	local name=$1; shift
	if "$@"; then ok "$name"; else notok "$name"; fi
}

# skip REASON: what the test needs is not here. Exits 77, which ctest
# reports as "Skipped" (SKIP_RETURN_CODE in CMakeLists.txt), never as
# "Passed"; a test that already failed a check fails. CI (.ci/run: root,
# `make deps`, the test build, CI=true) has all that tests need, so there
# a skip is a failure.
skip() {
	if [ "${CI:-}" = true ]; then
		notok "SKIP on CI (CI=true), where this must run: $*"
		finish
		exit 1
	fi
	echo "SKIP: $*"
	[ "$FAIL" -eq 0 ] || { finish; exit 1; }
	[ "$PASS" -eq 0 ] || echo "($PASS checks passed before the skip)"
	exit 77
}

# need_cmd CMD...: commands `make deps` installs; skip without them.
need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c is not installed (make deps installs it)"
	done
}

# need_hooks: the test drives the test build's hooks (SRDMA_TAMPER,
# SRDMA_TEST_SAVE_PDATA), which only -DSRDMA_TEST_HOOKS=ON builds have.
need_hooks() {
	grep -q 'SRDMA_TEST_HOOKS:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && return 0
	skip "this test needs the test build (cmake -DSRDMA_TEST_HOOKS=ON; make test builds it in build-test)"
}

# need_tool NAME...: helper programs from tests/tools, built with the tests;
# one missing means a broken build, which fails.
need_tool() {
	local t
	for t in "$@"; do
		[ -x "$BUILD/$t" ] && continue
		notok "$BUILD/$t is missing (cmake --build builds it with the tests)"
		finish
		exit 1
	done
}

finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# make_pki DIR [client ids...]
make_pki() {
	local d=$1; shift
	local args=()
	for c in "$@"; do args+=(--client "$c"); done
	"$SRDMA" certs "$d" "${args[@]}" >/dev/null
}

# start_server NAME [serve args...]: sets SERVER_PID, CTRL_PORT, FABRIC_PORT
# (and METRICS_PORT with --metrics); log in $T/NAME.log
start_server() {
	local name=$1; shift
	rm -f "$T/$name.ports"
	"$SRDMA" serve --listen 127.0.0.1:0 --port-file "$T/$name.ports" "$@" \
		>"$T/$name.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	for _ in $(seq 100); do
		[ -s "$T/$name.ports" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [ ! -s "$T/$name.ports" ]; then
		echo "server $name did not start:"; cat "$T/$name.log"
		return 1
	fi
	METRICS_PORT=
	read -r CTRL_PORT FABRIC_PORT METRICS_PORT <"$T/$name.ports"
}

stop_server() {
	kill -TERM "$SERVER_PID" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		echo "server did not stop on SIGTERM"; kill -9 "$SERVER_PID"
		wait "$SERVER_PID" 2>/dev/null
		return 1
	fi
	wait "$SERVER_PID" 2>/dev/null
	local rc=$?
	# Non-zero after SIGTERM means a crash or a sanitizer report.
	[ "$rc" -eq 0 ] || { echo "server exited with $rc"; tail -30 "$T"/*.log; }
	return "$rc"
}

# client ARGS...: runs `srdma client` against the current server.
client() {
	timeout 60 "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" "$@"
}

# expect_fail PATTERN CMD...: CMD must exit non-zero and print PATTERN.
expect_fail() {
	local pat=$1; shift
	local out
	out=$("$@" 2>&1) && { echo "unexpected success: $out"; return 1; }
	echo "$out" | grep -qE "$pat" || { echo "missing '$pat' in: $out"; return 1; }
}

server_alive() { kill -0 "$SERVER_PID" 2>/dev/null; }
