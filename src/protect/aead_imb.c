/* SPDX-License-Identifier: MIT */
/*
 * AES-256-GCM on intel-ipsec-mb: the backend aead.c picks where the library
 * was built in and the CPU has AES-NI and PCLMULQDQ. It computes the same
 * AES-256-GCM as OpenSSL (NIST SP 800-38D), so what it seals opens on EVP
 * and the other way round (tests/unit/test_aead.c checks both directions).
 *
 * Only the library's direct GCM API is used: a key expanded once per
 * context, and per call a struct gcm_context_data on the stack. Its
 * functions take only those two (the library's notes describe its GCM code
 * as "simple computational routines, with no state associated with them");
 * the manager (IMB_MGR) serves only to pick the best code for this CPU. So
 * we set one up once per process, copy the six function pointers we call,
 * and free it again: every thread and context shares the table, read-only.
 *
 * In intel-ipsec-mb 1.3 (Debian 12) built with SAFE_PARAM, each direct call
 * also stores 0 to a process-global imb_errno (upstream issue #112, fixed in
 * 1.4): a shared cache line when many threads seal at once. We never read
 * it; the arguments are checked here instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "protect/protect.h"
#include "protect/protect_int.h"

#if defined(SRDMA_HAVE_IPSEC_MB) && defined(__x86_64__)

#include <pthread.h>

/* Without this the header #defines pre-0.53 names (SHA1, DES, CBC, ...)
 * that clash with OpenSSL's when included in either order. */
#define NO_COMPAT_IMB_API_053
#include <intel-ipsec-mb.h>

/* The library is built with -DLINUX, under which the header makes this
 * struct 64-aligned (1,024 bytes); our view without it is 1,008 bytes.
 * Allocate the larger, aligned. */
enum {
	KEY_ALIGN = 64,
	KEY_SIZE = (sizeof(struct gcm_key_data) + KEY_ALIGN - 1) / KEY_ALIGN *
		   KEY_ALIGN,
};

static struct {
	aes_gcm_pre_t pre;
	aes_gcm_enc_dec_t enc, dec;
	aes_gmac_init_t gmac_init;
	aes_gmac_update_t gmac_update;
	aes_gmac_finalize_t gmac_final;
	bool usable;
	char name[64];
} imb;
static pthread_once_t imb_once = PTHREAD_ONCE_INIT;

static const char *arch_name(IMB_ARCH arch, uint64_t features)
{
	switch (arch) {
	case IMB_ARCH_AVX512:
		/* 1.3 runs its VAES/VPCLMULQDQ ("type 2") code exactly when
		 * all of these are present (init_mb_mgr_avx512). */
		if ((features & IMB_CPUFLAGS_AVX512_T2) ==
		    IMB_CPUFLAGS_AVX512_T2)
			return "AVX512, VAES";
		return "AVX512";
	case IMB_ARCH_AVX2:
		return "AVX2";
	case IMB_ARCH_AVX:
		return "AVX";
	case IMB_ARCH_SSE:
		return "SSE";
	default:
		return NULL;
	}
}

static void imb_setup(void)
{
	IMB_ARCH arch = IMB_ARCH_NONE;
	const uint64_t need = IMB_FEATURE_AESNI | IMB_FEATURE_PCLMULQDQ;
	const char *an;
	IMB_MGR *m;

	/* Without AES-NI the library would run its table-based emulation,
	 * slower than EVP and not constant-time: EVP it is. */
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("aes") || !__builtin_cpu_supports("pclmul"))
		return;
	m = alloc_mb_mgr(0);
	if (!m)
		return;
	init_mb_mgr_auto(m, &arch);
	an = arch_name(arch, m->features);
	/* init_mb_mgr_* runs the library's known-answer self-test and
	 * reports a failure through imb_errno and the feature bits. */
	if (imb_get_errno(m) != 0 || !an || (m->features & need) != need ||
	    ((m->features & IMB_FEATURE_SELF_TEST) &&
	     !(m->features & IMB_FEATURE_SELF_TEST_PASS)))
		goto out_free_mgr;
	imb.pre = m->gcm256_pre;
	imb.enc = m->gcm256_enc;
	imb.dec = m->gcm256_dec;
	imb.gmac_init = m->gmac256_init;
	imb.gmac_update = m->gmac256_update;
	imb.gmac_final = m->gmac256_finalize;
	if (!imb.pre || !imb.enc || !imb.dec || !imb.gmac_init ||
	    !imb.gmac_update || !imb.gmac_final)
		goto out_free_mgr;
	snprintf(imb.name, sizeof(imb.name), "intel-ipsec-mb %s (%s)",
		 imb_get_version_str(), an);
	imb.usable = true;
out_free_mgr:
	free_mb_mgr(m);
}

bool srdma__imb_usable(void)
{
	pthread_once(&imb_once, imb_setup);
	return imb.usable;
}

