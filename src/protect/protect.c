/* SPDX-License-Identifier: MIT */
/*
 * Data-path protection: cipher choice, CSPRNG, key schedule from the TLS
 * exporter, the rekey and message records (DESIGN.md §4). The AEAD contexts
 * and their backends live in aead.c and aead_imb.c, sealed blocks in block.c
 * and the connect token in token.c; the helpers they share are in
 * protect_int.h.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "protect/protect.h"
#include "protect/protect_int.h"

/* Exporter labels: one per direction and purpose (RFC 8446 §7.5). */
static const char label_c2s_msg[] = "EXPORTER-srdma c2s msg";
static const char label_s2c_msg[] = "EXPORTER-srdma s2c msg";
static const char label_c2s_blk[] = "EXPORTER-srdma c2s blk";
static const char label_s2c_blk[] = "EXPORTER-srdma s2c blk";

static const char rekey_label[] = "srdma rekey";

enum srdma__cipher srdma__cipher_default(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("aes"))
		return SRDMA_CIPHER_AES_256_GCM;
#endif
	/* Without AES instructions ChaCha20 is both faster and constant-time.
	 */
	return SRDMA_CIPHER_CHACHA20_POLY1305;
}

const char *srdma__cipher_name(enum srdma__cipher c)
{
	switch (c) {
	case SRDMA_CIPHER_NONE:
		return "none";
	case SRDMA_CIPHER_AES_256_GCM:
		return "AES-256-GCM";
	case SRDMA_CIPHER_CHACHA20_POLY1305:
		return "ChaCha20-Poly1305";
	}
	return "unknown";
}

int srdma__ossl_err(int err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "no OpenSSL error queued");
	ERR_clear_error();
	return srdma__err(err, "%s failed: %s", what, buf);
}

