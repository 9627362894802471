#!/bin/bash
# valgrind memcheck of the server through connect/close cycles (including
# strangers and refused clients): no leaks, no invalid accesses.
. "$(dirname "$0")/lib.sh"
need_cmd valgrind
CYCLES=${VG_CYCLES:-20}
make_pki "$T/pki" client
make_pki "$T/other" client
rm -f "$T/vg.ports"
valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
	--log-file="$T/vg.txt" \
	"$SRDMA" serve --listen 127.0.0.1:0 --port-file "$T/vg.ports" --certs "$T/pki" \
	--transport ofi --protect integrity >"$T/s.log" 2>&1 &
SERVER_PID=$!; PIDS+=("$SERVER_PID")
for _ in $(seq 400); do [ -s "$T/vg.ports" ] && break; sleep 0.05; done
read -r CTRL_PORT FABRIC_PORT <"$T/vg.ports"
bad=0
for i in $(seq "$CYCLES"); do
	client --certs "$T/pki" --transport ofi --op all --size 5000 --count 2 --quiet \
		>/dev/null 2>&1 || bad=$((bad + 1))
done
check "$CYCLES clients verified under valgrind" [ "$bad" -eq 0 ]
# A certificate from another CA: the server is the one that refuses it.
check "refused client under valgrind" expect_fail "the server rejected our certificate: unknown ca" \
	client --cert "$T/other/client.crt" --key "$T/other/client.key" --ca "$T/pki/ca.crt" \
	--transport ofi --op echo
# logged PATTERN: the server's log (slow under valgrind) has PATTERN within 20 s.
logged() {
	for _ in $(seq 200); do grep -qE -- "$1" "$T/s.log" && return 0; sleep 0.1; done
	echo "server log lacks /$1/:"; cat "$T/s.log"
	return 1
}
check "... the server named the reason" logged "reject .*client certificate 'client' is not signed by the CA"
check "policy refusal under valgrind" expect_fail \
	"server said: the client asked for protection 'none' but this server requires at least 'integrity'" \
	client --certs "$T/pki" --transport ofi --protect none --op echo
printf 'GET / HTTP/1.1\r\n\r\n' | timeout 5 bash -c "cat > /dev/tcp/127.0.0.1/$CTRL_PORT" 2>/dev/null
client --certs "$T/pki" --transport ofi --op write --count 100000 --size 64K --quiet >/dev/null 2>&1 &
v=$!; sleep 3; kill -9 $v; wait $v 2>/dev/null
sleep 1
kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; rc=$?
check "valgrind exit status clean (rc=$rc)" [ "$rc" -eq 0 ]
check "no leaks reported" grep -q "ERROR SUMMARY: 0 errors" "$T/vg.txt"
[ "$FAIL" -eq 0 ] || tail -60 "$T/vg.txt"
finish