const char *srdma__imb_name(void)
{
	return srdma__imb_usable() ? imb.name : NULL;
}

int srdma__imb_key_new(struct gcm_key_data **out,
		       const uint8_t key[static SRDMA_KEY_LEN])
{
	struct gcm_key_data *k;

	ENSURE(out && key, SRDMA_EINVAL, "imb_key_new: NULL argument");
	*out = NULL;
	ENSURE(srdma__imb_usable(), SRDMA_ENOTSUP,
	       "intel-ipsec-mb is not usable on this CPU");
	k = aligned_alloc(KEY_ALIGN, KEY_SIZE);
	ENSURE(k, SRDMA_ENOMEM, "no memory for an AES-GCM key schedule");
	srdma__imb_key_set(k, key);
	*out = k;
	return 0;
}

void srdma__imb_key_set(struct gcm_key_data *k,
			const uint8_t key[static SRDMA_KEY_LEN])
{
	/* Round keys and the powers of the hash key H, once per key. */
	imb.pre(key, k);
}

void srdma__imb_key_free(struct gcm_key_data *k)
{
	if (!k)
		return;
	OPENSSL_cleanse(k, KEY_SIZE);
	free(k);
}

int srdma__imb_op(const struct gcm_key_data *k, bool enc,
		  const uint8_t nonce[static SRDMA_SALT_LEN],
		  const uint8_t *aad1, size_t aad1_len, const uint8_t *aad2,
		  size_t aad2_len, const uint8_t *in, uint8_t *out, size_t len,
		  uint8_t tag[static SRDMA_TAG_LEN])
{
	struct gcm_context_data ctx;
	uint8_t calc[SRDMA_TAG_LEN];
	uint8_t *t = enc ? tag : calc;
	int rc = 0;

	if (aad2_len && len)
		return SRDMA_ENOTSUP;
	/* What the library's SAFE_PARAM checks would refuse silently (it
	 * returns without output, setting only imb_errno): refuse it here. */
	ENSURE(k && (aad1 || !aad1_len) && (aad2 || !aad2_len) &&
		       ((in && out) || !len),
	       SRDMA_EINVAL, "aead: NULL buffer");
	/* Should the library still write nothing, the comparison fails. */
	for (int i = 0; i < SRDMA_TAG_LEN; i++)
		calc[i] = (uint8_t)~tag[i];

	if (aad2_len == 0) {
		/* One pass: AAD, then the payload (possibly empty). */
		if (enc)
			imb.enc(k, &ctx, out, in, len, nonce, aad1, aad1_len, t,
				SRDMA_TAG_LEN);
		else
			imb.dec(k, &ctx, out, in, len, nonce, aad1, aad1_len, t,
				SRDMA_TAG_LEN);
	} else {
		/*
		 * Integrity mode: aad1 || aad2 is all AAD, nothing encrypted.
		 * GMAC is GCM with an empty payload; its update carries a
		 * partial block from one call to the next, so the 28-byte
		 * block AAD and the payload behind it hash as one string,
		 * without copying the payload (up to 16 MiB) anywhere.
		 */
		imb.gmac_init(k, &ctx, nonce, SRDMA_SALT_LEN);
		imb.gmac_update(k, &ctx, aad1, aad1_len);
		imb.gmac_update(k, &ctx, aad2, aad2_len);
		imb.gmac_final(k, &ctx, t, SRDMA_TAG_LEN);
	}
	if (!enc && CRYPTO_memcmp(calc, tag, SRDMA_TAG_LEN) != 0)
		rc = SRDMA_EINTEGRITY;
	/* ctx holds the hash state and the last keystream block. */
	OPENSSL_cleanse(&ctx, sizeof(ctx));
	OPENSSL_cleanse(calc, sizeof(calc));
	return rc;
}

#else /* !SRDMA_HAVE_IPSEC_MB */

bool srdma__imb_usable(void)
{
	return false;
}

const char *srdma__imb_name(void)
{
	return NULL;
}

int srdma__imb_key_new(struct gcm_key_data **out,
		       const uint8_t key[static SRDMA_KEY_LEN])
{
	if (out)
		*out = NULL;
	return srdma__err(SRDMA_ENOTSUP,
			  "built without intel-ipsec-mb (libipsec-mb-dev)");
}

void srdma__imb_key_set(struct gcm_key_data *k,
			const uint8_t key[static SRDMA_KEY_LEN])
{
}

void srdma__imb_key_free(struct gcm_key_data *k)
{
}

int srdma__imb_op(const struct gcm_key_data *k, bool enc,
		  const uint8_t nonce[static SRDMA_SALT_LEN],
		  const uint8_t *aad1, size_t aad1_len, const uint8_t *aad2,
		  size_t aad2_len, const uint8_t *in, uint8_t *out, size_t len,
		  uint8_t tag[static SRDMA_TAG_LEN])
{
	return SRDMA_ENOTSUP;
}

#endif
