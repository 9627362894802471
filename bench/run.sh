#!/usr/bin/env bash
# The whole comparison in one go (what `make bench` runs):
#
#   bash bench/run.sh BUILD_DIR
#
# On the default fabric (libfabric tcp over loopback): `srdma bench` for
# write, read and send in each of encrypt / integrity / none at every size,
# 64-byte send round trips, and in the same run the baselines with the same
# op, size and window: raw libfabric (bench/raw_ofi) and TLS 1.3 over TCP
# with the same AEAD (bench/tls_tcp). Writes bench/out/results.csv and
# results.json, prints a ratio table against the issue's targets and draws
# bench/out/bandwidth.png (gnuplot).
#
# Connect section (issue 7): `srdma bench --mode connect` (full handshakes
# and resumed ones, each connect followed by a verified 64 B echo and a
# close) against its own `srdma serve` (--region-size 4K, so the server's
# per-client demo regions stay out of the figure), with the baselines in the
# same round: the bare fabric connect (raw_ofi --op connect) and TLS 1.3
# over TCP with the same mutual certificates (tls_tcp --op connect, full and
# resumed). Prints resumed vs full and srdma vs TLS-over-TCP set-up rate
# against the issue's targets and adds them to results.* as a "connect-ratios"
# record.
#
# Environment: BENCH_SIZES (default 64,4K,64K,1M), BENCH_DURATION seconds
# per point (default 0.5), BENCH_REPS rounds (default 3; the table and plot
# use the median of the rounds), BENCH_WINDOW (default 16),
# BENCH_CONNECT_ITERS connects per case and round (default 200; 0 skips the
# connect section; BENCH_CONNECT_ONLY=1 runs only the connect section),
# BENCH_KEEP=1 keeps the
# scratch directory (server logs), VM=1 also runs
# bench/vm-bench.sh in the Soft-RoCE VM (srdma over verbs vs raw verbs).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd) || exit 1
OUT=${BENCH_OUT:-$SRC/bench/out}
SIZES=${BENCH_SIZES:-64,4K,64K,1M}
DUR=${BENCH_DURATION:-0.5}
REPS=${BENCH_REPS:-3}
WIN=${BENCH_WINDOW:-16}
CITERS=${BENCH_CONNECT_ITERS:-200}
SRDMA=$BUILD/srdma
T=$(mktemp -d /tmp/srdma-bench-XXXXXX)
PIDS=()

say() { echo "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ -n "${BENCH_KEEP:-}" ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

for b in srdma raw_ofi tls_tcp; do
	[ -x "$BUILD/$b" ] || die "$BUILD/$b is missing (build first: make build)"
done
mkdir -p "$OUT" || die "cannot create $OUT"
rm -f "$OUT"/results.* "$OUT"/bandwidth.png
: >"$T/all.jsonl"
T_START=$(date +%s)

free_port() {
	# A port nothing listens on now (bash only; retried by the servers' start).
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 30000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	die "no free port"
}

# wait_port PORT PID NAME LOG
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	cat "$4" >&2
	die "$3 did not start"
}

# record LABEL < json lines: tags each line and keeps it.
record() {
	sed "s/^{/{\"label\":\"$1\",\"rep\":${REP:-1},/" | grep '^{' |
		tee -a "$T/all.jsonl" >/dev/null
}

# ---- servers ----
"$SRDMA" certs "$T/pki" >/dev/null || die "srdma certs failed"
# srdma serve: ofi, every mode accepted, one 1 MiB slot per op in flight.
start_srdma() {
	rm -f "$T/ports"
	"$SRDMA" serve --listen 127.0.0.1:0 --port-file "$T/ports" --certs "$T/pki" \
		--transport ofi --protect none --region-size $((WIN * 1024 * 1024)) \
		--quota $((4 * WIN * 1024 * 1024)) --max-msg 1M >>"$T/serve.log" 2>&1 &
	SRDMA_PID=$!
	PIDS+=($SRDMA_PID)
	for _ in $(seq 100); do [ -s "$T/ports" ] && break; sleep 0.05; done
	[ -s "$T/ports" ] || { cat "$T/serve.log" >&2; die "srdma serve did not start"; }
	read -r CP _ <"$T/ports"
}
start_srdma
# After a failed run: show why, and bring the server back if it is gone.
srdma_failed() {
	say "warning: srdma bench $* failed; server log tail:"
	tail -n 5 "$T/serve.log" >&2
	if ! kill -0 "$SRDMA_PID" 2>/dev/null; then
		wait "$SRDMA_PID"
		say "warning: srdma serve exited (status $?); restarting it"
		start_srdma
	fi
}

