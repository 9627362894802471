#!/bin/bash
# SPDX-License-Identifier: MIT
#
# srdma cp against a TLS 1.3 copy of the same file, in the same run, on
# this machine (loopback: libfabric tcp for srdma):
#
#   bench/cp_vs_tls.sh BUILD [SIZE] [ROUNDS] [MODE]
#
# SIZE (default 1G) of random bytes in a temporary directory; ROUNDS
# (default 5) of each, alternating, so a busy machine slows both alike;
# MODE the srdma protection (default encrypt: AES-256-GCM, as TLS's
# TLS_AES_256_GCM_SHA384). Both copies do the same work: read the file,
# SHA-256 it, encrypt and send; receive, decrypt, SHA-256, write a new
# file (no fsync), compare the hashes (bench/tls_tcp --file / --out).
# Two times: the client process's, from start to exit (what a user waits
# for: srdma's includes ~0.3 s of process start and libfabric set-up),
# and the transfer's as each tool reports it (srdma cp: from its START to
# the verdict; tls_tcp: from connect to the server's answer).
# Prints every run, the medians and their ratios; then, as a reference,
# srdma bench --op stream against --op send and --op write and tls_tcp's
# memory stream at 64 KiB and 1 MiB (medians of ROUNDS).
set -u
BUILD=${1:?usage: $0 BUILD [SIZE] [ROUNDS] [MODE]}
SIZE=${2:-1G}
ROUNDS=${3:-5}
MODE=${4:-encrypt}
SRDMA=$BUILD/srdma
TLS=$BUILD/tls_tcp
W=$(mktemp -d /tmp/srdma-cpbench-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$W"' EXIT

"$SRDMA" certs "$W/pki" >/dev/null || exit 1
mkdir -p "$W/dir"
head -c "$SIZE" /dev/urandom >"$W/src" || exit 1
BYTES=$(stat -c %s "$W/src")
"$SRDMA" serve --listen 127.0.0.1:0 --port-file "$W/ports" --certs "$W/pki" \
	--protect none --dir "$W/dir" --region-size 16M --max-msg 1M \
	>"$W/serve.log" 2>&1 &
PIDS+=($!)
"$TLS" server 0 --cert "$W/pki/server.crt" --key "$W/pki/server.key" \
	--out "$W/dir/tls-copy" >"$W/tls.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$W/ports" ] && break; sleep 0.05; done
read -r PORT _ <"$W/ports"
TLS_PORT=""
for _ in $(seq 100); do
	TLS_PORT=$(sed -n 's/^tls_tcp: listening on port \([0-9]*\)$/\1/p' "$W/tls.log")
	[ -n "$TLS_PORT" ] && break
	sleep 0.05
done
[ -n "$PORT" ] && [ -n "$TLS_PORT" ] || { echo "servers did not start"; exit 1; }
# The in-memory reference needs a server that stores nothing: one started
# with --out writes and hashes every byte it gets (it made TLS look 3-4x
# slower than it is in memory).
"$TLS" server 0 --cert "$W/pki/server.crt" --key "$W/pki/server.key" \
	>"$W/tlsmem.log" 2>&1 &
PIDS+=($!)
TLSM_PORT=""
for _ in $(seq 100); do
	TLSM_PORT=$(sed -n 's/^tls_tcp: listening on port \([0-9]*\)$/\1/p' "$W/tlsmem.log")
	[ -n "$TLSM_PORT" ] && break
	sleep 0.05
done
[ -n "$TLSM_PORT" ] || { echo "tls_tcp (memory) did not start"; exit 1; }

med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() { # wall CMD...: seconds from start to exit; fails with CMD
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >"$W/out" 2>&1 || { cat "$W/out"; return 1; }
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $BYTES bytes; srdma $MODE vs TLS 1.3 AES-256-GCM"
CP=""; TL=""; CPX=""; TLX=""
echo "# MB/s: end to end (process start to exit) | transfer (as reported)"
for r in $(seq "$ROUNDS"); do
	t=$(wall "$SRDMA" cp --certs "$W/pki" --port "$PORT" --protect "$MODE" \
		-q "$W/src" 127.0.0.1:copy) || exit 1
	cx=$(sed -n 's/.* s (\([0-9.]*\) MB\/s), SHA-256.*/\1/p' "$W/out")
	cmp -s "$W/src" "$W/dir/copy" || { echo "srdma cp: copy differs"; exit 1; }
	rm -f "$W/dir/copy"
	c=$(echo "$BYTES / $t / 1000000" | bc -l)
	t2=$(wall "$TLS" client 127.0.0.1 "$TLS_PORT" --file "$W/src") || exit 1
	lx=$(sed -n 's/.* s (\([0-9.]*\) GB\/s).*/\1/p' "$W/out")
	lx=$(echo "$lx * 1000" | bc -l)
	cmp -s "$W/src" "$W/dir/tls-copy" || { echo "tls_tcp: copy differs"; exit 1; }
	rm -f "$W/dir/tls-copy"
	l=$(echo "$BYTES / $t2 / 1000000" | bc -l)
	printf 'round %d: srdma cp %6.1f | %6.1f   TLS 1.3 copy %6.1f | %6.1f   ratio %.2f | %.2f\n' \
		"$r" "$c" "$cx" "$l" "$lx" "$(echo "$c / $l" | bc -l)" \
		"$(echo "$cx / $lx" | bc -l)"
	CP="$CP $c"; TL="$TL $l"; CPX="$CPX $cx"; TLX="$TLX $lx"
done
mc=$(echo "$CP" | med); ml=$(echo "$TL" | med)
mcx=$(echo "$CPX" | med); mlx=$(echo "$TLX" | med)
printf 'median:  srdma cp %6.1f | %6.1f   TLS 1.3 copy %6.1f | %6.1f   ratio %.2f | %.2f\n' \
	"$mc" "$mcx" "$ml" "$mlx" "$(echo "$mc / $ml" | bc -l)" \
	"$(echo "$mcx / $mlx" | bc -l)"

echo "# reference: GB/s in memory (no file, no SHA-256), medians of $ROUNDS"
for size in 64K 1M; do
	S=""; SE=""; WR=""; TT=""
	for r in $(seq "$ROUNDS"); do
		for op in stream send write; do
			v=$("$SRDMA" bench --connect "127.0.0.1:$PORT" --certs "$W/pki" \
				--protect "$MODE" --op "$op" --size "$size" \
				--duration 1 --quiet 2>&1 | awk '/^[0-9]/ {print $3}')
			case $op in
			stream) S="$S $v" ;; send) SE="$SE $v" ;; write) WR="$WR $v" ;;
			esac
		done
		n=$(numfmt --from=iec "$size")
		v=$("$TLS" client 127.0.0.1 "$TLSM_PORT" --size "$n" --duration 1 |
			sed -n 's/.* \([0-9.]*\) GB\/s.*/\1/p')
		TT="$TT $v"
	done
	printf '%-4s stream %s  send %s  write %s  tls_tcp %s\n' "$size" \
		"$(echo "$S" | med)" "$(echo "$SE" | med)" "$(echo "$WR" | med)" \
		"$(echo "$TT" | med)"
done
