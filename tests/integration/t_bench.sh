#!/bin/bash
# `srdma bench` works and its verification passes: every op in bw and lat
# mode with --verify --json (fields checked, never speeds); bad input and
# unreachable or silent servers give one error line and a non-zero exit.
# --mode connect: the JSON fields exist, resumed connects happen, and none
# resume against a server started with --no-resumption.
. "$(dirname "$0")/lib.sh"
need_cmd python3
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi --protect none \
	--region-size 1M || exit 1

bench() {
	timeout 60 "$SRDMA" bench --connect "127.0.0.1:$CTRL_PORT" \
		--certs "$T/pki" --transport ofi "$@"
}

# json_ok FILE NLINES MODE PROTECT OP: every line has the fields, verified.
json_ok() {
	local f=$1 n=$2 mode=$3 protect=$4 op=$5 fields
	fields="op size protect transport gbytes_per_s msgs_per_s"
	[ "$mode" = lat ] && fields="$fields lat_us_avg lat_us_p50 lat_us_p99"
	[ "$(grep -c . "$f")" -eq "$n" ] || { echo "want $n lines:"; cat "$f"; return 1; }
	python3 - "$f" "$protect" "$op" $fields <<'EOF' || { cat "$f"; return 1; }
import json, sys
f, protect, op, fields = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for line in open(f):
    o = json.loads(line)
    missing = [k for k in fields if k not in o]
    assert not missing, "missing %s" % missing
    assert o["op"] == op and o["protect"] == protect, o
    assert o["transport"] == "ofi" and o["verified"] is True, o
    assert o["iters"] > 0 and o["gbytes_per_s"] > 0 and o["msgs_per_s"] > 0, o
    if "lat_us_p50" in fields:
        assert 0 < o["lat_us_p50"] <= o["lat_us_p99"], o
EOF
}

for op in send write read; do
	for mode in bw lat; do
		for protect in encrypt none; do
			name="$op $mode $protect"
			if bench --op "$op" --mode "$mode" --protect "$protect" \
				--size 64,5000,64K --iters 30 --window 8 --verify \
				--json >"$T/out" 2>"$T/err"; then
				check "$name: verified, JSON fields" \
					json_ok "$T/out" 3 "$mode" "$protect" "$op"
			else
				notok "$name: exit status"; cat "$T/err"
			fi
		done
	done
done
# The byte stream into the server's copy sink: every byte counted and
# its SHA-256 compared (a new connection per size).
for protect in encrypt integrity none; do
	if bench --op stream --protect "$protect" --size 1,5000,64K,1M \
		--iters 30 --verify --json >"$T/out" 2>"$T/err"; then
		check "stream bw $protect: verified, JSON fields" \
			json_ok "$T/out" 4 bw "$protect" stream
	else
		notok "stream bw $protect: exit status"; cat "$T/err"
	fi
done
check "integrity write by duration" bench --op write --protect integrity \
	--size 4K --duration 0.3 --verify --quiet >/dev/null
# The widest window the tool accepts, for writes and reads, more in
# flight than the queue depth (16): the library's flow control, not the
# peer, keeps it in bounds (issue 12).
for op in write read; do
	if bench --op "$op" --protect encrypt --size 4K,16K --iters 200 \
		--window 64 --verify --json >"$T/w64" 2>"$T/err"; then
		check "$op: window 64 verified" json_ok "$T/w64" 2 bw encrypt "$op"
	else
		notok "$op: window 64: exit status"; cat "$T/err"
	fi
done
check "registered buffers (zero copy in none): verified" \
	bench --op write --protect none --size 64K --iters 100 --window 16 \
	--registered --verify --quiet
bench --op read --size 4K,8K --iters 20 >"$T/table" 2>&1
check "human table: header and one row per size" \
	grep -q '^#bytes' "$T/table"
check "human table: rows" bash -c "grep -q '^4096 ' '$T/table' && grep -q '^8192 ' '$T/table'"

# one_error PATTERN CMD...: fails, and prints exactly one line matching.
one_error() {
	local pat=$1 out; shift
	out=$("$@" 2>&1) && { echo "unexpected success: $out"; return 1; }
	[ "$(printf '%s\n' "$out" | grep -c .)" -eq 1 ] || { echo "not one line: $out"; return 1; }
	printf '%s\n' "$out" | grep -qE "$pat" || { echo "missing '$pat' in: $out"; return 1; }
}
check "bad size: one error line" one_error "bad size '4Q'" \
	bench --op write --size 64,4Q
check "unknown op: one error line" one_error "unknown --op" bench --op copy
check "write window above 64: one error line" one_error "window 65" \
	bench --op write --window 65
check "send window above queue depth: one error line" one_error \
	"queue depth" bench --op send --window 17
check "size above the region: one error line" one_error "region-size" \
	bench --op write --size 2M --iters 2
