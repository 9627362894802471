#!/bin/bash
# Adversaries at the control port and the fabric port (issue 6). Each one is
# refused with a clear reason in the server log, and nobody else is harmed:
# after every group a legitimate client still verifies echo, write and read.
#
#   slowloris         100 TCP connections that never finish TLS
#   not TLS           random bytes, a plain HTTP request
#   old TLS           openssl s_client -tls1_2
#   certificates      another CA (both directions), expired, not yet valid
#                     (both directions), wrong server name, identity not on
#                     the allow-list
#   fabric tokens     none, wrong, expired, replayed, another session's
#                     (ofi_stranger + half_client, which holds a real
#                     session open between PARAMS and the fabric connect)
. "$(dirname "$0")/lib.sh"
need_hooks
need_tool slowloris half_client ofi_stranger pki_issue
need_cmd openssl

make_pki "$T/pki" client bob
make_pki "$T/other" client
I="$BUILD/pki_issue"
$I "$T/pki" expired --nb -7200 --na -60 || exit 1
$I "$T/pki" future --nb 86400 || exit 1
$I "$T/pki" srvexp --server --san 127.0.0.1 --san localhost --nb -7200 --na -60 || exit 1
$I "$T/pki" srvwrong --server --san wrong.example || exit 1

# wait_log FILE PATTERN N: until FILE has N lines matching PATTERN (20 s).
wait_log() {
	for _ in $(seq 200); do
		[ "$(grep -cE -- "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.1
	done
	echo "want $3 x /$2/ in $1, have $(grep -cE -- "$2" "$1")"
	return 1
}
legit() { client --certs "$T/pki" --transport ofi --op all --count 3 --quiet; }

# ---- control port: slowloris, not TLS, old TLS ----
start_server s --certs "$T/pki" --transport ofi --handshake-timeout 2000 \
	--allow client --allow expired --allow future || exit 1
"$BUILD/slowloris" 127.0.0.1 "$CTRL_PORT" 100 --wait 60 --ready "$T/slow.ready" \
	>"$T/slow.out" 2>&1 &
slow=$!
PIDS+=("$slow")
for _ in $(seq 400); do [ -s "$T/slow.ready" ] && break; sleep 0.05; done
check "slowloris holds 100 connections open" [ -s "$T/slow.ready" ]
t0=$(date +%s%N)
check "legit client verified while 100 handshakes hang" legit
ms=$((($(date +%s%N) - t0) / 1000000))
echo "# legit client under slowloris: ${ms} ms"
check "legit client was prompt (${ms} ms < 5000)" [ "$ms" -lt 5000 ]
wait "$slow"
src=$?
cat "$T/slow.out"
check "server closed all 100 idle connections (rc=$src)" [ "$src" -eq 0 ]
read -r _ _ _ _ _ _ _ _ _ max <"$T/slow.out"
max=${max%s}
check "idle ones closed at the 2 s handshake timeout (max ${max}s)" \
	awk -v m="$max" 'BEGIN { exit !(m >= 1.9 && m <= 10) }'
check "server logged 100 handshake timeouts" wait_log "$T/s.log" "did not finish within 2000 ms" 100

head -c 4096 /dev/urandom | timeout 10 bash -c \
	"exec 3<>/dev/tcp/127.0.0.1/$CTRL_PORT; cat >&3; timeout 5 cat <&3 >/dev/null" 2>/dev/null
check "garbage bytes refused as not TLS" wait_log "$T/s.log" "reject .*does not speak TLS" 1
timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$CTRL_PORT
	printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3; timeout 5 cat <&3 >/dev/null" 2>/dev/null
check "plain HTTP refused" wait_log "$T/s.log" "reject .*plain HTTP request" 1
timeout 10 openssl s_client -connect "127.0.0.1:$CTRL_PORT" -tls1_2 \
	-cert "$T/pki/client.crt" -key "$T/pki/client.key" -CAfile "$T/pki/ca.crt" \
	</dev/null >"$T/tls12.out" 2>&1
check "TLS 1.2-only client refused" wait_log "$T/s.log" "reject .*older than 1.3" 1
check "s_client saw a protocol_version alert" grep -q "alert protocol version" "$T/tls12.out"
check "legit client unharmed after the control-port adversaries" legit

# ---- certificates ----
check "client certificate from another CA refused" expect_fail "the server rejected our certificate: unknown ca" \
	client --cert "$T/other/client.crt" --key "$T/other/client.key" --ca "$T/pki/ca.crt" \
	--transport ofi --op echo
check "... server names the reason" wait_log "$T/s.log" "reject .*not signed by the CA" 1
check "server from another CA refused by the client" expect_fail "not signed by the CA" \
	client --certs "$T/other" --transport ofi --op echo
check "expired client certificate refused" expect_fail "the server rejected our certificate: certificate expired" \
	client --certs "$T/pki" --identity expired --transport ofi --op echo
check "... server names the reason" wait_log "$T/s.log" "reject .*'expired' expired on" 1
check "not-yet-valid client certificate refused" expect_fail \
	"the server rejected our certificate: .*'future', is not valid yet" \
	client --certs "$T/pki" --identity future --transport ofi --op echo
check "... server names the reason" wait_log "$T/s.log" "reject .*'future' is not valid until" 1
check "identity not on the allow-list refused" expect_fail "allow-list" \
	client --certs "$T/pki" --identity bob --transport ofi --op echo
check "... server names the reason" wait_log "$T/s.log" "reject .*'bob' is not on the allow-list" 1
check "wrong expected server name refused" expect_fail "does not carry the name" \
	client --certs "$T/pki" --peer-name wrong.example --transport ofi --op echo
check "legit client unharmed after the certificate cases" legit
check "server alive" server_alive
check "orderly shutdown" stop_server

for s in srvexp srvwrong; do
	start_server "$s" --cert "$T/pki/$s.crt" --key "$T/pki/$s.key" \
		--ca "$T/pki/ca.crt" --transport ofi || exit 1
	case $s in
	srvexp) pat="expired on" ;;
	srvwrong) pat="does not carry the name '127.0.0.1'" ;;
	esac
	check "server certificate $s refused by the client" expect_fail "$pat" \
		client --certs "$T/pki" --transport ofi --op echo
	check "... and the server saw the client's refusal" wait_log "$T/$s.log" "reject .*rejected our certificate" 1
	stop_server
