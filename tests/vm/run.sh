#!/usr/bin/env bash
# Boot the Soft-RoCE test VM and run a guest script in it.
#
#   bash tests/vm/run.sh BUILD_DIR [GUEST_SCRIPT]
#
# The cached base image (tests/vm/build-image.sh) gets a small cpio appended
# with every executable of BUILD_DIR (-> /srdma/bin), the libraries they need
# that the base lacks, tests/vm and tests/integration (-> /srdma/tests) and the
# guest script (-> /srdma/guest-tests.sh; default tests/vm/guest-tests.sh).
# The console streams to stdout and to $VM_LOG (default BUILD_DIR/vm-console.log);
# the exit status is the guest script's ("VM-EXIT-STATUS=<n>").
#
# Environment:
#   VM_TIMEOUT  overall limit in seconds (default 900); the guest script gets
#               VM_TIMEOUT minus 60
#   VM_SMP      vCPUs (default 2)        VM_MEM  memory (default 2G)
#   VM_ACCEL    qemu accelerator (default tcg; kvm is broken on these hosts)
#   VM_ENV      "NAME=value ..." exported to the guest script
#   VM_APPEND   extra kernel command line
#   VM_LOG      console log path
#   VM_QEMU     qemu binary (default qemu-system-x86_64)
#   VM_KERNEL_DEB  use this kernel .deb instead of apt's newest
#   VM_LINK     "listen:PORT" or "connect:PORT": a second NIC (eth1) on a
#               point-to-point link to another VM (qemu socket netdev on
#               127.0.0.1:PORT); VM_LINK_MAC its MAC (default 52:54:00:77:00:01)
#   VM_FILES    a directory copied into the guest as /srdma/files
#   VM_TEST_BUILD  a test build (-DSRDMA_TEST_HOOKS=ON) whose srdma,
#               test_verbs and test_verbs_hw go to /srdma/test-bin (attack
#               tests, imitated hardware)
#   CI=true     a missing qemu or kernel package is a failure, not a skip
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CACHE=${VM_CACHE:-$HERE/cache}
export VM_CACHE=$CACHE

VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_SMP=${VM_SMP:-2}
VM_MEM=${VM_MEM:-2G}
VM_ACCEL=${VM_ACCEL:-tcg}

say() { echo "vm: $*" >&2; }
unavailable() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: Soft-RoCE VM cannot run: $*" >&2
		exit 1
	fi
	echo "SKIP: Soft-RoCE VM cannot run: $*"
	exit 0
}
die() {
	echo "vm: error: $*" >&2
	exit 1
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	die "usage: $0 BUILD_DIR [GUEST_SCRIPT]"
fi
BUILD=$1
GUEST=${2:-$HERE/guest-tests.sh}
[ -d "$BUILD" ] || die "build dir $BUILD does not exist"
BUILD=$(cd "$BUILD" && pwd)
[ -f "$GUEST" ] || die "guest script $GUEST does not exist"
case "$VM_TIMEOUT" in '' | *[!0-9]*) die "VM_TIMEOUT must be a number of seconds" ;; esac

T_START=$(date +%s.%N)
elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

QEMU=$(command -v "${VM_QEMU:-qemu-system-x86_64}") ||
	unavailable "${VM_QEMU:-qemu-system-x86_64} not found (apt-get install qemu-system-x86)"

bash "$HERE/build-image.sh"
case $? in
0) ;;
2) unavailable "base image prerequisites missing (see build-image message above)" ;;
*) die "building the base image failed" ;;
esac
KERNEL=$CACHE/vmlinux
[ -f "$KERNEL" ] || KERNEL=$CACHE/vmlinuz
T_IMAGE=$(elapsed)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/srdma-vm.XXXXXX") || die "mktemp failed"
QEMU_PID=""
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the per-run cpio ----------------------------------------------------------

STAGE=$WORK/root
mkdir -p "$STAGE/srdma/bin" "$STAGE/srdma/tests"
declare -A IN_BASE=()
while read -r f; do IN_BASE[$f]=1; done <"$CACHE/base.files"

