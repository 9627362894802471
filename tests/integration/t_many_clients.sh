#!/bin/bash
# 32 concurrent clients, each verifying echo, write and read.
. "$(dirname "$0")/lib.sh"
N=${N_CLIENTS:-32}
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi || exit 1
pids=()
for i in $(seq "$N"); do
	client --certs "$T/pki" --transport ofi --op all --size 16K --count 10 \
		--quiet >"$T/c$i.out" 2>&1 &
	pids+=($!)
done
bad=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || { bad=$((bad + 1)); cat "$T/c$((i + 1)).out"; }
done
check "$N concurrent clients all verified" [ "$bad" -eq 0 ]
check "every client reported OK" [ "$(cat "$T"/c*.out | grep -c 'OK:')" -eq "$N" ]
sleep 0.3
check "server saw $N connects" [ "$(grep -c ' connect ' "$T/s.log")" -eq "$N" ]
check "server saw $N orderly disconnects" [ "$(grep -c 'disconnect .* orderly' "$T/s.log")" -eq "$N" ]
check "orderly shutdown" stop_server
finish
