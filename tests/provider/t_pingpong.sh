#!/bin/bash
# fi_pingpong over the srdma provider: FI_EP_MSG directly, and FI_EP_RDM with
# tagged messages through srdma;ofi_rxm. Both sides exit 0 with the size
# table, every connection authenticated (TLS 1.3) and encrypted
# (AES-256-GCM); a client holding a certificate from another CA gets our
# sentence and no table. In the sanitizer build the provider runs under
# ASan+UBSan (SRDMA_PROV_PRELOAD).
. "$(dirname "$0")/lib.sh"
need_cmd python3
make_pki "$T/pki" client alice bob
make_pki "$T/other"
export FI_SRDMA_CERTS="$T/pki"

listed() {
	local out
	out=$("${PRELOAD[@]}" fi_info -p srdma 2>&1) || { echo "$out"; return 1; }
	echo "$out" | grep -qx 'provider: srdma' &&
		echo "$out" | grep -qx 'provider: srdma;ofi_rxm' &&
		"${PRELOAD[@]}" fi_info -p 'srdma;ofi_rxm' -v 2>&1 | grep -q 'FI_TAGGED' ||
		{ echo "fi_info -p srdma: $out"; return 1; }
}
check "fi_info -p srdma lists srdma (FI_EP_MSG) and srdma;ofi_rxm (FI_EP_RDM, FI_TAGGED)" listed

# FI_PROVIDER=srdma alone hides tcp, which libsrdma's ofi transport needs:
# refused with the way out; FI_PROVIDER=srdma,tcp works.
provider_env() {
	local out
	out=$(FI_PROVIDER=srdma "${PRELOAD[@]}" fi_info -p srdma 2>&1) &&
		{ echo "FI_PROVIDER=srdma listed it: $out"; return 1; }
	echo "$out" | grep -q "FI_PROVIDER=srdma hides the 'tcp' provider" ||
		{ echo "no explanation: $out"; return 1; }
	FI_PROVIDER=srdma,tcp "${PRELOAD[@]}" fi_info -p srdma >/dev/null 2>&1 ||
		{ echo "FI_PROVIDER=srdma,tcp: not listed"; return 1; }
}
check "FI_PROVIDER=srdma alone is refused with a sentence; srdma,tcp works" provider_env

msg() {
	pingpong msg FI_SRDMA_LOG=info FI_SRDMA_LOG=info -p srdma -e msg -I 20 -c
	[ "$PP_RC" -eq 0 ] && [ "$PP_SRC" -eq 0 ] ||
		{ echo "exit: client $PP_RC server $PP_SRC"; cat "$T/msg.srv" "$T/msg.cli"; return 1; }
	table "$T/msg.cli" 64 256 1k 4k 64k 1m && table "$T/msg.srv" 64 1m || return 1
	grep -q 'connected to 127.0.0.1:[0-9]*: TLSv1.3 TLS_AES_256_GCM_SHA384, encrypt AES-256-GCM, peer server' "$T/msg.cli" &&
		grep -q 'accepted 127.0.0.1:[0-9]*: TLSv1.3 TLS_AES_256_GCM_SHA384, encrypt AES-256-GCM, peer client' "$T/msg.srv" ||
		{ echo "no TLS 1.3 / AES-256-GCM line"; cat "$T/msg.srv" "$T/msg.cli"; return 1; }
}
check "fi_pingpong -p srdma -e msg -c: table 64 B..1 MiB, TLS 1.3 + AES-256-GCM" msg

rdm() {
	pingpong rdm - - -p 'srdma;ofi_rxm' -e rdm -m tagged -I 20 -c
	[ "$PP_RC" -eq 0 ] && [ "$PP_SRC" -eq 0 ] ||
		{ echo "exit: client $PP_RC server $PP_SRC"; cat "$T/rdm.srv" "$T/rdm.cli"; return 1; }
	table "$T/rdm.cli" 64 256 1k 4k 64k 1m && table "$T/rdm.srv" 64 1m
}
check "fi_pingpong -p 'srdma;ofi_rxm' -e rdm -m tagged -c: table 64 B..1 MiB" rdm

