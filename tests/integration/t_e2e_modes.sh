#!/bin/bash
# Every operation in every protection mode over libfabric tcp, verified by the
# real client; sizes that are not block multiples included.
. "$(dirname "$0")/lib.sh"
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi --protect none || exit 1
for mode in encrypt integrity none; do
	for op in echo write read; do
		for size in 1 4096 5000 65536; do
			check "$op $mode size $size" client --certs "$T/pki" \
				--transport ofi --protect "$mode" --op "$op" \
				--size "$size" --count 5 --quiet
		done
	done
	check "all $mode 256K" client --certs "$T/pki" --transport ofi \
		--protect "$mode" --op write --size 256K --count 3 --quiet
done
check "server still alive" server_alive
check "server logged connects with identity" grep -q "connect .* id=client" "$T/s.log"
check "orderly shutdown" stop_server
check "shutdown logged" grep -q "stopped:" "$T/s.log"
finish
