#!/bin/bash
# The shared library exports exactly the functions srdma.h declares with
# SRDMA_API: nothing internal leaks (-fvisibility=hidden, srdma__ names) and
# nothing declared is missing (a user's program would not link).
. "$(dirname "$0")/lib.sh"
LIB="$BUILD/libsrdma.so"
HDR="$SRC/include/srdma.h"

# The names SRDMA_API declares, with comments and preprocessor lines
# (continuations included) taken out first.
declared() {
	perl -0777 -ne 's{/\*.*?\*/}{}gs; s{//[^\n]*}{}g;
		s{^[ \t]*#(?:[^\n]*\\\n)*[^\n]*}{}gm;
		print "$1\n" while /\bSRDMA_API\b[^;(]*?\b(\w+)\s*\(/g' "$HDR" | sort -u
}

exported() {
	nm -D --defined-only "$LIB" | awk 'NF == 3 { print $3 }' | sort -u
}

# none WHAT LIST: true if LIST is empty, else says WHAT and LIST.
none() {
	[ -z "$2" ] && return 0
	echo "$1:"
	echo "$2" | sed 's/^/    /'
	return 1
}

check "libsrdma.so is built" test -f "$LIB"
DECLARED=$(declared)
EXPORTED=$(exported)
echo "srdma.h declares $(echo "$DECLARED" | grep -c .) SRDMA_API functions;" \
	"libsrdma.so exports $(echo "$EXPORTED" | grep -c .) symbols"
check "srdma.h declares SRDMA_API functions" test -n "$DECLARED"
check "every SRDMA_API function is exported" none \
	"declared in srdma.h, not exported by libsrdma.so" \
	"$(comm -23 <(echo "$DECLARED") <(echo "$EXPORTED"))"
check "nothing else is exported" none \
	"exported by libsrdma.so, not declared SRDMA_API in srdma.h" \
	"$(comm -13 <(echo "$DECLARED") <(echo "$EXPORTED"))"
finish
