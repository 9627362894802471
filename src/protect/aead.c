/* SPDX-License-Identifier: MIT */
/*
 * Per-direction AEAD contexts (DESIGN.md §4): the key schedule computed once
 * per key in an EVP context, one operation per record or block.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "protect/protect.h"
#include "protect/protect_int.h"

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

int srdma__aead_init(struct srdma__aead *a, enum srdma_protect mode,
		     enum srdma__cipher cipher, bool seal,
		     const uint8_t key[static SRDMA_KEY_LEN],
		     const uint8_t salt[static SRDMA_SALT_LEN])
{
	const EVP_CIPHER *c;
	int ok;

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

	c = evp_cipher(cipher);
	if (!c) {
		srdma__aead_wipe(a);
		return srdma__err(SRDMA_EINVAL,
				  "aead_init: mode %d needs a cipher, got %d",
				  (int)mode, (int)cipher);
	}
	a->evp = EVP_CIPHER_CTX_new();
	if (!a->evp) {
		srdma__aead_wipe(a);
		return srdma__err(SRDMA_ENOMEM, "EVP_CIPHER_CTX_new failed");
	}
	/* The key schedule is computed once here; records only set the IV. */
	if (seal)
		ok = EVP_EncryptInit_ex(a->evp, c, NULL, key, NULL);
	else
		ok = EVP_DecryptInit_ex(a->evp, c, NULL, key, NULL);
	if (ok != 1) {
		srdma__aead_wipe(a);
		return srdma__ossl_err(SRDMA_ESYS, "EVP cipher init");
	}
	return 0;
}

void srdma__aead_wipe(struct srdma__aead *a)
{
	if (!a)
		return;
	EVP_CIPHER_CTX_free(a->evp);
	OPENSSL_cleanse(a, sizeof(*a));
}

int srdma__aead_ready(const struct srdma__aead *a)
{
	ENSURE(a, SRDMA_EINVAL, "no key given");
	ENSURE(a->mode <= SRDMA_PROTECT_ENCRYPT, SRDMA_EINVAL,
	       "unknown protection mode %d", (int)a->mode);
	ENSURE(a->mode == SRDMA_PROTECT_NONE || a->evp, SRDMA_ESTATE,
	       "the key is not initialised or was lost in a failed rekey");
	return 0;
}

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

int srdma__aead_op(struct srdma__aead *a, bool enc,
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
	if (EVP_CipherInit_ex(a->evp, NULL, NULL, NULL, nonce, enc ? 1 : 0) !=
	    1)
		return srdma__ossl_err(SRDMA_ESYS, "EVP cipher IV setup");
	if (!enc && EVP_CIPHER_CTX_ctrl(a->evp, EVP_CTRL_AEAD_SET_TAG,
					SRDMA_TAG_LEN, tag) != 1)
		return srdma__ossl_err(SRDMA_ESYS, "EVP set tag");
	if (update(a->evp, NULL, aad1, aad1_len) < 0 ||
	    update(a->evp, NULL, aad2, aad2_len) < 0 ||
	    update(a->evp, out, in, len) < 0)
		return srdma__ossl_err(SRDMA_ESYS, "EVP cipher update");
	if (EVP_CipherFinal_ex(a->evp, fin, &outl) != 1) {
		if (enc)
			return srdma__ossl_err(SRDMA_ESYS, "EVP cipher final");
		ERR_clear_error();
		return SRDMA_EINTEGRITY;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(a->evp, EVP_CTRL_AEAD_GET_TAG,
				       SRDMA_TAG_LEN, tag) != 1)
		return srdma__ossl_err(SRDMA_ESYS, "EVP get tag");
	return 0;
}
