#!/bin/bash
# Open MPI unchanged over the srdma provider: NetPIPE (NPopenmpi) between two
# ranks through the ofi MTL (srdma;ofi_rxm) completes its table up to 1 MiB,
# and the provider's log shows every connection authenticated with TLS 1.3
# and its payloads protected with AES-256-GCM.
. "$(dirname "$0")/lib.sh"
need_cmd mpirun.openmpi NPopenmpi python3
make_pki "$T/pki"
export FI_SRDMA_CERTS="$T/pki" FI_SRDMA_LOG=info

netpipe() {
	# -n 5: five repetitions a size (the table, not a benchmark); -p 0:
	# no +/-3 byte perturbations.
	(cd "$T" && timeout 120 "${MPIRUN[@]}" -np 2 -x FI_SRDMA_CERTS \
		-x FI_SRDMA_LOG NPopenmpi -u 1048576 -n 5 -p 0 -o "$T/np.out") \
		>"$T/np.log" 2>&1 || { echo "mpirun exited $?"; cat "$T/np.log"; return 1; }
	grep -qE '^ *[0-9]+: +1048576 bytes +5 times --> +[0-9.]+ Mbps' "$T/np.log" ||
		{ echo "NetPIPE's table does not reach 1 MiB"; cat "$T/np.log"; return 1; }
	[ "$(wc -l <"$T/np.out")" -ge 20 ] ||
		{ echo "np.out has $(wc -l <"$T/np.out") rows"; return 1; }
}
check "mpirun -np 2 ... mtl_ofi_provider_include srdma NPopenmpi -u 1048576: table complete" netpipe

protected() {
	local est pids p
	# One line per established connection on each side.
	est=$(grep -cE 'srdma:info: (connected to|accepted) ' "$T/np.log")
	[ "$est" -ge 2 ] || { echo "$est connections logged"; cat "$T/np.log"; return 1; }
	if grep -E 'srdma:info: (connected to|accepted) ' "$T/np.log" |
		grep -vE ': TLSv1\.3 TLS_AES_256_GCM_SHA384, encrypt AES-256-GCM, peer (client|server), ofi/tcp$'; then
		echo "a connection above is not TLS 1.3 + AES-256-GCM"
		return 1
	fi
	# Both ranks connected (each process logged its own side).
	pids=$(grep -oE 'libfabric:[0-9]+:srdma:info: (connected to|accepted) ' "$T/np.log" |
		cut -d: -f2 | sort -u | wc -l)
	[ "$pids" -eq 2 ] || { echo "connections logged by $pids processes"; return 1; }
}
check "every connection: TLS 1.3, encrypt AES-256-GCM (both ranks' logs)" protected

finish