OFI_PORT=$(free_port)
"$BUILD/raw_ofi" server "$OFI_PORT" >"$T/raw_ofi.log" 2>&1 &
PIDS+=($!)
wait_port "$OFI_PORT" $! raw_ofi "$T/raw_ofi.log"
OFI_BUSY_PORT=$(free_port)
"$BUILD/raw_ofi" server "$OFI_BUSY_PORT" --busy >"$T/raw_ofi_busy.log" 2>&1 &
PIDS+=($!)
wait_port "$OFI_BUSY_PORT" $! "raw_ofi --busy" "$T/raw_ofi_busy.log"
TLS_PORT=$(free_port)
"$BUILD/tls_tcp" server "$TLS_PORT" --cert "$T/pki/server.crt" \
	--key "$T/pki/server.key" >"$T/tls.log" 2>&1 &
PIDS+=($!)
wait_port "$TLS_PORT" $! tls_tcp "$T/tls.log"

# Connect section: its own srdma serve (default limits, small demo regions)
# and a TLS server that asks for the client's certificate, as srdma does.
if [ "$CITERS" -gt 0 ]; then
	rm -f "$T/cports"
	"$SRDMA" serve --listen 127.0.0.1:0 --port-file "$T/cports" --certs "$T/pki" \
		--transport ofi --region-size 4K >>"$T/serve-connect.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do [ -s "$T/cports" ] && break; sleep 0.05; done
	[ -s "$T/cports" ] || { cat "$T/serve-connect.log" >&2; die "srdma serve (connect) did not start"; }
	read -r CCP _ <"$T/cports"
	TLSC_PORT=$(free_port)
	"$BUILD/tls_tcp" server "$TLSC_PORT" --cert "$T/pki/server.crt" \
		--key "$T/pki/server.key" --ca "$T/pki/ca.crt" >"$T/tlsc.log" 2>&1 &
	PIDS+=($!)
	wait_port "$TLSC_PORT" $! "tls_tcp (mutual)" "$T/tlsc.log"
fi

measure_connect() {
	say "connect: srdma full + resumed, raw_ofi, tls_tcp full + resumed ($CITERS each)"
	timeout 120 "$SRDMA" bench --mode connect --connect "127.0.0.1:$CCP" \
		--certs "$T/pki" --transport ofi --iters "$CITERS" --json |
		record srdma-connect || say "warning: srdma bench --mode connect failed"
	timeout 60 "$BUILD/raw_ofi" client 127.0.0.1 "$OFI_PORT" --op connect \
		--iters "$CITERS" --json | record raw_ofi ||
		say "warning: raw_ofi --op connect failed"
	timeout 60 "$BUILD/tls_tcp" client 127.0.0.1 "$TLSC_PORT" --op connect \
		--certs "$T/pki" --iters "$CITERS" --json | record tls_tcp ||
		say "warning: tls_tcp --op connect failed"
}

sbench() {
	timeout 120 "$SRDMA" bench --connect "127.0.0.1:$CP" --certs "$T/pki" \
		--transport ofi --json "$@"
}

