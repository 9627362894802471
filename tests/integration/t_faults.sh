#!/bin/bash
# Faults (issue 6):
#   - server SIGKILL: every client reports a clear error within a bounded
#     time and exits non-zero;
#   - clients SIGKILLed mid-write / mid-read (see also t_kill_client.sh): the
#     server's fd count returns to its idle level;
#   - a client stopped with SIGSTOP mid-echo-stream does not slow the others
#     (their echo latency is measured before and during the stall);
#   - a client that keeps sending but never reads does not slow the others
#     and does not grow the server without bound;
#   - link failure (root only): the veth between two namespaces goes down
#     mid-transfer, both sides report an error within a bounded time, the
#     link comes back and a new connection works.
# Limits are generous for slow shared machines; the figures are printed.
. "$(dirname "$0")/lib.sh"
need_tool echo_probe
PROBE="$BUILD/echo_probe"
make_pki "$T/pki" client
KILL_BOUND=${KILL_BOUND:-20}   # s for clients to notice a dead server
LINK_BOUND=${LINK_BOUND:-45}   # s for both sides to notice a dead link
FLOOD_RSS_MB=${FLOOD_RSS_MB:-256}

fds() { ls "/proc/$SERVER_PID/fd" 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null; }
# wait_fds N: until the server holds at most N fds (20 s). A leak shows as
# more fds than idle; fewer is the server trimming what it kept warm (the
# fabric's and the pool's descriptors after the warm-up client), not a fault.
wait_fds() {
	for _ in $(seq 200); do [ "$(fds)" -le "$1" ] && return 0; sleep 0.1; done
	echo "server holds $(fds) fds, want at most $1"
	return 1
}
p50() { sed -n 's/.*p50 \([0-9]*\) us.*/\1/p' "$1"; }
p99() { sed -n 's/.*p99 \([0-9]*\) us.*/\1/p' "$1"; }

# ---- server SIGKILL ----
start_server k --certs "$T/pki" --transport ofi || exit 1
pids=()
i=0
for op in echo write read all; do
	i=$((i + 1))
	"$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/pki" --transport ofi \
		--op "$op" --size 64K --count 1000000 --quiet >"$T/k$i.out" 2>&1 &
	pids+=($!)
done
"$PROBE" 127.0.0.1 "$CTRL_PORT" "$T/pki" --lat 100000 --gap-ms 20 >"$T/k5.out" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
	[ "$(grep -c ' connect ' "$T/k.log")" -ge 5 ] && break
	sleep 0.1