done
# A server certificate that is not valid yet.
$I "$T/pki" srvfut --server --san 127.0.0.1 --nb 86400 || exit 1
start_server srvfut --cert "$T/pki/srvfut.crt" --key "$T/pki/srvfut.key" \
	--ca "$T/pki/ca.crt" --transport ofi || exit 1
check "not-yet-valid server certificate refused by the client" expect_fail "not valid until|not valid yet" \
	client --certs "$T/pki" --transport ofi --op echo
stop_server

# ---- fabric tokens ----
# TTL is 5 s; the handshake deadline must outlive it for the expired case.
start_server f --certs "$T/pki" --transport ofi --handshake-timeout 20000 || exit 1
S="$BUILD/ofi_stranger"
H="$BUILD/half_client"
# half NAME: a session held open between PARAMS and the fabric connect.
half() {
	rm -f "$T/$1.sid"
	"$H" 127.0.0.1 "$CTRL_PORT" "$T/pki" "$T/$1" --hold 60 \
		>"$T/$1.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 200); do [ -s "$T/$1.sid" ] && return 0; sleep 0.05; done
	cat "$T/$1.out"
	return 1
}
check "no private data rejected" timeout 30 "$S" 127.0.0.1 "$FABRIC_PORT" --none
check "... server: no private data" wait_log "$T/f.log" "reject .*rejected: connect private data is 0 bytes" 1
check "zero private data rejected" timeout 30 "$S" 127.0.0.1 "$FABRIC_PORT" --zero
check "... server: not our private data" wait_log "$T/f.log" "reject .*rejected: connect private data magic is 0x00000000" 1
for n in A B C D; do
	check "half-open session $n held between PARAMS and fabric connect" half "$n"
done
head -c 32 /dev/urandom >"$T/random.token"
"$H" --mix "$T/random.token" "$(cat "$T/C.sid")" "$T/wrong.pdata"
check "wrong token (random key, live session) rejected" \
	timeout 30 "$S" 127.0.0.1 "$FABRIC_PORT" --replay "$T/wrong.pdata"
check "... server: MAC does not match" wait_log "$T/f.log" "reject .*MAC does not match" 1
"$H" --mix "$T/A.token" "$(cat "$T/B.sid")" "$T/foreign.pdata"
check "another session's token (A's key for B) rejected" \
	timeout 30 "$S" 127.0.0.1 "$FABRIC_PORT" --replay "$T/foreign.pdata"
check "... server: MAC does not match" wait_log "$T/f.log" "reject .*MAC does not match" 2
# Positive control: the helper's own private data is accepted, so the
# rejections above are the token check at work, not a broken helper.
timeout 30 "$S" 127.0.0.1 "$FABRIC_PORT" --replay "$T/A.pdata" >"$T/good.out"
check "correct token accepted (positive control)" grep -q accepted "$T/good.out"
check "replay of a used token rejected" \
	timeout 30 "$S" 127.0.0.1 "$FABRIC_PORT" --replay "$T/A.pdata"
check "... server: unknown or used session" wait_log "$T/f.log" "reject .*unknown or used session" 1
check "legit client (saving its connect data)" env SRDMA_TEST_SAVE_PDATA="$T/legit.pdata" \
	"$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/pki" --transport ofi \
	--op echo --count 2 --quiet
check "replay of a real client's token rejected" \
	timeout 30 "$S" 127.0.0.1 "$FABRIC_PORT" --replay "$T/legit.pdata"
check "... server: unknown or used session" wait_log "$T/f.log" "reject .*unknown or used session" 2
# D's token expires 5 s after its PARAMS; present it (correct MAC) after 6.
sleep 6
check "expired token (correct MAC, 6 s after issue) rejected" \
	timeout 30 "$S" 127.0.0.1 "$FABRIC_PORT" --replay "$T/D.pdata"
check "... server: token expired" wait_log "$T/f.log" "reject .*token expired" 1
check "the victim session was told why" wait_log "$T/D.out" "server said: .*expired" 1
check "legit client unharmed after the token cases" legit
check "server alive" server_alive
check "orderly shutdown" stop_server
finish
