#!/bin/sh
# Default guest script of the Soft-RoCE VM (run by /init, see run.sh).
# Sources guest-lib.sh, then every guest.d/*.sh in name order; each section adds
# checks with ok/notok/check/... Prints "N passed, N failed"; exits 1 on failure.
# To add tests, drop a new guest.d/NN-name.sh (plain sh, sourced, no exit).
TESTS=${TESTS:-/srdma/tests/vm}
[ -f "$TESTS/guest-lib.sh" ] || TESTS=$(dirname "$0")
. "$TESTS/guest-lib.sh"

echo "# guest: $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo)"
for part in "$TESTS"/guest.d/*.sh; do
	[ -f "$part" ] || continue
	section "$(basename "$part" .sh)"
	# shellcheck disable=SC1090
	. "$part"
done
summary
