#!/bin/bash
# Mode negotiation and certificate refusals, as a user meets them: each
# refusal gives the user a one-line reason, and the server logs one
# 'reject' line naming the same reason.
. "$(dirname "$0")/lib.sh"
make_pki "$T/pki" client bob
make_pki "$T/other" client
start_server s --certs "$T/pki" --transport ofi --protect encrypt --allow client || exit 1

# nth_reject N PATTERN: the server logs its Nth 'reject' line (within 5 s)
# and that one matches PATTERN.
nth_reject() {
	local line
	for _ in $(seq 50); do
		[ "$(grep -c ' reject ' "$T/s.log")" -ge "$1" ] && break
		sleep 0.1
	done
	line=$(grep ' reject ' "$T/s.log" | sed -n "$1p")
	printf '%s\n' "$line" | grep -qE -- "$2" && return 0
	echo "reject $1: want /$2/, server logged: '${line:-nothing}'"
	return 1
}
n=0
check "none refused by an encrypt-only server" expect_fail \
	"server said: the client asked for protection 'none' but this server requires at least 'encrypt'$" \
	client --certs "$T/pki" --transport ofi --protect none --op echo
n=$((n + 1))
check "... server: protection too weak" nth_reject $n \
	"\(client\): the client asked for protection 'none' but this server requires at least 'encrypt'"
check "integrity refused too" expect_fail \
	"server said: the client asked for protection 'integrity' but this server requires at least 'encrypt'$" \
	client --certs "$T/pki" --transport ofi --protect integrity --op echo
n=$((n + 1))
check "... server: protection too weak" nth_reject $n \
	"\(client\): the client asked for protection 'integrity' but this server requires at least 'encrypt'"
# The client trusts our CA but its certificate comes from another one: the
# server refuses it.
check "client certificate from another CA refused" expect_fail \
	"the server rejected our certificate: unknown ca \(our certificate 'client' is not signed by the CA" \
	client --cert "$T/other/client.crt" --key "$T/other/client.key" --ca "$T/pki/ca.crt" \
	--transport ofi --op echo
n=$((n + 1))
check "... server: not signed by the CA" nth_reject $n \
	"client certificate 'client' is not signed by the CA in $T/pki/ca.crt"
check "server from another CA refused by the client" expect_fail \
	"server certificate for '127\.0\.0\.1' \(CN 'server'\) is not signed by the CA in $T/other/ca.crt" \
	client --cert "$T/pki/client.crt" --key "$T/pki/client.key" --ca "$T/other/ca.crt" --transport ofi --op echo
n=$((n + 1))
check "... server: the client refused our certificate" nth_reject $n \
	"the client rejected our certificate: unknown ca"
check "identity not on the allow-list refused" expect_fail \
	"the server closed the connection right after TLS: is this client's identity on its allow-list\?$" \
	client --certs "$T/pki" --identity bob --transport ofi --op echo
n=$((n + 1))
check "... server: not on the allow-list" nth_reject $n "\(bob\): client 'bob' is not on the allow-list"
check "wrong server name refused" expect_fail \
	"server certificate for 'wrong\.example' \(CN 'server'\) does not carry the name 'wrong\.example'" \
	client --certs "$T/pki" --peer-name wrong.example --transport ofi --op echo
n=$((n + 1))
check "... server: the client refused our certificate" nth_reject $n \
	"the client rejected our certificate: bad certificate \(does 'server' carry the name"
check "server logged exactly the $n refusals" [ "$(grep -c ' reject ' "$T/s.log")" -eq "$n" ]
check "encrypt client still served" client --certs "$T/pki" --transport ofi --op all --count 3 --quiet
check "unreachable port: clear error" expect_fail \
	"cannot connect to 127\.0\.0\.1:1: .*Connection refused \(is \`srdma serve\` running there\?\)$" \
	timeout 20 "$SRDMA" client --connect 127.0.0.1:1 --certs "$T/pki" --transport ofi --op echo
check "missing certs dir: clear error" expect_fail \
	"cannot read $T/nope/client\.crt: No such file or directory \(create it with \`srdma certs $T/nope\`\)$" \
	timeout 20 "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/nope" --transport ofi
check "orderly shutdown" stop_server
finish
