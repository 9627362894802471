#!/bin/bash
# The provider as a packager installs it: `cmake --install` puts
# libsrdma-fi.so in $libdir/libfabric (libfabric's own provider directory
# when the prefix is libfabric's) and fi_srdma(7) in man7; with
# FI_PROVIDER_PATH at that directory, fi_info lists it, loading the
# installed libsrdma beside it ($ORIGIN/..) rather than the build tree's.
. "$(dirname "$0")/lib.sh"
need_cmd readelf
P="$T/prefix"

check "cmake --install" bash -c "cmake --install '$BUILD' --prefix '$P' >/dev/null"
LIBDIR=$(dirname "$(find "$P" -name 'libsrdma.so' | head -1)")
check "libsrdma-fi.so installed in \$libdir/libfabric" test -f "$LIBDIR/libfabric/libsrdma-fi.so"
check "fi_srdma(7) installed" test -f "$P/share/man/man7/fi_srdma.7"
check "its RUNPATH is \$ORIGIN/.. (the installed libsrdma)" bash -c \
	"readelf -d '$LIBDIR/libfabric/libsrdma-fi.so' | grep -E 'RUNPATH|RPATH' | grep -qF '[\$ORIGIN/..]'"
loads() {
	local out
	out=$(env -u LD_LIBRARY_PATH FI_PROVIDER_PATH="$LIBDIR/libfabric" LD_DEBUG=libs \
		fi_info -p srdma 2>&1) || { echo "$out" | tail -5; return 1; }
	echo "$out" | grep -qx 'provider: srdma' || { echo "not listed"; return 1; }
	echo "$out" | grep -qE "calling init: $LIBDIR/libfabric/\.\./libsrdma\.so\.0$" ||
		{ echo "libsrdma was not loaded from $LIBDIR:"; echo "$out" | grep 'libsrdma'; return 1; }
}
check "FI_PROVIDER_PATH=\$libdir/libfabric: fi_info -p srdma lists it, with the installed libsrdma" loads

finish
