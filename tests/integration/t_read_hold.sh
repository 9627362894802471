#!/bin/bash
# A reader is not starved by an owner that puts without pause (holds,
# docs/PROTOCOL.md §6 "Holds"). torn_reads serve puts whole versions into
# an 8-block read-only region in a tight loop; torn_reads read reads it
# whole for 3 s over libfabric tcp. Every read must hold one version in
# every block (--strict), reads must have raced (--want-retries), and at
# most one read in ten may end with SRDMA_EAGAIN (--want-progress; before
# holds, 476 reads completed and 1092 ended with EAGAIN in 4 s here). The
# owner's puts must have met the hold (put EAGAIN > 0) and gone on after it.
. "$(dirname "$0")/lib.sh"
need_tool torn_reads
make_pki "$T/pki"
TR="$BUILD/torn_reads"

for m in encrypt integrity; do
	rm -f "$T/port"
	"$TR" serve 127.0.0.1 "$T/port" "$T/pki" --transport ofi --blocks 8 \
		>"$T/serve-$m.out" 2>&1 &
	spid=$!
	PIDS+=("$spid")
	for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
	timeout 60 "$TR" read 127.0.0.1 "$(cat "$T/port" 2>/dev/null)" "$T/pki" \
		--transport ofi --protect "$m" --blocks 8 --secs 3 \
		--want-retries --strict --want-progress >"$T/read-$m.out" 2>&1
	rc=$?
	wait "$spid"
	src=$?
	sed 's/^/#   /' "$T/read-$m.out" "$T/serve-$m.out"
	check "$m: reads racing a tight put loop complete whole (rc=$rc)" [ "$rc" -eq 0 ]
	check "$m: the reader asked for holds" grep -qE " holds [1-9][0-9]* " "$T/read-$m.out"
	check "$m: the owner's puts met the holds and went on" \
		grep -qE "^serve: puts [1-9][0-9]* \(put EAGAIN [1-9][0-9]*\)" "$T/serve-$m.out"
	check "$m: the owner's connection ended in order (rc=$src)" [ "$src" -eq 0 ]
done
finish
