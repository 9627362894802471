# End to end over verbs on the real kernel RDMA stack (rxe0): the real
# `srdma serve` and `srdma client`, every op in every mode, 8 concurrent
# clients, a client killed mid-transfer, negotiated PSNs on the QPs,
# strangers (rping, raw rdma_cm with no/wrong/replayed token) rejected.
if have srdma; then
	P=/tmp/vm-e2e
	rm -rf $P && mkdir -p $P
	check "verbs e2e: srdma certs" srdma certs $P/pki --name "$VM_IP"
	srdma serve --listen "$VM_IP:0" --port-file $P/ports --certs $P/pki \
		--transport verbs --protect none -vv >$P/serve.log 2>&1 &
	SPID=$!
	n=0
	while [ ! -s $P/ports ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	read CP FP <$P/ports
	expect_out "verbs e2e: server listening on verbs" "listening on .*fabric port" $P/serve.log
	cli() { timeout 120 srdma client --connect "$VM_IP:$CP" --certs $P/pki --transport verbs "$@"; }
	for m in encrypt integrity none; do
		for op in echo write read; do
			check "verbs e2e: $op $m 5000 B" cli --protect $m --op $op --size 5000 --count 4 --quiet
		done
		check "verbs e2e: all $m 64K" cli --protect $m --op all --size 64K --count 4 --quiet
	done
	# 8 concurrent clients.
	i=0
	while [ $i -lt 8 ]; do
		cli --op all --size 16K --count 5 --quiet >$P/c$i.out 2>&1 &
		eval "C$i=\$!"
		i=$((i + 1))
	done
	bad=0
	i=0
	while [ $i -lt 8 ]; do
		eval "wait \$C$i" || bad=$((bad + 1))
		i=$((i + 1))
	done
	if [ $bad -eq 0 ]; then ok "verbs e2e: 8 concurrent clients verified"; else
		notok "verbs e2e: 8 concurrent clients verified" "$bad failed"; cat $P/c*.out | tail -20; fi
	# A client killed mid-transfer; another runs meanwhile.
	# Directly, not through cli's `timeout`, which would take the SIGKILL.
	before=$(grep -c ' connect .* id=' $P/serve.log)
	srdma client --connect "$VM_IP:$CP" --certs $P/pki --transport verbs \
		--op write --size 256K --count 100000 --quiet >/dev/null 2>&1 &
	V=$!
	# Killed mid-transfer, never during set-up (slow under TCG and load).
	n=0
	while [ "$(grep -c ' connect .* id=' $P/serve.log)" -le "$before" ] && [ $n -lt 300 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	cli --op all --size 64K --count 20 --quiet >$P/other.out 2>&1 &
	O=$!
	sleep 2
	kill -9 $V
	if wait $O; then ok "verbs e2e: other client unharmed by a killed one"; else
		notok "verbs e2e: other client unharmed by a killed one"; cat $P/other.out; fi
	n=0
	while ! grep -q "disconnect .* error" $P/serve.log && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	expect_out "verbs e2e: server freed the killed client" "disconnect .* error" $P/serve.log
	# PSNs agreed over TLS are on the QPs (read back with ibv_query_qp right
	# after the QP reached RTS), and differ between connections.
	grep "psn check" $P/serve.log | sed 's/.*agreed sq \(0x[0-9a-f]*\) rq \(0x[0-9a-f]*\), on QP [0-9]* sq \(0x[0-9a-f]*\) rq \(0x[0-9a-f]*\).*/\1 \2 \3 \4/' >$P/psn.txt
	if [ "$(wc -l <$P/psn.txt)" -ge 4 ] &&
		awk '$1 != $3 || $2 != $4 { bad = 1 } END { exit bad }' $P/psn.txt &&
		[ "$(cut -d' ' -f1 $P/psn.txt | sort -u | wc -l)" -eq "$(wc -l <$P/psn.txt)" ]; then
		ok "verbs e2e: agreed PSNs are on the QPs and differ per connection ($(wc -l <$P/psn.txt) connections)"
	else
		notok "verbs e2e: agreed PSNs are on the QPs and differ per connection"
		head -5 $P/psn.txt
	fi
	# Strangers at the rdma_cm port.
	# rejections: fabric connects the server refused so far.
	rejections() { grep -c 'reject .*fabric connect from .* rejected: ' $P/serve.log; }
	if have rping; then
		r0=$(rejections)
		timeout 20 rping -c -a "$VM_IP" -p "$FP" -C 1 >$P/rping.out 2>&1
		rc=$?
		sleep 0.3
		# Failing is not enough (rping fails for many reasons): the
		# server must have refused its connect.
		if [ $rc -ne 0 ] && [ "$(rejections)" -eq $((r0 + 1)) ]; then
			ok "verbs e2e: rping -c at the fabric port is rejected"
		else
			notok "verbs e2e: rping -c at the fabric port is rejected" "exit $rc"
			cat $P/rping.out; grep reject $P/serve.log | tail -3
		fi
	fi
	if have rdmacm_stranger; then
		check_t 30 "verbs e2e: raw rdma_cm, no private data -> rejected" rdmacm_stranger "$VM_IP" "$FP" --none
		check_t 30 "verbs e2e: raw rdma_cm, zero private data -> rejected" rdmacm_stranger "$VM_IP" "$FP" --zero
		check "verbs e2e: legit client saves its connect data" env SRDMA_TEST_SAVE_PDATA=$P/pdata \
			timeout 60 /srdma/test-bin/srdma client --connect "$VM_IP:$CP" --certs $P/pki --transport verbs --op echo --count 2 --quiet
		check_t 30 "verbs e2e: replayed token -> rejected" rdmacm_stranger "$VM_IP" "$FP" --replay $P/pdata
		sleep 0.3
		expect_out "verbs e2e: ... server: its session is gone" \
			"reject .*fabric connect from .* rejected: unknown or used session" $P/serve.log
		# A live session's valid, unused token and MAC for QPN 0x1234,
		# presented from another QP: only the QPN check can refuse it.
		if have half_client; then
			half_client "$VM_IP" "$CP" $P/pki $P/hc --verbs-qpn 0x1234 >$P/hc.out 2>&1 &
			HC=$!
			n=0
			while ! grep -q '^ready' $P/hc.out && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
			check_t 30 "verbs e2e: a live token from another QP -> rejected" \
				rdmacm_stranger "$VM_IP" "$FP" --replay $P/hc.pdata
			expect_out "verbs e2e: ... by the QPN check" "connecting QPN does not match" $P/serve.log
			kill $HC 2>/dev/null
			wait $HC 2>/dev/null
		else
			notok "verbs e2e: a live token from another QP -> rejected" "half_client missing"
		fi
	fi
	check "verbs e2e: server still serves after strangers" cli --op all --count 3 --quiet
	# Tampering is caught on verbs too (the test build's srdma has the
	# hook): the client fails, and the server says why.
	if [ -x /srdma/test-bin/srdma ]; then
		SRDMA_TAMPER=write timeout 60 /srdma/test-bin/srdma client \
			--connect $VM_IP:$CP --certs $P/pki --transport verbs \
			--op write --count 2 --quiet >"$P/tamper.out" 2>&1
		rc=$?
		check "verbs e2e: tampered write: the client fails" test $rc -ne 0 -a $rc -ne 124
		check "verbs e2e: tampered write: the server caught it" \
			grep -q "failed verification after the peer's write" "$P/serve.log"
	else
		notok "verbs e2e: tampered write detected" "no test build in the VM (VM_TEST_BUILD)"
	fi
	check "verbs e2e: auto picks verbs here" sh -c "timeout 60 srdma client --connect $VM_IP:$CP \
		--certs $P/pki --op echo --count 1 | grep -q 'verbs/rxe0'"
	kill -TERM $SPID
	n=0
	while kill -0 $SPID 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
	if kill -0 $SPID 2>/dev/null; then notok "verbs e2e: orderly server shutdown"; kill -9 $SPID; else
		ok "verbs e2e: orderly server shutdown"; fi
	grep -E "reject|psn check" $P/serve.log | head -8 | sed 's/^/#   /'
else
	skip "verbs e2e" "srdma not in the build dir"
fi
if have srdma; then
	f=$(outfile demo-verbs)
	timeout 180 srdma demo --transport verbs --host "$VM_IP" >"$f" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && grep -q "every transfer verified" "$f" && grep -q "verbs (rxe0)" "$f"; then
		ok "srdma demo --transport verbs on rxe0"
	else
		notok "srdma demo --transport verbs on rxe0" "exit $rc"
		show_tail "$f" 40
	fi
	grep -E "random PSNs|RDMA write of|RDMA read back|echo:" "$f" | sed 's/^/#   /'
fi
