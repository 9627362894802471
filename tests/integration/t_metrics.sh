#!/bin/bash
# Metrics (issue 17): srdma serve --metrics HOST:PORT answers GET /metrics
# in the Prometheus text format, scraped here with curl, parsed, and checked
# with promtool; it listens only when and where told; anything but GET or
# HEAD /metrics gets a clean HTTP error; an idle scraper does not stall
# the server.
. "$(dirname "$0")/lib.sh"
for t in multi_client; do
	[ -x "$BUILD/$t" ] || { echo "missing $BUILD/$t"; exit 1; }
done
for c in curl promtool ss; do
	command -v "$c" >/dev/null || { echo "$c missing (make deps)"; exit 1; }
done
make_pki "$T/pki" client
make_pki "$T/other" client
# listening TCP sockets of the server process
listening() { ss -Hltnp | grep -c "pid=$SERVER_PID,"; }
scrape() { curl -sf "http://127.0.0.1:$METRICS_PORT/metrics"; }
# value NAME[{labels}]: the sample's value in $T/scrape
value() { awk -v k="$1" '$1 == k { print $2 }' "$T/scrape"; }

# ---- no --metrics: no listener ----
start_server n --certs "$T/pki" --transport ofi || exit 1
check "without --metrics the server listens on 2 ports (control, fabric)" \
	[ "$(listening)" -eq 2 ]
check "orderly shutdown" stop_server

start_server m --certs "$T/pki" --transport ofi --region-size 4096 \
	--metrics 127.0.0.1:0 || exit 1
check "with --metrics 127.0.0.1:0: a third, on 127.0.0.1 only" \
	[ "$(ss -Hltnp | grep "pid=$SERVER_PID," | grep -c "127.0.0.1:$METRICS_PORT ")" -eq 1 ]
check "... and 3 in all" [ "$(listening)" -eq 3 ]

# ---- a scrape with 10 clients connected ----
"$BUILD/multi_client" 127.0.0.1 "$CTRL_PORT" "$T/pki" 10 --ready "$T/ready" \
	--go "$T/go" >"$T/held.out" 2>&1 &
held=$!
PIDS+=("$held")
for _ in $(seq 300); do [ -s "$T/ready" ] && break; sleep 0.1; done
check "a client from another CA is refused (for the counters)" expect_fail "CA" \
	client --cert "$T/other/client.crt" --key "$T/other/client.key" \
	--ca "$T/pki/ca.crt" --transport ofi --op echo
curl -sf -D "$T/headers" -o "$T/scrape" "http://127.0.0.1:$METRICS_PORT/metrics"
check "curl GET /metrics: 200" grep -q "^HTTP/1.1 200 OK" "$T/headers"
check "... as text/plain; version=0.0.4" \
	grep -qi "^Content-Type: text/plain; version=0.0.4" "$T/headers"
check "... Content-Length matches the body" \
	[ "$(awk -F': ' 'tolower($1) == "content-length" { print $2 + 0 }' "$T/headers")" -eq "$(wc -c <"$T/scrape")" ]
check "promtool check metrics accepts it" promtool check metrics <"$T/scrape"
# every sample line is NAME[{labels}] NUMBER
check "every sample parses as name, labels, number" awk '
	/^#/ { next }
	!/^srdma_[a-z_]+(\{[a-z_]+="[a-z_]+"(,[a-z_]+="[a-z_]+")*\})? [0-9]+$/ { bad++ }
	END { exit bad > 0 || NR < 50 }' "$T/scrape"
grep -v "^#" "$T/scrape" | grep -v " 0$"
check "srdma_clients 10" [ "$(value srdma_clients)" = 10 ]
check "srdma_established_total 10" [ "$(value srdma_established_total)" = 10 ]
check "srdma_handshakes_in_flight 0" [ "$(value srdma_handshakes_in_flight)" = 0 ]
check "the refused client, by reason: certificate 1" \
	[ "$(value 'srdma_refused_total{reason="certificate"}')" = 1 ]
check "srdma_accepted_total 11" [ "$(value srdma_accepted_total)" = 11 ]
check "pool hits and misses add up to the 10 clients" \
	[ "$(($(value srdma_pool_hits_total) + $(value srdma_pool_misses_total)))" -eq 10 ]
