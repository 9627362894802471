#!/bin/bash
# srdma cp into a full file system (issue 19): a small tmpfs under --dir;
# a file that does not fit is refused at once with a sentence saying how
# much it needs and how much is free, no partial copy is left taking the
# space, and a file that fits still goes. Needs root (mount): skipped
# (77) otherwise, failed under CI.
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ]; then
	if [ "${CI:-}" = true ]; then echo "needs root to mount a tmpfs"; exit 1; fi
	echo "SKIP: needs root to mount a tmpfs"; exit 77
fi
mkdir -p "$T/full"
mount -t tmpfs -o size=8m tmpfs "$T/full" || { echo "cannot mount a tmpfs"; exit 1; }
trap 'umount "$T/full" 2>/dev/null; cleanup' EXIT
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi --dir "$T/full" || exit 1
cpy() {
	timeout 60 "$SRDMA" cp --certs "$T/pki" --transport ofi \
		--port "$CTRL_PORT" "$@"
}
head -c 16M /dev/urandom >"$T/big"
head -c 2M /dev/urandom >"$T/small"
check "a file larger than the free space is refused with a sentence" \
	expect_fail "refused: no space left on the server for 'big': it needs 16.0 MiB, [0-9.]+ [KM]iB are free" \
	cpy "$T/big" 127.0.0.1:big
check "... nothing left in place of it" [ ! -e "$T/full/big" ]
check "... nor a partial copy" [ ! -e "$T/full/.big.srdma-part" ]
check "a file that fits still goes" cpy "$T/small" 127.0.0.1:small -q
check "... identical" cmp "$T/small" "$T/full/small"
head -c 7M /dev/urandom >"$T/seven"
check "once the space is taken, the next one is refused too" \
	expect_fail "refused: no space left on the server for 'seven': it needs 7.0 MiB" \
	cpy "$T/seven" 127.0.0.1:seven
check "server alive" server_alive
check "orderly shutdown" stop_server
finish
