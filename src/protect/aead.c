/* SPDX-License-Identifier: MIT */
/*
 * Per-direction AEAD contexts (DESIGN.md §4): the key schedule computed once
 * per key, one operation per record or block. Two backends behind one
 * interface: OpenSSL's EVP (here) for both ciphers, and intel-ipsec-mb
 * (aead_imb.c) for AES-256-GCM where the CPU has AES-NI and PCLMULQDQ, as
 * it is three to seven times faster per core there (bench/aead_bench). The
 * choice is made per context at srdma__aead_init and never changes the
 * bytes on the wire.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "protect/protect.h"
#include "protect/protect_int.h"

/* Set only by srdma__aead_force_backend (tests, benchmarks). */
static atomic_int forced = SRDMA_AEAD_AUTO;

static const EVP_CIPHER *evp_cipher(enum srdma__cipher c)
{
	switch (c) {
	case SRDMA_CIPHER_AES_256_GCM:
		return EVP_aes_256_gcm();
	case SRDMA_CIPHER_CHACHA20_POLY1305:
		return EVP_chacha20_poly1305();
	case SRDMA_CIPHER_NONE:
		break;
	}
	return NULL;
}

static enum srdma__aead_backend choose(enum srdma__cipher c)
{
	if (c != SRDMA_CIPHER_AES_256_GCM)
		return SRDMA_AEAD_EVP;
	switch (atomic_load(&forced)) {
	case SRDMA_AEAD_EVP:
		return SRDMA_AEAD_EVP;
	case SRDMA_AEAD_IPSEC_MB:
		return SRDMA_AEAD_IPSEC_MB; /* checked when it was forced */
	default:
		return srdma__imb_usable() ? SRDMA_AEAD_IPSEC_MB
					   : SRDMA_AEAD_EVP;
	}
}

int srdma__aead_force_backend(enum srdma__aead_backend b)
{
	ENSURE(b == SRDMA_AEAD_AUTO || b == SRDMA_AEAD_EVP ||
		       b == SRDMA_AEAD_IPSEC_MB,
	       SRDMA_EINVAL, "aead: unknown backend %d", (int)b);
	ENSURE(b != SRDMA_AEAD_IPSEC_MB || srdma__imb_usable(), SRDMA_ENOTSUP,
	       "intel-ipsec-mb is not built in or this CPU lacks "
	       "AES-NI/PCLMULQDQ");
	atomic_store(&forced, (int)b);
	return 0;
}

static char evp_name[48];
static pthread_once_t evp_name_once = PTHREAD_ONCE_INIT;

static void evp_name_setup(void)
{
	snprintf(evp_name, sizeof(evp_name), "OpenSSL %s EVP",
		 OpenSSL_version(OPENSSL_VERSION_STRING));
}

const char *srdma__aead_impl(enum srdma__cipher c)
{
	if (c == SRDMA_CIPHER_NONE)
		return "none";
	if (!evp_cipher(c))
		return "unknown";
	if (choose(c) == SRDMA_AEAD_IPSEC_MB)
		return srdma__imb_name();
	pthread_once(&evp_name_once, evp_name_setup);
	return evp_name;
}

/* ---- context life cycle ---- */

void srdma__aead_unkey(struct srdma__aead *a)
{
	if (!a)
		return;
	EVP_CIPHER_CTX_free(a->evp);
	a->evp = NULL;
	srdma__imb_key_free(a->imb);
	a->imb = NULL;
}