is_elf() { [ "$(head -c4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }

# Copy a library to its canonical path unless the base image has it already.
add_lib() {
	local src=$1 dir dst
	dir=$(cd "$(dirname "$src")" 2>/dev/null && pwd -P) || return 0
	dst="$dir/$(basename "$src")"
	[ -n "${IN_BASE[$dst]:-}" ] && return 0
	[ -e "$STAGE$dst" ] && return 0
	mkdir -p "$STAGE$dir"
	cp -L "$src" "$STAGE$dst"
}

add_deps() {
	local lib
	while read -r lib; do
		[ -n "$lib" ] && add_lib "$lib"
	done < <(ldd "$1" 2>/dev/null | awk '/=> \// { print $3; next } /^[ \t]*\// { print $1 }')
}

nbin=0
while IFS= read -r -d '' f; do
	name=$(basename "$f")
	case "$name" in *.so | *.so.*) continue ;; esac
	if is_elf "$f"; then
		add_deps "$f"
	elif [ "$(head -c2 "$f")" != '#!' ]; then
		continue
	fi
	if [ -e "$STAGE/srdma/bin/$name" ]; then
		say "note: two executables named $name in $BUILD; keeping the first"
		continue
	fi
	cp "$f" "$STAGE/srdma/bin/$name"
	nbin=$((nbin + 1))
done < <(find "$BUILD" \( -name CMakeFiles -o -name _deps -o -name '.*' \) -prune -o \
	-type f -perm -u+x -print0 | sort -z)

# The test build's srdma (hooks for attack tests) beside the default one, and
# its unit tests that imitate hardware (tests/vm/guest.d/40-verbs-hw.sh).
if [ -n "${VM_TEST_BUILD:-}" ]; then
	[ -x "$VM_TEST_BUILD/srdma" ] || die "VM_TEST_BUILD $VM_TEST_BUILD has no srdma"
	mkdir -p "$STAGE/srdma/test-bin"
	for t in srdma test_verbs test_verbs_hw; do
		[ -x "$VM_TEST_BUILD/$t" ] || continue
		add_deps "$VM_TEST_BUILD/$t"
		cp "$VM_TEST_BUILD/$t" "$STAGE/srdma/test-bin/$t"
	done
fi

if [ -n "${VM_FILES:-}" ]; then
	[ -d "$VM_FILES" ] || die "VM_FILES $VM_FILES is not a directory"
	cp -r "$VM_FILES" "$STAGE/srdma/files"
fi
cp "$GUEST" "$STAGE/srdma/guest-tests.sh"
mkdir -p "$STAGE/srdma/tests/vm"
(cd "$HERE" && find . -path ./cache -prune -o -type f -print0 |
	xargs -0 -r cp --parents -t "$STAGE/srdma/tests/vm")
[ -d "$SRC/tests/integration" ] && cp -r "$SRC/tests/integration" "$STAGE/srdma/tests/"

: >"$STAGE/srdma/env"
for kv in ${VM_ENV:-}; do
	case "$kv" in
	[A-Za-z_]*=*)
		k=${kv%%=*}
		v=${kv#*=}
		printf "%s='%s'\n" "$k" "${v//\'/\'\\\'\'}" >>"$STAGE/srdma/env"
		;;
	*) die "VM_ENV entry '$kv' is not NAME=value" ;;
	esac
done

if command -v cpio >/dev/null; then
	(cd "$STAGE" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet) >"$WORK/run.cpio"
else
	(cd "$STAGE" && find . -mindepth 1 | busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$WORK/run.cpio"
fi || die "cannot create the run cpio"
cat "$CACHE/base.cpio" "$WORK/run.cpio" >"$WORK/initrd" || die "cannot write initrd"
T_CPIO=$(elapsed)
say "image ready in ${T_IMAGE}s (+${nbin} executables from $BUILD, initrd $(du -h "$WORK/initrd" | cut -f1), ${T_CPIO}s total)"

# --- boot --------------------------------------------------------------------

GUEST_TIMEOUT=$((VM_TIMEOUT - 60))
[ "$GUEST_TIMEOUT" -ge 30 ] || GUEST_TIMEOUT=30
case "$VM_ACCEL" in
kvm*) CPU=host ;;
*)
	CPU=max
	VM_ACCEL="$VM_ACCEL,thread=multi"
	;;
esac
LOG=${VM_LOG:-$BUILD/vm-console.log}
: >"$LOG" 2>/dev/null || LOG=$WORK/console.log
: >"$LOG"

LINK_ARGS=()
case "${VM_LINK:-}" in
'') ;;
listen:[0-9]* | connect:[0-9]*)
	LINK_ARGS=(-netdev "socket,id=n1,${VM_LINK%%:*}=127.0.0.1:${VM_LINK#*:}"
		-device "virtio-net-pci,netdev=n1,mac=${VM_LINK_MAC:-52:54:00:77:00:01},romfile=")
	;;
*) die "VM_LINK must be listen:PORT or connect:PORT" ;;
esac
APPEND="console=ttyS0 quiet panic=-1 mitigations=off srdma.timeout=$GUEST_TIMEOUT ${VM_APPEND:-}"
say "booting $(basename "$KERNEL") (accel $VM_ACCEL, ${VM_SMP} vCPUs, $VM_MEM, timeout ${VM_TIMEOUT}s)"
timeout -k 5 "$VM_TIMEOUT" "$QEMU" \
	-accel "$VM_ACCEL" -cpu "$CPU" -smp "$VM_SMP" -m "$VM_MEM" \
	-nodefaults -no-user-config -nographic -serial stdio -no-reboot \
	-kernel "$KERNEL" -initrd "$WORK/initrd" -append "$APPEND" \
	-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= \
	"${LINK_ARGS[@]}" </dev/null >"$LOG" 2>&1 &
QEMU_PID=$!
# Stream the console (without carriage returns and terminal escapes). Both run
# in the background so that a signal to this script is handled at once.
tail -s 0.1 -n +1 -f --pid="$QEMU_PID" "$LOG" |
	sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' &
TAIL_PID=$!
wait "$QEMU_PID"
QRC=$?
QEMU_PID=""
wait "$TAIL_PID"

STATUS=$(tr -d '\r' <"$LOG" | sed -n 's/^.*VM-EXIT-STATUS=\([0-9][0-9]*\).*$/\1/p' | tail -n1)
if [ -z "$STATUS" ]; then
	if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
		echo "FAIL: VM timed out after ${VM_TIMEOUT}s (console: $LOG)"
		exit 124
	fi
	echo "FAIL: VM ended without a status line (qemu exit $QRC; console: $LOG)"
	exit 1
fi
say "guest status $STATUS after $(elapsed)s (console: $LOG)"
exit "$STATUS"
