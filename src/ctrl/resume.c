/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 session resumption state: the server's ticket key ring and ticket
 * replay filter, and the client's session cache.
 *
 * Tickets are stateless (RFC 5077 layout as OpenSSL writes it: key name,
 * IV, AES-256-CBC ciphertext, HMAC-SHA256 over all of it, checked before
 * decrypting). The ring holds a current key, which seals new tickets, and
 * the previous one, which still opens tickets sealed before the last
 * rotation; anything older is undecryptable and the client falls back to a
 * full handshake.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "ctrl/resume.h"

enum {
	KEY_NAME_LEN = 16,
	AES_KEY_LEN = 32,
	HMAC_KEY_LEN = 32,
	REPLAY_SLOTS = 1 << 16, /* 1 MiB: 16-byte slots */
	REPLAY_PROBES = 32,
	CACHE_KEYS = 64,  /* servers remembered by a client context */
	SESS_PER_KEY = 4, /* tickets kept per server (a pool reconnects) */
};

/* ---------------------------------------------------------------------- */
/* Ticket key ring                                                         */

struct tkey {
	unsigned char name[KEY_NAME_LEN];
	unsigned char aes[AES_KEY_LEN];
	unsigned char hmac[HMAC_KEY_LEN];
	bool live;
};

struct srdma__ticket_keys {
	atomic_int refs; /* TLS contexts holding the ring (reload) */
	pthread_mutex_t lock;
	struct tkey cur, prev;
	unsigned int rotate_s;
	struct timespec rotated; /* CLOCK_MONOTONIC: wall-clock jumps ignored */
};

static int key_new(struct tkey *k)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_priv_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_priv_bytes(k->hmac, sizeof(k->hmac)) != 1) {
		OPENSSL_cleanse(k, sizeof(*k));
		return srdma__err(SRDMA_ENOMEM,
				  "the random generator failed to make a "
				  "session ticket key");
	}
	k->live = true;
	return 0;
}

/* Called locked. */
static int rotate(struct srdma__ticket_keys *k)
{
	struct tkey next;

	GUARD(key_new(&next));
	k->prev = k->cur;
	k->cur = next;
	OPENSSL_cleanse(&next, sizeof(next));
	clock_gettime(CLOCK_MONOTONIC, &k->rotated);
	return 0;
}

int srdma__ticket_keys_create(unsigned int rotate_s,
			      struct srdma__ticket_keys **out)
{
	struct srdma__ticket_keys *k;
	int rc;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	ENSURE(k, SRDMA_ENOMEM, "out of memory for session ticket keys");
	k->rotate_s = rotate_s;
	rc = rotate(k);
	if (rc < 0) {
		free(k);
		return rc;
	}
	pthread_mutex_init(&k->lock, NULL);
	atomic_init(&k->refs, 1);
	*out = k;
	return 0;
}

struct srdma__ticket_keys *srdma__ticket_keys_ref(struct srdma__ticket_keys *k)
{
	if (k)
		atomic_fetch_add(&k->refs, 1);
	return k;
}

void srdma__ticket_keys_destroy(struct srdma__ticket_keys *k)
{
	if (!k || atomic_fetch_sub(&k->refs, 1) > 1)
		return;
	pthread_mutex_destroy(&k->lock);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

int srdma__ticket_keys_rotate(struct srdma__ticket_keys *k)
{
	int rc;

	ENSURE(k, SRDMA_EINVAL, "no session ticket keys (resumption is off)");
	pthread_mutex_lock(&k->lock);
	rc = rotate(k);
	pthread_mutex_unlock(&k->lock);
	return rc;
}

int srdma__ticket_keys_copy(struct srdma__ticket_keys *dst,
			    const struct srdma__ticket_keys *src)
{
	struct srdma__ticket_keys *s = (struct srdma__ticket_keys *)src;
	struct tkey cur, prev;
	struct timespec when;

	ENSURE(dst && src, SRDMA_EINVAL,
	       "both contexts need session ticket keys (servers with "
	       "resumption on)");
	if (dst == src)
		return 0;
	pthread_mutex_lock(&s->lock);
	cur = s->cur;
	prev = s->prev;
	when = s->rotated;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&dst->lock);
	dst->cur = cur;
	dst->prev = prev;
	dst->rotated = when;
	pthread_mutex_unlock(&dst->lock);
	OPENSSL_cleanse(&cur, sizeof(cur));
	OPENSSL_cleanse(&prev, sizeof(prev));
	return 0;
}

