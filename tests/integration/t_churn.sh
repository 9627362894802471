#!/bin/bash
# Connect/close churn (issue 6): CYCLES clients (default 300, two at a time)
# each connect, verify one echo, write and read, and close. The server's fd
# count must return exactly to its level after warm-up and its RSS to within
# RSS_SLACK_KB (allocator caches). Strangers and refused clients are mixed
# in, since those paths free things too. tests/stress/run.sh runs the same
# script with CYCLES=2000.
. "$(dirname "$0")/lib.sh"
CYCLES=${CYCLES:-300}
PAR=${PAR:-2}
WARM=${WARM:-20}
RSS_SLACK_KB=${RSS_SLACK_KB:-4096}
make_pki "$T/pki" client
make_pki "$T/other" client
start_server s --certs "$T/pki" --transport ofi --handshake-timeout 5000 || exit 1

fds() { ls "/proc/$SERVER_PID/fd" | wc -l; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }
wait_fds() {
	for _ in $(seq 200); do [ "$(fds)" -le "$1" ] && return 0; sleep 0.1; done
	return 1
}
cycle() {
	"$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/pki" --transport ofi \
		--op all --size 4096 --count 1 --timeout 20000 --quiet >/dev/null 2>>"$T/churn.err"
}
# worker N COUNT: runs COUNT cycles, every 25th a refused or stranger one.
worker() {
	local bad=0
	for i in $(seq "$2"); do
		case $((i % 25)) in
		7) "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/other" \
			--transport ofi --op echo --quiet >/dev/null 2>&1 ;;
		13) printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 bash -c \
			"cat > /dev/tcp/127.0.0.1/$CTRL_PORT" 2>/dev/null ;;
		esac
		cycle || bad=$((bad + 1))
	done
	echo "$bad" >"$T/w$1.bad"
}

for _ in $(seq "$WARM"); do cycle; done
sleep 0.5
fd0=$(fds)
rss0=$(rss_kb)
echo "# after $WARM warm-up cycles: server fds $fd0, RSS $rss0 kB"
t0=$(date +%s)
per=$((CYCLES / PAR))
for w in $(seq "$PAR"); do worker "$w" "$per" & done
peak_fd=$fd0
peak_rss=$rss0
while [ "$(jobs -rp | wc -l)" -gt 1 ]; do # the server is a job too
	f=$(fds)
	r=$(rss_kb)
	[ "$f" -gt "$peak_fd" ] && peak_fd=$f
	[ "$r" -gt "$peak_rss" ] && peak_rss=$r
	sleep 0.5
done
wait_fds "$fd0"
sleep 1
fd1=$(fds)
rss1=$(rss_kb)
secs=$(($(date +%s) - t0))
bad=$(cat "$T"/w*.bad | awk '{ s += $1 } END { print s }')
echo "# $((per * PAR)) cycles in ${secs} s: fds $fd0 -> peak $peak_fd -> $fd1;" \
	"RSS $rss0 -> peak $peak_rss -> $rss1 kB"
check "$((per * PAR)) connect/close cycles all verified ($bad failed)" [ "$bad" -eq 0 ]
[ "$bad" -eq 0 ] || head -5 "$T/churn.err"
check "server fds back to start ($fd1 vs $fd0)" [ "$fd1" -eq "$fd0" ]
check "server RSS back to start ±${RSS_SLACK_KB} kB ($rss1 vs $rss0)" \
	[ "$rss1" -le $((rss0 + RSS_SLACK_KB)) ]
check "server logged every cycle as orderly" \
	[ "$(grep -c 'disconnect .* orderly' "$T/s.log")" -ge $((per * PAR + WARM)) ]
check "server alive" server_alive
check "orderly shutdown" stop_server
finish
