#!/bin/bash
# Mode negotiation and certificate refusals, as a user meets them.
. "$(dirname "$0")/lib.sh"
make_pki "$T/pki" client bob
make_pki "$T/other" client
start_server s --certs "$T/pki" --transport ofi --protect encrypt --allow client || exit 1
check "none refused by an encrypt-only server" expect_fail \
	"requires at least 'encrypt'" client --certs "$T/pki" --transport ofi --protect none --op echo
check "integrity refused too" expect_fail "requires at least" \
	client --certs "$T/pki" --transport ofi --protect integrity --op echo
check "client from another CA refused" expect_fail "certificate|CA" \
	client --certs "$T/other" --transport ofi --op echo
check "server from another CA refused by the client" expect_fail "not signed|unknown CA|CA" \
	client --cert "$T/pki/client.crt" --key "$T/pki/client.key" --ca "$T/other/ca.crt" --transport ofi --op echo
check "identity not on the allow-list refused" expect_fail "allow" \
	client --certs "$T/pki" --identity bob --transport ofi --op echo
check "wrong server name refused" expect_fail "name|match" \
	client --certs "$T/pki" --peer-name wrong.example --transport ofi --op echo
check "server logged the refusals" [ "$(grep -c 'reject' "$T/s.log")" -ge 3 ]
check "encrypt client still served" client --certs "$T/pki" --transport ofi --op all --count 3 --quiet
check "unreachable port: clear error" expect_fail "refused|running" \
	timeout 20 "$SRDMA" client --connect 127.0.0.1:1 --certs "$T/pki" --transport ofi --op echo
check "missing certs dir: clear error" expect_fail "certs|ca.crt" \
	timeout 20 "$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/nope" --transport ofi
check "orderly shutdown" stop_server
finish