static bool rotation_due(const struct srdma__ticket_keys *k)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec - k->rotated.tv_sec >= (time_t)k->rotate_s;
}

static int mac_init(EVP_MAC_CTX *hctx, unsigned char *key)
{
	OSSL_PARAM p[3];

	p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key,
						 HMAC_KEY_LEN);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						(char *)"SHA256", 0);
	p[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, p) == 1 ? 0 : -1;
}

int srdma__ticket_keys_cb(struct srdma__ticket_keys *k,
			  unsigned char key_name[16], unsigned char *iv,
			  EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	const EVP_CIPHER *aes = EVP_aes_256_cbc();
	struct tkey *use = NULL;
	int ret = -1;

	if (!k)
		return enc ? -1 : 0;
	pthread_mutex_lock(&k->lock);
	/* Rotation is lazy: the first ticket operation after the period. */
	if (rotation_due(k) && rotate(k) < 0)
		goto out_unlock;
	if (enc) {
		use = &k->cur;
		memcpy(key_name, use->name, KEY_NAME_LEN);
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes)) != 1 ||
		    EVP_EncryptInit_ex(cctx, aes, NULL, use->aes, iv) != 1 ||
		    mac_init(hctx, use->hmac) < 0)
			goto out_unlock;
		ret = 1;
		goto out_unlock;
	}
	if (!CRYPTO_memcmp(key_name, k->cur.name, KEY_NAME_LEN)) {
		use = &k->cur;
		ret = 1;
	} else if (k->prev.live &&
		   !CRYPTO_memcmp(key_name, k->prev.name, KEY_NAME_LEN)) {
		use = &k->prev;
		ret = 2; /* good, but seal a fresh ticket under the new key */
	} else {
		ret = 0; /* unknown key: full handshake */
		goto out_unlock;
	}
	if (mac_init(hctx, use->hmac) < 0 ||
	    EVP_DecryptInit_ex(cctx, aes, NULL, use->aes, iv) != 1)
		ret = -1;
out_unlock:
	pthread_mutex_unlock(&k->lock);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Replay filter: ticket ids seen, each until its ticket would expire.     */
/* Open addressing with linear probing; a slot is empty only before its    */
/* first use (expired slots are reused in place, so probe chains never     */
/* break). Ids are random and sealed inside the ticket by us, so an       */
/* attacker cannot aim at one chain.                                       */

struct rslot {
	uint64_t tag;
	int64_t expires; /* 0 = never used */
};

struct srdma__replay {
	atomic_int refs; /* TLS contexts holding the filter (reload) */
	pthread_mutex_t lock;
	struct rslot *slots;
};

int srdma__replay_create(struct srdma__replay **out)
{
	struct srdma__replay *r;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	ENSURE(r, SRDMA_ENOMEM, "out of memory for the ticket replay filter");
	r->slots = calloc(REPLAY_SLOTS, sizeof(*r->slots));
	if (!r->slots) {
		free(r);
		return srdma__err(SRDMA_ENOMEM,
				  "out of memory for the ticket replay filter");
	}
	pthread_mutex_init(&r->lock, NULL);
	atomic_init(&r->refs, 1);
	*out = r;
	return 0;
}

struct srdma__replay *srdma__replay_ref(struct srdma__replay *r)
{
	if (r)
		atomic_fetch_add(&r->refs, 1);
	return r;
}

void srdma__replay_destroy(struct srdma__replay *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) > 1)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->slots);
	free(r);
}

