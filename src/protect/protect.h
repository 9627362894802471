/* SPDX-License-Identifier: MIT */
/*
 * Data-path protection: key schedule from the TLS exporter, AEAD records for
 * messages, sealed blocks for regions, and the one-time connect token.
 * Knows OpenSSL (and intel-ipsec-mb, inside aead_imb.c only); knows nothing
 * of verbs or libfabric. See DESIGN.md §4 and
 * docs/PROTOCOL.md ("Records", "Sealed blocks").
 */
#ifndef SRDMA_PROTECT_PROTECT_H
#define SRDMA_PROTECT_PROTECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "base/bytes.h"
#include "base/err.h"

enum srdma__cipher {
	SRDMA_CIPHER_NONE = 0,
	SRDMA_CIPHER_AES_256_GCM = 1,
	SRDMA_CIPHER_CHACHA20_POLY1305 = 2,
};

enum {
	SRDMA_KEY_LEN = 32,
	SRDMA_SALT_LEN = 12,
	SRDMA_TAG_LEN = 16,
	/* Record header: u8 type, u8 flags(0), u16 credits, u32 len, u64 seq.
	 */
	SRDMA_REC_HDR_LEN = 16,
	/* Block header: u64 version, u32 valid_len, u8 writer, u8 owner,
	 * u16 zero. */
	SRDMA_BLK_HDR_LEN = 16,
	SRDMA_BLK_MAX_REGION = 0x7fff, /* region ids are 15 bits */
	SRDMA_BLK_PAYLOAD = 4096,      /* == SRDMA_BLOCK_SIZE */
	SRDMA_TOKEN_LEN = 32,	       /* connect token secret */
	SRDMA_MAC_LEN = 32,	       /* connect MAC (HMAC-SHA256) */
};

/* Records per key before the implicit rekey (both sides switch together). */
#define SRDMA_REKEY_AFTER_RECORDS (UINT64_C(1) << 32)
/* Block versions are 48 bits in the nonce: hard stop before they wrap. */
#define SRDMA_BLOCK_VERSION_MAX ((UINT64_C(1) << 48) - 1)

/* AES-256-GCM if the CPU has AES instructions, else ChaCha20-Poly1305. */
enum srdma__cipher srdma__cipher_default(void);
const char *srdma__cipher_name(enum srdma__cipher c);

/* Fills buf from the CSPRNG (RAND_bytes). */
int srdma__random(void *buf, size_t n) SRDMA__WUR;

/*
 * Which implementation runs a context's cipher. AES-256-GCM runs on
 * intel-ipsec-mb where the library was built with it and the CPU has AES-NI
 * and PCLMULQDQ, on OpenSSL's EVP otherwise; ChaCha20-Poly1305 always on
 * EVP. Both compute the same AES-256-GCM (NIST SP 800-38D), so the bytes
 * on the wire do not depend on it and peers need not agree on it.
 */
enum srdma__aead_backend {
	SRDMA_AEAD_AUTO = 0, /* by CPU, as above: all the library ever picks */
	SRDMA_AEAD_EVP = 1,
	SRDMA_AEAD_IPSEC_MB = 2,
};

/* intel-ipsec-mb's expanded AES-GCM key; only aead_imb.c sees inside. */
struct gcm_key_data;

/*
 * One key in one direction: the key schedule computed once (an EVP context,
 * or an intel-ipsec-mb expanded key), a salt, and the record sequence. For
 * records, seq is the next sequence to seal (sender) or the only one
 * accepted (receiver).
 */
struct srdma__aead {
	EVP_CIPHER_CTX *evp;	  /* backend EVP */
	struct gcm_key_data *imb; /* backend IPSEC_MB: 64-byte aligned */
	enum srdma__aead_backend backend; /* AUTO only in mode NONE */
	enum srdma_protect mode;
	enum srdma__cipher cipher;
	bool seal; /* direction: seal (true) or open (false) */
	uint8_t key[SRDMA_KEY_LEN];
	uint8_t salt[SRDMA_SALT_LEN];
	uint64_t seq;
	uint64_t rekey_interval; /* SRDMA_REKEY_AFTER_RECORDS; tests lower it */
	uint64_t epoch;		 /* number of rekeys so far */
};

