#!/bin/sh
# Guest script of tests/vm/two-hosts.sh (busybox sh). HOST_ROLE=a serves on
# 192.168.77.1 (rxe1 on eth1), HOST_ROLE=b is the client at 192.168.77.2.
# b tells a it is done by connecting to a's TCP port 9000.
TESTS=${TESTS:-/srdma/tests/vm}
. "$TESTS/guest-lib.sh"

A=192.168.77.1
B=192.168.77.2
PKI=/srdma/files/pki
case "${HOST_ROLE:-}" in
a) ME=$A PEER=$B ;;
b) ME=$B PEER=$A ;;
*) echo "two-hosts: HOST_ROLE must be a or b"; exit 2 ;;
esac
section "two hosts: $HOST_ROLE ($ME), peer $PEER"

/usr/sbin/ip link set eth1 up
/usr/sbin/ip addr add "$ME/24" dev eth1
check "rxe1 on eth1" rdma link add rxe1 type rxe netdev eth1
n=0
while ! ibv_devinfo -d rxe1 2>/dev/null | grep -q PORT_ACTIVE && [ $n -lt 100 ]; do
	sleep 0.1; n=$((n + 1))
done
n=0
while ! ping -c 1 -W 1 "$PEER" >/dev/null 2>&1 && [ $n -lt 120 ]; do
	n=$((n + 1))
done
check "link: $PEER answers ping" ping -c 1 -W 2 "$PEER"

# RoCE packets this host's rxe1 received (hardware counter of the port).
rcvd() {
	rdma statistic show link rxe1/1 2>/dev/null |
		sed -n 's/.* rcvd_pkts \([0-9]*\).*/\1/p'
}

if [ "$HOST_ROLE" = a ]; then
	srdma serve --listen "$ME:7471" --certs "$PKI" --transport verbs \
		--device rxe1 --protect none --port-file "$OUT/ports" \
		>"$OUT/serve.log" 2>&1 &
	SPID=$!
	# The owner for b's on-path injection (roce_inject): one client, a
	# sealed read-write region, its raw memory watched.
	if have roce_inject; then
		roce_inject serve "$ME" 7472 "$PKI" --device rxe1 --timeout 300 \
			>"$OUT/inject-serve.log" 2>&1 &
		IPID=$!
	fi
	wait_port 7471 30
	# b asks for the fabric port (for its stranger) on TCP 9001.
	read -r _ FPORT <"$OUT/ports"
	echo "$FPORT" | nc -l -p 9001 >/dev/null 2>&1 &
	# Until b says it is done (or the guest timeout ends us).
	nc -l -p 9000 >"$OUT/done" 2>&1
	expect_out "b finished its clients" "^done" "$OUT/done"
	kill -TERM $SPID
	wait $SPID
	st=$?
	if [ $st -eq 0 ]; then ok "server: orderly shutdown"; else notok "server: orderly shutdown" "exit $st"; fi
	expect_out "server: clients from $PEER over verbs on rxe1" \
		"connect $PEER:[0-9]+ id=client transport=verbs provider=rxe1" "$OUT/serve.log"
	expect_out "server: a resumed reconnect was served" "tls=resumed" "$OUT/serve.log"
	expect_out "server: freed the client killed on the other host" \
		"disconnect $PEER:[0-9]+ id=client error: " "$OUT/serve.log"
	expect_out "server: nothing left at shutdown" \
		"closing 0 clients" "$OUT/serve.log"
	grep -E "connect|disconnect|reject" "$OUT/serve.log" | sed 's/^/#   /' | head -20
	if [ -n "${IPID:-}" ]; then
		n=0
		while kill -0 "$IPID" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
		kill "$IPID" 2>/dev/null
		if wait "$IPID"; then
			ok "injection: the owner saw forged bytes land and rejected them"
		else
			notok "injection: the owner saw forged bytes land and rejected them"
		fi
		sed 's/^/#   /' "$OUT/inject-serve.log"
		expect_out "injection: the forged WRITE landed in the region's memory" \
			"^serve: landed: " "$OUT/inject-serve.log"
		expect_out "injection: srdma_region_get of that block fails (EINTEGRITY)" \
			"srdma_region_get\(block [0-9]+\): Data failed authentication" "$OUT/inject-serve.log"
		expect_out "injection: no SRDMA_EV_PEER_WRITE reached the application" \
			"PEER_WRITE events 0;" "$OUT/inject-serve.log"
		expect_out "injection: the forged NOTICE failed the connection" \
			"PEER_WRITE events 0; connection failed: " "$OUT/inject-serve.log"
	fi
	r=$(rcvd)
	if [ -n "$r" ] && [ "$r" -gt 0 ]; then
		ok "rxe1 received $r RoCE packets from the other host"
	else
		notok "rxe1 received RoCE packets" "rcvd_pkts '$r'"
	fi