int srdma__aead_set_key(struct srdma__aead *a)
{
	const EVP_CIPHER *c = NULL;
	int rc;

	switch (a->backend) {
	case SRDMA_AEAD_IPSEC_MB:
		if (a->imb) {
			srdma__imb_key_set(a->imb, a->key);
			return 0;
		}
		rc = srdma__imb_key_new(&a->imb, a->key);
		if (rc < 0)
			goto out_unkey;
		return 0;
	case SRDMA_AEAD_EVP:
		if (!a->evp) {
			c = evp_cipher(a->cipher);
			a->evp = EVP_CIPHER_CTX_new();
			if (!a->evp) {
				rc = srdma__err(SRDMA_ENOMEM,
						"EVP_CIPHER_CTX_new failed");
				goto out_unkey;
			}
		}
		/* The key schedule is computed here; records only set the
		 * IV. */
		if (EVP_CipherInit_ex(a->evp, c, NULL, a->key, NULL,
				      a->seal ? 1 : 0) != 1) {
			rc = srdma__ossl_err(SRDMA_ESYS,
					     "EVP cipher key setup");
			goto out_unkey;
		}
		return 0;
	case SRDMA_AEAD_AUTO:
		break;
	}
	rc = srdma__err(SRDMA_ESTATE, "aead: context has no backend");
out_unkey:
	srdma__aead_unkey(a);
	return rc;
}

int srdma__aead_init(struct srdma__aead *a, enum srdma_protect mode,
		     enum srdma__cipher cipher, bool seal,
		     const uint8_t key[static SRDMA_KEY_LEN],
		     const uint8_t salt[static SRDMA_SALT_LEN])
{
	int rc;

	ENSURE(a && key && salt, SRDMA_EINVAL, "aead_init: NULL argument");
	memset(a, 0, sizeof(*a));
	ENSURE(mode <= SRDMA_PROTECT_ENCRYPT, SRDMA_EINVAL,
	       "aead_init: unknown protection mode %d", (int)mode);
	a->mode = mode;
	a->cipher = cipher;
	a->seal = seal;
	a->rekey_interval = SRDMA_REKEY_AFTER_RECORDS;
	memcpy(a->key, key, SRDMA_KEY_LEN);
	memcpy(a->salt, salt, SRDMA_SALT_LEN);
	if (mode == SRDMA_PROTECT_NONE)
		return 0;

	if (!evp_cipher(cipher)) {
		srdma__aead_wipe(a);
		return srdma__err(SRDMA_EINVAL,
				  "aead_init: mode %d needs a cipher, got %d",
				  (int)mode, (int)cipher);
	}
	a->backend = choose(cipher);
	rc = srdma__aead_set_key(a);
	if (rc < 0) {
		srdma__aead_wipe(a);
		return rc;
	}
	return 0;
}

void srdma__aead_wipe(struct srdma__aead *a)
{
	if (!a)
		return;
	srdma__aead_unkey(a);
	OPENSSL_cleanse(a, sizeof(*a));
}

int srdma__aead_ready(const struct srdma__aead *a)
{
	ENSURE(a, SRDMA_EINVAL, "no key given");
	ENSURE(a->mode <= SRDMA_PROTECT_ENCRYPT, SRDMA_EINVAL,
	       "unknown protection mode %d", (int)a->mode);
	ENSURE(a->mode == SRDMA_PROTECT_NONE ||
		       (a->backend == SRDMA_AEAD_EVP && a->evp) ||
		       (a->backend == SRDMA_AEAD_IPSEC_MB && a->imb),
	       SRDMA_ESTATE,
	       "the key is not initialised or was lost in a failed rekey");
	return 0;
}

/* ---- one operation ---- */

/* EVP update lengths are ints: feed long buffers in pieces. */
static int update(EVP_CIPHER_CTX *evp, uint8_t *out, const uint8_t *in,
		  size_t len)
{
	while (len > 0) {
		int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
		int outl = 0;

		if (EVP_CipherUpdate(evp, out, &outl, in, chunk) != 1 ||
		    (out && outl != chunk))
			return -1;
		in += chunk;
		if (out)
			out += chunk;
		len -= (size_t)chunk;
	}
	return 0;
}

