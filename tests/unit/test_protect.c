/* SPDX-License-Identifier: MIT */
/*
 * protect: key schedule over a real in-process TLS 1.3 connection, records
 * and sealed blocks in every mode, cipher and AES-GCM backend (round trip,
 * every-byte tamper, replay, gaps, rekey, exhaustion), cross-checked against
 * raw OpenSSL, and the one-time connect token.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "protect/protect.h"
#include "wire/wire.h"
#include "test.h"

static const enum srdma__cipher ciphers[] = {
	SRDMA_CIPHER_AES_256_GCM,
	SRDMA_CIPHER_CHACHA20_POLY1305,
};
static const enum srdma_protect modes[] = {
	SRDMA_PROTECT_NONE,
	SRDMA_PROTECT_INTEGRITY,
	SRDMA_PROTECT_ENCRYPT,
};

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + 7 * i + 1);
}

static bool is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* The nonce the spec promises: salt XOR seq (big-endian, last 8 bytes). */
static void rec_nonce(const uint8_t salt[12], uint64_t seq, uint8_t n[12])
{
	uint8_t s[8];

	be64(s, seq);
	memcpy(n, salt, 12);
	for (int i = 0; i < 8; i++)
		n[4 + i] ^= s[i];
}

static const EVP_CIPHER *evp_of(enum srdma__cipher c)
{
	return c == SRDMA_CIPHER_AES_256_GCM ? EVP_aes_256_gcm()
					     : EVP_chacha20_poly1305();
}

/*
 * Independent AEAD decrypt with raw OpenSSL: aad, then ct (len bytes) into
 * pt, tag checked. Used to prove the module's nonce, AAD and key are what
 * the spec says, not just self-consistent.
 */
static bool raw_open(enum srdma__cipher c, const uint8_t *key,
		     const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
		     const uint8_t *ct, size_t len, const uint8_t *tag,
		     uint8_t *pt)
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	int outl = 0;
	uint8_t fin[16];
	bool ok;

	ok = x && EVP_DecryptInit_ex(x, evp_of(c), NULL, key, nonce) == 1 &&
	     EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, (void *)tag) ==
		     1 &&
	     EVP_DecryptUpdate(x, NULL, &outl, aad, (int)aad_len) == 1 &&
	     (len == 0 || EVP_DecryptUpdate(x, pt, &outl, ct, (int)len) == 1) &&
	     EVP_DecryptFinal_ex(x, fin, &outl) == 1;
	EVP_CIPHER_CTX_free(x);
	ERR_clear_error();
	return ok;
}

static void pair(enum srdma_protect mode, enum srdma__cipher c,
		 uint8_t key_seed, struct srdma__aead *tx,
		 struct srdma__aead *rx)
{
	uint8_t key[SRDMA_KEY_LEN], salt[SRDMA_SALT_LEN];

	fill(key, sizeof(key), key_seed);
	fill(salt, sizeof(salt), (uint8_t)(key_seed + 100));
	CHECK_RC(srdma__aead_init(tx, mode, c, true, key, salt), 0);
	CHECK_RC(srdma__aead_init(rx, mode, c, false, key, salt), 0);
}

/* ---- TLS 1.3 in process ---- */

struct tls_pair {
	SSL_CTX *sctx, *cctx;
	SSL *s, *c;
	EVP_PKEY *pkey;
	X509 *cert;
};