/*
 * Per-connection keys, all from SSL_export_keying_material with a separate
 * label per direction and purpose, bound to the negotiated mode and cipher.
 */
struct srdma__keys {
	enum srdma_protect mode;
	enum srdma__cipher cipher;
	uint8_t tx_msg_key[SRDMA_KEY_LEN], tx_msg_salt[SRDMA_SALT_LEN];
	uint8_t rx_msg_key[SRDMA_KEY_LEN], rx_msg_salt[SRDMA_SALT_LEN];
	uint8_t tx_blk_key[SRDMA_KEY_LEN], tx_blk_salt[SRDMA_SALT_LEN];
	uint8_t rx_blk_key[SRDMA_KEY_LEN], rx_blk_salt[SRDMA_SALT_LEN];
};

/* is_client picks which exporter outputs are tx and which rx. */
int srdma__keys_derive(SSL *ssl, bool is_client, enum srdma_protect mode,
		       enum srdma__cipher cipher,
		       struct srdma__keys *out) SRDMA__WUR;
void srdma__keys_wipe(struct srdma__keys *k);

/*
 * key/salt are copied and the key schedule computed on the backend chosen
 * for the cipher. mode NONE needs no key schedule.
 */
int srdma__aead_init(struct srdma__aead *a, enum srdma_protect mode,
		     enum srdma__cipher cipher, bool seal,
		     const uint8_t key[static SRDMA_KEY_LEN],
		     const uint8_t salt[static SRDMA_SALT_LEN]) SRDMA__WUR;
/* Frees the key schedule and wipes key material. Safe on a zeroed struct. */
void srdma__aead_wipe(struct srdma__aead *a);

/*
 * The implementation contexts of this cipher get, as one line for logs and
 * srdma_conn_info: "intel-ipsec-mb 1.3.0 (AVX512, VAES)",
 * "OpenSSL 3.0.11 EVP", "none". Static storage.
 */
const char *srdma__aead_impl(enum srdma__cipher c);

/*
 * For tests and benchmarks: the backend AES-256-GCM contexts initialised
 * from now on get, process-wide (AUTO restores the choice by CPU). Contexts
 * already initialised keep theirs. SRDMA_ENOTSUP if IPSEC_MB is asked for
 * and not usable here (not built in, or the CPU lacks AES-NI/PCLMULQDQ).
 */
int srdma__aead_force_backend(enum srdma__aead_backend b) SRDMA__WUR;

/* ---- records (messages) ---- */
/* Bytes a record adds to its payload: header plus tag (no tag in NONE). */
size_t srdma__record_overhead(enum srdma_protect mode);

/*
 * Seals len bytes from in into out (header, payload, tag) with the next
 * sequence number and advances it; rekeys when the interval is reached.
 * Returns the record length or SRDMA_EMSGSIZE / SRDMA_EEXHAUSTED.
 * in and out must not overlap.
 */
int srdma__record_seal(struct srdma__aead *a, uint8_t type, uint16_t credits,
		       const void *in, size_t len, uint8_t *out,
		       size_t cap) SRDMA__WUR;

struct srdma__record {
	uint8_t type;
	uint16_t credits;
	uint64_t seq;
	uint8_t *payload; /* points into the record buffer */
	uint32_t len;
};

/*
 * Opens a record in place. rec_len must equal header len + overhead exactly.
 * Accepts only the expected sequence (SRDMA_EREPLAY otherwise); a bad tag is
 * SRDMA_EINTEGRITY and the payload is wiped so nothing unverified escapes.
 */
int srdma__record_open(struct srdma__aead *a, uint8_t *rec, size_t rec_len,
		       struct srdma__record *out) SRDMA__WUR;