# ofi_rxm's other rendezvous: the sender RMA-writes into the receiver's
# buffer (fi_writemsg with remote CQ data) instead of the receiver reading.
rdm_write() {
	pingpong rdmw FI_OFI_RXM_USE_RNDV_WRITE=1 FI_OFI_RXM_USE_RNDV_WRITE=1 \
		-p 'srdma;ofi_rxm' -e rdm -m tagged -I 10 -c -S 1048576
	[ "$PP_RC" -eq 0 ] && [ "$PP_SRC" -eq 0 ] ||
		{ echo "exit: client $PP_RC server $PP_SRC"; cat "$T/rdmw.srv" "$T/rdmw.cli"; return 1; }
	table "$T/rdmw.cli" 1m && table "$T/rdmw.srv" 1m
}
check "... with FI_OFI_RXM_USE_RNDV_WRITE=1 (RMA writes with remote CQ data): 1 MiB verified" rdm_write

other_ca() {
	# The client logs nothing itself (FI_SRDMA_LOG=none): the sentence it
	# prints is fi_pingpong's, from fi_eq_readerr and fi_eq_strerror.
	pingpong other "FI_SRDMA_CERTS=$T/other FI_SRDMA_LOG=none" FI_SRDMA_LOG=warn \
		-p srdma -e msg -I 5 -S 64
	[ "$PP_RC" -ne 0 ] || { echo "client with another CA's certificate succeeded"; return 1; }
	grep -q "eq_readerr: srdma: cannot connect to 127.0.0.1:[0-9]*: The peer's certificate is not signed by a trusted CA\. server certificate for '127.0.0.1' (CN 'server') is not signed by the CA in $T/other/ca.crt" "$T/other.cli" ||
		{ echo "client: no sentence from fi_eq_strerror"; cat "$T/other.cli"; return 1; }
	grep -q "libfabric:[0-9]*:srdma:" "$T/other.cli" &&
		{ echo "client: FI_SRDMA_LOG=none still logged"; return 1; }
	grep -qE '^64 +5 ' "$T/other.cli" && { echo "client printed a table"; return 1; }
	grep -q "refused a peer: The peer's certificate is not signed by a trusted CA" "$T/other.srv" ||
		{ echo "server: no refusal logged"; cat "$T/other.srv"; return 1; }
}
check "a client with a certificate from another CA fails with our sentence" other_ca

allow() {
	pingpong bob "FI_SRDMA_IDENTITY=bob FI_SRDMA_LOG=none" FI_SRDMA_ALLOW=alice \
		-p srdma -e msg -I 5 -S 64
	[ "$PP_RC" -ne 0 ] || { echo "bob, not on the allow-list, got in"; return 1; }
	grep -q "eq_readerr: srdma: cannot connect to .*The peer's identity is not on the allow-list" "$T/bob.cli" ||
		{ echo "bob: no sentence"; cat "$T/bob.cli"; return 1; }
	pingpong alice FI_SRDMA_IDENTITY=alice FI_SRDMA_ALLOW=alice -p srdma -e msg -I 5 -S 64
	[ "$PP_RC" -eq 0 ] && [ "$PP_SRC" -eq 0 ] && table "$T/alice.cli" 64 ||
		{ echo "alice, on the allow-list: client $PP_RC server $PP_SRC"; cat "$T/alice.srv" "$T/alice.cli"; return 1; }
}
check "FI_SRDMA_ALLOW=alice: bob is refused with our sentence, alice gets through" allow

policy() {
	pingpong weak "FI_SRDMA_PROTECT=none FI_SRDMA_LOG=none" FI_SRDMA_PROTECT=encrypt \
		-p srdma -e msg -I 5 -S 64
	[ "$PP_RC" -ne 0 ] || { echo "a client asking for none got in"; return 1; }
	grep -q "eq_readerr: srdma: cannot connect to .*The protection mode is weaker than the server accepts" "$T/weak.cli" ||
		{ echo "no sentence"; cat "$T/weak.cli"; return 1; }
}
check "a listener at encrypt refuses a peer asking for none, with our sentence" policy

finish
