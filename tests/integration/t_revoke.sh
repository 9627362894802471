#!/bin/bash
# Revocation (issue 17): srdma serve --crl FILE.
#
#   an unusable CRL (missing, not a CRL, expired, of another CA) stops the
#   server at start with one line saying what is wrong;
#   a client on the CRL is refused with a sentence that says so, on a full
#   handshake and when it offers a ticket issued before the revocation
#   (the CRL was reloaded with SIGHUP while the server ran); the others go
#   on, and the refusals are counted by reason in the metrics.
. "$(dirname "$0")/lib.sh"
for t in pki_issue resume_probe; do
	[ -x "$BUILD/$t" ] || { echo "missing $BUILD/$t"; exit 1; }
done
I="$BUILD/pki_issue"
make_pki "$T/pki" client bob
make_pki "$T/other" client
$I "$T/pki" --crl "$T/pki/crl.pem" || exit 1 # empty: nobody revoked
legit() { client --certs "$T/pki" --transport ofi --op all --count 2 --quiet; }
# wait_log FILE PATTERN N: until FILE has N lines matching PATTERN (20 s).
wait_log() {
	for _ in $(seq 200); do
		[ "$(grep -cE -- "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.1
	done
	echo "want $3 x /$2/ in $1, have $(grep -cE -- "$2" "$1")"
	return 1
}
serve() { timeout 10 "$SRDMA" serve --listen 127.0.0.1:0 --certs "$T/pki" --transport ofi "$@"; }

# ---- unusable CRL files: a clear configuration error at start ----
check "a missing CRL file stops the server" \
	expect_fail "cannot use CRL file $T/none.pem" serve --crl "$T/none.pem"
echo "not a CRL" >"$T/junk.pem"
check "a file without a CRL stops the server" \
	expect_fail "no CRL in $T/junk.pem" serve --crl "$T/junk.pem"
$I "$T/pki" --crl "$T/old.pem" --last -7200 --next -60 || exit 1
check "an expired CRL stops the server" \
	expect_fail "CRL of .* in $T/old.pem expired on .*publish a new one" serve --crl "$T/old.pem"
$I "$T/other" --crl "$T/other.pem" || exit 1
check "another CA's CRL stops the server" \
	expect_fail "is not signed by a CA in" serve --crl "$T/other.pem"

# ---- a revoked client, full and resumed ----
start_server v --certs "$T/pki" --transport ofi --crl "$T/pki/crl.pem" \
	--metrics 127.0.0.1:0 || exit 1
check "bob is served while not revoked" \
	client --certs "$T/pki" --identity bob --transport ofi --op echo --quiet
# bob connects once (and keeps the ticket it was given) ...
"$BUILD/resume_probe" 127.0.0.1 "$CTRL_PORT" "$T/pki" bob "$T/ready" "$T/go" \
	>"$T/probe.out" 2>&1 &
probe=$!
PIDS+=("$probe")
for _ in $(seq 200); do [ -e "$T/ready" ] && break; sleep 0.05; done
check "bob's first connection (full handshake, ticket kept)" grep -q "^first: ok resumed=0" "$T/probe.out"
# ... bob is revoked and the server reloads the CRL ...
$I "$T/pki" --crl "$T/pki/crl.pem" --revoke bob || exit 1
kill -HUP "$SERVER_PID"
check "SIGHUP reloaded the CRL" wait_log "$T/v.log" "reloaded certificate, key and CA, CRL" 1
# ... and comes back with the ticket from before the revocation
touch "$T/go"
wait "$probe"
cat "$T/probe.out"
check "the ticket from before the revocation does not resume: refused" \
	grep -q "^second: refused (-37): .*certificate revoked ('bob' is on the peer's revocation list" "$T/probe.out"
check "... the server says why (revoked; its ticket was not used)" \
	wait_log "$T/v.log" "reject .*client certificate 'bob' has been revoked .*session ticket was not used: the client certificate in the session ticket has been revoked" 1
check "a revoked client is refused with a sentence that says so" \
	expect_fail "certificate revoked \('bob' is on the peer's revocation list; a new certificate is needed\)" \
	client --certs "$T/pki" --identity bob --transport ofi --op echo
check "... the server names the reason" wait_log "$T/v.log" "reject .*client certificate 'bob' has been revoked" 2
check "another client is served" legit
revoked=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" |
	awk '$1 == "srdma_refused_total{reason=\"revoked\"}" { print $2 }')
check "metrics count the revoked refusals ($revoked)" [ "$revoked" = 2 ]
check "orderly shutdown" stop_server
finish