static int evp_op(EVP_CIPHER_CTX *evp, bool enc,
		  const uint8_t nonce[static SRDMA_SALT_LEN],
		  const uint8_t *aad1, size_t aad1_len, const uint8_t *aad2,
		  size_t aad2_len, const uint8_t *in, uint8_t *out, size_t len,
		  uint8_t tag[static SRDMA_TAG_LEN])
{
	uint8_t fin[32];
	int outl = 0;

	/*
	 * Only the IV changes per operation; enc may differ from the
	 * context's direction (a region owner opens blocks sealed with its
	 * own key), which the GCM and ChaCha20-Poly1305 providers allow
	 * without redoing the key schedule.
	 */
	if (EVP_CipherInit_ex(evp, NULL, NULL, NULL, nonce, enc ? 1 : 0) != 1)
		return srdma__ossl_err(SRDMA_ESYS, "EVP cipher IV setup");
	if (!enc && EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_AEAD_SET_TAG,
					SRDMA_TAG_LEN, tag) != 1)
		return srdma__ossl_err(SRDMA_ESYS, "EVP set tag");
	if (update(evp, NULL, aad1, aad1_len) < 0 ||
	    update(evp, NULL, aad2, aad2_len) < 0 ||
	    update(evp, out, in, len) < 0)
		return srdma__ossl_err(SRDMA_ESYS, "EVP cipher update");
	/* For decryption, the provider compares the tag in constant time. */
	if (EVP_CipherFinal_ex(evp, fin, &outl) != 1) {
		if (enc)
			return srdma__ossl_err(SRDMA_ESYS, "EVP cipher final");
		ERR_clear_error();
		return SRDMA_EINTEGRITY;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(evp, EVP_CTRL_AEAD_GET_TAG,
				       SRDMA_TAG_LEN, tag) != 1)
		return srdma__ossl_err(SRDMA_ESYS, "EVP get tag");
	return 0;
}

/*
 * The one shape intel-ipsec-mb has no single pass for: AAD in two pieces
 * ahead of a payload. No caller uses it (blocks and records put a split AAD
 * only in integrity mode, which has no payload); should one, a short-lived
 * EVP context from the same key gives the same bytes.
 */
static int evp_once(const struct srdma__aead *a, bool enc,
		    const uint8_t nonce[static SRDMA_SALT_LEN],
		    const uint8_t *aad1, size_t aad1_len, const uint8_t *aad2,
		    size_t aad2_len, const uint8_t *in, uint8_t *out,
		    size_t len, uint8_t tag[static SRDMA_TAG_LEN])
{
	EVP_CIPHER_CTX *evp = EVP_CIPHER_CTX_new();
	int rc;

	ENSURE(evp, SRDMA_ENOMEM, "EVP_CIPHER_CTX_new failed");
	if (EVP_CipherInit_ex(evp, evp_cipher(a->cipher), NULL, a->key, NULL,
			      enc ? 1 : 0) != 1)
		rc = srdma__ossl_err(SRDMA_ESYS, "EVP cipher key setup");
	else
		rc = evp_op(evp, enc, nonce, aad1, aad1_len, aad2, aad2_len, in,
			    out, len, tag);
	/* Freeing clears the key schedule (the provider's freectx). */
	EVP_CIPHER_CTX_free(evp);
	return rc;
}

int srdma__aead_op(struct srdma__aead *a, bool enc,
		   const uint8_t nonce[static SRDMA_SALT_LEN],
		   const uint8_t *aad1, size_t aad1_len, const uint8_t *aad2,
		   size_t aad2_len, const uint8_t *in, uint8_t *out, size_t len,
		   uint8_t tag[static SRDMA_TAG_LEN])
{
	switch (a->backend) {
	case SRDMA_AEAD_IPSEC_MB:
		if (aad2_len && len)
			return evp_once(a, enc, nonce, aad1, aad1_len, aad2,
					aad2_len, in, out, len, tag);
		return srdma__imb_op(a->imb, enc, nonce, aad1, aad1_len, aad2,
				     aad2_len, in, out, len, tag);
	case SRDMA_AEAD_EVP:
		return evp_op(a->evp, enc, nonce, aad1, aad1_len, aad2,
			      aad2_len, in, out, len, tag);
	case SRDMA_AEAD_AUTO:
		break;
	}
	return srdma__err(SRDMA_ESTATE, "aead: context has no backend");
}
