/* SPDX-License-Identifier: MIT */
/* Helpers shared by the protect module's files; not for other modules. */
#ifndef SRDMA_PROTECT_PROTECT_INT_H
#define SRDMA_PROTECT_PROTECT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protect/protect.h"

/* Big-endian helpers (srdma__be32, srdma__get_be64, ...) are in base/bytes.h.
 */

/* Records err with the first queued OpenSSL error, clears the queue. */
int srdma__ossl_err(int err, const char *what);

/* 0 if a can seal/open: known mode, and a key schedule unless mode NONE. */
int srdma__aead_ready(const struct srdma__aead *a) SRDMA__WUR;

/*
 * Recomputes the key schedule from a->key on the context's backend (the
 * rekey). On failure the schedule is gone and srdma__aead_ready fails, so a
 * half-rekeyed context never seals or opens again.
 */
int srdma__aead_set_key(struct srdma__aead *a) SRDMA__WUR;
/* Frees and wipes the key schedule only (a stays unusable). */
void srdma__aead_unkey(struct srdma__aead *a);

/*
 * One AEAD operation with the context's key: sets the nonce, feeds aad1 then
 * aad2, en/decrypts len bytes from in to out (may be equal), and writes
 * (enc) or checks (!enc) the tag. A tag mismatch is SRDMA_EINTEGRITY with
 * no detail set; out then holds unverified bytes the caller must wipe.
 */
int srdma__aead_op(struct srdma__aead *a, bool enc,
		   const uint8_t nonce[static SRDMA_SALT_LEN],
		   const uint8_t *aad1, size_t aad1_len, const uint8_t *aad2,
		   size_t aad2_len, const uint8_t *in, uint8_t *out, size_t len,
		   uint8_t tag[static SRDMA_TAG_LEN]) SRDMA__WUR;

/*
 * ---- the intel-ipsec-mb backend (aead_imb.c) ----
 * Built with SRDMA_HAVE_IPSEC_MB; without it srdma__imb_usable() is false
 * and nothing else is called.
 */
/* Sets the library up once per process; true if AES-256-GCM can run on it. */
bool srdma__imb_usable(void);
/* "intel-ipsec-mb 1.3.0 (AVX512, VAES)", or NULL when not usable. */
const char *srdma__imb_name(void);
/* Allocates an aligned expanded-key struct for key into *out. */
int srdma__imb_key_new(struct gcm_key_data **out,
		       const uint8_t key[static SRDMA_KEY_LEN]) SRDMA__WUR;
/* Expands key into k in place (the rekey). Cannot fail. */
void srdma__imb_key_set(struct gcm_key_data *k,
			const uint8_t key[static SRDMA_KEY_LEN]);
/* Wipes and frees k; NULL is fine. */
void srdma__imb_key_free(struct gcm_key_data *k);
/*
 * srdma__aead_op for AES-256-GCM on intel-ipsec-mb, in the two shapes the
 * callers use: aad1 then a payload (aad2_len == 0), or aad1 then aad2 and no
 * payload (len == 0: GMAC over both). Anything else is SRDMA_ENOTSUP and
 * left to EVP.
 */
int srdma__imb_op(const struct gcm_key_data *k, bool enc,
		  const uint8_t nonce[static SRDMA_SALT_LEN],
		  const uint8_t *aad1, size_t aad1_len, const uint8_t *aad2,
		  size_t aad2_len, const uint8_t *in, uint8_t *out, size_t len,
		  uint8_t tag[static SRDMA_TAG_LEN]) SRDMA__WUR;

#endif
