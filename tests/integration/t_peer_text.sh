#!/bin/bash
# Text from a peer is made safe before it is logged or returned: a client
# that says ERROR with newlines, carriage returns and terminal escape
# sequences shows up in `srdma serve`'s log as one printable line, and the
# server goes on serving.
. "$(dirname "$0")/lib.sh"
make_pki "$T/pki"
start_server srv --certs "$T/pki" -v || exit 1
HC="$BUILD/half_client"
evil='first\nINJECTED LOG LINE\r\e[31mred\e[0m\e]0;title\x07 end'
check "hostile client sends its ERROR" bash -c \
	"'$HC' 127.0.0.1 $CTRL_PORT '$T/pki' '$T/hc' --error '$evil' >'$T/hc.out' 2>&1"
for _ in $(seq 50); do
	grep -q 'client said' "$T/srv.log" && break
	sleep 0.1
done
check "the server logged what the client said" grep -q 'client said: first' "$T/srv.log"
# The whole text is on that one line, every unsafe byte replaced.
check "on one line, with the rest of the text" \
	grep -q 'client said: first?INJECTED LOG LINE??\[31mred?\[0m?\]0;title? end' "$T/srv.log"
check "no line of the log starts with the injected text" bash -c \
	"test \$(grep -c 'INJECTED LOG LINE' '$T/srv.log') -eq \$(grep -c 'client said: first' '$T/srv.log')"
check "no control byte reached the log" bash -c \
	"! LC_ALL=C grep -q \$'[\\x01-\\x08\\x0b-\\x1f\\x7f]' '$T/srv.log'"
# The check above can fail: the raw text does hold such bytes.
printf 'x\033[31m\n' >"$T/control.txt"
check "(control: the byte search finds an escape)" \
	bash -c "LC_ALL=C grep -q \$'[\\x01-\\x08\\x0b-\\x1f\\x7f]' '$T/control.txt'"
check "the server still serves" "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" \
	--certs "$T/pki" --op echo --count 2 --quiet
stop_server
finish
