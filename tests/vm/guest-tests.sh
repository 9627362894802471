#!/bin/sh
# Default guest script of the Soft-RoCE VM (run by /init, see run.sh).
# Sources guest-lib.sh, then every guest.d/*.sh in name order; each section adds
# checks with ok/notok/check/... Prints "N passed, N failed"; exits 1 on failure.
# To add tests, drop a new guest.d/NN-name.sh (plain sh, sourced, no exit).
TESTS=${TESTS:-/srdma/tests/vm}
[ -f "$TESTS/guest-lib.sh" ] || TESTS=$(dirname "$0")
. "$TESTS/guest-lib.sh"

echo "# guest: $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo)"
# GUEST_PARTS="20-verbs-unit 30-e2e-verbs" (VM_ENV) runs only those parts
# (make mutants uses it); a name that matches no part is a failure.
for want in ${GUEST_PARTS:-}; do
	[ -f "$TESTS/guest.d/$want.sh" ] || { echo "not ok - no guest part $want"; exit 1; }
done
for part in "$TESTS"/guest.d/*.sh; do
	[ -f "$part" ] || continue
	if [ -n "${GUEST_PARTS:-}" ]; then
		case " $GUEST_PARTS " in
		*" $(basename "$part" .sh) "*) ;;
		*) continue ;;
		esac
	fi
	section "$(basename "$part" .sh)"
	# shellcheck disable=SC1090
	. "$part"
done
summary