# One round of every measurement; rounds are interleaved so that load from
# elsewhere on the machine hits all series alike; the table takes medians.
IFS=, read -r -a SZ <<<"$SIZES"
measure_round() {
	# ---- srdma: every op x mode x size ----
	for op in write read send; do
		for p in encrypt integrity none; do
			say "srdma $op $p: sizes $SIZES, ${DUR}s each, window $WIN"
			sbench --op "$op" --protect "$p" --size "$SIZES" --window "$WIN" \
				--duration "$DUR" --verify | record "srdma-$p" ||
				srdma_failed "$op $p"
		done
	done
	# Registered buffers (srdma_mem_register): zero copy in none, sealing
	# straight from the buffer in encrypt.
	for p in encrypt none; do
		say "srdma write $p, registered buffers: 1M"
		sbench --op write --protect "$p" --size 1M --window "$WIN" \
			--duration "$DUR" --registered | record "srdma-$p-reg" ||
			srdma_failed "write $p registered"
	done
	for p in encrypt integrity none; do
		say "srdma send round trip $p: 64 B"
		sbench --op send --mode lat --protect "$p" --size 64 --duration "$DUR" |
			record "srdma-$p" || srdma_failed "send lat $p"
	done

	# ---- baselines ----
	for op in write read send; do
		say "raw_ofi $op: sizes $SIZES"
		for s in "${SZ[@]}"; do
			timeout 60 "$BUILD/raw_ofi" client 127.0.0.1 "$OFI_PORT" --op "$op" \
				--size "$s" --window "$WIN" --duration "$DUR" --json |
				record raw_ofi || say "warning: raw_ofi $op $s failed"
		done
	done
	say "raw_ofi write with FI_DELIVERY_COMPLETE (what srdma uses): sizes $SIZES"
	for s in "${SZ[@]}"; do
		timeout 60 "$BUILD/raw_ofi" client 127.0.0.1 "$OFI_PORT" --op write \
			--size "$s" --window "$WIN" --duration "$DUR" --json \
			--delivery-complete | record raw_ofi_dc
	done
	say "raw_ofi send round trip: 64 B (sleeping and busy-polling)"
	timeout 60 "$BUILD/raw_ofi" client 127.0.0.1 "$OFI_PORT" --op send --mode lat \
		--size 64 --duration "$DUR" --json | record raw_ofi
	timeout 60 "$BUILD/raw_ofi" client 127.0.0.1 "$OFI_BUSY_PORT" --op send \
		--mode lat --size 64 --duration "$DUR" --json --busy | record raw_ofi_busy
	say "tls_tcp stream ($(echo TLS_AES_256_GCM_SHA384)): sizes $SIZES"
	for s in "${SZ[@]}"; do
		timeout 60 "$BUILD/tls_tcp" client 127.0.0.1 "$TLS_PORT" --size "$s" \
			--duration "$DUR" --json | record tls_tcp ||
			say "warning: tls_tcp $s failed"
	done
}
# The AEAD micro-benchmark (one core, no fabric): printed with the targets.
if [ -x "$BUILD/aead_bench" ] && [ -z "${BENCH_CONNECT_ONLY:-}" ]; then
	say "aead_bench: seal GB/s per core, every backend"
	"$BUILD/aead_bench" -r 5 -t 0.3 >"$T/aead.txt" 2>&1 || say "warning: aead_bench failed"
fi
for REP in $(seq "$REPS"); do
	say "round $REP of $REPS"
	[ -z "${BENCH_CONNECT_ONLY:-}" ] && measure_round
	[ "$CITERS" -gt 0 ] && measure_connect
done

