/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 session resumption parts used by ctrl.c (internal to src/ctrl):
 * the server's ticket key ring, its ticket replay filter, and the client's
 * session cache. Each object locks itself: one SSL_CTX may serve several
 * threads.
 */
#ifndef SRDMA_CTRL_RESUME_H
#define SRDMA_CTRL_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

#include "base/err.h"

enum {
	TICKET_ID_LEN = 16,    /* random id sealed into each ticket */
	TICKET_TRUST_LEN = 16, /* digest of the CAs trusted when issued */
	TICKET_APPDATA_LEN = TICKET_ID_LEN + TICKET_TRUST_LEN,
};

/* ---- server: ticket key ring (current + previous) ---- */
struct srdma__ticket_keys;

int srdma__ticket_keys_create(unsigned int rotate_s,
			      struct srdma__ticket_keys **out) SRDMA__WUR;
/* One more holder (a reloaded TLS context keeps the ring): returns k. */
struct srdma__ticket_keys *srdma__ticket_keys_ref(struct srdma__ticket_keys *k);
/* Drops a holder; the last one wipes the keys. NULL ok. */
void srdma__ticket_keys_destroy(struct srdma__ticket_keys *k);
int srdma__ticket_keys_rotate(struct srdma__ticket_keys *k) SRDMA__WUR;
int srdma__ticket_keys_copy(struct srdma__ticket_keys *dst,
			    const struct srdma__ticket_keys *src) SRDMA__WUR;
/*
 * The body of an SSL_CTX_set_tlsext_ticket_key_evp_cb callback: enc = 1
 * seals with the current key (1 = ok); enc = 0 finds the key by name:
 * 1 = current, 2 = previous (renew), 0 = unknown, -1 = error.
 */
int srdma__ticket_keys_cb(struct srdma__ticket_keys *k,
			  unsigned char key_name[16], unsigned char *iv,
			  EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc);

/* ---- server: tickets seen (single use) ---- */
struct srdma__replay;

int srdma__replay_create(struct srdma__replay **out) SRDMA__WUR;
/* One more holder (a reloaded TLS context keeps the filter): returns r. */
struct srdma__replay *srdma__replay_ref(struct srdma__replay *r);
/* Drops a holder; the last one frees the filter. NULL ok. */
void srdma__replay_destroy(struct srdma__replay *r);
/*
 * Records ticket id, remembered until expires (wall clock). 0 = first use,
 * 1 = seen before (a replay), -1 = the filter is full (refuse too).
 */
int srdma__replay_check(struct srdma__replay *r,
			const unsigned char id[TICKET_ID_LEN], time_t expires,
			time_t now);

/* ---- client: session cache keyed by a string ---- */
struct srdma__sess_cache;

int srdma__sess_cache_create(struct srdma__sess_cache **out) SRDMA__WUR;
void srdma__sess_cache_destroy(struct srdma__sess_cache *sc);
/* Takes the reference to s on success (true); false: caller keeps it. */
bool srdma__sess_cache_put(struct srdma__sess_cache *sc, const char *key,
			   SSL_SESSION *s);
/*
 * Removes and returns the newest usable session for key (the caller owns
 * the reference), or NULL. Expired ones, and ones whose peer certificate
 * has expired, are dropped on the way.
 */
SSL_SESSION *srdma__sess_cache_take(struct srdma__sess_cache *sc,
				    const char *key, time_t now);
size_t srdma__sess_cache_count(struct srdma__sess_cache *sc, const char *key);

#endif
