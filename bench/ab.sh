#!/bin/bash
# SPDX-License-Identifier: MIT
#
# A/B of two builds of srdma, the same run: each build's srdma bench
# against its own srdma serve (libfabric tcp, loopback), write and read,
# encrypt and none, 64 B .. 1 MiB, window 16, rounds interleaved so a busy
# machine slows both alike; prints the medians and new/old.
#
#   bench/ab.sh OLD_BUILD NEW_BUILD [ROUNDS]     (default 3)
#
# e.g. a build of an older commit against this tree:
#   git worktree add /tmp/old <commit> && cmake -S /tmp/old -B /tmp/old/build \
#       && cmake --build /tmp/old/build -j && bench/ab.sh /tmp/old/build build
OLD=${1:?usage: $0 OLD_BUILD NEW_BUILD [ROUNDS]} NEW=${2:?usage: $0 OLD_BUILD NEW_BUILD [ROUNDS]} REPS=${3:-3}
T=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf $T' EXIT
run() { # BUILD TAG
	local B=$1 tag=$2
	$B/srdma certs $T/pki-$tag >/dev/null 2>&1
	$B/srdma serve --listen 127.0.0.1:0 --port-file $T/ports-$tag --certs $T/pki-$tag --transport ofi \
		--protect none --region-size 16M --quota 128M --max-msg 1M >/dev/null 2>&1 &
	for _ in $(seq 100); do [ -s $T/ports-$tag ] && break; sleep 0.05; done
	read -r CP _ < $T/ports-$tag
	for op in write read; do for p in encrypt none; do
		timeout 120 $B/srdma bench --connect 127.0.0.1:$CP --certs $T/pki-$tag --transport ofi --json \
			--op $op --protect $p --size 64,4K,64K,1M --window 16 --duration 0.5 2>/dev/null |
			sed "s/^{/{\"ab\":\"$tag\",/"
	done; done
	kill %1 2>/dev/null; wait 2>/dev/null
	rm -f $T/ports-$tag
}
for r in $(seq $REPS); do run $OLD old; run $NEW new; done > $T/all.jsonl
python3 - $T/all.jsonl <<'PY'
import json,sys,statistics as st
rows=[json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
k={}
for r in rows:
    k.setdefault((r['op'],r.get('protect'),r['size'],r['ab']),[]).append(r['gbytes_per_s'])
print("%-6s %-8s %8s %10s %10s %7s"%("op","mode","size","old GB/s","new GB/s","new/old"))
for (op,p,s,ab) in sorted(k, key=lambda x:(x[0],x[1],x[2])):
    if ab!='old': continue
    o=st.median(k[(op,p,s,'old')]); n=st.median(k.get((op,p,s,'new'),[0]))
    print("%-6s %-8s %8d %10.3f %10.3f %7.2f"%(op,p,s,o,n,n/o if o else 0))
PY
