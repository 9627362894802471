#!/bin/bash
# The provider's FI_EP_MSG endpoint driven directly (tests/provider/
# fi_rma_check.c): connection data both ways, fi_reject with data, remote
# CQ data, inject, RMA writes and reads at odd byte offsets (every byte
# checked), and RMA outside what the peer registered (a wrong key, a range
# past the end, a region registered for writes only): refused, the connection fails with our sentence on both
# sides, and both processes go on to exit cleanly. Last, ofi_rxm over the
# provider with a CQ that has a wait fd, sending to its own address.
. "$(dirname "$0")/lib.sh"
need_tool fi_rma_check fi_rdm_self
make_pki "$T/pki"
export FI_SRDMA_CERTS="$T/pki"

# run MODE: server and client of fi_rma_check MODE; both must exit 0.
run() {
	local mode=$1 port spid
	port=$(free_port)
	"${PRELOAD[@]}" timeout 60 "$BUILD/fi_rma_check" server "$port" "$mode" >"$T/$mode.srv" 2>&1 &
	spid=$!
	PIDS+=("$spid")
	for _ in $(seq 100); do
		grep -q '^listening' "$T/$mode.srv" && break
		sleep 0.05
	done
	"${PRELOAD[@]}" timeout 60 "$BUILD/fi_rma_check" client "$port" "$mode" >"$T/$mode.cli" 2>&1 ||
		{ echo "client ($mode) failed:"; cat "$T/$mode.cli" "$T/$mode.srv"; return 1; }
	wait "$spid" || { echo "server ($mode) failed:"; cat "$T/$mode.srv" "$T/$mode.cli"; return 1; }
	grep -q '^fi_rma_check: OK' "$T/$mode.cli" && grep -q '^fi_rma_check: OK' "$T/$mode.srv"
}

check "connect/accept with data, remote CQ data, inject, write and read at odd offsets" run ok
check "fi_reject with data: the client's FI_ECONNREFUSED carries it" run reject

refused() {
	run "$1" || return 1
	grep -q "CQ error .*: srdma: connection with 127.0.0.1:[0-9]* failed: The peer refused a remote memory access\. 127\.0\.0\.1:[0-9]* said: the peer's RMA read of 100 bytes at 0x[0-9a-f]* with key 0x[0-9a-f]* is outside what this side registered for it" "$T/$1.cli" ||
		{ echo "client: no sentence"; cat "$T/$1.cli"; return 1; }
	grep -q "failing the connection with 127.0.0.1:[0-9]*: the peer's RMA read of 100 bytes" "$T/$1.srv" ||
		{ echo "server: no refusal logged"; cat "$T/$1.srv"; return 1; }
}
check "a read with a key the peer never gave: refused (FI_EACCES, our sentence)" refused bad-key
check "a read past the end of the peer's registration: refused (FI_EACCES, our sentence)" refused bad-range
check "a read of a region the peer registered for writes only: refused (FI_EACCES, our sentence)" refused bad-access

self() {
	local out
	out=$("${PRELOAD[@]}" timeout 60 "$BUILD/fi_rdm_self" 2>&1) || { echo "$out"; return 1; }
	echo "$out" | grep -q '^fi_rdm_self: OK'
}
check "srdma;ofi_rxm with a wait fd: a tagged message to itself, fi_cq_sread" self

finish
