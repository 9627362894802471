#!/bin/bash
# Raw libfabric clients that skip TLS and connect straight to the fabric
# port: no private data, zeros, random bytes, and a replay of a real client's
# private data. All rejected; the server goes on serving.
. "$(dirname "$0")/lib.sh"
need_hooks
STRANGER="$BUILD/ofi_stranger"
[ -x "$STRANGER" ] || { echo "missing $STRANGER"; exit 1; }
make_pki "$T/pki" client
start_server s --certs "$T/pki" --transport ofi || exit 1
check "no private data rejected" timeout 20 "$STRANGER" 127.0.0.1 "$FABRIC_PORT" --none
check "zero private data rejected" timeout 20 "$STRANGER" 127.0.0.1 "$FABRIC_PORT" --zero
check "random private data rejected" timeout 20 "$STRANGER" 127.0.0.1 "$FABRIC_PORT" \
	--pdata "$(head -c 56 /dev/urandom | od -An -tx1 | tr -d ' \n')"
check "legit client (saving its connect data)" env SRDMA_TEST_SAVE_PDATA="$T/pdata" \
	"$SRDMA" client --connect "127.0.0.1:$CTRL_PORT" --certs "$T/pki" --transport ofi \
	--op echo --count 2 --quiet
check "replayed token rejected" timeout 20 "$STRANGER" 127.0.0.1 "$FABRIC_PORT" --replay "$T/pdata"
# A wrong MAC for a live session: tamper the last byte of a saved pdata.
python3 - "$T/pdata" "$T/pdata2" <<'PY'
import sys; d=bytearray(open(sys.argv[1],'rb').read()); d[-1]^=1; open(sys.argv[2],'wb').write(d)
PY
check "wrong token rejected" timeout 20 "$STRANGER" 127.0.0.1 "$FABRIC_PORT" --replay "$T/pdata2"
sleep 0.3
check "server logged the rejections" [ "$(grep -c 'reject' "$T/s.log")" -ge 4 ]
check "server still serves" client --certs "$T/pki" --transport ofi --op all --count 3 --quiet
check "orderly shutdown" stop_server
finish
