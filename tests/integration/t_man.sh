#!/bin/bash
# The reference (issue 18): srdma(1) and libsrdma(3) render without a
# warning, libsrdma(3) names every function, error code and configuration
# field of srdma.h and states the rules and limits, and srdma(1) names
# every option the tool's --help lists.
. "$(dirname "$0")/lib.sh"
MAN="$SRC/docs/man"
command -v man >/dev/null || { notok "man is missing (make deps installs man-db)"; finish; exit 1; }

for page in srdma.1 libsrdma.3; do
	LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$MAN/$page" \
		>"$T/$page.txt" 2>"$T/$page.err"
	check "$page renders" test -s "$T/$page.txt"
	check "$page renders without a warning" test ! -s "$T/$page.err"
	cat "$T/$page.err"
	groff -man -ww -z "$MAN/$page" 2>"$T/$page.groff"
	check "$page: groff -ww finds nothing" test ! -s "$T/$page.groff"
	cat "$T/$page.groff"
done
# In the rendered text words may wrap: search it as one line.
tr -s ' \n' '  ' <"$T/libsrdma.3.txt" >"$T/lib.flat"
tr -s ' \n' '  ' <"$T/srdma.1.txt" >"$T/tool.flat"

# missing FILE WORD...: the words not in FILE (one per line).
missing() {
	local f=$1; shift
	for w in "$@"; do grep -qF -- "$w" "$f" || echo "$w"; done
}
H="$SRC/include/srdma.h"
fns=$(sed -n 's/^SRDMA_API [^(]*[ *]\(srdma_[a-z_]*\)(.*/\1/p' "$H" | sort -u)
codes=$(sed -n 's/^\s*XX(\(SRDMA_E[A-Z_]*\),.*/\1/p' "$H")
fields=$(sed -n '/^struct srdma_config {/,/^};/p' "$H" | sed 's|/\*.*||; s|^\s*\*.*||' |
	sed -n 's/.*[^a-z_0-9]\([a-z_][a-z_0-9]*\);\s*$/\1/p')
check "found the header's functions (control: $(echo $fns | wc -w))" [ "$(echo $fns | wc -w)" -ge 40 ]
check "found its error codes (control: $(echo $codes | wc -w))" [ "$(echo $codes | wc -w)" -ge 36 ]
check "found its config fields (control: $(echo $fields | wc -w))" [ "$(echo $fields | wc -w)" -ge 25 ]
m=$(missing "$T/lib.flat" $fns $codes $fields)
check "libsrdma(3) names every function, error code and config field" test -z "$m"
[ -n "$m" ] && echo "missing: $m"

# The rules and limits issue 18 asked for, each in its words.
for rule in "OBJECTS AND LIFETIMES" "detached rather than freed" "exactly once, before or after its parent" \
	"THREADS" "fails with SRDMA_ESTATE" "How long event data stays valid:" \
	"until the next srdma_ctx_poll() or blocking call on the same context" \
	"from 64 bytes to 16 MiB" "4128 bytes per 4096-byte block" "67633152 bytes" \
	"At most max_ops operations are in flight per connection" "default 256" \
	"At most queue_depth messages are in flight each way" "never writes on the program's stderr"; do
	check "libsrdma(3) states: $rule" grep -qF -- "$rule" "$T/lib.flat"
done

# Every option of the tool's --help is in srdma(1).
for cmd in certs serve client bench demo cp; do
	opts=$("$SRDMA" "$cmd" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u | grep -v -- '--help')
	check "srdma $cmd --help lists options (control)" test -n "$opts"
	m=$(missing "$T/tool.flat" $opts)
	check "srdma(1) names every option of srdma $cmd" test -z "$m"
	[ -n "$m" ] && echo "missing: $m"
done
check "srdma(1) states the quota rule" grep -qF "counted sealed: 4128 bytes per 4 KiB block" "$T/tool.flat"
finish
