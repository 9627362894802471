#!/bin/bash
# The installed library as a user gets it: `cmake --install`, pkg-config,
# a program built against the shared library, and only the public API
# exported (-fvisibility=hidden). What ships is the default build, with no
# test hooks: `make test` runs this from its test build and names the
# default one in SRDMA_RELEASE_BUILD.
. "$(dirname "$0")/lib.sh"
P="$T/prefix"
REL=${SRDMA_RELEASE_BUILD:-}
if [ -z "$REL" ]; then
	if [ -n "${CI:-}" ]; then
		notok "SRDMA_RELEASE_BUILD names the default build (make test sets it)"
		# Test hooks never ship: the strings that drive them are in the test
# build's library (the control, so the search can find them) and in nothing
# that was installed.
hooks='SRDMA_TAMPER|SRDMA_TEST_SAVE_PDATA|SRDMA_TEST_VERBS'
if grep -q 'SRDMA_TEST_HOOKS:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
	check "the test build's library holds the hooks (control)" \
		grep -aqE "$hooks" "$BUILD/libsrdma.so"
fi
check "no installed file holds a test hook" bash -c \
	"files=\$(find '$P' -type f); test -n \"\$files\" && ! grep -alE '$hooks' \$files"
finish
		exit 1
	fi
	echo "note: SRDMA_RELEASE_BUILD unset; installing $BUILD"
	REL=$BUILD
fi
check "cmake --install" bash -c "cmake --install '$REL' --prefix '$P' >/dev/null"
check "header installed" test -f "$P/include/srdma.h"
PCDIR=$(dirname "$(find "$P" -name srdma.pc | head -1)")
check "srdma.pc installed" test -f "$PCDIR/srdma.pc"
export PKG_CONFIG_PATH="$PCDIR"
cat >"$T/hello.c" <<'C'
#include <stdio.h>
#include <srdma.h>
int main(void)
{
	struct srdma_config cfg;
	srdma_ctx *ctx;
	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	int rc = srdma_ctx_create(&cfg, &ctx); /* no certificates: must fail */
	printf("%s %d %s\n", srdma_version(), rc, srdma_error_detail());
	return rc == SRDMA_ECONFIG ? 0 : 1;
}
C
check "a program builds with pkg-config" bash -c \
	"cc -std=c11 -Wall -Werror \$(pkg-config --cflags srdma) '$T/hello.c' -o '$T/hello' \$(pkg-config --libs srdma)"
LIBDIR=$(pkg-config --variable=libdir srdma)
check "and runs against the shared library" env LD_LIBRARY_PATH="$LIBDIR" "$T/hello"
check "shared library installed" test -f "$LIBDIR/libsrdma.so"
check "shared library exports only srdma_* symbols" bash -c \
	"test -f '$LIBDIR/libsrdma.so' && ! nm -D --defined-only '$LIBDIR/libsrdma.so' | awk '\$2 ~ /[TDB]/ {print \$3}' | grep -v '^srdma_' | grep -v '^_'"
check "internal srdma__ symbols are hidden" bash -c \
	"test -f '$LIBDIR/libsrdma.so' && ! nm -D --defined-only '$LIBDIR/libsrdma.so' | grep -q ' srdma__'"
# The tool is a user like any other: it links the shared library and finds
# the installed one through its RUNPATH, not the build tree's.
check "the installed srdma links the shared library" bash -c \
	"readelf -d '$P/bin/srdma' | grep -q 'NEEDED.*libsrdma\.so'"
check "and runs without LD_LIBRARY_PATH" bash -c \
	"env -u LD_LIBRARY_PATH '$P/bin/srdma' --version | grep -q '^srdma '"
check "against the installed library" bash -c \
	"test \"\$(env -u LD_LIBRARY_PATH ldd '$P/bin/srdma' | awk '/libsrdma/ {print \$3}' | xargs -r realpath)\" = \"\$(realpath '$LIBDIR/libsrdma.so.0')\""
# Test hooks never ship: the strings that drive them are in the test
# build's library (the control, so the search can find them) and in nothing
# that was installed.
hooks='SRDMA_TAMPER|SRDMA_TEST_SAVE_PDATA|SRDMA_TEST_VERBS'
if grep -q 'SRDMA_TEST_HOOKS:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
	check "the test build's library holds the hooks (control)" \
		grep -aqE "$hooks" "$BUILD/libsrdma.so"
fi
check "no installed file holds a test hook" bash -c \
	"files=\$(find '$P' -type f); test -n \"\$files\" && ! grep -alE '$hooks' \$files"
finish
