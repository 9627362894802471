#!/bin/bash
# A client killed with SIGKILL mid-transfer: the server frees it and the
# other clients go on unharmed.
. "$(dirname "$0")/lib.sh"
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi || exit 1
for round in write read echo; do
	size=256K
	[ "$round" = echo ] && size=64K # at most the server's max message
	# Not through `client`: its `timeout` wrapper would take the SIGKILL.
	before=$(grep -c ' connect .* id=' "$T/s.log")
	"$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/pki" \
		--transport ofi --op "$round" --size $size \
		--count 100000 --quiet >"$T/victim.out" 2>&1 &
	victim=$!
	# Killed mid-transfer, never during set-up (slow under ASan).
	for _ in $(seq 200); do
		[ "$(grep -c ' connect .* id=' "$T/s.log")" -gt "$before" ] && break
		sleep 0.05
	done
	others=()
	for i in 1 2 3; do
		client --certs "$T/pki" --transport ofi --op all --size 64K \
			--count 40 --quiet >"$T/o$i.out" 2>&1 &
		others+=($!)
	done
	sleep 1.5
	check "$round victim still running when killed" kill -0 "$victim"
	kill -9 "$victim"
	wait "$victim" 2>/dev/null
	bad=0
	for p in "${others[@]}"; do wait "$p" || bad=$((bad + 1)); done
	check "others unharmed while a $round client was killed" [ "$bad" -eq 0 ]
done
sleep 2.5
check "server logged the killed clients as errors" [ "$(grep -c 'disconnect .* error' "$T/s.log")" -ge 3 ]
check "server still serves" client --certs "$T/pki" --transport ofi --op all --count 3 --quiet
check "server alive" server_alive
check "orderly shutdown" stop_server
finish
