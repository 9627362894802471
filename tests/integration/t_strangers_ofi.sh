#!/bin/bash
# Raw libfabric clients that skip TLS and connect straight to the fabric
# port: no private data, zeros, random bytes, a replay of a finished
# session's private data, and a wrong MAC for a live session (half_client
# holds a real session open after PARAMS, waiting for its fabric connect).
# Each is rejected for its own reason, which the server's log names; the
# server goes on serving.
. "$(dirname "$0")/lib.sh"
need_hooks
need_tool ofi_stranger half_client
need_cmd python3
STRANGER="$BUILD/ofi_stranger"
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi || exit 1

# stranger WANT ARGS...: ofi_stranger ARGS at the fabric port prints WANT
# ("rejected": exit 0; "accepted": exit 1).
stranger() {
	local want=$1 out rc code=0; shift
	[ "$want" = accepted ] && code=1
	out=$(timeout 20 "$STRANGER" 127.0.0.1 "$FABRIC_PORT" "$@")
	rc=$?
	[ "$out" = "$want" ] && [ $rc -eq $code ] && return 0
	echo "ofi_stranger $*: exit $rc: $out (want $want)"
	return 1
}
# nth_reject N PATTERN: the server logs its Nth fabric connect rejection
# (within 5 s), and that one matches PATTERN.
nth_reject() {
	local line
	for _ in $(seq 50); do
		[ "$(grep -c 'fabric connect from .* rejected: ' "$T/s.log")" -ge "$1" ] && break
		sleep 0.1
	done
	line=$(grep 'fabric connect from .* rejected: ' "$T/s.log" | sed -n "$1p")
	printf '%s\n' "$line" | grep -qE -- "$2" && return 0
	echo "rejection $1: want /$2/, server logged: '${line:-nothing}'"
	return 1
}
# half NAME: a session held open between PARAMS and the fabric connect;
# writes $T/NAME.pdata (its real private data), .token, .sid, .out.
half() {
	"$BUILD/half_client" 127.0.0.1 "$CTRL_PORT" "$T/pki" "$T/$1" --hold 30 \
		>"$T/$1.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 200); do grep -q '^ready ' "$T/$1.out" && return 0; sleep 0.05; done
	cat "$T/$1.out"
	return 1
}
# told NAME PATTERN: the half-open session NAME heard PATTERN (within 5 s).
told() {
	for _ in $(seq 50); do grep -qE -- "$2" "$T/$1.out" && return 0; sleep 0.1; done
	echo "session $1 was not told /$2/:"
	cat "$T/$1.out"
	return 1
}

# The end of every rejection line: the detail ends where this begins.
end=" \(The fabric connect token was missing, wrong, expired or already used\.\)$"
n=0
check "no private data rejected" stranger rejected --none
n=$((n + 1))
check "... server: no private data" nth_reject $n "rejected: connect private data is 0 bytes, needs 56$end"
check "zero private data rejected" stranger rejected --zero
n=$((n + 1))
check "... server: bad magic" nth_reject $n "rejected: connect private data magic is 0x00000000, not 0x5352444d$end"
# Random bytes, but never the magic (1 in 2^32): the reason is then fixed.
check "random private data rejected" stranger rejected \
	--pdata "00$(head -c 55 /dev/urandom | od -An -tx1 | tr -d ' \n')"
n=$((n + 1))
check "... server: bad magic" nth_reject $n "rejected: connect private data magic is 0x00[0-9a-f]{6}, not 0x5352444d$end"
check "legit client (saving its connect data)" env SRDMA_TEST_SAVE_PDATA="$T/pdata" \
	"$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/pki" --transport ofi \
	--op echo --count 2 --quiet
check "replayed token rejected" stranger rejected --replay "$T/pdata"
n=$((n + 1))
check "... server: its session is gone" nth_reject $n "rejected: unknown or used session$end"

# A wrong MAC for a live session: session A's own private data with one
# MAC byte flipped (the MAC is the last 32 of the 56 bytes). Only the token
# check can refuse it: the session exists, is waiting and is in time.
check "half-open session A held between PARAMS and fabric connect" half A
check "half-open session B held between PARAMS and fabric connect" half B
python3 - "$T/A.pdata" "$T/A.bad" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
assert len(d) == 56
d[56 - 32] ^= 0x01
open(sys.argv[2], 'wb').write(d)
PY
check "wrong MAC for a live session rejected" stranger rejected --replay "$T/A.bad"
n=$((n + 1))
check "... server: the MAC does not match" nth_reject $n \
	"reject 127\.0\.0\.1:[0-9]+ \(client\): fabric connect from .* rejected: the connect token MAC does not match$end"
check "... and session A was told why" told A "^server said: .*the connect token MAC does not match$"
# The wrong attempt burnt A's token: its real private data no longer work.
check "A's real token after the wrong one rejected" stranger rejected --replay "$T/A.pdata"
n=$((n + 1))
check "... server: unknown or used session" nth_reject $n "rejected: unknown or used session$end"
# Positive control: B's real private data are accepted, so what refused A's
# flipped ones was the MAC, not a broken helper or a dead session.
check "correct MAC for live session B accepted (control)" stranger accepted --replay "$T/B.pdata"
sleep 0.3
check "server logged exactly the $n rejections" \
	[ "$(grep -c 'fabric connect from .* rejected: ' "$T/s.log")" -eq "$n" ]
check "server still serves" client --certs "$T/pki" --transport ofi --op all --count 3 --quiet
check "orderly shutdown" stop_server
finish
