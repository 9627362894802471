# rdma_cm + verbs end to end through the kernel: rping server and client on
# the VM's own eth0 address (loops through rxe0), and ibv_rc_pingpong on GID 1.
bg_start rping-server 60 rping -s -a "$VM_IP" -C 3 -v
sleep 0.5
f=$(outfile rping-client)
n=0
# The server may still be setting up its listener: retry a refused connect.
while :; do
	timeout 60 rping -c -a "$VM_IP" -C 3 -v >"$f" 2>&1
	rc=$?
	n=$((n + 1))
	if [ "$rc" -ne 0 ] && [ "$n" -lt 5 ] && grep -qiE 'reject|refused|unreachable' "$f"; then
		sleep 0.5
		continue
	fi
	break
done
if [ "$rc" -eq 0 ] && [ "$(grep -c 'ping data: rdma-ping-' "$f")" -ge 3 ]; then
	ok "rping client: 3 pings over rdma_cm to $VM_IP"
else
	notok "rping client: 3 pings over rdma_cm to $VM_IP" "exit $rc"
	show_tail "$f"
fi
bg_wait rping-server
rc=$?
if [ "$rc" -eq 0 ] && grep -q 'server ping data: rdma-ping-' "$OUT/rping-server.bg"; then
	ok "rping server: served 3 pings"
else
	notok "rping server: served 3 pings" "exit $rc"
	show_tail "$OUT/rping-server.bg"
fi

if have ibv_rc_pingpong; then
	bg_start rc-server 60 ibv_rc_pingpong -d "$RDMA_DEV" -g 1 -n 20 -p 18515
	wait_port 18515 10
	check_t 60 "ibv_rc_pingpong: 20 RC round trips on GID 1" \
		ibv_rc_pingpong -d "$RDMA_DEV" -g 1 -n 20 -p 18515 "$VM_IP"
	if bg_wait rc-server; then
		ok "ibv_rc_pingpong server"
	else
		notok "ibv_rc_pingpong server"
		show_tail "$OUT/rc-server.bg"
	fi
fi
