#!/bin/bash
# `make stress`: the long runs of issue 6 that do not fit in `make test`.
#
#   1. 500 concurrent clients (10 processes x 50 connections, tests/tools/
#      multi_client) against one `srdma serve` over libfabric tcp on
#      loopback: all held at once (server RSS and fds measured at that peak,
#      per idle client), then each verifies echo, write + read-back and a
#      read of the known pattern.
#   1b. 1000 clients started at once (4 processes x 250 connects released
#      together, multi_client --burst) against a server with the default
#      limits (128 handshake slots: the rest wait in the listen backlog):
#      all served and verified; the time to serve them all, the server's
#      peak memory (VmHWM) and a metrics scrape taken during the burst are
#      printed (issue 17).
#   2. 2000 connect/close cycles (tests/integration/t_churn.sh with
#      CYCLES=2000): server fds and RSS back to their starting level.
#   3. valgrind memcheck of the server through 50 cycles
#      (tests/integration/t_valgrind.sh with VG_CYCLES=50).
#   4. every libFuzzer target for STRESS_FUZZ_SECONDS (default 600) on a
#      clang -DSRDMA_FUZZ=ON build (tests/fuzz/run.sh).
#
# Usage: tests/stress/run.sh BUILD_DIR   (env: STRESS_CLIENTS=500,
#   STRESS_BURST=1000, STRESS_CYCLES=2000, STRESS_VG_CYCLES=50,
#   STRESS_FUZZ_SECONDS=600,
#   STRESS_SKIP="fuzz valgrind ..." to leave parts out)
#
# File descriptors: the server holds about 8 fds per connected ofi client
# (control socket, fabric socket, and the event queue / completion queue
# wait objects), so 500 clients need ~4000 fds; the usual soft limit is 1024.
# Like a user would, this script raises the soft limit with `ulimit -n`
# (up to the hard limit) before starting anything; see docs/SECURITY.md.
set -u
BUILD=$(cd "${1:-build}" && pwd) || { echo "usage: $0 BUILD_DIR"; exit 2; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SRDMA=$BUILD/srdma
N=${STRESS_CLIENTS:-500}
PER=50
BURST=${STRESS_BURST:-1000}
BURST_PROCS=4
CYCLES=${STRESS_CYCLES:-2000}
VG_CYCLES=${STRESS_VG_CYCLES:-50}
FUZZ_SECONDS=${STRESS_FUZZ_SECONDS:-600}
SKIP=${STRESS_SKIP:-}
T=$(mktemp -d /tmp/srdma-stress-XXXXXX)
SERVER_PID=
results=()
failed=0

cleanup() {
	[ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
	[ -n "${KEEP_T:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
skip() { [[ " $SKIP " == *" $1 "* ]]; }
record() { # record NAME RC
	if [ "$2" -eq 0 ]; then results+=("ok   - $1"); else results+=("FAIL - $1"); failed=$((failed + 1)); fi
	echo "${results[-1]}"
}

most=$((N > BURST ? N : BURST))
need=$((most * 10 + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
	echo "warning: hard fd limit $hard < $need: raise it (limits.conf / systemd LimitNOFILE)"
	ulimit -n "$hard"
else
	ulimit -n "$need"
fi
echo "fd soft limit: $(ulimit -n)"

for t in srdma multi_client echo_probe slowloris ofi_stranger; do
	[ -x "$BUILD/$t" ] || { echo "missing $BUILD/$t: build first"; exit 1; }
done

# ---- 1. 500 concurrent clients ----
if ! skip clients; then
	"$SRDMA" certs "$T/pki" >/dev/null
	# 4 KiB regions, so the figure is the per-client overhead, not the
	# region memory the server chooses to grant.
	"$SRDMA" serve --listen 127.0.0.1:0 --port-file "$T/ports" --certs "$T/pki" \
		--transport ofi --region-size 4096 --max-handshakes 256 \
		--handshake-timeout 60000 >"$T/s.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 200); do [ -s "$T/ports" ] && break; sleep 0.05; done
	read -r CP _ <"$T/ports"
	fds() { ls "/proc/$SERVER_PID/fd" | wc -l; }
	rss() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }
	fd0=$(fds)
	rss0=$(rss)
	procs=$((N / PER))
	pids=()
	t0=$(date +%s)
	for i in $(seq "$procs"); do
		"$BUILD/multi_client" 127.0.0.1 "$CP" "$T/pki" "$PER" --ready "$T/r$i" \
			--go "$T/go" >"$T/m$i.out" 2>&1 &
		pids+=($!)
	done
	for _ in $(seq 3000); do
		n=0
		for i in $(seq "$procs"); do [ -s "$T/r$i" ] && n=$((n + 1)); done
		[ "$n" -eq "$procs" ] && break
		sleep 0.1
	done
	held=$(cat "$T"/r* 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
	sleep 1
	fd1=$(fds)
	rss1=$(rss)
	touch "$T/go"
	bad=0
	for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
	secs=$(($(date +%s) - t0))
	verified=$(cat "$T"/m*.out | awk '/^held/ { s += $4 } END { print s + 0 }')
	sleep 1
	fd2=$(fds)
	rss2=$(rss)
	echo "clients: held $held of $N at once, verified $verified, in ${secs} s"
	echo "clients: server fds $fd0 idle -> $fd1 with $held clients -> $fd2 after;" \
		"$(((fd1 - fd0) / (held > 0 ? held : 1))) fds per client"
	echo "clients: server RSS $rss0 kB idle -> $rss1 kB with $held clients -> $rss2 kB after;" \
		"$(((rss1 - rss0) / (held > 0 ? held : 1))) kB per idle client (regions of 2 x 4 KiB included)"
	record "$N concurrent clients held and verified" "$([ "$held" -eq "$N" ] && [ "$verified" -eq "$N" ] && [ "$bad" -eq 0 ] && echo 0 || echo 1)"
	record "under 1 MiB of server memory per idle client" "$([ $(((rss1 - rss0) / (held > 0 ? held : 1))) -lt 1024 ] && echo 0 || echo 1)"
	[ "$bad" -eq 0 ] || grep -h "multi_client:" "$T"/m*.out | sort | uniq -c | head
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID"
	SERVER_PID=
fi

# ---- 1b. 1000 clients at once ----
if ! skip burst; then
	[ -d "$T/pki" ] || "$SRDMA" certs "$T/pki" >/dev/null
	rm -f "$T/bports"
	"$SRDMA" serve --listen 127.0.0.1:0 --port-file "$T/bports" --certs "$T/pki" \
		--transport ofi --region-size 4096 --metrics 127.0.0.1:0 >"$T/b.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 200); do [ -s "$T/bports" ] && break; sleep 0.05; done
	read -r CP _ MP <"$T/bports"
	hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$SERVER_PID/status"; }
	rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status")
	per=$((BURST / BURST_PROCS))
	pids=()
	for i in $(seq "$BURST_PROCS"); do
		"$BUILD/multi_client" 127.0.0.1 "$CP" "$T/pki" "$per" --burst \
			--start "$T/bgo" >"$T/b$i.out" 2>&1 &
		pids+=($!)
	done
	sleep 1 # every process has its context and waits for the start
	# scrape every 100 ms while the burst runs
	(
		k=0
		while [ ! -e "$T/bdone" ]; do
			curl -sf "http://127.0.0.1:$MP/metrics" >"$T/scrape.$k" 2>/dev/null
			k=$((k + 1))
			sleep 0.1
		done
	) &
	scraper=$!
	t0=$(date +%s%N)
	touch "$T/bgo"
	bad=0
	for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
	ms=$((($(date +%s%N) - t0) / 1000000))
	touch "$T/bdone"
	wait "$scraper"
	verified=$(cat "$T"/b[0-9]*.out | awk '/^held/ { s += $4 } END { print s + 0 }')
	connect_s=$(cat "$T"/b[0-9]*.out | awk '/^burst:/ { if ($5 > m) m = $5 } END { print m + 0 }')
	retries=$(cat "$T"/b[0-9]*.out | awk '/^burst:/ { s += $7 } END { print s + 0 }')
	peak=$(hwm)
	# the scrape with the most handshakes in flight
	best=$(grep -H '^srdma_handshakes_in_flight ' "$T"/scrape.* 2>/dev/null |
		sort -t' ' -k2 -n | tail -1 | cut -d: -f1)
	curl -sf "http://127.0.0.1:$MP/metrics" >"$T/scrape.end"
	echo "burst: $BURST clients started at once: $verified verified; all connected in" \
		"${connect_s} s, all served and verified in $((ms / 1000)).$(printf %03d $((ms % 1000))) s;" \
		"$retries busy retries"
	echo "burst: server peak memory (VmHWM) $peak kB (RSS $rss0 kB before)"
	echo "burst: refusals logged by the server: $(grep -c ' reject ' "$T/b.log")"
	if [ -n "$best" ]; then
		echo "burst: metrics scraped during the burst ($best):"
		grep -v '^#' "$best" | grep -v ' 0$' | sed 's/^/  /'
	fi
	echo "burst: metrics after it:"
	grep -v '^#' "$T/scrape.end" | grep -v ' 0$' | sed 's/^/  /'
	record "$BURST clients at once all served and verified" \
		"$([ "$verified" -eq "$BURST" ] && [ "$bad" -eq 0 ] && echo 0 || echo 1)"
	[ "$bad" -eq 0 ] || grep -h "multi_client:" "$T"/b[0-9]*.out | sort | uniq -c | head
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID"
	SERVER_PID=
fi

# ---- 2. 2000 connect/close cycles ----
if ! skip churn; then
	SRDMA_BUILD=$BUILD SRDMA_SRC=$SRC CYCLES=$CYCLES bash "$SRC/tests/integration/t_churn.sh"
	record "$CYCLES connect/close cycles, fds and RSS back to start" $?
fi

# ---- 3. valgrind through 50 cycles ----
if ! skip valgrind; then
	SRDMA_BUILD=$BUILD SRDMA_SRC=$SRC VG_CYCLES=$VG_CYCLES bash "$SRC/tests/integration/t_valgrind.sh"
	record "valgrind memcheck of the server through $VG_CYCLES cycles" $?
fi

# ---- 4. fuzzing ----
if ! skip fuzz; then
	FB=${FUZZ_BUILD:-$BUILD-fuzz}
	CC=clang cmake -S "$SRC" -B "$FB" -DSRDMA_FUZZ=ON -DBUILD_TESTING=OFF \
		-DCMAKE_BUILD_TYPE=Debug >/dev/null &&
		cmake --build "$FB" -j"$(nproc)" --target fuzzers >/dev/null &&
		FUZZ_SECONDS=$FUZZ_SECONDS bash "$SRC/tests/fuzz/run.sh" "$FB"
	record "every fuzz target for $FUZZ_SECONDS s" $?
fi

echo "---- stress summary ----"
printf '%s\n' "${results[@]}"
[ "$failed" -eq 0 ]
