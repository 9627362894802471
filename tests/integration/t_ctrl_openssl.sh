#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The control channel against a real third-party TLS client (openssl
# s_client) and a plain-text client: each way of failing must reach the
# server as its own error code. Also checks `srdma certs` file handling.
#
# Needs: $SRDMA_BUILD/srdma and $SRDMA_BUILD/ctrl_server; openssl; bash.
set -u

B=${SRDMA_BUILD:?set SRDMA_BUILD to the build directory}
SRC=${SRDMA_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
SRDMA=$B/srdma
SRV=$B/ctrl_server
pass=0
failed=0
srv_pid=

for bin in "$SRDMA" "$SRV"; do
	if [ ! -x "$bin" ]; then
		echo "FAIL: $bin is missing (build it first)"
		exit 1
	fi
done
# A missing openssl(1) is a skip (exit 77: ctest's SKIP_RETURN_CODE), except
# on CI (CI=true), where `make deps` installs it: there it fails.
if ! command -v openssl >/dev/null; then
	if [ "${CI:-}" = true ]; then
		echo "FAIL: openssl(1) is not installed; make deps installs it"
		exit 1
	fi
	echo "SKIP: openssl(1) is not installed (make deps installs it)"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_ctrl_openssl.XXXXXX") || exit 1
cleanup() {
	if [ -n "$srv_pid" ]; then
		kill "$srv_pid" 2>/dev/null
		wait "$srv_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() {
	pass=$((pass + 1))
	echo "ok   - $1"
}
bad() {
	failed=$((failed + 1))
	echo "FAIL - $1"
}

# The numeric value of an error code, from the public header.
code_of() {
	# From SRDMA_ERRNO_MAP's XX(NAME, VALUE, sentence); clang-format may
	# wrap the line after "NAME,": join lines first.
	tr '\n\t\\' '   ' <"$SRC/include/srdma.h" | grep -o "XX($1, *-[0-9]*" | grep -o -- '-[0-9]*$'
}

# ---- srdma certs ----
if "$SRDMA" certs "$tmp/pki" >"$tmp/certs.out" 2>&1; then
	ok "srdma certs writes a PKI"
else
	bad "srdma certs writes a PKI: $(cat "$tmp/certs.out")"
fi
grep -q "wrote $tmp/pki/server.key" "$tmp/certs.out" &&
	ok "srdma certs prints what it wrote" ||
	bad "srdma certs prints what it wrote: $(cat "$tmp/certs.out")"
"$SRDMA" certs "$tmp/other" >/dev/null 2>&1 || bad "second PKI"

cp "$tmp/pki/ca.crt" "$tmp/ca.before"
out=$("$SRDMA" certs "$tmp/pki" 2>&1)
rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q '^srdma certs: .* exists; use --force to overwrite$' &&
	cmp -s "$tmp/pki/ca.crt" "$tmp/ca.before"; then
	ok "srdma certs refuses to overwrite without --force"
else
	bad "srdma certs refuses to overwrite without --force (rc=$rc: $out)"
fi
if "$SRDMA" certs "$tmp/pki" --force >/dev/null 2>&1 &&
	! cmp -s "$tmp/pki/ca.crt" "$tmp/ca.before"; then
	ok "srdma certs --force overwrites"
else
	bad "srdma certs --force overwrites"
fi
modes=$(stat -c '%a' "$tmp/pki/ca.key" "$tmp/pki/server.key" "$tmp/pki/client.key" | sort -u)
[ "$modes" = 600 ] && ok "keys are mode 0600" || bad "keys are mode 0600 (got: $modes)"
[ "$(stat -c '%a' "$tmp/pki/server.crt")" = 644 ] && ok "certificates are mode 0644" ||
	bad "certificates are mode 0644"
[ "$(stat -c '%a' "$tmp/pki")" = 700 ] && ok "directory is mode 0700" ||
	bad "directory is mode 0700"
openssl verify -CAfile "$tmp/pki/ca.crt" "$tmp/pki/server.crt" "$tmp/pki/client.crt" >/dev/null 2>&1 &&
	ok "openssl verify accepts the certificates" || bad "openssl verify accepts the certificates"

# ---- handshakes against ctrl_server ----
"$SRV" --certs "$tmp/pki" --port 0 --count 5 >"$tmp/server.out" 2>"$tmp/server.err" &
srv_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$tmp/server.out")
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -z "$port" ]; then
	bad "ctrl_server starts: $(cat "$tmp/server.err")"
	echo "$pass passed, $failed failed"
	exit 1