# ---- connect figures (median of rounds) and ratios ----
# cfig TOOL FIELD: the median over rounds of FIELD in TOOL's connect records.
cfig() {
	grep "\"tool\":\"$1\",\"op\":\"connect\"" "$T/all.jsonl" |
		sed -n "s/.*\"$2\":\([0-9.][0-9.]*\).*/\1/p" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
cratio() { # A B -> A/B or "n/a"
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
if [ "$CITERS" -gt 0 ]; then
	SF=$(cfig srdma full_connect_us)
	SR=$(cfig srdma resumed_connect_us)
	SFB=$(cfig srdma full_first_byte_us)
	SRB=$(cfig srdma resumed_first_byte_us)
	SFR=$(cfig srdma full_connects_per_s)
	SRR=$(cfig srdma resumed_connects_per_s)
	OC=$(cfig raw_ofi connect_us)
	OB=$(cfig raw_ofi first_byte_us)
	ORR=$(cfig raw_ofi connects_per_s)
	TF=$(cfig tls_tcp full_connect_us)
	TR=$(cfig tls_tcp resumed_connect_us)
	TFB=$(cfig tls_tcp full_first_byte_us)
	TRB=$(cfig tls_tcp resumed_first_byte_us)
	TFR=$(cfig tls_tcp full_connects_per_s)
	TRR=$(cfig tls_tcp resumed_connects_per_s)
	R_RES=$(cratio "$SF" "$SR")
	R_TLS=$(cratio "$TFR" "$SFR")
	R_TLSR=$(cratio "$TRR" "$SRR")
	R_RAW=$(cratio "$ORR" "$SFR")
	printf '{"label":"connect-ratios","rep":0,"tool":"run.sh","op":"connect","mode":"ratio","resumed_speedup":%s,"tls_tcp_over_srdma_full_rate":%s,"tls_tcp_over_srdma_resumed_rate":%s,"raw_ofi_over_srdma_full_rate":%s}\n' \
		"${R_RES/n\/a/null}" "${R_TLS/n\/a/null}" "${R_TLSR/n\/a/null}" "${R_RAW/n\/a/null}" \
		>>"$T/all.jsonl"
fi

if [ "${VM:-}" = 1 ]; then
	say "VM=1: srdma over verbs vs raw verbs in the Soft-RoCE VM"
	VM_ENV="BENCH_SIZES=$SIZES BENCH_WINDOW=$WIN BENCH_DURATION=1 ${VM_ENV:-}" \
		bash "$SRC/tests/vm/run.sh" "$BUILD" "$HERE/vm-bench.sh" |
		tee "$T/vm.log" | grep -E '^(vm|bench)' >&2
	grep '^BENCH-JSON ' "$T/vm.log" | sed 's/^BENCH-JSON //' | tr -d '\r' \
		>>"$T/all.jsonl"
fi

# ---- results ----
cp "$T/all.jsonl" "$OUT/results.jsonl"
awk -f - "$T/all.jsonl" >"$OUT/results.csv" <<'AWK'
function get(k,   v) {
	if (match($0, "\"" k "\":(\"[^\"]*\"|[^,}]*)")) {
		v = substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
		gsub(/"/, "", v)
		return v
	}
	return ""
}
BEGIN {
	n = split("label rep tool op mode size window protect transport provider iters seconds gbytes_per_s gbits_per_s msgs_per_s lat_us_avg lat_us_p50 lat_us_p99 connects_per_s full_connect_us resumed_connect_us full_first_byte_us resumed_first_byte_us full_connects_per_s resumed_connects_per_s connect_us first_byte_us resumed_count resumed_speedup tls_tcp_over_srdma_full_rate", F, " ")
	for (i = 1; i <= n; i++) printf "%s%s", F[i], i < n ? "," : "\n"
}
{ for (i = 1; i <= n; i++) printf "%s%s", get(F[i]), i < n ? "," : "\n" }
AWK
{ echo "["; sed '$!s/$/,/' "$T/all.jsonl"; echo "]"; } >"$OUT/results.json"

# Figures for the table and plot: "label op mode size" -> value.
# (an empty figure is "-", so that the columns stay put)
awk -F, 'function v(x) { return x == "" ? "-" : x }
	NR > 1 { print $1, $4, $5, $6, v($13), v($17), v($15) }' "$OUT/results.csv" >"$T/fig"
fig() { # LABEL OP MODE SIZE [col: 5 = GB/s, 6 = p50 us, 7 = ops/s] -> median of rounds
	awk -v l="$1" -v o="$2" -v m="$3" -v s="$4" -v c="${5:-5}" \
		'$1 == l && $2 == o && $3 == m && $4 == s && $c != "-" { print $c }' "$T/fig" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
ratio() { # A B -> A/B or "n/a"
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
status() { # VALUE OP TARGET
	awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
		if (v == "n/a" || v == "") { print "n/a"; exit }
		ok = op == ">=" ? v + 0 >= t + 0 : v + 0 <= t + 0
		print ok ? "met" : "MISSED" }'
}

echo
echo "== bandwidth, GB/s: median of $REPS rounds (window $WIN, ${DUR}s per point; tls_tcp is a stream) =="
printf "%-6s %-9s %10s %10s %10s %10s %10s %10s\n" op size encrypt integrity none \
	raw_ofi raw_ofi_dc tls_tcp
for op in write read send; do
	for s in $(awk -F, -v o="$op" 'NR > 1 && $4 == o && $5 == "bw" { print $6 }' \
		"$OUT/results.csv" | sort -n -u); do
		t=""
		[ "$op" = send ] && t=$(fig tls_tcp send bw "$s")
		[ "$op" = write ] && t=$(fig tls_tcp send bw "$s")
		dc=""
		[ "$op" = write ] && dc=$(fig raw_ofi_dc write bw "$s")
		printf "%-6s %-9s %10s %10s %10s %10s %10s %10s\n" "$op" "$s" \
			"$(fig srdma-encrypt "$op" bw "$s")" "$(fig srdma-integrity "$op" bw "$s")" \
			"$(fig srdma-none "$op" bw "$s")" "$(fig raw_ofi "$op" bw "$s")" \
			"${dc:--}" "${t:--}"
	done
done

M=1048576
N1=$(fig srdma-none write bw $M)
NR1=$(fig srdma-none-reg write bw $M)
E1=$(fig srdma-encrypt write bw $M)
ER1=$(fig srdma-encrypt-reg write bw $M)
I1=$(fig srdma-integrity write bw $M)
R1=$(fig raw_ofi write bw $M)
D1=$(fig raw_ofi_dc write bw $M)
T1=$(fig tls_tcp send bw $M)
LE=$(fig srdma-encrypt send lat 64 6)
LI=$(fig srdma-integrity send lat 64 6)
LN=$(fig srdma-none send lat 64 6)
LR=$(fig raw_ofi send lat 64 6)
LB=$(fig raw_ofi_busy send lat 64 6)
r_nr=$(ratio "$NR1" "$R1")
r_et=$(ratio "$E1" "$T1")
r_en=$(ratio "$E1" "$N1")
d_lat=$(awk -v a="$LE" -v b="$LN" 'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.2f", a - b }')
AEAD=$(awk '$1 == 4096 { print $3 }' "$T/aead.txt" 2>/dev/null)
echo
echo "== targets (issue 15; window $WIN, medians of $REPS rounds, ratios within this run) =="
printf "%-50s %8s %8s  %s\n" "figure" value target status
for op in write read; do
	for s in 64 4096; do
		for p in encrypt integrity none; do
			r=$(ratio "$(fig "srdma-$p" "$op" bw "$s" 7)" "$(fig raw_ofi "$op" bw "$s" 7)")
			printf "%-50s %8s %8s  %s\n" "$op $s B $p / raw_ofi (ops/s)" "$r" ">=0.70" "$(status "$r" ">=" 0.7)"
		done
	done
done
printf "%-50s %8s %8s  %s\n" "none registered / raw_ofi (write 1M)" "$r_nr" ">=0.90" "$(status "$r_nr" ">=" 0.9)"
printf "%-50s %8s %8s  %s\n" "encrypt / none (write 1M)" "$r_en" ">=0.80" "$(status "$r_en" ">=" 0.8)"
printf "%-50s %8s %8s  %s\n" "encrypt / tls_tcp (write 1M vs stream 1M)" "$r_et" ">=1.50" "$(status "$r_et" ">=" 1.5)"
printf "%-50s %8s %8s  %s\n" "RTT p50 encrypt - none, 64 B send (us)" "$d_lat" "<=3.00" "$(status "$d_lat" "<=" 3)"
printf "%-50s %8s %8s  %s\n" "AEAD seal 4 KiB, ipsec-mb (GB/s per core)" "${AEAD:-n/a}" ">=8.00" "$(status "${AEAD:-n/a}" ">=" 8)"
if grep -q '"transport":"verbs"' "$T/all.jsonl"; then
	VN=$(fig vm-srdma-none write bw 65536)
	VR=$(fig raw_verbs write bw 65536)
	printf "%-50s %8s %8s  %s\n" "VM verbs: none / raw_verbs (write 64K)" \
		"$(ratio "$VN" "$VR")" ">=0.80" "$(status "$(ratio "$VN" "$VR")" ">=" 0.8)"
else
	printf "%-50s %8s %8s  %s\n" "VM verbs: none / raw_verbs (write 64K)" "-" ">=0.80" "run with VM=1"
fi
echo
echo "== other ratios =="
printf "%-50s %8s\n" "none (staged) / raw_ofi (write 1M)" "$(ratio "$N1" "$R1")"
printf "%-50s %8s\n" "encrypt registered / none registered (write 1M)" "$(ratio "$ER1" "$NR1")"
printf "%-50s %8s\n" "none / raw_ofi with FI_DELIVERY_COMPLETE" "$(ratio "$N1" "$D1")"
printf "%-50s %8s\n" "integrity / none (write 1M)" "$(ratio "$I1" "$N1")"
printf "%-50s %8s\n" "none / raw_ofi (read 1M)" "$(ratio "$(fig srdma-none read bw $M)" "$(fig raw_ofi read bw $M)")"
printf "%-50s %8s\n" "none / raw_ofi (send 1M)" "$(ratio "$(fig srdma-none send bw $M)" "$(fig raw_ofi send bw $M)")"
printf "%-50s %8s\n" "encrypt / tls_tcp (send 1M)" "$(ratio "$(fig srdma-encrypt send bw $M)" "$T1")"
echo "64 B send RTT p50 (us): encrypt ${LE:-n/a}, integrity ${LI:-n/a}, none ${LN:-n/a}, raw_ofi ${LR:-n/a} (sleeping), ${LB:-n/a} (busy-poll)"
if grep -q '"transport":"verbs"' "$T/all.jsonl"; then
	VN=$(fig vm-srdma-none write bw $M)
	VR=$(fig raw_verbs write bw $M)
	VE=$(fig vm-srdma-encrypt write bw $M)
	printf "%-50s %8s\n" "VM verbs: none / raw_verbs (write 1M)" "$(ratio "$VN" "$VR")"
	printf "%-50s %8s\n" "VM verbs: encrypt / none (write 1M)" "$(ratio "$VE" "$VN")"
fi
if [ -s "$T/aead.txt" ]; then
	echo
	echo "== AEAD micro-benchmark (bench/aead_bench) =="
	cat "$T/aead.txt"
fi

if [ "$CITERS" -gt 0 ]; then
	echo
	echo "== connect: sequential set-up, median of $REPS rounds ($CITERS connects per case; connect + verified 64 B echo + close) =="
	printf "%-18s %12s %12s %12s\n" case "connect[us]" "1st-byte[us]" "conn/s"
	printf "%-18s %12s %12s %12s\n" "srdma full" "${SF:-n/a}" "${SFB:-n/a}" "${SFR:-n/a}"
	printf "%-18s %12s %12s %12s\n" "srdma resumed" "${SR:-n/a}" "${SRB:-n/a}" "${SRR:-n/a}"
	printf "%-18s %12s %12s %12s\n" "raw_ofi" "${OC:-n/a}" "${OB:-n/a}" "${ORR:-n/a}"
	printf "%-18s %12s %12s %12s\n" "tls_tcp full" "${TF:-n/a}" "${TFB:-n/a}" "${TFR:-n/a}"
	printf "%-18s %12s %12s %12s\n" "tls_tcp resumed" "${TR:-n/a}" "${TRB:-n/a}" "${TRR:-n/a}"
	echo
	echo "== connect targets (ofi tcp, loopback) =="
	printf "%-44s %8s %8s  %s\n" "figure" value target status
	printf "%-44s %8s %8s  %s\n" "srdma full / resumed connect (median us)" "$R_RES" ">=2.00" "$(status "$R_RES" ">=" 2)"
	printf "%-44s %8s %8s  %s\n" "tls_tcp full rate / srdma full rate" "$R_TLS" "<=3.00" "$(status "$R_TLS" "<=" 3)"
	printf "%-44s %8s\n" "tls_tcp resumed rate / srdma resumed rate" "$R_TLSR"
	printf "%-44s %8s\n" "raw_ofi rate / srdma full rate" "$R_RAW"
fi

# ---- plot ----
mkdir -p "$T/plot"
for l in srdma-encrypt srdma-integrity srdma-none raw_ofi raw_ofi_dc tls_tcp \
	raw_verbs vm-srdma-none vm-srdma-encrypt; do
	for op in write read send; do
		for s in $(awk -F, -v l="$l" -v o="$op" '$1 == l && $4 == o && $5 == "bw" { print $6 }' \
			"$OUT/results.csv" | sort -n -u); do
			echo "$s $(fig "$l" "$op" bw "$s")"
		done >"$T/plot/$op-$l.dat"
	done
done
if command -v gnuplot >/dev/null; then
	gnuplot -e "dir='$T/plot'; out='$OUT/bandwidth.png'" "$HERE/plot.gp" 2>"$T/gp.err" &&
		echo && echo "plot: $OUT/bandwidth.png" ||
		{ cat "$T/gp.err" >&2; say "warning: gnuplot failed"; }
else
	say "warning: gnuplot not installed (apt-get install gnuplot-nox): no plot"
fi
echo "raw figures: $OUT/results.csv, $OUT/results.json ($(($(date +%s) - T_START)) s)"