int srdma__random(void *buf, size_t n)
{
	uint8_t *p = buf;

	ENSURE(buf || n == 0, SRDMA_EINVAL, "random: NULL buffer");
	/* RAND_bytes takes an int length. */
	while (n > 0) {
		int chunk = n > INT_MAX ? INT_MAX : (int)n;

		if (RAND_bytes(p, chunk) != 1)
			return srdma__ossl_err(SRDMA_ESYS,
					       "RAND_bytes (the CSPRNG)");
		p += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

/* ---- key schedule ---- */

static int export_one(SSL *ssl, const char *label, const uint8_t context[2],
		      uint8_t key[static SRDMA_KEY_LEN],
		      uint8_t salt[static SRDMA_SALT_LEN])
{
	uint8_t buf[SRDMA_KEY_LEN + SRDMA_SALT_LEN];
	int rc = 0;

	if (SSL_export_keying_material(ssl, buf, sizeof(buf), label,
				       strlen(label), context, 2, 1) != 1) {
		rc = srdma__ossl_err(SRDMA_ETLS, "SSL_export_keying_material");
		goto out_wipe;
	}
	memcpy(key, buf, SRDMA_KEY_LEN);
	memcpy(salt, buf + SRDMA_KEY_LEN, SRDMA_SALT_LEN);
out_wipe:
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int srdma__keys_derive(SSL *ssl, bool is_client, enum srdma_protect mode,
		       enum srdma__cipher cipher, struct srdma__keys *out)
{
	/* Binding mode and cipher into the exporter context means a peer
	 * that was talked into another mode derives unrelated keys. */
	const uint8_t context[2] = {(uint8_t)mode, (uint8_t)cipher};
	const char *tx_msg = is_client ? label_c2s_msg : label_s2c_msg;
	const char *rx_msg = is_client ? label_s2c_msg : label_c2s_msg;
	const char *tx_blk = is_client ? label_c2s_blk : label_s2c_blk;
	const char *rx_blk = is_client ? label_s2c_blk : label_c2s_blk;
	int rc;

	ENSURE(ssl && out, SRDMA_EINVAL, "keys_derive: NULL argument");
	memset(out, 0, sizeof(*out));
	ENSURE(mode <= SRDMA_PROTECT_ENCRYPT, SRDMA_EINVAL,
	       "keys_derive: unknown protection mode %d", (int)mode);
	ENSURE(cipher <= SRDMA_CIPHER_CHACHA20_POLY1305, SRDMA_EINVAL,
	       "keys_derive: unknown cipher %d", (int)cipher);
	ENSURE(mode == SRDMA_PROTECT_NONE || cipher != SRDMA_CIPHER_NONE,
	       SRDMA_EINVAL, "keys_derive: mode %d needs a cipher", (int)mode);
	ENSURE(SSL_version(ssl) == TLS1_3_VERSION, SRDMA_ETLS_VERSION,
	       "keys_derive: the control channel is not TLS 1.3");

	out->mode = mode;
	out->cipher = cipher;
	rc = export_one(ssl, tx_msg, context, out->tx_msg_key,
			out->tx_msg_salt);
	if (rc < 0)
		goto out_wipe_keys;
	rc = export_one(ssl, rx_msg, context, out->rx_msg_key,
			out->rx_msg_salt);
	if (rc < 0)
		goto out_wipe_keys;
	rc = export_one(ssl, tx_blk, context, out->tx_blk_key,
			out->tx_blk_salt);
	if (rc < 0)
		goto out_wipe_keys;
	rc = export_one(ssl, rx_blk, context, out->rx_blk_key,
			out->rx_blk_salt);
	if (rc < 0)
		goto out_wipe_keys;
	return 0;

out_wipe_keys:
	srdma__keys_wipe(out);
	return rc;
}

void srdma__keys_wipe(struct srdma__keys *k)
{
	if (k)
		OPENSSL_cleanse(k, sizeof(*k));
}

/*
 * Implicit rekey (DESIGN.md §4: never 2^32 records under one key): both
 * sides step key_{e+1} = HMAC-SHA256(key_e, "srdma rekey" || u64 e+1) at
 * the same sequence number, so no message is needed. The salt stays; the
 * sequence keeps counting, so nonces never repeat under any key either.
 */
static int rekey(struct srdma__aead *a)
{
	uint8_t msg[sizeof(rekey_label) - 1 + 8];
	uint8_t next[32];
	unsigned int next_len = 0;
	int rc = 0;

	memcpy(msg, rekey_label, sizeof(rekey_label) - 1);
	srdma__be64(msg + sizeof(rekey_label) - 1, a->epoch + 1);
	if (!HMAC(EVP_sha256(), a->key, SRDMA_KEY_LEN, msg, sizeof(msg), next,
		  &next_len) ||
	    next_len != SRDMA_KEY_LEN) {
		rc = srdma__ossl_err(SRDMA_ESYS, "HMAC-SHA256 for the rekey");
		goto out_poison;
	}
	memcpy(a->key, next, SRDMA_KEY_LEN);
	a->epoch++;
	/* On failure the schedule is gone: ready() refuses from now on. */
	if (a->mode != SRDMA_PROTECT_NONE)
		rc = srdma__aead_set_key(a);
	goto out_wipe;

out_poison:
	/* Half-rekeyed state must never seal or open again. */
	srdma__aead_unkey(a);
out_wipe:
	OPENSSL_cleanse(next, sizeof(next));
	return rc;
}

static int advance(struct srdma__aead *a)
{
	uint64_t interval = a->rekey_interval ? a->rekey_interval
					      : SRDMA_REKEY_AFTER_RECORDS;

	a->seq++;
	if (a->seq % interval == 0)
		return rekey(a);
	return 0;
}

/* ---- records ---- */

size_t srdma__record_overhead(enum srdma_protect mode)
{
	return SRDMA_REC_HDR_LEN +
	       (mode == SRDMA_PROTECT_NONE ? 0 : SRDMA_TAG_LEN);
}

static void record_nonce(const struct srdma__aead *a, uint64_t seq,
			 uint8_t nonce[static SRDMA_SALT_LEN])
{
	memcpy(nonce, a->salt, SRDMA_SALT_LEN);
	for (int i = 0; i < 8; i++)
		nonce[SRDMA_SALT_LEN - 1 - i] ^= (uint8_t)(seq >> (8 * i));
}

static bool overlap(const void *a, size_t alen, const void *b, size_t blen)
{
	uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;

	if (alen == 0 || blen == 0)
		return false;
	return pa < pb + blen && pb < pa + alen;
}

int srdma__record_seal(struct srdma__aead *a, uint8_t type, uint16_t credits,
		       const void *in, size_t len, uint8_t *out, size_t cap)
{
	uint8_t nonce[SRDMA_SALT_LEN];
	uint8_t *payload;
	size_t over, total;
	int rc = 0;

	GUARD(srdma__aead_ready(a));
	ENSURE(out && (in || len == 0), SRDMA_EINVAL,
	       "record_seal: NULL buffer");
	ENSURE(a->seal, SRDMA_EINVAL,
	       "record_seal: the key is for opening, not sealing");
	ENSURE(a->seq != UINT64_MAX, SRDMA_EEXHAUSTED,
	       "record_seal: the record sequence is exhausted; reconnect");
	over = srdma__record_overhead(a->mode);
	ENSURE(len <= UINT32_MAX && len <= (size_t)INT_MAX - over,
	       SRDMA_EMSGSIZE, "record_seal: payload of %zu bytes is too large",
	       len);
	total = over + len;
	ENSURE(cap >= total, SRDMA_EMSGSIZE,
	       "record_seal: record needs %zu bytes, buffer has %zu", total,
	       cap);
	ENSURE(!overlap(in, len, out, total), SRDMA_EINVAL,
	       "record_seal: input and output overlap");

	out[0] = type;
	out[1] = 0;
	srdma__be16(out + 2, credits);
	srdma__be32(out + 4, (uint32_t)len);
	srdma__be64(out + 8, a->seq);
	payload = out + SRDMA_REC_HDR_LEN;
	record_nonce(a, a->seq, nonce);

	switch (a->mode) {
	case SRDMA_PROTECT_ENCRYPT:
		rc = srdma__aead_op(a, true, nonce, out, SRDMA_REC_HDR_LEN,
				    NULL, 0, in, payload, len, payload + len);
		break;
	case SRDMA_PROTECT_INTEGRITY:
		/* GMAC style: everything is AAD, nothing is encrypted. */
		if (len)
			memcpy(payload, in, len);
		rc = srdma__aead_op(a, true, nonce, out, SRDMA_REC_HDR_LEN,
				    payload, len, NULL, NULL, 0, payload + len);
		break;
	case SRDMA_PROTECT_NONE:
		if (len)
			memcpy(payload, in, len);
		break;
	}
	if (rc < 0) {
		OPENSSL_cleanse(out, total);
		return rc;
	}
	rc = advance(a);
	if (rc < 0) {
		OPENSSL_cleanse(out, total);
		return rc;
	}
	return (int)total;
}

/* Nothing of a record that failed leaves here: payload and tag are wiped. */
static int open_fail(uint8_t *rec, size_t rec_len, struct srdma__record *out,
		     int rc)
{
	if (rec && rec_len > SRDMA_REC_HDR_LEN)
		OPENSSL_cleanse(rec + SRDMA_REC_HDR_LEN,
				rec_len - SRDMA_REC_HDR_LEN);
	if (out)
		memset(out, 0, sizeof(*out));
	return rc;
}

int srdma__record_open(struct srdma__aead *a, uint8_t *rec, size_t rec_len,
		       struct srdma__record *out)
{
	uint8_t nonce[SRDMA_SALT_LEN];
	uint8_t *payload;
	uint32_t len;
	uint64_t seq, want;
	int rc;

	if (!rec || !out)
		return open_fail(
			rec, rec_len, out,
			srdma__err(SRDMA_EINVAL, "record_open: NULL argument"));
	rc = srdma__aead_ready(a);
	if (rc < 0)
		return open_fail(rec, rec_len, out, rc);
	if (a->seal)
		return open_fail(rec, rec_len, out,
				 srdma__err(SRDMA_EINVAL,
					    "record_open: the key is for "
					    "sealing, not opening"));
	if (a->seq == UINT64_MAX)
		return open_fail(rec, rec_len, out,
				 srdma__err(SRDMA_EEXHAUSTED,
					    "record_open: the record sequence "
					    "is exhausted; reconnect"));
	if (rec_len < SRDMA_REC_HDR_LEN)
		return open_fail(rec, rec_len, out,
				 srdma__err(SRDMA_EPROTO,
					    "record of %zu bytes is shorter "
					    "than its header",
					    rec_len));
	len = srdma__get_be32(rec + 4);
	seq = srdma__get_be64(rec + 8);
	want = (uint64_t)len + srdma__record_overhead(a->mode);
	if (rec[1] != 0)
		return open_fail(rec, rec_len, out,
				 srdma__err(SRDMA_EPROTO,
					    "record flags are 0x%02x, not 0",
					    rec[1]));
	if ((uint64_t)rec_len != want)
		return open_fail(rec, rec_len, out,
				 srdma__err(SRDMA_EPROTO,
					    "record of %zu bytes claims a "
					    "%u-byte payload",
					    rec_len, len));
	/* RC delivers in order: anything but the next sequence is an attack
	 * or a loss, and either way the connection is over (DESIGN.md §4). */
	if (seq != a->seq)
		return open_fail(rec, rec_len, out,
				 srdma__err(SRDMA_EREPLAY,
					    "record sequence %llu, expected "
					    "%llu",
					    (unsigned long long)seq,
					    (unsigned long long)a->seq));

	payload = rec + SRDMA_REC_HDR_LEN;
	record_nonce(a, seq, nonce);
	rc = 0;
	switch (a->mode) {
	case SRDMA_PROTECT_ENCRYPT:
		rc = srdma__aead_op(a, false, nonce, rec, SRDMA_REC_HDR_LEN,
				    NULL, 0, payload, payload, len,
				    payload + len);
		break;
	case SRDMA_PROTECT_INTEGRITY:
		rc = srdma__aead_op(a, false, nonce, rec, SRDMA_REC_HDR_LEN,
				    payload, len, NULL, NULL, 0, payload + len);
		break;
	case SRDMA_PROTECT_NONE:
		break;
	}
	if (rc == SRDMA_EINTEGRITY)
		rc = srdma__err(SRDMA_EINTEGRITY,
				"record %llu failed authentication",
				(unsigned long long)seq);
	if (rc < 0)
		return open_fail(rec, rec_len, out, rc);
	rc = advance(a);
	if (rc < 0)
		return open_fail(rec, rec_len, out, rc);

	out->type = rec[0];
	out->credits = srdma__get_be16(rec + 2);
	out->seq = seq;
	out->payload = payload;
	out->len = len;
	return 0;
}