int srdma__replay_check(struct srdma__replay *r,
			const unsigned char id[TICKET_ID_LEN], time_t expires,
			time_t now)
{
	uint64_t home, tag;
	struct rslot *reuse = NULL;
	int ret = -1;

	if (!r)
		return -1;
	memcpy(&home, id, sizeof(home));
	memcpy(&tag, id + sizeof(home), sizeof(tag));
	pthread_mutex_lock(&r->lock);
	for (unsigned int i = 0; i < REPLAY_PROBES; i++) {
		struct rslot *s = &r->slots[(home + i) & (REPLAY_SLOTS - 1)];

		if (!s->expires) {
			if (!reuse)
				reuse = s;
			break;
		}
		if (s->expires <= (int64_t)now) {
			if (!reuse)
				reuse = s;
			continue;
		}
		if (s->tag == tag) {
			ret = 1;
			goto out_unlock;
		}
	}
	if (reuse) {
		reuse->tag = tag;
		reuse->expires =
			expires > now ? (int64_t)expires : (int64_t)now + 1;
		ret = 0;
	}
out_unlock:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Client session cache                                                    */

struct centry {
	char *key;		      /* NULL = free */
	SSL_SESSION *s[SESS_PER_KEY]; /* oldest first */
	int n;
	uint64_t used; /* LRU stamp */
};

struct srdma__sess_cache {
	pthread_mutex_t lock;
	struct centry e[CACHE_KEYS];
	uint64_t clock;
};

int srdma__sess_cache_create(struct srdma__sess_cache **out)
{
	struct srdma__sess_cache *sc;

	*out = NULL;
	sc = calloc(1, sizeof(*sc));
	ENSURE(sc, SRDMA_ENOMEM, "out of memory for the TLS session cache");
	pthread_mutex_init(&sc->lock, NULL);
	*out = sc;
	return 0;
}

static void entry_clear(struct centry *e)
{
	for (int i = 0; i < e->n; i++)
		SSL_SESSION_free(e->s[i]);
	free(e->key);
	memset(e, 0, sizeof(*e));
}

void srdma__sess_cache_destroy(struct srdma__sess_cache *sc)
{
	if (!sc)
		return;
	for (int i = 0; i < CACHE_KEYS; i++)
		entry_clear(&sc->e[i]);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

static struct centry *find(struct srdma__sess_cache *sc, const char *key)
{
	for (int i = 0; i < CACHE_KEYS; i++)
		if (sc->e[i].key && !strcmp(sc->e[i].key, key))
			return &sc->e[i];
	return NULL;
}

bool srdma__sess_cache_put(struct srdma__sess_cache *sc, const char *key,
			   SSL_SESSION *s)
{
	struct centry *e;
	bool ok = false;

	if (!sc || !key || !s)
		return false;
	pthread_mutex_lock(&sc->lock);
	e = find(sc, key);
	if (!e) {
		struct centry *lru = &sc->e[0];

		for (int i = 0; i < CACHE_KEYS; i++) {
			if (!sc->e[i].key) {
				lru = &sc->e[i];
				break;
			}
			if (sc->e[i].used < lru->used)
				lru = &sc->e[i];
		}
		entry_clear(lru);
		lru->key = strdup(key);
		if (!lru->key)
			goto out_unlock;
		e = lru;
	}
	if (e->n == SESS_PER_KEY) {
		SSL_SESSION_free(e->s[0]);
		memmove(e->s, e->s + 1, sizeof(e->s[0]) * (SESS_PER_KEY - 1));
		e->n--;
	}
	e->s[e->n++] = s;
	e->used = ++sc->clock;
	ok = true;
out_unlock:
	pthread_mutex_unlock(&sc->lock);
	return ok;
}

static bool usable(SSL_SESSION *s, time_t now)
{
	X509 *peer = SSL_SESSION_get0_peer(s);

	if (!SSL_SESSION_is_resumable(s))
		return false;
	if ((time_t)(SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s)) <=
	    now)
		return false;
	/* A ticket must not outlive the certificate it vouches for. */
	return peer && X509_cmp_time(X509_get0_notAfter(peer), &now) > 0;
}

SSL_SESSION *srdma__sess_cache_take(struct srdma__sess_cache *sc,
				    const char *key, time_t now)
{
	SSL_SESSION *got = NULL;
	struct centry *e;

	if (!sc || !key)
		return NULL;
	pthread_mutex_lock(&sc->lock);
	e = find(sc, key);
	while (e && e->n > 0 && !got) {
		SSL_SESSION *s = e->s[--e->n];

		e->s[e->n] = NULL;
		if (usable(s, now))
			got = s;
		else
			SSL_SESSION_free(s);
	}
	if (e)
		e->used = ++sc->clock;
	pthread_mutex_unlock(&sc->lock);
	return got;
}

size_t srdma__sess_cache_count(struct srdma__sess_cache *sc, const char *key)
{
	struct centry *e;
	size_t n = 0;

	if (!sc || !key)
		return 0;
	pthread_mutex_lock(&sc->lock);
	e = find(sc, key);
	if (e)
		n = (size_t)e->n;
	pthread_mutex_unlock(&sc->lock);
	return n;
}