done
sleep 1
check "5 clients busy before the server is killed" [ "$(grep -c ' connect ' "$T/k.log")" -ge 5 ]
kill -9 "$SERVER_PID"
t0=$(date +%s%N)
late=0
bad=0
for p in "${pids[@]}"; do
	for _ in $(seq $((KILL_BOUND * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$p" 2>/dev/null; then late=$((late + 1)); kill -9 "$p"; fi
	wait "$p" && bad=$((bad + 1)) # exit 0 would be wrong
done
ms=$((($(date +%s%N) - t0) / 1000000))
echo "# all 5 clients exited ${ms} ms after the server's SIGKILL"
check "every client exited within ${KILL_BOUND} s of the server's death" [ "$late" -eq 0 ]
check "every client exited non-zero" [ "$bad" -eq 0 ]
# clear_error FILE: the client named the operation that failed and said the
# connection was closed or lost (not a crash, a hang or silence).
clear_error() {
	grep -qE "^(srdma client: FAILED: [a-z-]+|echo_probe: echo) #[0-9]+: .*(closed|lost)" "$1" && return 0
	echo "no clear error in $1:"
	sed 's/^/    /' "$1"
	return 1
}
for i in 1 2 3 4 5; do
	check "client $i gave a clear error" clear_error "$T/k$i.out"
done

# ---- clients SIGKILLed mid-transfer: the server frees them ----
start_server s --certs "$T/pki" --transport ofi || exit 1
check "warm-up client" client --certs "$T/pki" --transport ofi --op all --count 2 --quiet
# The idle level: once the server has let the warm-up client go and its fd
# count holds still for a second (measured at once, it could still count
# some of that client's: later checks then saw fewer fds than "idle").
for _ in $(seq 100); do grep -q ' disconnect ' "$T/s.log" && break; sleep 0.1; done
base_fds=$(fds)
for _ in $(seq 10); do
	sleep 1
	[ "$(fds)" -eq "$base_fds" ] && break
	base_fds=$(fds)
done
for op in write read; do
	"$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/pki" --transport ofi \
		--op $op --size 256K --count 1000000 --quiet >/dev/null 2>&1 &
	v=$!
	sleep 1.5
	check "$op victim running when killed" kill -0 "$v"
	kill -9 "$v"
	wait "$v" 2>/dev/null
done
check "server fds back to idle ($base_fds) after the killed clients" wait_fds "$base_fds"

# ---- a stalled client (SIGSTOP) must not slow the others ----
"$PROBE" 127.0.0.1 "$CTRL_PORT" "$T/pki" --lat 400 >"$T/base.out" 2>&1
check "baseline latency measured" [ -n "$(p50 "$T/base.out")" ]
"$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/pki" --transport ofi \
	--op echo --size 64K --count 1000000 --quiet >/dev/null 2>&1 &
v=$!
sleep 1.5
kill -STOP "$v"
sleep 0.5
"$PROBE" 127.0.0.1 "$CTRL_PORT" "$T/pki" --lat 400 >"$T/stall.out" 2>&1
rc=$?
kill -CONT "$v"
kill -9 "$v"
wait "$v" 2>/dev/null
echo "# baseline: $(cat "$T/base.out")"
echo "# one client stopped: $(cat "$T/stall.out")"
check "others verified while a client was stopped" [ "$rc" -eq 0 ]
b=$(p50 "$T/base.out")
s=$(p50 "$T/stall.out")
check "p50 latency not degraded by a stopped client (${s} vs ${b} us)" \
	[ "${s:-999999}" -le $((b * 5 + 2000)) ]
check "server fds back to idle after the stopped client" wait_fds "$base_fds"

# ---- a client that sends but never reads ----
rss0=$(rss_kb)
"$PROBE" 127.0.0.1 "$CTRL_PORT" "$T/pki" --flood 6 >"$T/flood.out" 2>&1 &
fl=$!
sleep 1
"$PROBE" 127.0.0.1 "$CTRL_PORT" "$T/pki" --lat 400 >"$T/flood_lat.out" 2>&1 &
lp=$!
peak=$rss0
over=0
while kill -0 "$fl" 2>/dev/null; do
	r=$(rss_kb)
	[ "${r:-0}" -gt "$peak" ] && peak=$r
	if [ "${r:-0}" -gt $((rss0 + FLOOD_RSS_MB * 1024)) ]; then
		over=1
		kill -9 "$fl" # protect the machine
		break
	fi
	sleep 0.2
done
wait "$fl" 2>/dev/null
wait "$lp"
rc=$?
echo "# non-reading client: $(cat "$T/flood.out" 2>/dev/null) server RSS ${rss0} -> peak ${peak} kB"
echo "# others meanwhile: $(cat "$T/flood_lat.out")"
check "others verified while a client did not read" [ "$rc" -eq 0 ]
s=$(p50 "$T/flood_lat.out")
check "p50 latency not degraded by a non-reading client (${s} vs ${b} us)" \
	[ "${s:-999999}" -le $((b * 5 + 2000)) ]
check "server memory bounded under a non-reading client (peak +$(((peak - rss0) / 1024)) MiB, limit ${FLOOD_RSS_MB})" \
	[ "$over" -eq 0 ]
# ... because the server cut it off (not because it never flooded).
check "... the non-reading client was cut off and told why" \
	grep -q "cut off: server said: the client stopped reading its echoes" "$T/flood.out"
check "... the server logged why" grep -q "reject .*: it stopped reading its echoes" "$T/s.log"
check "server alive" server_alive
check "orderly shutdown" stop_server

# ---- link failure between two namespaces (root) ----
# Without them the checks above stand but the test says SKIP (ctest:
# Skipped, not Passed); on CI, which runs as root, that is a failure.
[ "$(id -u)" -eq 0 ] || skip "link failure needs root (network namespaces)"
need_cmd ip
ip netns add "srdma-probe-$$" || skip "link failure: cannot create a network namespace"
ip netns del "srdma-probe-$$"
NA=srdma-fa-$$
NB=srdma-fb-$$
VA=vfa$$
VB=vfb$$
cleanup_ns() { ip netns del "$NA" 2>/dev/null; ip netns del "$NB" 2>/dev/null; }
trap 'cleanup_ns; cleanup' EXIT
ip netns add "$NA" && ip netns add "$NB" || exit 1
ip link add "$VA" type veth peer name "$VB" || exit 1
ip link set "$VA" netns "$NA"
ip link set "$VB" netns "$NB"
ip -n "$NA" addr add 10.233.0.1/24 dev "$VA"
ip -n "$NB" addr add 10.233.0.2/24 dev "$VB"
ip -n "$NA" link set "$VA" up
ip -n "$NB" link set "$VB" up
ip -n "$NA" link set lo up
ip -n "$NB" link set lo up
"$SRDMA" certs "$T/npki" --name 10.233.0.1 >/dev/null
ip netns exec "$NA" "$SRDMA" serve --listen 10.233.0.1:0 --port-file "$T/n.ports" \
	--certs "$T/npki" --transport ofi >"$T/n.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 100); do [ -s "$T/n.ports" ] && break; sleep 0.05; done
read -r NCP _ <"$T/n.ports"
ip netns exec "$NB" "$SRDMA" client --connect "10.233.0.1:$NCP" --certs "$T/npki" \
	--transport ofi --op write --size 256K --count 1000000 --timeout 5000 --quiet \
	>"$T/nc.out" 2>&1 &
nc=$!
for _ in $(seq 200); do grep -q ' connect ' "$T/n.log" && break; sleep 0.1; done
sleep 1
check "transfer running across the link" kill -0 "$nc"
ip -n "$NA" link set "$VA" down
t0=$(date +%s)
for _ in $(seq $((LINK_BOUND * 10))); do kill -0 "$nc" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$nc" 2>/dev/null; then kill -9 "$nc"; cl=late; else cl=$(($(date +%s) - t0)); fi
wait "$nc"
ncrc=$?
echo "# link down: client reported after ${cl} s: $(grep FAILED "$T/nc.out")"
check "client reported the dead link within ${LINK_BOUND} s" [ "$cl" != late ]
check "client exited non-zero" [ "$ncrc" -ne 0 ]
for _ in $(seq $((LINK_BOUND * 10))); do
	grep -q 'disconnect .* error' "$T/n.log" && break
	[ $(($(date +%s) - t0)) -ge "$LINK_BOUND" ] && break
	sleep 0.1
done
sv=$(($(date +%s) - t0))
echo "# link down: server reported after ${sv} s: $(grep 'disconnect' "$T/n.log")"
check "server reported the dead link within ${LINK_BOUND} s" grep -q 'disconnect .* error' "$T/n.log"
ip -n "$NA" link set "$VA" up
# The neighbour entry went stale while the link was down: wait until the
# link carries packets again (else the connect may meet EHOSTUNREACH).
for _ in $(seq 50); do
	ip netns exec "$NB" ping -c 1 -W 1 10.233.0.1 >/dev/null 2>&1 && break
	sleep 0.2
done
check "after the link is back, a new connection verifies all ops" ip netns exec "$NB" \
	timeout 60 "$SRDMA" client --connect "10.233.0.1:$NCP" --certs "$T/npki" \
	--transport ofi --op all --count 3 --quiet
check "server alive" server_alive
check "orderly shutdown" stop_server
finish
