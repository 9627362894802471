#!/bin/bash
# Issue 18: the library names its API in errors (certs_dir, max_handshakes)
# and the tool tells its user the flags (--certs, --max-handshakes).
. "$(dirname "$0")/lib.sh"

# The library's own words: no tool flag in any string in src/. The control
# is the tool, whose sources do hold flags, found by the same search.
flags='"[^"]*(--(certs|cert|key|ca|transport|max-[a-z]+|quota|queue-depth|handshake-timeout|peer-name|resource-pool)\b|srdma serve)'
check "the search finds flags in the tool's sources (control)" \
	grep -rqE -- "$flags" "$SRC/tools/srdma"
grep -rnE -- "$flags" "$SRC/src" >"$T/flags.txt"
cat "$T/flags.txt"
check "no library string names a tool flag" test ! -s "$T/flags.txt"
check "... and the library names the API fields" \
	grep -rq '"no certificates configured: give certs_dir' "$SRC/src/session/ctx.c"

# The tool translates what it prints.
"$SRDMA" client --connect 127.0.0.1:1 >"$T/nocerts.out" 2>&1
cat "$T/nocerts.out"
check "no certificates: the tool names --certs and --cert, --key and --ca" \
	grep -q -- 'give --certs (a directory made by .srdma certs DIR.) or --cert, --key and --ca' "$T/nocerts.out"
check "... and not the API's names" bash -c "test -s '$T/nocerts.out' && ! grep -qE 'certs_dir|cert_file' '$T/nocerts.out'"
make_pki "$T/pki"
"$SRDMA" client --connect 127.0.0.1:1 --certs "$T/pki" >"$T/refused.out" 2>&1
cat "$T/refused.out"
check "connection refused: the tool asks whether srdma serve runs there" \
	grep -qF 'Connection refused (is `srdma serve` running there?)' "$T/refused.out"
finish
