#!/bin/bash
# A test build flips one bit of a sealed message, write or read just before
# it is posted (SRDMA_TAMPER): the receiver must detect it, fail that
# connection, deliver nothing, and the server must keep serving others.
. "$(dirname "$0")/lib.sh"
need_hooks
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi --protect none || exit 1
for mode in encrypt integrity; do
	check "tampered send ($mode) detected" expect_fail "verification|tamper|authentic|closed" \
		env SRDMA_TAMPER=send "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" \
		--certs "$T/pki" --transport ofi --protect $mode --op echo --count 3
	check "tampered write ($mode) detected" expect_fail "verification|tamper|authentic|closed" \
		env SRDMA_TAMPER=write "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" \
		--certs "$T/pki" --transport ofi --protect $mode --op write --count 3
	check "tampered read ($mode) detected" expect_fail "failed verification" \
		env SRDMA_TAMPER=read "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" \
		--certs "$T/pki" --transport ofi --protect $mode --op read --count 3
done
sleep 0.3
check "server reported the failed verifications" [ "$(grep -c 'failed verification' "$T/s.log")" -ge 4 ]
check "server never echoed tampered data" bash -c "! grep -q 'msgs=[1-9].*writes' <(grep 'disconnect .* error.*message' '$T/s.log')"
check "server still serves" client --certs "$T/pki" --transport ofi --op all --count 3 --quiet
check "orderly shutdown" stop_server
finish
