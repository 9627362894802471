# The verbs backend's unit test on the real kernel stack (rxe0): both sides in
# one process over rdma_cm on $VM_IP; then the raw-rdma_cm stranger tool
# against a port where nothing listens (the CM must reject it).
# unit_test LABEL FILE TAIL CMD...: runs a unit-test binary (up to 240 s);
# ok if it exits 0 and reports " 0 failed", else shows the last TAIL lines.
unit_test() {
	label=$1 f=$2 n=$3
	shift 3
	timeout 240 "$@" >"$f" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && grep -q " 0 failed" "$f"; then
		ok "$label"
	else
		notok "$label" "exit $rc"
		show_tail "$f" "$n"
	fi
}
if have test_verbs; then
	f=$(outfile verbs-unit)
	unit_test "verbs unit: test_verbs on $VM_IP" "$f" 60 \
		env SRDMA_TEST_ADDR="$VM_IP" test_verbs
	expect_out "verbs unit: PSNs read back from the QPs" \
		"client QP [0-9]+ sq_psn ([0-9a-f]+) rq_psn ([0-9a-f]+); server QP [0-9]+ sq_psn" "$f"
	grep -E "memory windows|provider|cycles" "$f" | sed 's/^/#   /'
else
	skip "verbs unit: test_verbs" "not in the build dir"
fi
# The server resource pool on rxe: recycled PD/CQ/QP kits, zeroed rings, the
# previous client's memory-window key dead on the kit it left, QPNs drawn
# from the pool in random order.
if have test_respool; then
	f=$(outfile verbs-respool)
	unit_test "verbs respool: test_respool on $VM_IP" "$f" 40 \
		env SRDMA_TEST_TRANSPORT=verbs SRDMA_TEST_ADDR="$VM_IP" test_respool
	expect_out "verbs respool: old MW key dead on the recycled kit" \
		"previous client's key: The peer refused a remote memory access" "$f"
	grep -E "QPNs|recycled|key|fabric port" "$f" | sed 's/^/#   /'
else
	skip "verbs respool: test_respool" "not in the build dir"
fi
if have rdmacm_stranger; then
	f=$(outfile rdmacm-stranger-closed)
	timeout 60 rdmacm_stranger "$VM_IP" 9 --zero >"$f" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && grep -qx rejected "$f"; then
		ok "rdmacm_stranger: no listener -> rejected"
	else
		notok "rdmacm_stranger: no listener -> rejected" "exit $rc"
		show_tail "$f"
	fi
fi
if have rdmacm_stranger && have rping; then
	# A server that accepts anyone (rping): the stranger must say so.
	bg_start stranger-rping 30 rping -s -a "$VM_IP" -p 7471 -C 1
	f=$(outfile rdmacm-stranger-rping)
	n=0
	while :; do
		timeout 60 rdmacm_stranger "$VM_IP" 7471 --pdata 00112233 >"$f" 2>&1
		rc=$?
		n=$((n + 1))
		[ $rc -eq 0 ] && [ $n -lt 10 ] && { sleep 0.3; continue; } # not listening yet
		break
	done
	if [ $rc -eq 1 ] && grep -qx accepted "$f"; then
		ok "rdmacm_stranger: accepting server -> accepted (exit 1)"
	else
		notok "rdmacm_stranger: accepting server -> accepted (exit 1)" "exit $rc"
		show_tail "$f"
	fi
	bg_wait stranger-rping >/dev/null 2>&1
fi
