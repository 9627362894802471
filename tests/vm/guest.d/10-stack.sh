# The kernel RDMA stack: rxe0 exists on eth0, port active, RoCEv2 GIDs,
# the uverbs and rdma_cm device nodes are there.
ibv_devinfo -v -d "$RDMA_DEV" >"$OUT/devinfo" 2>&1
expect_out "ibv_devinfo shows $RDMA_DEV" "hca_id:[[:space:]]*$RDMA_DEV" "$OUT/devinfo"
expect_out "$RDMA_DEV port 1 is PORT_ACTIVE" "state:[[:space:]]*PORT_ACTIVE" "$OUT/devinfo"
expect_out "$RDMA_DEV GID index 1 is IPv4-mapped $VM_IP" \
	"GID\[ *1\]:.*(::ffff:$VM_IP|0000:0000:0000:0000:0000:ffff:0a00:020f).*RoCE v2" "$OUT/devinfo"
rdma link show >"$OUT/rdma-link" 2>&1
expect_out "rdma link: $RDMA_DEV on eth0" "$RDMA_DEV/1 state ACTIVE .*netdev eth0" "$OUT/rdma-link"
check "device nodes uverbs0 and rdma_cm" test -c /dev/infiniband/uverbs0 -a -c /dev/infiniband/rdma_cm
check "memlock limit is unlimited" sh -c '[ "$(ulimit -l)" = unlimited ]'