check "send size above max message: one error line" one_error "max-msg" \
	bench --op send --size 128K --iters 2

# A port with nothing listening, and a TCP listener that never speaks TLS.
FREE=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
check "no server: one error line" one_error "cannot connect|refused" \
	timeout 30 "$SRDMA" bench --connect "127.0.0.1:$FREE" --certs "$T/pki" \
	--transport ofi --timeout 3000
python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(4)
print(s.getsockname()[1], flush=True); c=s.accept(); time.sleep(30)' \
	>"$T/silent.port" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/silent.port" ] && break; sleep 0.1; done
check "silent server: one error line" one_error "timed out in state tls$" \
	timeout 30 "$SRDMA" bench --connect "127.0.0.1:$(cat "$T/silent.port")" \
	--certs "$T/pki" --transport ofi --timeout 1500

# connect_ok FILE ITERS RESUMING: one JSON line with the set-up figures;
# RESUMING 1: the resumed series resumed; 0: nothing resumed.
connect_ok() {
	python3 - "$@" <<'EOF' || { cat "$1"; return 1; }
import json, sys
f, iters, resuming = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
lines = [l for l in open(f) if l.strip()]
assert len(lines) == 1, "want one JSON line, got %d" % len(lines)
o = json.loads(lines[0])
need = ["full_connect_us", "resumed_connect_us", "connects_per_s",
        "full_first_byte_us", "resumed_first_byte_us", "first_byte_us",
        "full_connect_us_p99", "full_connects_per_s", "resumed_count",
        "full_count", "transport", "protect"]
missing = [k for k in need if k not in o]
assert not missing, "missing %s" % missing
assert o["op"] == "connect" and o["transport"] == "ofi", o
assert o["protect"] == "encrypt", o
assert o["full_count"] + o["resumed_count"] == 2 * iters, o
assert o["full_connect_us"] > 0 and o["connects_per_s"] > 0, o
assert o["full_connect_us"] <= o["full_first_byte_us"], o
if resuming:
    # the full series never offers a ticket; the resumed one always does
    assert o["resumed_count"] == iters and o["full_count"] == iters, o
    assert o["resume_missed"] == 0, o
    assert o["resumed_connect_us"] > 0, o
    assert o["resumed_connect_us"] <= o["resumed_first_byte_us"], o
else:
    assert o["resumed_count"] == 0 and o["resume_missed"] == iters, o
    assert o["resumed_connect_us"] is None, o
EOF
}
if bench --mode connect --iters 20 --json >"$T/conn" 2>"$T/err"; then
	check "connect: JSON fields, resumed connects" connect_ok "$T/conn" 20 1
else
	notok "connect: exit status"; cat "$T/err"
fi
bench --mode connect --iters 5 >"$T/ctable" 2>&1
check "connect: human table, full and resumed rows" bash -c \
	"grep -q '^#case' '$T/ctable' && grep -q '^full ' '$T/ctable' && grep -q '^resumed ' '$T/ctable'"
check "connect: bad --mode still one error line" one_error "unknown --mode" \
	bench --mode connnect

# srdma client --reconnect: N verified reconnects resume, then N verified
# pool borrows; the server reuses its pooled kits for them.
if client --certs "$T/pki" --transport ofi --op echo --count 2 \
	--reconnect 6 --quiet >"$T/rec" 2>&1; then
	check "client --reconnect 6: all six resumed" \
		grep -qE '^reconnect: 6 connections verified, 0 full TLS handshakes, 6 resumed \(median [0-9.]+ ms\)$' "$T/rec"
	check "client --reconnect 6: six verified pool borrows" \
		grep -qE '^pool: 6 borrows verified over [12] connections? \([12] open\)$' "$T/rec"
else
	notok "client --reconnect: exit status"; cat "$T/rec"
fi

check "echo still works after the bench sink" client --certs "$T/pki" \
	--transport ofi --op echo --size 100 --count 3 --quiet
check "server still alive" server_alive
check "orderly shutdown" stop_server

start_server nr --certs "$T/pki" --transport ofi --no-resumption || exit 1
if bench --mode connect --iters 10 --json >"$T/conn" 2>"$T/err"; then
	check "connect, server --no-resumption: nothing resumes" \
		connect_ok "$T/conn" 10 0
else
	notok "connect, server --no-resumption: exit status"; cat "$T/err"
fi
if client --certs "$T/pki" --transport ofi --op echo --count 2 \
	--reconnect 3 --quiet >"$T/rec" 2>&1; then
	check "client --reconnect 3, server --no-resumption: three full" \
		grep -qE '^reconnect: 3 connections verified, 3 full TLS handshakes \(median [0-9.]+ ms\), 0 resumed$' "$T/rec"
else
	notok "client --reconnect, --no-resumption server: exit status"
	cat "$T/rec"
fi
check "orderly shutdown (--no-resumption server)" stop_server
finish
