#!/usr/bin/env bash
# Two hosts on a real kernel RDMA stack: two VMs, each with its own Soft-RoCE
# device (rxe1) on a second NIC, joined by a point-to-point link (qemu socket
# netdev on 127.0.0.1). Host a runs `srdma serve`, host b the clients; RoCE
# packets cross the link between two kernels. (rxe in kernel 6.1 does not work
# inside a network namespace, so one VM cannot play both hosts.)
#
#   bash tests/vm/two-hosts.sh BUILD_DIR
#
# Both consoles go to BUILD_DIR/vm-host-{a,b}.log; the exit status is 0 only
# if both guests pass. Without qemu (outside CI) it prints SKIP, as run.sh.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
[ -x "$BUILD/srdma" ] || { echo "two-hosts: no srdma in $BUILD" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/srdma-2h.XXXXXX") || exit 1
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# One CA for both hosts; the server certificate names host a's link address.
mkdir -p "$WORK/files"
"$BUILD/srdma" certs "$WORK/files/pki" --name 192.168.77.1 >/dev/null ||
	{ echo "two-hosts: srdma certs failed" >&2; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

vm() { # ROLE LINK MAC
	VM_SMP=1 VM_MEM=1G VM_TIMEOUT=${VM_TIMEOUT:-420} VM_LINK=$2 VM_LINK_MAC=$3 \
		VM_FILES="$WORK/files" VM_ENV="HOST_ROLE=$1" \
		VM_LOG="$BUILD/vm-host-$1.log" \
		bash "$HERE/run.sh" "$BUILD" "$HERE/two-hosts-guest.sh" \
		>"$WORK/$1.out" 2>&1
}

vm a "listen:$PORT" 52:54:00:77:00:01 &
PIDS+=($!)
PA=$!
# b's qemu connects at start: wait for a's qemu to listen.
for _ in $(seq 600); do
	ss -ltn 2>/dev/null | grep -q "127.0.0.1:$PORT " && break
	kill -0 "$PA" 2>/dev/null || break
	sleep 0.1
done
vm b "connect:$PORT" 52:54:00:77:00:02 &
PIDS+=($!)
PB=$!
wait "$PA"
RA=$?
wait "$PB"
RB=$?
PIDS=()
sed 's/^/a| /' "$WORK/a.out"
sed 's/^/b| /' "$WORK/b.out"
if grep -q '^SKIP' "$WORK/a.out" "$WORK/b.out"; then
	echo "SKIP: two-host VM test (see above)"
	exit 0
fi
echo "two-hosts: host a status $RA, host b status $RB"
[ "$RA" -eq 0 ] && [ "$RB" -eq 0 ]
