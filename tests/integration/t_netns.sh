#!/bin/bash
# Two hosts: server and client in two network namespaces joined by a veth
# pair, so traffic crosses a real (virtual) link. Needs root.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
need_cmd ip
A=srdma-a-$$; B=srdma-b-$$
cleanup_ns() { ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; }
trap 'cleanup_ns; cleanup' EXIT
# Root without namespaces (a container): a skip here, a failure on CI.
ip netns add "$A" && ip netns add "$B" || skip "cannot create network namespaces"
ip link add va-$$ type veth peer name vb-$$ || skip "cannot create a veth pair"
ip link set va-$$ netns "$A"; ip link set vb-$$ netns "$B"
ip -n "$A" addr add 10.231.0.1/24 dev va-$$; ip -n "$B" addr add 10.231.0.2/24 dev vb-$$
ip -n "$A" link set va-$$ up; ip -n "$B" link set vb-$$ up
ip -n "$A" link set lo up; ip -n "$B" link set lo up
"$SRDMA" certs "$T/pki" --name 10.231.0.1 >/dev/null
ip netns exec "$A" "$SRDMA" serve --listen 10.231.0.1:0 --port-file "$T/ports" \
	--certs "$T/pki" --transport ofi --protect none >"$T/s.log" 2>&1 &
SERVER_PID=$!; PIDS+=("$SERVER_PID")
for _ in $(seq 100); do [ -s "$T/ports" ] && break; sleep 0.05; done
read -r CP FP <"$T/ports"
check "client in another namespace verified all ops" ip netns exec "$B" timeout 60 \
	"$SRDMA" client --connect "10.231.0.1:$CP" --certs "$T/pki" --transport ofi \
	--op all --size 64K --count 10 --quiet
check "encrypt, integrity and none across the link" bash -c "
	for m in encrypt integrity none; do ip netns exec $B timeout 60 '$SRDMA' client \
	--connect 10.231.0.1:$CP --certs '$T/pki' --transport ofi --protect \$m --op all --quiet || exit 1; done"
check "server saw the client's address" grep -q "connect 10.231.0.2" "$T/s.log"
check "orderly shutdown" stop_server
finish
