#!/bin/bash
# A tampered record fails that connection, not the process: in a 3-rank job
# one rank's libsrdma (test build: SRDMA_TAMPER=send) flips one bit of the
# first record it seals. The peer's check catches it, both sides log our
# sentence for that connection, ofi_rxm connects again, and the job
# completes with every value checked.
. "$(dirname "$0")/lib.sh"
need_hooks
need_cmd mpirun.openmpi
[ -x "$BUILD/mpi_check" ] || skip "mpi_check was not built (libopenmpi-dev: make deps installs it)"
make_pki "$T/pki"
export FI_SRDMA_CERTS="$T/pki"

tamper() {
	timeout 120 "${MPIRUN[@]}" --oversubscribe -np 2 -x FI_SRDMA_CERTS "$BUILD/mpi_check" 1 : \
		-np 1 env SRDMA_TAMPER=send "$BUILD/mpi_check" 1 >"$T/tamper.log" 2>&1 ||
		{ echo "mpirun exited $?"; cat "$T/tamper.log"; return 1; }
	grep -q '^mpi_check: OK: 3 ranks' "$T/tamper.log" || { cat "$T/tamper.log"; return 1; }
	grep -qE "srdma:warn: (connection with|cannot connect to|connection request from) 127\.0\.0\.1:[0-9]+ failed: Data failed authentication: it was tampered with or corrupted\.|srdma:warn: cannot connect to 127\.0\.0\.1:[0-9]+: Data failed authentication: it was tampered with or corrupted\." "$T/tamper.log" ||
		{ echo "no connection failed with our sentence"; cat "$T/tamper.log"; return 1; }
}
check "a tampered record fails one connection with our sentence; the job completes" tamper

finish
