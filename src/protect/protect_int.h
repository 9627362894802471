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

/* 0 if a can seal/open: known mode, and an EVP context unless mode NONE. */
int srdma__aead_ready(const struct srdma__aead *a) SRDMA__WUR;

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

#endif