static X509 *self_signed(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_NAME *name;

	if (!x)
		return NULL;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"srdma-test", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	if (!X509_sign(x, pkey, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static void tls_free(struct tls_pair *p)
{
	SSL_free(p->c);
	SSL_free(p->s);
	SSL_CTX_free(p->cctx);
	SSL_CTX_free(p->sctx);
	X509_free(p->cert);
	EVP_PKEY_free(p->pkey);
	memset(p, 0, sizeof(*p));
}

/* A handshake between two SSL objects over a memory BIO pair. */
static bool tls_connect(struct tls_pair *p, int max_version)
{
	BIO *bc = NULL, *bs = NULL;
	bool done = false;

	memset(p, 0, sizeof(*p));
	p->pkey = EVP_EC_gen("P-256");
	p->cert = p->pkey ? self_signed(p->pkey) : NULL;
	p->sctx = SSL_CTX_new(TLS_server_method());
	p->cctx = SSL_CTX_new(TLS_client_method());
	if (!p->cert || !p->sctx || !p->cctx)
		return false;
	SSL_CTX_set_max_proto_version(p->sctx, max_version);
	SSL_CTX_set_max_proto_version(p->cctx, max_version);
	if (SSL_CTX_use_certificate(p->sctx, p->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(p->sctx, p->pkey) != 1)
		return false;
	SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
	p->s = SSL_new(p->sctx);
	p->c = SSL_new(p->cctx);
	if (!p->s || !p->c || BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
		return false;
	SSL_set_bio(p->c, bc, bc);
	SSL_set_bio(p->s, bs, bs);
	SSL_set_connect_state(p->c);
	SSL_set_accept_state(p->s);
	for (int i = 0; i < 100 && !done; i++) {
		int rc = SSL_do_handshake(p->c);
		int rs = SSL_do_handshake(p->s);

		if (rc != 1 && SSL_get_error(p->c, rc) != SSL_ERROR_WANT_READ &&
		    SSL_get_error(p->c, rc) != SSL_ERROR_WANT_WRITE)
			return false;
		if (rs != 1 && SSL_get_error(p->s, rs) != SSL_ERROR_WANT_READ &&
		    SSL_get_error(p->s, rs) != SSL_ERROR_WANT_WRITE)
			return false;
		done = rc == 1 && rs == 1;
	}
	return done;
}

static void test_cipher_names(void)
{
	enum srdma__cipher d = srdma__cipher_default();

	CHECK(strcmp(srdma__cipher_name(SRDMA_CIPHER_AES_256_GCM),
		     "AES-256-GCM") == 0);
	CHECK(strcmp(srdma__cipher_name(SRDMA_CIPHER_CHACHA20_POLY1305),
		     "ChaCha20-Poly1305") == 0);
	CHECK(strcmp(srdma__cipher_name(SRDMA_CIPHER_NONE), "none") == 0);
	CHECK(d == SRDMA_CIPHER_AES_256_GCM ||
	      d == SRDMA_CIPHER_CHACHA20_POLY1305);
#if defined(__x86_64__)
	__builtin_cpu_init();
	CHECK(d == (__builtin_cpu_supports("aes")
			    ? SRDMA_CIPHER_AES_256_GCM
			    : SRDMA_CIPHER_CHACHA20_POLY1305));
#endif
}

static void test_random(void)
{
	uint8_t a[32] = {0}, b[32] = {0};

	CHECK_RC(srdma__random(a, sizeof(a)), 0);
	CHECK_RC(srdma__random(b, sizeof(b)), 0);
	CHECK(!is_zero(a, sizeof(a)));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK_RC(srdma__random(a, 0), 0);
}

static void test_keys(void)
{
	struct tls_pair p;
	struct srdma__keys ck, sk, other;
	uint8_t direct[SRDMA_KEY_LEN + SRDMA_SALT_LEN];
	const uint8_t ctx[2] = {SRDMA_PROTECT_ENCRYPT,
				SRDMA_CIPHER_AES_256_GCM};
	const char *lbl = "EXPORTER-srdma c2s msg";

	CHECK(tls_connect(&p, TLS1_3_VERSION));
	if (!p.c || SSL_version(p.c) != TLS1_3_VERSION) {
		CHECK(!"no TLS 1.3 connection");
		tls_free(&p);
		return;
	}
	CHECK_RC(srdma__keys_derive(p.c, true, SRDMA_PROTECT_ENCRYPT,
				    SRDMA_CIPHER_AES_256_GCM, &ck),
		 0);
	CHECK_RC(srdma__keys_derive(p.s, false, SRDMA_PROTECT_ENCRYPT,
				    SRDMA_CIPHER_AES_256_GCM, &sk),
		 0);
	CHECK(ck.mode == SRDMA_PROTECT_ENCRYPT &&
	      ck.cipher == SRDMA_CIPHER_AES_256_GCM);
	/* Each side's tx is the other's rx, for messages and blocks. */
	CHECK(memcmp(ck.tx_msg_key, sk.rx_msg_key, SRDMA_KEY_LEN) == 0);
	CHECK(memcmp(ck.tx_msg_salt, sk.rx_msg_salt, SRDMA_SALT_LEN) == 0);
	CHECK(memcmp(ck.rx_msg_key, sk.tx_msg_key, SRDMA_KEY_LEN) == 0);
	CHECK(memcmp(ck.rx_msg_salt, sk.tx_msg_salt, SRDMA_SALT_LEN) == 0);
	CHECK(memcmp(ck.tx_blk_key, sk.rx_blk_key, SRDMA_KEY_LEN) == 0);
	CHECK(memcmp(ck.tx_blk_salt, sk.rx_blk_salt, SRDMA_SALT_LEN) == 0);
	CHECK(memcmp(ck.rx_blk_key, sk.tx_blk_key, SRDMA_KEY_LEN) == 0);
	CHECK(memcmp(ck.rx_blk_salt, sk.tx_blk_salt, SRDMA_SALT_LEN) == 0);
	/* Directions and purposes are separated. */
	CHECK(memcmp(ck.tx_msg_key, ck.rx_msg_key, SRDMA_KEY_LEN) != 0);
	CHECK(memcmp(ck.tx_blk_key, ck.rx_blk_key, SRDMA_KEY_LEN) != 0);
	CHECK(memcmp(ck.tx_msg_key, ck.tx_blk_key, SRDMA_KEY_LEN) != 0);
	CHECK(memcmp(ck.tx_msg_salt, ck.rx_msg_salt, SRDMA_SALT_LEN) != 0);
	CHECK(!is_zero(ck.tx_msg_key, SRDMA_KEY_LEN));

	/* The documented exporter label and context, computed directly. */
	CHECK(SSL_export_keying_material(p.c, direct, sizeof(direct), lbl,
					 strlen(lbl), ctx, 2, 1) == 1);
	CHECK(memcmp(direct, ck.tx_msg_key, SRDMA_KEY_LEN) == 0);
	CHECK(memcmp(direct + SRDMA_KEY_LEN, ck.tx_msg_salt, SRDMA_SALT_LEN) ==
	      0);

	/* Keys are bound to the mode and the cipher. */
	CHECK_RC(srdma__keys_derive(p.c, true, SRDMA_PROTECT_INTEGRITY,
				    SRDMA_CIPHER_AES_256_GCM, &other),
		 0);
	CHECK(memcmp(other.tx_msg_key, ck.tx_msg_key, SRDMA_KEY_LEN) != 0);
	CHECK(memcmp(other.rx_blk_key, ck.rx_blk_key, SRDMA_KEY_LEN) != 0);
	CHECK_RC(srdma__keys_derive(p.c, true, SRDMA_PROTECT_NONE,
				    SRDMA_CIPHER_NONE, &other),
		 0);
	CHECK(memcmp(other.tx_msg_key, ck.tx_msg_key, SRDMA_KEY_LEN) != 0);
	CHECK_RC(srdma__keys_derive(p.c, true, SRDMA_PROTECT_ENCRYPT,
				    SRDMA_CIPHER_CHACHA20_POLY1305, &other),
		 0);
	CHECK(memcmp(other.tx_msg_key, ck.tx_msg_key, SRDMA_KEY_LEN) != 0);

	/* Nonsense arguments. */
	CHECK_RC(srdma__keys_derive(p.c, true, SRDMA_PROTECT_ENCRYPT,
				    SRDMA_CIPHER_NONE, &other),
		 SRDMA_EINVAL);
	CHECK_RC(srdma__keys_derive(NULL, true, SRDMA_PROTECT_ENCRYPT,
				    SRDMA_CIPHER_AES_256_GCM, &other),
		 SRDMA_EINVAL);

	srdma__keys_wipe(&ck);
	CHECK(is_zero((const uint8_t *)&ck, sizeof(ck)));
	srdma__keys_wipe(&sk);
	srdma__keys_wipe(&other);
	srdma__keys_wipe(NULL);
	tls_free(&p);

	/* Only TLS 1.3 exporters are used. */
	CHECK(tls_connect(&p, TLS1_2_VERSION));
	CHECK_RC(srdma__keys_derive(p.c, true, SRDMA_PROTECT_ENCRYPT,
				    SRDMA_CIPHER_AES_256_GCM, &other),
		 SRDMA_ETLS_VERSION);
	tls_free(&p);
}

/* ---- records ---- */

enum { SMALL = 40 };

static void test_record_roundtrip(enum srdma_protect mode, enum srdma__cipher c)
{
	struct srdma__aead tx, rx;
	static uint8_t in[3000], rec[3100];
	const size_t lens[] = {0, 1, SMALL, 1000, sizeof(in)};
	struct srdma__record r;
	size_t over = srdma__record_overhead(mode);

	CHECK(over == (mode == SRDMA_PROTECT_NONE ? 16u : 32u));
	pair(mode, c, 3, &tx, &rx);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];
		int n;

		fill(in, len, (uint8_t)i);
		n = srdma__record_seal(&tx, 9, (uint16_t)(1000 + i), in, len,
				       rec, sizeof(rec));
		CHECK(n == (int)(len + over));
		if (n < 0)
			continue;
		/* Header as documented, big-endian. */
		CHECK(rec[0] == 9 && rec[1] == 0);
		CHECK(rec[2] == (uint8_t)((1000 + i) >> 8) &&
		      rec[3] == (uint8_t)(1000 + i));
		CHECK(rec[4] == 0 && rec[5] == 0 &&
		      rec[6] == (uint8_t)(len >> 8) && rec[7] == (uint8_t)len);
		CHECK(rec[15] == (uint8_t)i && is_zero(rec + 8, 7));
		if (mode == SRDMA_PROTECT_ENCRYPT && len >= 16)
			CHECK(memcmp(rec + 16, in, len) != 0);
		else if (mode != SRDMA_PROTECT_ENCRYPT && len)
			CHECK(memcmp(rec + 16, in, len) == 0);
		/* Cross-check with raw OpenSSL: key, nonce and AAD. */
		if (mode != SRDMA_PROTECT_NONE) {
			uint8_t nonce[12], aad[16 + sizeof(in)], pt[sizeof(in)];
			bool enc = mode == SRDMA_PROTECT_ENCRYPT;

			rec_nonce(tx.salt, i, nonce);
			memcpy(aad, rec, 16);
			if (!enc)
				memcpy(aad + 16, rec + 16, len);
			CHECK(raw_open(c, tx.key, nonce, aad,
				       enc ? 16 : 16 + len, rec + 16,
				       enc ? len : 0, rec + 16 + len, pt));
			if (enc)
				CHECK(len == 0 || memcmp(pt, in, len) == 0);
		}
		CHECK_RC(srdma__record_open(&rx, rec, (size_t)n, &r), 0);
		CHECK(r.type == 9 && r.credits == 1000 + i && r.seq == i &&
		      r.len == len && r.payload == rec + 16);
		CHECK(len == 0 || memcmp(r.payload, in, len) == 0);
	}
	CHECK(tx.seq == 5 && rx.seq == 5);

	/* Seal's argument checks. */
	CHECK_RC(
		srdma__record_seal(&tx, 1, 0, in, SMALL, rec, SMALL + over - 1),
		SRDMA_EMSGSIZE);
	CHECK_RC(
		srdma__record_seal(&tx, 1, 0, rec + 8, SMALL, rec, sizeof(rec)),
		SRDMA_EINVAL);
	CHECK_RC(srdma__record_seal(&rx, 1, 0, in, SMALL, rec, sizeof(rec)),
		 SRDMA_EINVAL);
	/* Lengths that cannot be described (checked before any access). */
	CHECK_RC(srdma__record_seal(&tx, 1, 0, in, (size_t)UINT32_MAX + 1, rec,
				    sizeof(rec)),
		 SRDMA_EMSGSIZE);
	CHECK(tx.seq == 5);
	srdma__aead_wipe(&tx);
	srdma__aead_wipe(&rx);
	CHECK(tx.evp == NULL && is_zero(tx.key, sizeof(tx.key)));
}

/* Every single-byte change to a record is caught; nothing leaks. */
static void test_record_tamper(enum srdma_protect mode, enum srdma__cipher c)
{
	struct srdma__aead tx, rx;
	uint8_t in[SMALL], good[SMALL + 32], bad[SMALL + 32];
	struct srdma__record r;
	size_t n = SMALL + srdma__record_overhead(mode);
	int caught = 0;

	pair(mode, c, 5, &tx, &rx);
	fill(in, sizeof(in), 0x42);
	for (size_t pos = 0; pos < n; pos++) {
		int rc;

		CHECK_RC(srdma__record_seal(&tx, 3, 7, in, sizeof(in), good,
					    sizeof(good)),
			 (int)n);
		memcpy(bad, good, n);
		bad[pos] ^= 0x01;
		rc = srdma__record_open(&rx, bad, n, &r);
		if (mode == SRDMA_PROTECT_NONE &&
		    (pos == 0 || pos == 2 || pos == 3 || pos >= 16)) {
			/* No tag in NONE: only flags, length and sequence
			 * are checked; other changes pass, by design. */
			CHECK_RC(rc, 0);
			continue;
		}
		CHECK(rc < 0);
		caught += rc < 0;
		if (pos == 1 || (pos >= 4 && pos < 8))
			CHECK_RC(rc, SRDMA_EPROTO);
		else if (pos >= 8 && pos < 16)
			CHECK_RC(rc, SRDMA_EREPLAY);
		else
			CHECK_RC(rc, SRDMA_EINTEGRITY);
		/* Nothing of the failed record is left behind. */
		CHECK(is_zero(bad + 16, n - 16));
		CHECK(r.payload == NULL && r.len == 0);
		/* A failure does not advance: the genuine record still opens.
		 */
		CHECK_RC(srdma__record_open(&rx, good, n, &r), 0);
		CHECK(r.len == SMALL && memcmp(r.payload, in, SMALL) == 0);
	}
	CHECK(caught == (mode == SRDMA_PROTECT_NONE ? 13 : (int)n));
	srdma__aead_wipe(&tx);
	srdma__aead_wipe(&rx);
}

static void test_record_sequence(enum srdma_protect mode, enum srdma__cipher c)
{
	struct srdma__aead tx, rx;
	uint8_t in[SMALL], r0[SMALL + 32], r1[SMALL + 32], copy[SMALL + 33];
	struct srdma__record r;
	size_t n = SMALL + srdma__record_overhead(mode);

	pair(mode, c, 7, &tx, &rx);
	fill(in, sizeof(in), 1);

	/* Replay: the same bytes twice. */
	CHECK_RC(srdma__record_seal(&tx, 1, 0, in, SMALL, r0, sizeof(r0)),
		 (int)n);
	memcpy(copy, r0, n);
	CHECK_RC(srdma__record_open(&rx, r0, n, &r), 0);
	CHECK_RC(srdma__record_open(&rx, copy, n, &r), SRDMA_EREPLAY);
	CHECK(is_zero(copy + 16, n - 16));
	CHECK(rx.seq == 1);

	/* Gap: seal two, deliver only the second. */
	CHECK_RC(srdma__record_seal(&tx, 1, 0, in, SMALL, r0, sizeof(r0)),
		 (int)n);
	CHECK_RC(srdma__record_seal(&tx, 1, 0, in, SMALL, r1, sizeof(r1)),
		 (int)n);
	memcpy(copy, r1, n);
	CHECK_RC(srdma__record_open(&rx, copy, n, &r), SRDMA_EREPLAY);
	CHECK(is_zero(copy + 16, n - 16));
	CHECK(rx.seq == 1);

	/* Truncated or extended by one byte. */
	memcpy(copy, r0, n);
	CHECK(srdma__record_open(&rx, copy, n - 1, &r) < 0);
	memcpy(copy, r0, n);
	copy[n] = 0;
	CHECK(srdma__record_open(&rx, copy, n + 1, &r) < 0);
	CHECK(is_zero(copy + 16, n + 1 - 16));
	CHECK(srdma__record_open(&rx, copy, 3, &r) < 0);
	CHECK(srdma__record_open(&rx, copy, 0, &r) < 0);
	CHECK(rx.seq == 1);

	/* In order, both open. */
	CHECK_RC(srdma__record_open(&rx, r0, n, &r), 0);
	CHECK_RC(srdma__record_open(&rx, r1, n, &r), 0);
	CHECK(r.seq == 2 && memcmp(r.payload, in, SMALL) == 0);

	/* A record for another key (the other direction) does not open. */
	if (mode != SRDMA_PROTECT_NONE) {
		struct srdma__aead tx2, rx2;

		pair(mode, c, 8, &tx2, &rx2);
		CHECK_RC(srdma__record_seal(&tx2, 1, 0, in, SMALL, r0,
					    sizeof(r0)),
			 (int)n);
		rx.seq = 0;
		CHECK_RC(srdma__record_open(&rx, r0, n, &r), SRDMA_EINTEGRITY);
		srdma__aead_wipe(&tx2);
		srdma__aead_wipe(&rx2);
	}
	srdma__aead_wipe(&tx);
	srdma__aead_wipe(&rx);
}

/* Rekey every 4 records: all open, keys change per epoch, (key, nonce)
 * never repeats, and the key really used is the documented HMAC chain. */
static void test_rekey(enum srdma_protect mode, enum srdma__cipher c)
{
	enum { N = 20, IVL = 4 };
	struct srdma__aead tx, rx;
	uint8_t used[N][SRDMA_KEY_LEN + SRDMA_SALT_LEN];
	uint8_t in[SMALL], rec[SMALL + 32], pt[SMALL];
	struct srdma__record r;
	size_t n = SMALL + srdma__record_overhead(mode);

	pair(mode, c, 11, &tx, &rx);
	tx.rekey_interval = IVL;
	rx.rekey_interval = IVL;
	fill(in, sizeof(in), 9);
	for (int i = 0; i < N; i++) {
		uint8_t nonce[12];

		memcpy(used[i], tx.key, SRDMA_KEY_LEN);
		rec_nonce(tx.salt, (uint64_t)i, nonce);
		memcpy(used[i] + SRDMA_KEY_LEN, nonce, sizeof(nonce));
		CHECK(memcmp(tx.key, rx.key, SRDMA_KEY_LEN) == 0);
		CHECK(tx.epoch == (uint64_t)(i / IVL));

		CHECK_RC(srdma__record_seal(&tx, 1, 0, in, SMALL, rec,
					    sizeof(rec)),
			 (int)n);
		/* The recorded key and nonce are the ones actually used. */
		if (mode == SRDMA_PROTECT_ENCRYPT)
			CHECK(raw_open(c, used[i], nonce, rec, 16, rec + 16,
				       SMALL, rec + 16 + SMALL, pt) &&
			      memcmp(pt, in, SMALL) == 0);
		CHECK_RC(srdma__record_open(&rx, rec, n, &r), 0);
		CHECK(r.seq == (uint64_t)i &&
		      memcmp(r.payload, in, SMALL) == 0);

		if (i % IVL == 0 && i > 0) {
			/* key_e = HMAC-SHA256(key_{e-1}, "srdma rekey"||u64 e)
			 */
			uint8_t msg[19], want[32];
			unsigned int wl = 0;

			memcpy(msg, "srdma rekey", 11);
			be64(msg + 11, (uint64_t)(i / IVL));
			HMAC(EVP_sha256(), used[i - 1], SRDMA_KEY_LEN, msg,
			     sizeof(msg), want, &wl);
			CHECK(wl == 32 &&
			      memcmp(want, used[i], SRDMA_KEY_LEN) == 0);
			CHECK(memcmp(used[i], used[i - 1], SRDMA_KEY_LEN) != 0);
		} else if (i > 0) {
			CHECK(memcmp(used[i], used[i - 1], SRDMA_KEY_LEN) == 0);
		}
	}
	CHECK(tx.epoch == N / IVL && rx.epoch == N / IVL);
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			CHECK(memcmp(used[i], used[j], sizeof(used[i])) != 0);
	/* Keys of different epochs all differ. */
	for (int e = 0; e < N / IVL; e++)
		for (int f = e + 1; f < N / IVL; f++)
			CHECK(memcmp(used[e * IVL], used[f * IVL],
				     SRDMA_KEY_LEN) != 0);
	srdma__aead_wipe(&tx);
	srdma__aead_wipe(&rx);
}

static void test_exhaustion(enum srdma_protect mode, enum srdma__cipher c)
{
	struct srdma__aead tx, rx;
	uint8_t in[8] = {1, 2, 3}, rec[64];
	struct srdma__record r;
	size_t n = sizeof(in) + srdma__record_overhead(mode);

	pair(mode, c, 13, &tx, &rx);
	tx.seq = UINT64_MAX - 1;
	rx.seq = UINT64_MAX - 1;
	CHECK_RC(
		srdma__record_seal(&tx, 1, 0, in, sizeof(in), rec, sizeof(rec)),
		(int)n);
	CHECK_RC(srdma__record_open(&rx, rec, n, &r), 0);
	CHECK(r.seq == UINT64_MAX - 1 && tx.seq == UINT64_MAX);
	CHECK_RC(
		srdma__record_seal(&tx, 1, 0, in, sizeof(in), rec, sizeof(rec)),
		SRDMA_EEXHAUSTED);
	CHECK_RC(
		srdma__record_seal(&tx, 1, 0, in, sizeof(in), rec, sizeof(rec)),
		SRDMA_EEXHAUSTED);
	CHECK(tx.seq == UINT64_MAX);
	CHECK_RC(srdma__record_open(&rx, rec, n, &r), SRDMA_EEXHAUSTED);
	srdma__aead_wipe(&tx);
	srdma__aead_wipe(&rx);
}

static void test_aead_init(void)
{
	struct srdma__aead a;
	uint8_t key[32] = {1}, salt[12] = {2};

	CHECK_RC(srdma__aead_init(&a, SRDMA_PROTECT_ENCRYPT, SRDMA_CIPHER_NONE,
				  true, key, salt),
		 SRDMA_EINVAL);
	CHECK(a.evp == NULL && is_zero(a.key, sizeof(a.key)));
	CHECK_RC(srdma__aead_init(&a, SRDMA_PROTECT_NONE, SRDMA_CIPHER_NONE,
				  true, key, salt),
		 0);
	CHECK(a.evp == NULL && a.rekey_interval == SRDMA_REKEY_AFTER_RECORDS);
	srdma__aead_wipe(&a);
	CHECK_RC(srdma__aead_init(&a, SRDMA_PROTECT_INTEGRITY,
				  SRDMA_CIPHER_AES_256_GCM, false, key, salt),
		 0);
	CHECK(a.seq == 0 && a.epoch == 0 && !a.seal);
	CHECK(a.backend == SRDMA_AEAD_EVP
		      ? a.evp != NULL && a.imb == NULL
		      : a.backend == SRDMA_AEAD_IPSEC_MB && a.imb != NULL &&
				a.evp == NULL);
	srdma__aead_wipe(&a);
	CHECK(a.evp == NULL && a.imb == NULL && is_zero(a.key, sizeof(a.key)));
	/* ChaCha20-Poly1305 runs on EVP whatever the AES backend. */
	CHECK_RC(srdma__aead_init(&a, SRDMA_PROTECT_ENCRYPT,
				  SRDMA_CIPHER_CHACHA20_POLY1305, true, key,
				  salt),
		 0);
	CHECK(a.backend == SRDMA_AEAD_EVP && a.evp != NULL && a.imb == NULL);
	srdma__aead_wipe(&a);
	memset(&a, 0, sizeof(a));
	srdma__aead_wipe(&a);
	srdma__aead_wipe(NULL);
}

/* ---- blocks ---- */

enum { STRIDE_MAX = 16 + 16 + 4096, REG = 7, IDX = 1234, OWN = 1 };

static void test_blocks(enum srdma_protect mode, enum srdma__cipher c)
{
	struct srdma__aead w0s, w0o, w1s, w1o;
	static uint8_t blk[STRIDE_MAX], bad[STRIDE_MAX], blk2[STRIDE_MAX];
	static uint8_t in[4096], out[4096];
	struct srdma__aead *both[2] = {&w0o, &w1o};
	struct srdma__aead *only1[2] = {NULL, &w1o};
	struct srdma__aead *own[2] = {&w0s, NULL};
	struct srdma__block_info info;
	const size_t lens[] = {0, 1, 100, 4096};
	size_t stride = srdma__block_stride(mode);
	size_t poff = srdma__block_payload_off(mode);
	const size_t blen = 100;

	CHECK(stride == (mode == SRDMA_PROTECT_NONE ? 4096u : 4128u));
	CHECK(poff == (mode == SRDMA_PROTECT_NONE ? 0u : 32u));
	CHECK(srdma__block_used(mode, 64) == poff + 64);
	pair(mode, c, 21, &w0s, &w0o);
	pair(mode, c, 22, &w1s, &w1o);
	fill(in, sizeof(in), 77);

	if (mode == SRDMA_PROTECT_NONE) {
		/* Plain memory: the payload as it is, nothing verified. */
		memset(blk, 0xEE, sizeof(blk));
		CHECK_RC(srdma__block_seal(&w1s, OWN, REG, IDX, 0, 1, in, blen,
					   blk),
			 0);
		CHECK(memcmp(blk, in, blen) == 0 && blk[blen] == 0xEE);
		CHECK_RC(srdma__block_open(both, OWN, REG, IDX, blk, false, out,
					   &info),
			 0);
		CHECK(memcmp(out, blk, 4096) == 0 && info.version == 0);
		goto out;
	}
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];
		uint64_t ver = 10 + i;

		memset(blk, 0xEE, sizeof(blk));
		CHECK_RC(srdma__block_seal(&w1s, OWN, REG, IDX, ver, 1, in, len,
					   blk),
			 0);
		CHECK(blk[7] == (uint8_t)ver && blk[11] == (uint8_t)len &&
		      blk[10] == (uint8_t)(len >> 8) && blk[12] == 1 &&
		      blk[13] == OWN && is_zero(blk + 14, 2));
		/* Nothing past the bytes the block uses is touched. */
		CHECK(len == 4096 || blk[32 + len] == 0xEE);
		if (mode == SRDMA_PROTECT_ENCRYPT && len >= 16)
			CHECK(memcmp(blk + 32, in, len) != 0);
		else if (mode != SRDMA_PROTECT_ENCRYPT && len)
			CHECK(memcmp(blk + 32, in, len) == 0);
		{
			/* Raw check of nonce (salt ^ owner|region|index|
			 * version) and AAD (u32 owner|region, u64 index,
			 * header); the tag follows the header. */
			uint8_t nonce[12], ctr[12], aad[28 + 4096], pt[4096];
			bool enc = mode == SRDMA_PROTECT_ENCRYPT;

			memset(ctr, 0, sizeof(ctr));
			ctr[0] = 0x80; /* owner 1 */
			ctr[1] = REG;
			be32(ctr + 2, IDX);
			ctr[11] = (uint8_t)ver;
			for (int j = 0; j < 12; j++)
				nonce[j] = w1s.salt[j] ^ ctr[j];
			be32(aad, 0x80000000u | REG);
			be64(aad + 4, IDX);
			memcpy(aad + 12, blk, 16);
			if (!enc)
				memcpy(aad + 28, blk + 32, len);
			CHECK(raw_open(c, w1s.key, nonce, aad,
				       enc ? 28 : 28 + len, blk + 32,
				       enc ? len : 0, blk + 16, pt));
			CHECK(!enc || len == 0 || memcmp(pt, in, len) == 0);
		}
		memset(out, 0xAA, sizeof(out));
		CHECK_RC(srdma__block_open(both, OWN, REG, IDX, blk, false, out,
					   &info),
			 0);
		CHECK(info.version == ver && info.len == len &&
		      info.writer == 1);
		CHECK(len == 0 || memcmp(out, in, len) == 0);
		CHECK(is_zero(out + len, 4096 - len));
		CHECK_RC(srdma__block_peek(blk, &info), 0);
		CHECK(info.version == ver && info.writer == 1);
	}

	/* Writer selection: a writer-0 block needs writer 0's key. */
	CHECK_RC(srdma__block_seal(&w0s, OWN, REG, IDX, 1, 0, in, blen, blk),
		 0);
	memset(out, 0xAA, sizeof(out));
	CHECK_RC(
		srdma__block_open(only1, OWN, REG, IDX, blk, false, out, &info),
		SRDMA_EINTEGRITY);
	CHECK(is_zero(out, sizeof(out)));
	/* The owner opens its own blocks with its sealing context. */
	CHECK_RC(srdma__block_open(own, OWN, REG, IDX, blk, false, out, &info),
		 0);
	CHECK(info.writer == 0 && memcmp(out, in, blen) == 0);
	/* Relabelled as writer 1: wrong key and AAD. */
	memcpy(bad, blk, stride);
	bad[12] = 1;
	CHECK_RC(srdma__block_open(both, OWN, REG, IDX, bad, false, out, &info),
		 SRDMA_EINTEGRITY);

	/* Every byte of header, tag and used payload is covered; bytes past
	 * the length are not part of the block and never come out. */
	{
		int missed = 0, leaked = 0;

		for (size_t pos = 0; pos < stride; pos++) {
			memcpy(bad, blk, stride);
			bad[pos] ^= 0x80;
			memset(out, 0xAA, sizeof(out));
			int rc = srdma__block_open(both, OWN, REG, IDX, bad,
						   false, out, &info);
			if (pos < 32 + blen) {
				if (rc != SRDMA_EINTEGRITY ||
				    !is_zero(out, sizeof(out)) || info.len)
					missed++;
			} else if (rc != 0 || memcmp(out, in, blen) ||
				   !is_zero(out + blen, 4096 - blen)) {
				leaked++;
			}
		}
		CHECK(missed == 0 && leaked == 0);
	}

	/* Moved blocks: another slot, region or owner. */
	memset(out, 0xAA, sizeof(out));
	CHECK_RC(srdma__block_open(both, OWN, REG, IDX + 1, blk, false, out,
				   &info),
		 SRDMA_EINTEGRITY);
	CHECK(is_zero(out, sizeof(out)));
	CHECK_RC(srdma__block_open(both, OWN, REG + 1, IDX, blk, false, out,
				   &info),
		 SRDMA_EINTEGRITY);
	CHECK_RC(
		srdma__block_open(both, !OWN, REG, IDX, blk, false, out, &info),
		SRDMA_EINTEGRITY);
	memcpy(bad, blk, stride);
	bad[13] = !OWN; /* the header's owner byte is covered too */
	CHECK_RC(
		srdma__block_open(both, !OWN, REG, IDX, bad, false, out, &info),
		SRDMA_EINTEGRITY);
	CHECK_RC(srdma__block_open(both, OWN, REG + 0x8000, IDX, blk, false,
				   out, &info),
		 SRDMA_EINTEGRITY);
	CHECK_RC(srdma__block_open(both, OWN, REG, IDX, blk, false, out, &info),
		 0);

	/* The owner is in the nonce: the same (key, region, index,
	 * version) in the two owners' regions never shares a keystream. */
	if (mode == SRDMA_PROTECT_ENCRYPT) {
		uint8_t in2[4096];
		int same = 0;

		fill(in2, sizeof(in2), 99);
		CHECK_RC(srdma__block_seal(&w0s, 0, REG, IDX, 5, 0, in, 4096,
					   blk),
			 0);
		CHECK_RC(srdma__block_seal(&w0s, 1, REG, IDX, 5, 0, in2, 4096,
					   blk2),
			 0);
		for (int k = 0; k < 4096; k++)
			same += (blk[32 + k] ^ blk2[32 + k]) ==
				(in[k] ^ in2[k]);
		CHECK(same < 64);
	}

	/* Never-written blocks (header and tag all zero). */
	memset(bad, 0, sizeof(bad));
	memset(out, 0xAA, sizeof(out));
	CHECK_RC(srdma__block_open(both, OWN, REG, IDX, bad, true, out, &info),
		 0);
	CHECK(info.len == 0 && info.version == 0 && is_zero(out, sizeof(out)));
	CHECK_RC(srdma__block_open(both, OWN, REG, IDX, bad, false, out, &info),
		 SRDMA_EINTEGRITY);
	CHECK_RC(srdma__block_peek(bad, &info), SRDMA_EINTEGRITY);

	/* Seal's argument checks. */
	CHECK_RC(srdma__block_seal(&w0s, OWN, REG, IDX, 0, 0, in, 1, blk),
		 SRDMA_EINVAL);
	CHECK_RC(srdma__block_seal(&w0s, OWN, REG, IDX,
				   SRDMA_BLOCK_VERSION_MAX + 1, 0, in, 1, blk),
		 SRDMA_EEXHAUSTED);
	CHECK_RC(srdma__block_seal(&w0s, OWN, 0x8000, IDX, 1, 0, in, 1, blk),
		 SRDMA_EINVAL);
	CHECK_RC(srdma__block_seal(&w0s, OWN, 0, IDX, 1, 0, in, 1, blk),
		 SRDMA_EINVAL);
	CHECK_RC(srdma__block_seal(&w0s, 2, REG, IDX, 1, 0, in, 1, blk),
		 SRDMA_EINVAL);
	CHECK_RC(srdma__block_seal(&w0s, OWN, REG, UINT64_C(1) << 32, 1, 0, in,
				   1, blk),
		 SRDMA_EINVAL);
	CHECK_RC(srdma__block_seal(&w0s, OWN, REG, IDX, 1, 2, in, 1, blk),
		 SRDMA_EINVAL);
	CHECK(srdma__block_seal(&w0s, OWN, REG, IDX, 1, 0, in, 4097, blk) < 0);
	/* The largest version still works; nonces use all 48 bits. */
	CHECK_RC(srdma__block_seal(&w0s, OWN, 0x7fff, UINT32_MAX,
				   SRDMA_BLOCK_VERSION_MAX, 0, in, blen, blk),
		 0);
	CHECK_RC(srdma__block_open(both, OWN, 0x7fff, UINT32_MAX, blk, false,
				   out, &info),
		 0);
	CHECK(info.version == SRDMA_BLOCK_VERSION_MAX &&
	      memcmp(out, in, blen) == 0);

out:
	srdma__aead_wipe(&w0s);
	srdma__aead_wipe(&w0o);
	srdma__aead_wipe(&w1s);
	srdma__aead_wipe(&w1o);
}

/* ---- token ---- */

static void pd_for(const struct srdma__token *t, uint32_t initiator,
		   struct srdma__connect_pdata *pd)
{
	memset(pd, 0, sizeof(*pd));
	pd->version = 1;
	pd->session_id = t->session_id;
	pd->initiator_id = initiator;
	CHECK_RC(srdma__token_mac(t->secret, t->session_id, initiator, pd->mac),
		 0);
}

static bool detail_has(const char *s)
{
	return strstr(srdma_error_detail(), s) != NULL;
}

static void test_token(void)
{
	struct srdma__token t, t2;
	struct srdma__connect_pdata pd;
	uint8_t msg[28], want[32];
	unsigned int wl = 0;

	CHECK_RC(srdma__token_new(&t, 1000, 500), 0);
	CHECK(t.session_id != 0 && t.deadline_ms == 1500 && !t.used);
	CHECK(!is_zero(t.secret, sizeof(t.secret)));

	/* The MAC is exactly HMAC-SHA256(secret, label | u64 | u32). */
	pd_for(&t, 0x01020304, &pd);
	memcpy(msg, "srdma connect v1", 16);
	be64(msg + 16, t.session_id);
	be32(msg + 24, 0x01020304);
	HMAC(EVP_sha256(), t.secret, 32, msg, sizeof(msg), want, &wl);
	CHECK(wl == 32 && memcmp(want, pd.mac, 32) == 0);

	/* Accepted once, then burned. */
	CHECK_RC(srdma__token_check(&t, pd.session_id, pd.initiator_id, pd.mac,
				    1400),
		 0);
	CHECK(t.used && is_zero(t.secret, sizeof(t.secret)));
	CHECK_RC(srdma__token_check(&t, pd.session_id, pd.initiator_id, pd.mac,
				    1400),
		 SRDMA_ETOKEN);
	CHECK(detail_has("already used"));

	/* Wrong MAC; and the failed attempt burns the token too. */
	CHECK_RC(srdma__token_new(&t, 1000, 500), 0);
	pd_for(&t, 5, &pd);
	pd.mac[31] ^= 1;
	CHECK_RC(srdma__token_check(&t, pd.session_id, pd.initiator_id, pd.mac,
				    1400),
		 SRDMA_ETOKEN);
	CHECK(detail_has("MAC does not match"));
	pd.mac[31] ^= 1;
	CHECK_RC(srdma__token_check(&t, pd.session_id, pd.initiator_id, pd.mac,
				    1400),
		 SRDMA_ETOKEN);
	CHECK(detail_has("already used"));

	/* MAC made for another initiator (a stolen MAC replayed by a
	 * different QP). */
	CHECK_RC(srdma__token_new(&t, 1000, 500), 0);
	pd_for(&t, 5, &pd);
	pd.initiator_id = 6;
	CHECK_RC(srdma__token_check(&t, pd.session_id, pd.initiator_id, pd.mac,
				    1400),
		 SRDMA_ETOKEN);
	CHECK(detail_has("MAC does not match"));

	/* Another session's private data. */
	CHECK_RC(srdma__token_new(&t, 1000, 500), 0);
	CHECK_RC(srdma__token_new(&t2, 1000, 500), 0);
	CHECK(t.session_id != t2.session_id);
	CHECK(memcmp(t.secret, t2.secret, sizeof(t.secret)) != 0);
	pd_for(&t2, 5, &pd);
	CHECK_RC(srdma__token_check(&t, pd.session_id, pd.initiator_id, pd.mac,
				    1400),
		 SRDMA_ETOKEN);
	CHECK(detail_has("unknown session"));
	CHECK(t.used);

	/* Expired: deadline passed, MAC right. */
	pd_for(&t2, 5, &pd);
	CHECK_RC(srdma__token_check(&t2, pd.session_id, pd.initiator_id, pd.mac,
				    1501),
		 SRDMA_ETOKEN);
	CHECK(detail_has("expired"));
	CHECK(t2.used && is_zero(t2.secret, sizeof(t2.secret)));

	/* At the deadline still valid. */
	CHECK_RC(srdma__token_new(&t, 1000, 500), 0);
	pd_for(&t, 5, &pd);
	CHECK_RC(srdma__token_check(&t, pd.session_id, pd.initiator_id, pd.mac,
				    1500),
		 0);

	/* A wiped token verifies nothing, not even session 0 / zero key. */
	srdma__token_wipe(&t);
	memset(&pd, 0, sizeof(pd));
	CHECK_RC(srdma__token_mac(t.secret, 0, 0, pd.mac), 0);
	CHECK_RC(srdma__token_check(&t, pd.session_id, pd.initiator_id, pd.mac,
				    0),
		 SRDMA_ETOKEN);
	srdma__token_wipe(&t2);
	srdma__token_wipe(NULL);
}

int main(void)
{
	/* Everything below once per AES-256-GCM backend this host has. */
	static const enum srdma__aead_backend backends[] = {
		SRDMA_AEAD_EVP,
		SRDMA_AEAD_IPSEC_MB,
	};

	test_cipher_names();
	test_random();
	test_keys();
	for (size_t bi = 0; bi < sizeof(backends) / sizeof(backends[0]); bi++) {
		if (srdma__aead_force_backend(backends[bi]) < 0) {
			/* test_aead fails if the build has it and this
			 * CPU should run it; here it is only a note. */
			printf("note: backend %d not available here: %s\n",
			       (int)backends[bi], srdma_error_detail());
			continue;
		}
		test_aead_init();
		for (size_t ci = 0; ci < sizeof(ciphers) / sizeof(ciphers[0]);
		     ci++) {
			for (size_t mi = 0;
			     mi < sizeof(modes) / sizeof(modes[0]); mi++) {
				int before = test_failures;

				test_record_roundtrip(modes[mi], ciphers[ci]);
				test_record_tamper(modes[mi], ciphers[ci]);
				test_record_sequence(modes[mi], ciphers[ci]);
				test_rekey(modes[mi], ciphers[ci]);
				test_exhaustion(modes[mi], ciphers[ci]);
				test_blocks(modes[mi], ciphers[ci]);
				if (test_failures != before)
					fprintf(stderr,
						"  ^ in mode %d, cipher %s, "
						"on %s\n",
						modes[mi],
						srdma__cipher_name(ciphers[ci]),
						srdma__aead_impl(ciphers[ci]));
			}
		}
	}
	CHECK_RC(srdma__aead_force_backend(SRDMA_AEAD_AUTO), 0);
	test_token();
	TEST_DONE();
}
