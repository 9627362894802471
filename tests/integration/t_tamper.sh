#!/bin/bash
# A test build flips one bit of a sealed message, write or read just before
# it is posted (SRDMA_TAMPER): the receiver must detect it, fail that
# connection, deliver nothing, and the server must keep serving others.
# Each case is checked on both sides by the reason it must give: the AEAD
# check that caught it, on the first record or block (nothing before it got
# through), and the server's count of what it delivered (msgs=0 writes=0).
. "$(dirname "$0")/lib.sh"
need_hooks
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi --protect none || exit 1

# server_said N PATTERN: the server's Nth disconnect line (within 5 s)
# matches PATTERN.
server_said() {
	local line
	for _ in $(seq 50); do
		[ "$(grep -c ' disconnect ' "$T/s.log")" -ge "$1" ] && break
		sleep 0.1
	done
	line=$(grep ' disconnect ' "$T/s.log" | sed -n "$1p")
	printf '%s\n' "$line" | grep -qE -- "$2" && return 0
	echo "disconnect $1: want /$2/, server logged: '${line:-nothing}'; its log:"
	sed 's/^/    /' "$T/s.log"
	return 1
}
auth="Data failed authentication: it was tampered with or corrupted\."
n=0
for mode in encrypt integrity; do
	check "tampered send ($mode) detected" expect_fail \
		"FAILED: echo #0: $auth server said: a message from .* failed verification: record 0 failed authentication$" \
		env SRDMA_TAMPER=send "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" \
		--certs "$T/pki" --transport ofi --protect $mode --op echo --count 3
	n=$((n + 1))
	check "... server: failed verification, nothing delivered or echoed" server_said $n \
		"error: a message from .* failed verification: record 0 failed authentication msgs=0 writes=0 "
	check "tampered write ($mode) detected" expect_fail \
		"FAILED: write #0: $auth server said: block 0 of region [0-9]+ failed verification after the peer's write$" \
		env SRDMA_TAMPER=write "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" \
		--certs "$T/pki" --transport ofi --protect $mode --op write --count 3
	n=$((n + 1))
	check "... server: failed verification, no write delivered" server_said $n \
		"error: block 0 of region [0-9]+ failed verification after the peer's write msgs=0 writes=0 "
	check "tampered read ($mode) detected" expect_fail \
		"FAILED: read #0: $auth region [0-9]+: a block read from the peer failed verification, and read again it had not changed \(tampered with on the way\)$" \
		env SRDMA_TAMPER=read "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" \
		--certs "$T/pki" --transport ofi --protect $mode --op read --count 3
	n=$((n + 1))
	check "... server: told by the client why" server_said $n \
		"error: client said: region [0-9]+: a block read from the peer failed verification, and read again it had not changed \(tampered with on the way\) msgs=0 writes=0 "
done
check "server still serves" client --certs "$T/pki" --transport ofi --op all --count 3 --quiet
n=$((n + 1))
check "... an orderly disconnect (the control)" server_said $n " orderly msgs=3 writes=3 "
check "orderly shutdown" stop_server
finish
