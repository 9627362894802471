#!/bin/bash
# examples/ as a user runs them, each against itself over 127.0.0.1 (the
# echo server against `srdma client`): they build from srdma.h alone
# (CMake) and must do what their comments say.
. "$(dirname "$0")/lib.sh"
EX="$BUILD/examples"
for p in echo_server kv file_transfer; do
	[ -x "$EX/$p" ] || { notok "missing $EX/$p"; finish; exit 1; }
done
make_pki "$T/pki"

# wait_port LOG: the port a program printed as "listening on port N".
wait_port() {
	local port=""
	for _ in $(seq 200); do
		port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$1")
		[ -n "$port" ] && break
		sleep 0.05
	done
	echo "$port"
}

# stops PID with SIGTERM and gives its exit status (124 if it would not)
stop_pid() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$1" 2>/dev/null && { kill -9 "$1"; wait "$1"; return 124; }
	wait "$1"
}

# ---- echo_server: an event loop; `srdma client --op echo` twice ----
"$EX/echo_server" --certs "$T/pki" --listen 127.0.0.1 --port 0 --max 2 >"$T/echo.log" 2>&1 &
pid=$!
PIDS+=("$pid")
port=$(wait_port "$T/echo.log")
check "echo_server listens" test -n "$port"
for i in 1 2; do
	check "echo client $i verified" timeout 60 "$SRDMA" client --connect "127.0.0.1:$port" \
		--certs "$T/pki" --op echo --size 3000 --count 20 --quiet
done
wait "$pid"
rc=$?
cat "$T/echo.log"
check "echo_server stopped by itself after 2 clients (rc=$rc)" [ "$rc" -eq 0 ]
check "... and said whom it served" grep -q "^client connected from 127.0.0.1" "$T/echo.log"
check "... 2 of them, leaving in order" [ "$(grep -c '^a client left: orderly$' "$T/echo.log")" -eq 2 ]

# ---- kv: PUT by RDMA write, GET by RDMA read, across connections ----
"$EX/kv" server --certs "$T/pki" --listen 127.0.0.1 --port 0 >"$T/kv.log" 2>&1 &
pid=$!
PIDS+=("$pid")
port=$(wait_port "$T/kv.log")
check "kv server listens" test -n "$port"
big=$(head -c 3000 /dev/urandom | base64 -w0) # 4000 bytes: two blocks
kv() { timeout 60 "$EX/kv" client --certs "$T/pki" --connect 127.0.0.1 --port "$port" "$@"; }
kv put alpha "hello world" put beta "$big" >"$T/kv1.out" 2>&1
check "kv: two PUTs answered OK" \
	test "$(cat "$T/kv1.out")" = "$(printf 'put alpha: OK\nput beta: OK')"
kv get alpha get beta get gamma put alpha "second value" get alpha >"$T/kv2.out" 2>&1
cut -c1-100 "$T/kv1.out" "$T/kv2.out"
check "kv: a second connection GETs what the first PUT, by RDMA read" \
	test "$(cat "$T/kv2.out")" = "$(printf 'get alpha: hello world\nget beta: %s\nget gamma: NONE\nput alpha: OK\nget alpha: second value' "$big")"
stop_pid "$pid"
rc=$?
check "kv server stops on SIGTERM (rc=$rc)" [ "$rc" -eq 0 ]

# ---- file_transfer: SHA-256 on both ends ----
size=${SRDMA_EXAMPLE_FILE_SIZE:-$((24 * 1024 * 1024 + 12345))}
head -c "$size" /dev/urandom >"$T/in.bin"
"$EX/file_transfer" recv --certs "$T/pki" --listen 127.0.0.1 --port 0 --out "$T/out.bin" >"$T/ftr.log" 2>&1 &
pid=$!
PIDS+=("$pid")
port=$(wait_port "$T/ftr.log")
check "file_transfer receiver listens" test -n "$port"
timeout 120 "$EX/file_transfer" send --certs "$T/pki" --connect 127.0.0.1 --port "$port" "$T/in.bin" >"$T/fts.log" 2>&1
src=$?
wait "$pid"
rrc=$?
cat "$T/fts.log" "$T/ftr.log"
sum=$(sha256sum <"$T/in.bin" | cut -d' ' -f1)
check "sender exits 0 (rc=$src)" [ "$src" -eq 0 ]
check "receiver exits 0 (rc=$rrc)" [ "$rrc" -eq 0 ]
check "the file arrived byte for byte" cmp "$T/in.bin" "$T/out.bin"
check "the sender printed the file's SHA-256" grep -q "^sent $size bytes, sha256 $sum; receiver: OK $sum$" "$T/fts.log"
check "the receiver printed the same" grep -q "^received $size bytes, sha256 $sum (matches the sender's)$" "$T/ftr.log"
finish
