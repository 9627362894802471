# Verbs as on real hosts (issue 16), on Soft-RoCE with a second RDMA device:
# rxd0 on dummy0 (10.9.0.1), made first so that it sorts before rxe0 (eth0)
# by name and by index, as an onboard NIC may sort before mlx5_0.
#   - the test build's unit tests with imitated hardware (iWARP, a connect
#     request without QPN, no type-2 windows, small limits, late and failed
#     binds) and the two devices (test_verbs SRDMA_TEST_PART=hw,
#     test_verbs_hw);
#   - `srdma serve` on the wildcard address serves a client on each device,
#     each on its own; auto picks verbs for both and ofi for the loopback;
#   - `ip link set dummy0 down` under a transfer: PORT_ERR seen, that
#     connection failed with a sentence, a client on rxe0 unharmed;
#   - --tos: the DSCP in a capture of connect requests leaving eth0, and the
#     traffic class on the QPs of a connection;
#   - no RNR NAK counted by rxe for sends right after connect;
#   - a non-root server with `ulimit -l 8192`: a smaller pool, and a region
#     too big for the limit refused with a sentence that names `ulimit -l`;
#   - device limits imitated through the tool: no type-2 windows (refused,
#     then --allow-mr-keys), a small max_qp_wr.
# Standalone too: bash tests/vm/run.sh BUILD tests/vm/guest.d/40-verbs-hw.sh
if [ -z "${TESTS:-}" ]; then
	TESTS=/srdma/tests/vm
	. "$TESTS/guest-lib.sh"
	HW_STANDALONE=1
fi
HW=/tmp/vm-hw
IP2=10.9.0.1
TB=/srdma/test-bin
rm -rf $HW && mkdir -p $HW

wait_active() {
	n=0
	while ! ibv_devinfo -d "$1" 2>/dev/null | grep -q PORT_ACTIVE; do
		n=$((n + 1))
		[ $n -gt 100 ] && return 1
		sleep 0.1
	done
}
rnr_count() {
	d=/sys/class/infiniband/$1/ports/1/hw_counters
	echo $(($(cat $d/rcvd_rnr_err 2>/dev/null || echo 0) + $(cat $d/send_rnr_err 2>/dev/null || echo 0)))
}

if ! ip link show dummy0 >/dev/null 2>&1 || ! have srdma; then
	skip "verbs hw" "no dummy0 or no srdma in the build dir"
