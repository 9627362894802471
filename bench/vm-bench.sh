#!/bin/sh
# Guest script for `make bench VM=1` (bench/run.sh passes it to
# tests/vm/run.sh): srdma over verbs (rxe0) against the raw verbs baseline,
# same op, size and window, in one VM run. Figures go to the console as
# "BENCH-JSON {...}" lines that run.sh collects. busybox sh.
TESTS=${TESTS:-/srdma/tests/vm}
. "$TESTS/guest-lib.sh"

SIZES=${BENCH_SIZES:-64,4K,64K,1M}
WIN=${BENCH_WINDOW:-16}
DUR=${BENCH_DURATION:-1}
P=/tmp/vm-bench
RPORT=7600
rm -rf $P && mkdir -p $P
section "bench: srdma over verbs vs raw verbs (window $WIN, ${DUR}s per point)"

emit() { # LABEL < json lines
	sed -n "s/^{/BENCH-JSON {\"label\":\"$1\",/p"
}

check "bench: srdma certs" srdma certs $P/pki --name "$VM_IP"
srdma serve --listen "$VM_IP:0" --port-file $P/ports --certs $P/pki \
	--transport verbs --protect none --region-size $((WIN * 1024 * 1024)) \
	--quota $((4 * WIN * 1024 * 1024)) --max-msg 1M >$P/serve.log 2>&1 &
SPID=$!
n=0
while [ ! -s $P/ports ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
read CP FP <$P/ports
raw_verbs server $RPORT >$P/raw.log 2>&1 &
RPID=$!
sleep 0.5

for op in write read; do
	for p in none encrypt; do
		if timeout 300 srdma bench --connect "$VM_IP:$CP" --certs $P/pki \
			--transport verbs --op $op --protect $p --size "$SIZES" \
			--window "$WIN" --duration "$DUR" --verify --json \
			>$P/out 2>$P/err; then
			ok "bench: srdma $op $p over verbs"
			emit "vm-srdma-$p" <$P/out
		else
			notok "bench: srdma $op $p over verbs" "$(cat $P/err)"
		fi
	done
	for s in $(echo "$SIZES" | tr , ' '); do
		if timeout 120 raw_verbs client "$VM_IP" $RPORT --op $op --size "$s" \
			--window "$WIN" --duration "$DUR" --json >$P/out 2>$P/err; then
			ok "bench: raw_verbs $op $s"
			emit raw_verbs <$P/out
		else
			notok "bench: raw_verbs $op $s" "$(cat $P/err)"
		fi
	done
done
# set-up cost over verbs (rdma_cm): full and resumed connects, against a
# server with small per-client regions (as bench/run.sh's connect section)
srdma serve --listen "$VM_IP:0" --port-file $P/cports --certs $P/pki \
	--transport verbs --region-size 4K >$P/serve-connect.log 2>&1 &
CPID=$!
n=0
while [ ! -s $P/cports ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
read CCP CFP <$P/cports
if timeout 120 srdma bench --mode connect --connect "$VM_IP:$CCP" \
	--certs $P/pki --transport verbs --iters 50 --json >$P/out 2>$P/err; then
	ok "bench: srdma connect over verbs"
	emit vm-srdma-connect <$P/out
else
	notok "bench: srdma connect over verbs" "$(cat $P/err)"
fi
kill $SPID $RPID $CPID 2>/dev/null
wait
summary
