#!/bin/bash
# An MPI program over the srdma provider with 4 ranks on this machine's
# cores (--oversubscribe; ranks yield when idle): point-to-point, broadcast
# and allreduce over 4 MiB, every value checked (tests/provider/mpi_check.c).
# Then a job where one rank's certificate comes from another CA: it cannot
# join, and the job fails with our sentence instead of hanging.
. "$(dirname "$0")/lib.sh"
need_cmd mpirun.openmpi
[ -x "$BUILD/mpi_check" ] || skip "mpi_check was not built (libopenmpi-dev: make deps installs it)"
make_pki "$T/pki"
make_pki "$T/other"
export FI_SRDMA_CERTS="$T/pki"

four() {
	timeout 180 "${MPIRUN[@]}" --oversubscribe -np 4 -x FI_SRDMA_CERTS \
		"$BUILD/mpi_check" 4 >"$T/four.log" 2>&1 ||
		{ echo "mpirun exited $?"; cat "$T/four.log"; return 1; }
	grep -q '^mpi_check: OK: 4 ranks' "$T/four.log" || { cat "$T/four.log"; return 1; }
}
check "4 ranks: sendrecv, bcast, allreduce over 4 MiB verified" four

stranger() {
	local rc
	timeout 60 "${MPIRUN[@]}" -np 1 env "FI_SRDMA_CERTS=$T/pki" "$BUILD/mpi_check" 1 : \
		-np 1 env "FI_SRDMA_CERTS=$T/other" "$BUILD/mpi_check" 1 >"$T/other.log" 2>&1
	rc=$?
	[ "$rc" -ne 0 ] || { echo "the job succeeded"; cat "$T/other.log"; return 1; }
	[ "$rc" -ne 124 ] || { echo "the job hung (killed after 60 s)"; tail -20 "$T/other.log"; return 1; }
	grep -q "^mpi_check: OK" "$T/other.log" && { echo "mpi_check reported OK"; return 1; }
	grep -q "cannot connect to 127.0.0.1:[0-9]*: The peer's certificate is not signed by a trusted CA" "$T/other.log" ||
		{ echo "no sentence"; cat "$T/other.log"; return 1; }
	grep -q "refused a peer: The peer's certificate is not signed by a trusted CA" "$T/other.log" ||
		{ echo "no refusal on the accepting side"; cat "$T/other.log"; return 1; }
}
check "a rank with another CA's certificate cannot join: the job fails with our sentence" stranger

finish