else
	# init's dummy0 may lack its address (the module makes dummy0 itself).
	ip addr add $IP2/24 dev dummy0 2>/dev/null
	ip link set dummy0 up
	if ! rdma link show rxd0/1 >/dev/null 2>&1; then
		rdma link delete rxe0 &&
			rdma link add rxd0 type rxe netdev dummy0 &&
			rdma link add rxe0 type rxe netdev eth0
	fi
	wait_active rxd0 || echo "# rxd0 never became ACTIVE"
	wait_active rxe0 || echo "# rxe0 never became ACTIVE"
	ibv_devices >$HW/devices 2>&1
	awk 'NR > 2 && NF { print $1; exit }' $HW/devices >$HW/first
	expect_out "verbs hw: rxd0 (dummy0) is listed before rxe0 (eth0)" "^rxd0$" $HW/first

	stamp() { echo "# $1 at $(cut -d' ' -f1 /proc/uptime) s"; }
	stamp "devices ready"
	# --- unit tests of the test build: imitated hardware, two devices ---
	if [ -x $TB/test_verbs ] && [ -x $TB/test_verbs_hw ]; then
		rnr0=$(rnr_count rxe0)
		f=$(outfile verbs-hw-transport)
		timeout 180 env SRDMA_TEST_PART=hw SRDMA_TEST_ADDR="$VM_IP" $TB/test_verbs >"$f" 2>&1
		rc=$?
		if [ $rc -eq 0 ] && grep -q " 0 failed" "$f" && ! grep -q SKIP "$f"; then
			ok "verbs hw: test_verbs (RNR timer, tos, TIMEWAIT, window size, binds, iWARP, limits)"
		else
			notok "verbs hw: test_verbs (RNR timer, tos, TIMEWAIT, window size, binds, iWARP, limits)" "exit $rc"
			show_tail "$f" 40
		fi
		grep -E "QP:|RNR|TIMEWAIT|window|bind|iWARP|limit" "$f" | sed 's/^/#   /'
		echo "#   control: rxe0 counted $(($(rnr_count rxe0) - rnr0)) RNR NAK(s) during test_verbs' early send"
		stamp "test_verbs done"
		f=$(outfile verbs-hw-session)
		timeout 240 env SRDMA_TEST_ADDR="$VM_IP" SRDMA_TEST_ADDR2="$IP2" $TB/test_verbs_hw >"$f" 2>&1
		rc=$?
		if [ $rc -eq 0 ] && grep -q " 0 failed" "$f" && ! grep -q SKIP "$f"; then
			ok "verbs hw: test_verbs_hw (no QPN, iWARP -> ofi, late/failed bind, no MW, max_qp_wr, two devices)"
		else
			notok "verbs hw: test_verbs_hw (no QPN, iWARP -> ofi, late/failed bind, no MW, max_qp_wr, two devices)" "exit $rc"
			show_tail "$f" 40
		fi
		grep -vE "passed, .* failed" "$f" | grep -E "^[a-z0-9]" | sed 's/^/#   /'
	else
		notok "verbs hw: imitated hardware" "no test build in the VM (VM_TEST_BUILD)"
	fi

	stamp "unit tests done"
	# --- the tool: one server on the wildcard address, two devices ---
	check "verbs hw: srdma certs for both addresses" \
		srdma certs $HW/pki --name "$VM_IP" --name "$IP2"
	srdma serve --port-file $HW/ports --certs $HW/pki -vv >$HW/serve.log 2>&1 &
	SPID=$!
	n=0
	while [ ! -s $HW/ports ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	read CP FP <$HW/ports
	expect_out "verbs hw: auto picks verbs for a wildcard server" "auto chose verbs" $HW/serve.log
	hcli() { # HOST ARGS...
		h=$1
		shift
		timeout 60 srdma client --connect "$h:$CP" --certs $HW/pki --peer-name "$VM_IP" "$@"
	}
	hcli "$VM_IP" --op all --count 2 -vv >$HW/c1.out 2>&1
	r1=$?
	hcli "$IP2" --op all --count 2 -vv >$HW/c2.out 2>&1
	r2=$?
	if [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && grep -q "verbs/rxe0" $HW/c1.out && grep -q "verbs/rxd0" $HW/c2.out; then
		ok "verbs hw: clients on both devices served, each on its own (rxe0, rxd0)"
	else
		notok "verbs hw: clients on both devices served, each on its own" "exit $r1/$r2"
		tail -3 $HW/c1.out $HW/c2.out | sed 's/^/#   /'
	fi
	grep -h "auto chose" $HW/c1.out $HW/c2.out | sed 's/^/#   /'
	expect_out "verbs hw: the client's auto says which device reaches $IP2" \
		"auto chose verbs: $IP2 is reached through RDMA device rxd0" $HW/c2.out
	timeout 30 srdma client --connect "127.0.0.1:$CP" --certs $HW/pki -vv --op echo >$HW/lo.out 2>&1
	expect_out "verbs hw: auto picks ofi for the loopback, and says why" \
		"auto chose ofi .*127.0.0.1 is on the loopback" $HW/lo.out

	stamp "two devices done"
	# --- PORT_ERR under a connection ---
	# count_connects ADDR: the server's "connect ADDR:port" lines so far.
	count_connects() { grep -c " connect $1:" $HW/serve.log; }
	wait_connect() { # ADDR BEFORE
		n=0
		while [ "$(count_connects "$1")" -le "$2" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
	}
	k2=$(count_connects "$IP2")
	srdma client --connect "$IP2:$CP" --certs $HW/pki --transport verbs \
		--op write --size 256K --count 1000000 -q >$HW/down.out 2>&1 &
	DPID=$!
	wait_connect "$IP2" "$k2"
	k1=$(count_connects "$VM_IP")
	hcli "$VM_IP" --transport verbs --op all --size 64K --count 40 -q >$HW/up.out 2>&1 &
	UPID=$!
	wait_connect "$VM_IP" "$k1"
	sleep 1
	ip link set dummy0 down
	n=0
	while kill -0 $DPID 2>/dev/null && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
	if kill -0 $DPID 2>/dev/null; then
		kill -9 $DPID
		notok "verbs hw: link down: the connection on rxd0 failed" "still running 15 s later"
	elif wait $DPID; then
		notok "verbs hw: link down: the connection on rxd0 failed" "the client succeeded"
	else
		ok "verbs hw: link down: the connection on rxd0 failed ($((n / 10)).$((n % 10)) s)"
	fi
	sed 's/^/#   /' $HW/down.out | tail -2
	expect_out "verbs hw: link down: the client says so (IBV_EVENT_PORT_ERR)" "went down \(IBV_EVENT_PORT_ERR\)" $HW/down.out
	expect_out "verbs hw: link down: the server saw PORT_ERR" "port 1 of RDMA device rxd0 went down" $HW/serve.log
	if wait $UPID; then ok "verbs hw: link down: a client on rxe0 unharmed"; else
		notok "verbs hw: link down: a client on rxe0 unharmed"; tail -3 $HW/up.out | sed 's/^/#   /'; fi
	ip link set dummy0 up
	wait_active rxd0
	# (Whether rxd0 takes new connections after `ip link set dummy0 up` is
	# not checked: rxe on a dummy netdev does not, even for rping.)
	stamp "link down done"
	# --- traffic class ---
	if have roce_capture && have verbs_tos_probe; then
		roce_capture eth0 6 3 >$HW/cap.out 2>&1 &
		CAP=$!
		sleep 0.3
		timeout 20 verbs_tos_probe 10.0.2.2 4791 0x68 2 >$HW/probe.out 2>&1
		wait $CAP
		sed 's/^/#   /' $HW/probe.out $HW/cap.out | head -4
		expect_out "verbs hw: --tos 0x68: connect requests leave eth0 with DSCP 26" \
			"tos 0x68 dscp 26 $VM_IP -> 10.0.2.2" $HW/cap.out
	else
		skip "verbs hw: DSCP in a capture" "roce_capture/verbs_tos_probe not built"
	fi
	hcli "$VM_IP" --tos 0x68 --op echo --count 2 -vv >$HW/tos.out 2>&1
	expect_out "verbs hw: --tos 0x68: the client's QP has traffic class 0x68" \
		"psn check .*traffic class 0x68" $HW/tos.out
	expect_out "verbs hw: --tos 0x68: the server's QP follows the client's class" \
		"psn check .*traffic class 0x68" $HW/serve.log

	# --- RNR: sends right after connect find their receives ---
	c0=$(rnr_count rxe0)
	hcli "$VM_IP" --op echo --count 3 --reconnect 8 -q >$HW/rnr.out 2>&1
	r=$?
	c1=$(rnr_count rxe0)
	if [ $r -eq 0 ] && [ -f /sys/class/infiniband/rxe0/ports/1/hw_counters/rcvd_rnr_err ] && [ "$c0" = "$c1" ]; then
		ok "verbs hw: 9 connections with an echo right after connect: no RNR NAK (rxe0 counters $c0 -> $c1)"
	else
		notok "verbs hw: no RNR NAK after connect" "exit $r, counters $c0 -> $c1"
		tail -3 $HW/rnr.out | sed 's/^/#   /'
	fi
	kill -TERM $SPID
	wait $SPID

	stamp "tos and RNR done"
	# --- a non-root server under a locked-memory limit ---
	mkdir -p $HW/nobody && cp -r $HW/pki $HW/nobody/ && chown -R 65534:65534 $HW/nobody
	lserve() { # PORTFILE LOG ARGS...
		pf=$1 lg=$2
		shift 2
		su -s /bin/sh nobody -c "ulimit -l 8192; exec /srdma/bin/srdma serve \
			--listen $VM_IP:0 --port-file $pf --certs $HW/nobody/pki --transport verbs -v $*" >$lg 2>&1 &
		LPID=$!
		n=0
		while [ ! -s $pf ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
		read LCP LFP <$pf 2>/dev/null
	}
	lserve $HW/nobody/p1 $HW/l1.log
	expect_out "verbs hw: ulimit -l 8192 (non-root): the server keeps a smaller pool and says why" \
		"spare connections instead of .*ulimit -l" $HW/l1.log
	check "verbs hw: ulimit -l 8192: a client is served" timeout 60 srdma client \
		--connect "$VM_IP:$LCP" --certs $HW/pki --op all --count 2 -q
	kill -TERM $LPID
	wait $LPID
	lserve $HW/nobody/p2 $HW/l2.log --region-size 16M
	timeout 60 srdma client --connect "$VM_IP:$LCP" --certs $HW/pki --op write --count 1 -q >$HW/l2.out 2>&1
	r=$?
	sed 's/^/#   /' $HW/l2.out | tail -1
	if [ $r -ne 0 ] && grep -q "ulimit -l" $HW/l2.out && grep -q "RLIMIT_MEMLOCK" $HW/l2.out; then
		ok "verbs hw: ulimit -l 8192: a 16 MiB region is refused with a sentence naming ulimit -l"
	else
		notok "verbs hw: ulimit -l 8192: a 16 MiB region is refused with a sentence naming ulimit -l" "exit $r"
		tail -5 $HW/l2.log | sed 's/^/#   /'
	fi
	kill -TERM $LPID
	wait $LPID

	stamp "ulimit done"
	# --- device limits imitated through the tool (test build) ---
	if [ -x $TB/srdma ]; then
		tserve() { # PORTFILE LOG ARGS...
			pf=$1 lg=$2
			shift 2
			env SRDMA_TEST_VERBS=no-mw $TB/srdma serve --listen "$VM_IP:0" --port-file "$pf" \
				--certs $HW/pki --transport verbs "$@" >"$lg" 2>&1 &
			TPID=$!
			n=0
			while [ ! -s "$pf" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
			read TCP TFP <"$pf" 2>/dev/null
		}
		tserve $HW/t1 $HW/t1.log
		timeout 60 srdma client --connect "$VM_IP:$TCP" --certs $HW/pki --op write --count 1 -q >$HW/t1.out 2>&1
		r=$?
		sed 's/^/#   /' $HW/t1.out | tail -1
		if [ $r -ne 0 ] && grep -qE "allow[_-]mr[_-]keys" $HW/t1.out; then
			ok "verbs hw: no type-2 windows: regions refused with a sentence"
		else
			notok "verbs hw: no type-2 windows: regions refused with a sentence" "exit $r"
		fi
		kill -TERM $TPID
		wait $TPID
		tserve $HW/t2 $HW/t2.log --allow-mr-keys -v
		check "verbs hw: no type-2 windows, --allow-mr-keys: served with MR keys" timeout 60 srdma client \
			--connect "$VM_IP:$TCP" --certs $HW/pki --op all --count 2 -q
		expect_out "verbs hw: --allow-mr-keys is logged" "no usable type-2 memory windows; remote keys" $HW/t2.log
		env SRDMA_TEST_VERBS=max-qp-wr=32 timeout 60 $TB/srdma client --connect "$VM_IP:$TCP" \
			--certs $HW/pki --op echo -q >$HW/t3.out 2>&1
		r=$?
		sed 's/^/#   /' $HW/t3.out | tail -1
		if [ $r -ne 0 ] && grep -qE "queue[_-]depth" $HW/t3.out; then
			ok "verbs hw: max_qp_wr 32: refused with a sentence naming queue_depth"
		else
			notok "verbs hw: max_qp_wr 32: refused with a sentence naming queue_depth" "exit $r"
		fi
		kill -TERM $TPID
		wait $TPID
	else
		notok "verbs hw: device limits through the tool" "no test build in the VM (VM_TEST_BUILD)"
	fi
	stamp "limits done"
fi
[ -n "${HW_STANDALONE:-}" ] && summary