/* ---- sealed blocks (regions) ---- */
/* Bytes one block occupies in registered memory for this mode (NONE: 4096
 * plain bytes; otherwise header, tag and 4096 bytes of payload). */
size_t srdma__block_stride(enum srdma_protect mode);
/* Where the payload starts in a block (0 in NONE). */
size_t srdma__block_payload_off(enum srdma_protect mode);
/* Bytes a block of len payload bytes occupies from its start: what a
 * writer moves (the rest of the stride is not part of the block). */
size_t srdma__block_used(enum srdma_protect mode, size_t len);

/*
 * Seals len (<= SRDMA_BLK_PAYLOAD) bytes as block index of the region
 * region_id (1..SRDMA_BLK_MAX_REGION) that `owner` (0 client, 1 server)
 * exposes, with the writer's block key. Nonce = salt XOR (owner:1 |
 * region_id:15 | index:32 | version:48); AAD = owner, region_id, index and
 * the block header. version must be new for this (key, owner, region,
 * index): writers use a per-region counter. out receives
 * srdma__block_used(mode, len) bytes. In mode NONE the payload is copied
 * as is (no header, version unused).
 */
int srdma__block_seal(struct srdma__aead *k, uint8_t owner, uint32_t region_id,
		      uint64_t index, uint64_t version, uint8_t writer,
		      const void *in, size_t len, uint8_t *out) SRDMA__WUR;

struct srdma__block_info {
	uint64_t version; /* 0: never written (or mode NONE) */
	uint32_t len;
	uint8_t writer;
};

/* Parses a block header without verifying it: SRDMA_EINTEGRITY if it can
 * never be valid. For telling a torn or racing block from others. */
int srdma__block_peek(const uint8_t *in,
		      struct srdma__block_info *info) SRDMA__WUR;

/*
 * Verifies and opens a block into out (SRDMA_BLK_PAYLOAD bytes; bytes past
 * len are zeroed). keys[w] opens blocks whose header names writer w (0 =
 * client, 1 = server); the header must name `owner`. On any failure out is
 * zeroed and SRDMA_EINTEGRITY returned. A block whose header and tag are
 * all zero was never written: it reads as zeros (version 0) if allow_empty,
 * and fails otherwise. Mode NONE copies the 4096 bytes as they are.
 */
int srdma__block_open(struct srdma__aead *keys[2], uint8_t owner,
		      uint32_t region_id, uint64_t index, const uint8_t *in,
		      bool allow_empty, uint8_t *out,
		      struct srdma__block_info *info) SRDMA__WUR;

/* ---- connect token ---- */
struct srdma__token {
	uint8_t secret[SRDMA_TOKEN_LEN];
	uint64_t session_id;
	uint64_t deadline_ms; /* srdma__now_ms() clock */
	bool used;
};

/* New random secret and session id, valid ttl_ms from now_ms. */
int srdma__token_new(struct srdma__token *t, uint64_t now_ms,
		     uint32_t ttl_ms) SRDMA__WUR;
/* HMAC-SHA256(secret, "srdma connect v1" | session_id | initiator_id). */
int srdma__token_mac(const uint8_t secret[static SRDMA_TOKEN_LEN],
		     uint64_t session_id, uint32_t initiator_id,
		     uint8_t mac[static SRDMA_MAC_LEN]) SRDMA__WUR;
/*
 * Checks private data against the token: session id, deadline, not used
 * before, MAC compared in constant time. Any attempt burns the token (marks
 * it used and wipes the secret), so a second try always fails. 0 or
 * SRDMA_ETOKEN with detail saying which check failed.
 */
int srdma__token_check(struct srdma__token *t, uint64_t session_id,
		       uint32_t initiator_id,
		       const uint8_t mac[static SRDMA_MAC_LEN],
		       uint64_t now_ms) SRDMA__WUR;
void srdma__token_wipe(struct srdma__token *t);

#endif
