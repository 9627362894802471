# Shared helpers for the provider tests: they drive fi_pingpong, fi_info,
# mpirun.openmpi and NetPIPE with the srdma provider, on loopback. On top
# of tests/integration/lib.sh (check, skip, finish, make_pki, $T).
. "$(dirname "$0")/../integration/lib.sh"

export FI_PROVIDER_PATH=${FI_PROVIDER_PATH:-$BUILD/provider}
export FI_SRDMA_IFACE=lo
unset FI_PROVIDER FI_SRDMA_PROTECT FI_SRDMA_LOG FI_LOG_LEVEL
[ -f "$FI_PROVIDER_PATH/libsrdma-fi.so" ] || {
	notok "$FI_PROVIDER_PATH/libsrdma-fi.so is missing (cmake --build builds it)"
	finish
	exit 1
}
need_cmd fi_pingpong fi_info
# Under the sanitizer build the provider is instrumented and fi_pingpong is
# not: the runtimes go first (tests/provider/CMakeLists.txt).
PRELOAD=()
if [ -n "${SRDMA_PROV_PRELOAD:-}" ]; then
	PRELOAD=(env "LD_PRELOAD=$SRDMA_PROV_PRELOAD"
		"ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0"
		"UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")
fi

# A control port per run, so tests may run side by side.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# pingpong NAME CLIENT_ENV SERVER_ENV ARGS...: an fi_pingpong server and
# client (ARGS for both) on loopback; CLIENT_ENV/SERVER_ENV are
# space-separated VAR=VALUE lists (or "-"). Sets PP_RC (client), PP_SRC
# (server); logs in $T/NAME.{srv,cli}.
pingpong() {
	local name=$1 cenv=$2 senv=$3 port
	shift 3
	[ "$cenv" = - ] && cenv=
	[ "$senv" = - ] && senv=
	port=$(free_port)
	# shellcheck disable=SC2086
	env $senv timeout 60 "${PRELOAD[@]}" fi_pingpong -B "$port" "$@" \
		>"$T/$name.srv" 2>&1 &
	local spid=$!
	PIDS+=("$spid")
	sleep 0.3
	# shellcheck disable=SC2086
	env $cenv timeout 60 "${PRELOAD[@]}" fi_pingpong -P "$port" "$@" \
		127.0.0.1 >"$T/$name.cli" 2>&1
	PP_RC=$?
	# The server of a failed run waits for a connection that never
	# comes: give it 10 s after a client that succeeded (1 s after one
	# that failed), then stop it.
	local n=100
	[ "$PP_RC" -eq 0 ] || n=10
	for _ in $(seq $n); do
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$spid" 2>/dev/null
	wait "$spid"
	PP_SRC=$?
}

# table FILE SIZES...: FILE holds fi_pingpong's table with a row for each.
table() {
	local f=$1 s
	shift
	grep -q '^bytes *#sent *#ack' "$f" || { echo "$f: no table"; cat "$f"; return 1; }
	for s in "$@"; do
		grep -qE "^$s +[0-9]+ +=[0-9]+ " "$f" || { echo "$f: no row for $s"; cat "$f"; return 1; }
	done
}

MPIRUN=(mpirun.openmpi --allow-run-as-root --mca oob_tcp_if_include lo
	--mca pml cm --mca mtl ofi --mca mtl_ofi_provider_include srdma
	--mca mpi_yield_when_idle 1 -x FI_PROVIDER_PATH -x FI_SRDMA_IFACE)
