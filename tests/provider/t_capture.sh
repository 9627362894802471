#!/bin/bash
# What crosses the wire: a packet capture on lo while fi_pingpong moves
# fabtests' data pattern through the provider. With FI_SRDMA_PROTECT=encrypt
# the capture holds no copy of the pattern; with none it does (so the check
# can fail), and both captures hold the traffic (so an empty capture cannot
# pass).
. "$(dirname "$0")/lib.sh"
need_cmd tcpdump python3
make_pki "$T/pki"
export FI_SRDMA_CERTS="$T/pki"
# fi_pingpong -c fills every buffer from this alphabet (util/pingpong.c).
PATTERN=0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ

# capture MODE: runs a pingpong of 20 x 64 KiB each way under tcpdump;
# prints "<bytes captured> <copies of the pattern>".
capture() {
	local mode=$1 pcap="$T/$1.pcap" tpid
	# A 128 MiB buffer: a dropped packet would be a hole in the check.
	tcpdump -i lo -n -s 0 -B 131072 -w "$pcap" 'tcp' >"$T/$mode.tcpdump" 2>&1 &
	tpid=$!
	for _ in $(seq 50); do
		grep -q 'listening on' "$T/$mode.tcpdump" && break
		sleep 0.1
	done
	pingpong "$mode" "FI_SRDMA_PROTECT=$mode" "FI_SRDMA_PROTECT=$mode" \
		-p srdma -e msg -I 20 -S 65536 -c
	sleep 0.5
	kill -INT "$tpid"
	wait "$tpid"
	[ "$PP_RC" -eq 0 ] && [ "$PP_SRC" -eq 0 ] ||
		{ echo "fi_pingpong ($mode) failed" >&2; cat "$T/$mode.cli" >&2; return 1; }
	grep -q '^0 packets dropped by kernel' "$T/$mode.tcpdump" ||
		{ echo "tcpdump lost packets:" >&2; cat "$T/$mode.tcpdump" >&2; return 1; }
	python3 - "$pcap" "$PATTERN" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
print(len(data), data.count(sys.argv[2].encode()))
PY
}

encrypt() {
	local out bytes n
	out=$(capture encrypt) || return 1
	read -r bytes n <<<"$out"
	[ "$bytes" -gt $((20 * 65536)) ] || { echo "capture holds only $bytes bytes"; return 1; }
	[ "$n" -eq 0 ] || { echo "$n copies of the pattern on the wire in encrypt"; return 1; }
}
check "encrypt: the capture on lo holds no copy of the payload pattern" encrypt

none() {
	local out bytes n
	out=$(capture none) || return 1
	read -r bytes n <<<"$out"
	[ "$bytes" -gt $((20 * 65536)) ] || { echo "capture holds only $bytes bytes"; return 1; }
	[ "$n" -gt 400 ] || { echo "only $n copies of the pattern in none: the check could not fail"; return 1; }
}
check "none (control): the pattern is on the wire in plaintext" none

finish
