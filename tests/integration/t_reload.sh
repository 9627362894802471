#!/bin/bash
# Reload without dropping anyone (issue 17): SIGHUP makes srdma serve read
# its certificate, key, CA, CRL and allow-list again (from --config FILE
# again when it has one).
#
#   renewed server certificate: 20 clients connected before stay and verify
#   after; the next client sees the new certificate; a ticket issued before
#   still resumes (positive control for the cases below);
#   a broken reload (a key that does not match) keeps serving with the old
#   certificate and logs why;
#   --config: an allow-list entry added is served after the reload, one
#   removed is refused even with a ticket from before; a ticket issued under
#   a CA set the reload changed does not resume; the command line wins over
#   the file; a bad key in the file is a clear error with FILE:LINE.
. "$(dirname "$0")/lib.sh"
for t in pki_issue resume_probe multi_client; do
	[ -x "$BUILD/$t" ] || { echo "missing $BUILD/$t"; exit 1; }
done
command -v openssl >/dev/null || { echo "openssl(1) missing"; exit 1; }
I="$BUILD/pki_issue"
make_pki "$T/pki" client alice
make_pki "$T/other" client
# wait_log FILE PATTERN N: until FILE has N lines matching PATTERN (20 s).
wait_log() {
	for _ in $(seq 200); do
		[ "$(grep -cE -- "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.1
	done
	echo "want $3 x /$2/ in $1, have $(grep -cE -- "$2" "$1")"
	return 1
}
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
# The certificate the server presents now, as openssl s_client sees it.
served_fp() {
	timeout 10 openssl s_client -connect "127.0.0.1:$CTRL_PORT" \
		-cert "$T/pki/client.crt" -key "$T/pki/client.key" \
		-CAfile "$T/pki/ca.crt" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256
}
# probe NAME ID: a resume_probe that connected once and waits (go: NAME.go)
probe() {
	rm -f "$T/$1.ready" "$T/$1.go"
	"$BUILD/resume_probe" 127.0.0.1 "$CTRL_PORT" "$T/pki" "$2" "$T/$1.ready" \
		"$T/$1.go" >"$T/$1.out" 2>&1 &
	PIDS+=($!)
	eval "${1}_pid=$!"
	for _ in $(seq 200); do [ -e "$T/$1.ready" ] && break; sleep 0.05; done
	grep -q "^first: ok" "$T/$1.out"
}
# second NAME: let probe NAME connect again (its output: $T/NAME.out)
second() {
	local pid
	eval "pid=\$${1}_pid"
	touch "$T/$1.go"
	wait "$pid"
	cat "$T/$1.out"
}
hup() { # hup LOG N: SIGHUP, until LOG has N reload lines
	kill -HUP "$SERVER_PID"
	wait_log "$1" "reload" "$2"
}

# ---- a renewed server certificate ----
start_server r --certs "$T/pki" --transport ofi --region-size 4096 || exit 1
old=$(fp "$T/pki/server.crt")
check "s_client sees the server certificate (control)" [ "$(served_fp)" = "$old" ]
"$BUILD/multi_client" 127.0.0.1 "$CTRL_PORT" "$T/pki" 20 --ready "$T/held.ready" \
	--go "$T/held.go" >"$T/held.out" 2>&1 &
held=$!
PIDS+=("$held")
for _ in $(seq 300); do [ -s "$T/held.ready" ] && break; sleep 0.1; done
check "20 clients connected before the reload" grep -qx 20 "$T/held.ready"
check "a client holds a ticket from before" probe p1 client
$I "$T/pki" server --server --san 127.0.0.1 --san localhost || exit 1
new=$(fp "$T/pki/server.crt")
check "the certificate on disk was renewed" [ "$new" != "$old" ]
check "SIGHUP: reloaded" hup "$T/r.log" 1
check "... logged as a reload" grep -q "reloaded certificate, key and CA" "$T/r.log"
check "the next client sees the new certificate" [ "$(served_fp)" = "$new" ]
check "a new client is served" \
	client --certs "$T/pki" --transport ofi --op all --count 2 --quiet
touch "$T/held.go"
wait "$held"
check "the 20 clients from before stayed and verified after" \
	grep -q "^held 20 verified 20" "$T/held.out"
second p1
check "the ticket from before the renewal still resumes" \
	grep -q "^second: ok resumed=1" "$T/p1.out"
check "no client was dropped" [ "$(grep -c 'disconnect .*error' "$T/r.log")" -eq 0 ]

# ---- a broken reload keeps serving ----
cp "$T/pki/server.key" "$T/server.key.good"
cp "$T/pki/alice.key" "$T/pki/server.key" # does not match server.crt
check "SIGHUP with a key that does not match" hup "$T/r.log" 2
check "... logged why, and that the old certificate stays" \
	grep -q "reload failed, still serving with the old certificates: the private key in .*server.key does not match" "$T/r.log"
check "... clients are still served" \
	client --certs "$T/pki" --transport ofi --op all --count 2 --quiet
check "... with the certificate from before" [ "$(served_fp)" = "$new" ]
check "... and the server is alive" server_alive
cp "$T/server.key.good" "$T/pki/server.key"
check "orderly shutdown" stop_server

# ---- --config: allow-list and CA set ----
cat "$T/pki/ca.crt" "$T/other/ca.crt" >"$T/both.crt"
cat >"$T/serve.conf" <<EOF
# srdma serve options, one a line
transport = ofi
certs = $T/pki   # the server's identity and CA
allow = client
EOF
start_server c --config "$T/serve.conf" || exit 1
check "config: the listed identity is served" \
	client --certs "$T/pki" --transport ofi --op echo --quiet
check "config: an unlisted identity is refused" expect_fail "allow-list" \
	client --certs "$T/pki" --identity alice --transport ofi --op echo
check "a client holds a ticket from before" probe p2 client
sed -i 's/^allow = client$/allow = alice/' "$T/serve.conf"
check "SIGHUP re-reads the file" hup "$T/c.log" 1
check "... and says so" grep -q "reloaded certificate, key, CA and allow-list (1 identity) from $T/serve.conf" "$T/c.log"
check "an identity added to the allow-list is served" \
	client --certs "$T/pki" --identity alice --transport ofi --op echo --quiet
second p2
check "an identity removed is refused, even with a ticket from before" \
	grep -qE "^second: refused \((-17|-6)\): .*allow-list" "$T/p2.out"
check "... on its resumed session" wait_log "$T/c.log" "'client' is not on the allow-list \(resumed session\)" 1
check "a client of alice's holds a ticket" probe p3 alice
printf 'ca = %s\ncert = %s\nkey = %s\n' "$T/both.crt" "$T/pki/server.crt" \
	"$T/pki/server.key" >>"$T/serve.conf"
check "SIGHUP with another CA set" hup "$T/c.log" 2
second p3
check "a ticket issued under the old CA set does not resume (full handshake)" \
	grep -q "^second: ok resumed=0" "$T/p3.out"
check "orderly shutdown" stop_server

# the command line wins over the file; a bad key is FILE:LINE
start_server o --config "$T/serve.conf" --allow client || exit 1
check "command-line --allow replaces the file's" \
	client --certs "$T/pki" --transport ofi --op echo --quiet
check "... (alice from the file is not allowed)" expect_fail "allow-list" \
	client --certs "$T/pki" --identity alice --transport ofi --op echo
check "orderly shutdown" stop_server
echo "max-handshake = 3" >>"$T/serve.conf"
check "an unknown key in the file: FILE:LINE" expect_fail \
	"srdma serve: $T/serve.conf:8: unknown key 'max-handshake'" \
	timeout 10 "$SRDMA" serve --config "$T/serve.conf"
# the example shipped with the systemd unit parses (its paths replaced)
sed -e "s#/etc/srdma/pki#$T/pki#" -e 's#^listen = .*#listen = 127.0.0.1:0#' \
	-e 's#^metrics = .*#metrics = 127.0.0.1:0#' \
	"$SRC/dist/srdma-serve.conf" >"$T/dist.conf"
start_server d --config "$T/dist.conf" || exit 1
check "dist/srdma-serve.conf works (served a client)" \
	client --certs "$T/pki" --transport ofi --op echo --quiet
check "orderly shutdown" stop_server
finish