else
	client() {
		timeout 120 srdma client --connect "$PEER:7471" --certs "$PKI" \
			--transport verbs --device rxe1 "$@"
	}
	n=0
	while ! client --op echo --count 1 --quiet >"$OUT/first" 2>&1 && [ $n -lt 60 ]; do
		sleep 1; n=$((n + 1))
	done
	expect_out "first client reaches the server on the other host" "OK: echo" "$OUT/first"
	for m in encrypt integrity none; do
		if client --op all --size 64K --count 5 --protect $m --quiet >"$OUT/c-$m" 2>&1; then
			ok "client $m: echo, write, read 64 KiB verified across the link"
		else
			notok "client $m: echo, write, read 64 KiB across the link"; show_tail "$OUT/c-$m"
		fi
		sed 's/^/#   /' "$OUT/c-$m"
	done
	expect_out "client: verbs over rxe1" "verbs/rxe1" "$OUT/c-encrypt"
	# Eight clients at once across the link, each verifying everything.
	i=0
	PIDS=""
	while [ $i -lt 8 ]; do
		client --op all --size 16K --count 4 --quiet >"$OUT/m$i" 2>&1 &
		PIDS="$PIDS $!"
		i=$((i + 1))
	done
	nok=0
	for p in $PIDS; do wait "$p" && nok=$((nok + 1)); done
	if [ $nok -eq 8 ]; then
		ok "8 concurrent clients across the link, all verified"
	else
		notok "8 concurrent clients across the link" "$nok of 8 verified"
		cat "$OUT"/m* | tail -20
	fi
	# A stranger on the fabric: rdma_cm connects to the server's fabric
	# port from this host without TLS, with zero and random private data.
	FPORT=$(nc "$PEER" 9001 </dev/null 2>/dev/null)
	for how in --zero "--pdata 0123456789abcdef"; do
		# shellcheck disable=SC2086
		if timeout 60 rdmacm_stranger "$PEER" "$FPORT" $how >"$OUT/str" 2>&1 &&
			grep -qx rejected "$OUT/str"; then
			ok "stranger from the other host ($how) rejected by the server"
		else
			notok "stranger from the other host ($how) rejected"; show_tail "$OUT/str"
		fi
	done
	# A client killed in the middle of 1 MiB writes (directly, not through
	# client()'s timeout, which would take the SIGKILL); the server must
	# notice across the link, and the next client is served.
	srdma client --connect "$PEER:7471" --certs "$PKI" --transport verbs \
		--device rxe1 --op write --size 1M --count 500 --quiet \
		>"$OUT/victim" 2>&1 &
	VPID=$!
	sleep 3
	if kill -KILL $VPID 2>/dev/null; then
		ok "victim client killed mid-write"
	else
		notok "victim client killed mid-write" "it had already exited"
		show_tail "$OUT/victim"
	fi
	wait $VPID 2>/dev/null
	check "after a client was killed mid-write, the next is served" \
		client --op all --size 4096 --count 3 --quiet
	if client --op echo --count 2 --reconnect 3 --quiet >"$OUT/rec" 2>&1; then
		expect_out "client --reconnect 3: resumed over the link" \
			"^reconnect: 3 connections verified, 0 full TLS handshakes, 3 resumed" "$OUT/rec"
	else
		notok "client --reconnect 3"; show_tail "$OUT/rec"
	fi
	sed 's/^/#   /' "$OUT/rec"
	# Reconnects know the server's fabric port: the route is resolved
	# while TLS runs (debug phase log).
	client --op echo --count 1 --reconnect 2 --quiet -v -v -v >"$OUT/rec2" 2>&1
	expect_out "reconnect: route resolution started during TLS" \
		"route resolution started during TLS" "$OUT/rec2"
	expect_out "reconnect: still verified" "^reconnect: 2 connections verified" "$OUT/rec2"
	# On-path injection in the manner of ReDMArk: the legit client turns
	# injector and forges, outside the library, a RoCEv2 RDMA WRITE with
	# the server QP's number, the PSN it expects and the region's rkey,
	# then the NOTICE that would announce it (host a checks the owner).
	if have roce_inject; then
		timeout 60 roce_inject inject "$PEER" 7472 "$PKI" --device rxe1 \
			--ifname eth1 >"$OUT/inject.log" 2>&1
		rc=$?
		if [ $rc -eq 0 ]; then
			ok "injection: the server's NIC acknowledged a forged RDMA WRITE"
		else
			notok "injection: the server's NIC acknowledged a forged RDMA WRITE" "exit $rc"
		fi
		sed 's/^/#   /' "$OUT/inject.log"
		expect_out "injection: our ICRC matches every captured RoCE frame" \
			"captured ([1-9][0-9]*) RoCE frames, \1 with an ICRC" "$OUT/inject.log"
	else
		skip "injection" "roce_inject not in the build dir"
	fi
	r=$(rcvd)
	if [ -n "$r" ] && [ "$r" -gt 0 ]; then
		ok "rxe1 received $r RoCE packets from the other host"
	else
		notok "rxe1 received RoCE packets" "rcvd_pkts '$r'"
	fi
	echo done | nc "$PEER" 9000
fi
summary