touch "$T/go"
wait "$held"
check "the 10 clients verified" grep -q "^held 10 verified 10" "$T/held.out"
sleep 0.5
scrape >"$T/scrape"
check "after they left: srdma_clients 0" [ "$(value srdma_clients)" = 0 ]
check "... srdma_closed_total{how=\"orderly\"} 10" \
	[ "$(value 'srdma_closed_total{how="orderly"}')" = 10 ]
kill -HUP "$SERVER_PID"
sleep 0.5
scrape >"$T/scrape"
check "a reload is counted" [ "$(value 'srdma_reloads_total{result="ok"}')" = 1 ]

# ---- the data path: one client's operations, counted once each ----
ops() { value "srdma_operations_total{op=\"$1\",mode=\"encrypt\"}"; }
bytes() { value "srdma_payload_bytes_total{op=\"$1\",mode=\"encrypt\"}"; }
scrape >"$T/scrape"
s0=$(ops send) r0=$(ops recv) p0=$(ops peer_write) rb0=$(bytes recv) pb0=$(bytes peer_write)
check "a client echoes 3 messages and writes 3 blocks of 4096 B" \
	client --certs "$T/pki" --transport ofi --protect encrypt --op all \
	--count 3 --size 4096 --quiet
sleep 0.3
scrape >"$T/scrape"
check "... 3 messages received and verified ($r0 -> $(ops recv))" [ "$(($(ops recv) - r0))" -eq 3 ]
check "... 3 echoes sent ($s0 -> $(ops send))" [ "$(($(ops send) - s0))" -eq 3 ]
check "... 3 x 4096 B received" [ "$(($(bytes recv) - rb0))" -eq 12288 ]
check "... 3 peer writes verified ($p0 -> $(ops peer_write))" [ "$(($(ops peer_write) - p0))" -eq 3 ]
check "... 3 x 4096 B written by the peer" [ "$(($(bytes peer_write) - pb0))" -eq 12288 ]
check "... nothing counted in mode none" \
	[ "$(value 'srdma_operations_total{op="recv",mode="none"}')" = 0 ]

# ---- anything else: a clean HTTP error ----
code() { curl -s -o /dev/null -w "%{http_code}" "$@"; }
check "GET / is 404" [ "$(code "http://127.0.0.1:$METRICS_PORT/")" = 404 ]
check "POST /metrics is 405" [ "$(code -X POST "http://127.0.0.1:$METRICS_PORT/metrics")" = 405 ]
check "... naming what is allowed" \
	eval "curl -s -D - -o /dev/null -X POST http://127.0.0.1:$METRICS_PORT/metrics | grep -qi '^Allow: GET, HEAD'"
check "HEAD /metrics is 200" [ "$(code -I "http://127.0.0.1:$METRICS_PORT/metrics")" = 200 ]
printf 'hello\r\n\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$METRICS_PORT; cat >&3; cat <&3" >"$T/junk.out"
check "not HTTP is 400" grep -q "^HTTP/1.1 400 Bad Request" "$T/junk.out"
head -c 8000 /dev/zero | tr '\0' 'a' | timeout 5 bash -c \
	"exec 3<>/dev/tcp/127.0.0.1/$METRICS_PORT; cat >&3; cat <&3" >"$T/long.out" 2>/dev/null
check "an endless request line is 400" grep -q "^HTTP/1.1 400 Bad Request" "$T/long.out"

# ---- idle scrapers do not stall the server ----
idle=()
for i in $(seq 20); do
	timeout 8 bash -c "exec 3<>/dev/tcp/127.0.0.1/$METRICS_PORT; sleep 7" 2>/dev/null &
	idle+=($!)
done
sleep 0.3
t0=$(date +%s%N)
check "a client is served while 20 idle connections sit on the metrics port" \
	client --certs "$T/pki" --transport ofi --op all --count 2 --quiet
ms=$((($(date +%s%N) - t0) / 1000000))
check "... promptly (${ms} ms < 3000)" [ "$ms" -lt 3000 ]
sleep 5.5 # the idle ones are closed after 5 s
check "... and a scrape works once they are gone" eval "scrape | grep -q '^srdma_clients 0$'"
wait "${idle[@]}"
check "orderly shutdown" stop_server
finish