fi

# Runs a client, then checks the server's next line against a regex.
seen=0
check() {
	local name=$1 want=$2 line
	shift 2
	"$@" >"$tmp/client.out" 2>&1
	seen=$((seen + 1))
	for _ in $(seq 100); do
		[ "$(grep -c '^handshake' "$tmp/server.out")" -ge "$seen" ] && break
		sleep 0.1
	done
	line=$(grep '^handshake' "$tmp/server.out" | sed -n "${seen}p")
	if echo "$line" | grep -qE -- "$want"; then
		ok "$name: $line"
	else
		bad "$name: want /$want/, server said: '${line:-nothing}'"
		sed 's/^/    client: /' "$tmp/client.out" | head -5
	fi
}

s_client() {
	timeout 10 openssl s_client -connect "127.0.0.1:$port" -brief \
		-servername localhost -verify_hostname localhost \
		-verify_return_error -CAfile "$tmp/pki/ca.crt" "$@" </dev/null
}

code=$(code_of SRDMA_ECERT_MISSING)
check "no client certificate" "^handshake failed code=$code .*sent no certificate" \
	s_client
code=$(code_of SRDMA_ECERT_UNKNOWN_CA)
check "client certificate from another CA" "^handshake failed code=$code .*not signed by the CA" \
	s_client -cert "$tmp/other/client.crt" -key "$tmp/other/client.key"
code=$(code_of SRDMA_ETLS_VERSION)
check "TLS 1.2 client" "^handshake failed code=$code .*older than 1.3" \
	s_client -tls1_2 -cert "$tmp/pki/client.crt" -key "$tmp/pki/client.key"
check "right certificate" "^handshake ok identity=client$" \
	s_client -cert "$tmp/pki/client.crt" -key "$tmp/pki/client.key"
plain_http() {
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	# The server may already have hung up: no SIGPIPE for this shell.
	(trap '' PIPE; printf 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n' >&3)
	timeout 5 cat <&3
	exec 3>&-
}
code=$(code_of SRDMA_ENOT_TLS)
check "plain-text HTTP request" "^handshake failed code=$code .*HTTP" plain_http

# ctrl_server exits 0 after its 5 connections
for _ in $(seq 50); do
	kill -0 "$srv_pid" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$srv_pid" 2>/dev/null && kill "$srv_pid"
wait "$srv_pid"
rc=$?
if [ "$rc" -eq 0 ]; then
	ok "ctrl_server exits 0 after 5 connections"
else
	bad "ctrl_server exits 0 after 5 connections (exit $rc)"
	sed 's/^/    server: /' "$tmp/server.err" | tail -5
fi
srv_pid=

# An allow-list that excludes 'client': refused after the handshake.
"$SRV" --certs "$tmp/pki" --port 0 --count 1 --allow alice >"$tmp/server.out" 2>"$tmp/server.err" &
srv_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$tmp/server.out")
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -z "$port" ]; then
	bad "ctrl_server --allow alice starts: $(cat "$tmp/server.err")"
	echo "$pass passed, $failed failed"
	exit 1
fi
seen=0
code=$(code_of SRDMA_ENOT_ALLOWED)
check "client not on the allow-list" "^handshake failed code=$code .*client 'client' is not on the allow-list" \
	s_client -cert "$tmp/pki/client.crt" -key "$tmp/pki/client.key"
# Its one connection done, ctrl_server exits 0: non-zero is a crash or a
# sanitizer report; still running after 5 s is a hang (it is killed).
for _ in $(seq 50); do
	kill -0 "$srv_pid" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$srv_pid" 2>/dev/null && kill "$srv_pid"
wait "$srv_pid"
rc=$?
if [ "$rc" -eq 0 ]; then
	ok "ctrl_server --allow alice exits 0 after its connection"
else
	bad "ctrl_server --allow alice exits 0 after its connection (exit $rc)"
	sed 's/^/    server: /' "$tmp/server.err" | tail -5
fi
srv_pid=

echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
