/* SPDX-License-Identifier: MIT */
/*
 * Control channel: the OpenSSL side of TLS 1.3 session resumption.
 * Ticket callbacks (seal/open, ticket id, the server's decision, the
 * client's new ticket), the session id context, setting resumption
 * up on a context, and the ticket key and cache hooks. The key ring,
 * replay filter and session cache themselves are in resume.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ctrl/ctrl_int.h"

/* ---------------------------------------------------------------------- */
/* Session resumption (RFC 8446 §2.2): the OpenSSL callbacks               */

static time_t now_s(const struct srdma__tls_ctx *t)
{
	return time(NULL) + t->clock_offset;
}

void srdma__ctrl_note(struct srdma__ctrl *c, const char *why)
{
	if (c && !c->resume_note[0])
		snprintf(c->resume_note, sizeof(c->resume_note), "%s", why);
}

/* Server: seals and opens tickets with the context's key ring. */
static int ticket_key_cb(SSL *ssl, unsigned char key_name[16],
			 unsigned char iv[EVP_MAX_IV_LENGTH],
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct srdma__ctrl *c = SSL_get_ex_data(ssl, srdma__ctrl_idx);

	if (!c)
		return enc ? -1 : 0;
	return srdma__ticket_keys_cb(c->t->keys, key_name, iv, cctx, hctx, enc);
}

/*
 * Server: every ticket carries, sealed inside it, a random id (single use)
 * and the digest of the CAs the client was verified against.
 */
static int ticket_gen_cb(SSL *ssl, void *arg)
{
	struct srdma__tls_ctx *t = arg;
	unsigned char app[TICKET_APPDATA_LEN];
	SSL_SESSION *sess = SSL_get0_session(ssl);
	int ok;

	memcpy(app + TICKET_ID_LEN, t->trust, TICKET_TRUST_LEN);
	ok = sess && RAND_bytes(app, TICKET_ID_LEN) == 1 &&
	     SSL_SESSION_set1_ticket_appdata(sess, app, sizeof(app)) == 1;
	return ok;
}

/*
 * Server: decides on a ticket that decrypted (or not). Anything doubtful
 * means a full handshake, never a failure: the client still has its
 * certificate. The allow-list is not decided here but in handshake_done,
 * the one place every handshake, full or resumed, passes.
 */
static SSL_TICKET_RETURN ticket_dec_cb(SSL *ssl, SSL_SESSION *sess,
				       const unsigned char *keyname,
				       size_t keyname_len,
				       SSL_TICKET_STATUS status, void *arg)
{
	struct srdma__tls_ctx *t = arg;
	struct srdma__ctrl *c = SSL_get_ex_data(ssl, srdma__ctrl_idx);
	time_t now = now_s(t);
	const unsigned char *app = NULL;
	size_t app_len = 0;
	X509 *peer;
	int seen, revoked;

	if (status == SSL_TICKET_EMPTY || status == SSL_TICKET_NONE)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	if (c)
		c->offered = true;
	if (status != SSL_TICKET_SUCCESS &&
	    status != SSL_TICKET_SUCCESS_RENEW) {
		srdma__ctrl_note(
			c,
			"the client's session ticket is sealed under a key "
			"this server does not hold (rotated out, from another "
			"server, or forged)");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	if ((time_t)(SSL_SESSION_get_time(sess) +
		     SSL_SESSION_get_timeout(sess)) < now) {
		srdma__ctrl_note(c, "the client's session ticket has expired");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	peer = SSL_SESSION_get0_peer(sess);
	if (!peer || X509_cmp_time(X509_get0_notAfter(peer), &now) <= 0) {
		srdma__ctrl_note(
			c, "the client certificate in the session ticket has "
			   "expired since it was issued");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	if (SSL_SESSION_get0_ticket_appdata(sess, (void **)&app, &app_len) !=
		    1 ||
	    app_len != TICKET_APPDATA_LEN) {
		srdma__ctrl_note(
			c, "the client's session ticket carries no ticket id");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	/* Trust the reload removed (a CA) is not kept alive by a ticket. */
	if (CRYPTO_memcmp(app + TICKET_ID_LEN, t->trust, TICKET_TRUST_LEN)) {
		srdma__ctrl_note(c, "the client's session ticket was issued "
				    "under CA certificates this server no "
				    "longer trusts (reloaded)");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	/* A revocation since the ticket was issued: the full handshake that
	 * follows refuses the certificate and says why. */
	revoked = srdma__ctrl_revoked(t, peer, now);
	if (revoked != 0) {
		srdma__ctrl_note(
			c, revoked > 0
				   ? "the client certificate in the session "
				     "ticket has been revoked since it was "
				     "issued"
				   : "the client certificate in the session "
				     "ticket cannot be checked for revocation "
				     "(the CRL is out of date)");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	/* Single use (RFC 8446 §8.1 recommends it; OpenSSL's stateless
	 * tickets alone would accept one ticket any number of times). */
	seen = srdma__replay_check(t->replay, app,
				   now + SSL_SESSION_get_timeout(sess), now);
	if (seen != 0) {
		srdma__ctrl_note(
			c,
			seen > 0
				? "the client's session ticket was already "
				  "used (replayed)"
				: "this server's ticket replay filter is full");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	if (!srdma__ctrl_allowed_by(t, peer))
		SSL_set_num_tickets(ssl, 0); /* refused in handshake_done */
	return SSL_TICKET_RETURN_USE_RENEW;
}

/* Client: a NewSessionTicket arrived (after the handshake, on a read). */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct srdma__ctrl *c = SSL_get_ex_data(ssl, srdma__ctrl_idx);

	SSL_SESSION *copy;

	if (!c || !c->cache_key || !c->done || c->failed || !c->t->cache)
		return 0;
	/*
	 * A copy: sess stays the connection's current session, which libssl
	 * marks not resumable if the connection is freed without a
	 * close_notify (ssl_clear_bad_session, a TLS 1.2-era rule). The
	 * ticket came over the authenticated channel and stays good.
	 */
	copy = SSL_SESSION_dup(sess);
	if (copy && !srdma__sess_cache_put(c->t->cache, c->cache_key, copy))
		SSL_SESSION_free(copy);
	return 0; /* libssl keeps (and drops) its own reference */
}

/*
 * Server: OpenSSL requires a session id context when it verifies clients.
 * A constant: what a ticket is bound to is decided in ticket_dec_cb (the
 * CA digest sealed into it, revocation, expiry) and handshake_done (the
 * allow-list), so that a reload that renews only our own certificate keeps
 * every ticket good.
 */
int srdma__ctrl_set_sid_ctx(SSL_CTX *ctx)
{
	static const unsigned char label[] = "srdma ctrl session v2";

	return SSL_CTX_set_session_id_context(ctx, label, sizeof(label) - 1) ==
			       1
		       ? 0
		       : -1;
}

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/*
 * t->trust: SHA-256 over the sorted SHA-256 digests of the CA
 * certificates in the store (so the order of the CA file does not matter),
 * truncated to TICKET_TRUST_LEN.
 */
int srdma__ctrl_trust_digest(struct srdma__tls_ctx *t)
{
	STACK_OF(X509_OBJECT) *objs =
		X509_STORE_get0_objects(SSL_CTX_get_cert_store(t->ssl_ctx));
	static const char label[] = "srdma trusted CAs v1";
	int n = sk_X509_OBJECT_num(objs), k = 0;
	unsigned char(*d)[32] = calloc((size_t)(n > 0 ? n : 1), 32);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0, d_len;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int ok = d && m;

	for (int i = 0; ok && i < n; i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

		if (x)
			ok = X509_digest(x, EVP_sha256(), d[k++], &d_len) == 1;
	}
	if (ok)
		qsort(d, (size_t)k, 32, cmp_digest);
	ok = ok && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(m, label, sizeof(label)) == 1 &&
	     EVP_DigestUpdate(m, d, (size_t)k * 32) == 1 &&
	     EVP_DigestFinal_ex(m, md, &md_len) == 1 &&
	     md_len >= TICKET_TRUST_LEN;
	if (ok)
		memcpy(t->trust, md, TICKET_TRUST_LEN);
	EVP_MD_CTX_free(m);
	free(d);
	return ok ? 0 : -1;
}

int srdma__ctrl_resumption_setup(struct srdma__tls_ctx *t,
				 const struct srdma__tls_config *cfg,
				 const struct srdma__tls_ctx *old)
{
	SSL_CTX *ctx = t->ssl_ctx;
	unsigned int rotate =
		cfg->ticket_rotate_s ? cfg->ticket_rotate_s : ROTATE_DEFAULT_S;
	char why[256];

	/*
	 * RFC 8446 §4.2.9: psk_ke (no (EC)DHE) would give a resumed session
	 * no forward secrecy; offer and accept psk_dhe_ke only. No 0-RTT
	 * data either (§8: replayable).
	 */
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);
	if (!SSL_CTX_set_max_early_data(ctx, 0) ||
	    !SSL_CTX_set_recv_max_early_data(ctx, 0))
		return srdma__err(SRDMA_ETLS, "cannot turn off early data: %s",
				  srdma__ctrl_ossl_reason(why, sizeof(why)));
	if (cfg->no_resumption) {
		/* Every connection authenticates in full. */
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		return 0;
	}
	/* stateless tickets: SSL_OP_NO_TICKET would make them stateful */
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	if (!cfg->server) {
		GUARD(srdma__sess_cache_create(&t->cache));
		SSL_CTX_set_session_cache_mode(
			ctx, SSL_SESS_CACHE_CLIENT |
				     SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
		return 0;
	}
	ENSURE(rotate <= ROTATE_MAX_S, SRDMA_ECONFIG,
	       "a ticket key rotation period of %u s is too long (at most "
	       "%d s: tickets live two periods, 7 days at most)",
	       rotate, ROTATE_MAX_S);
	if (old && old->keys && old->replay) {
		/* A reload: the same ring and filter (tickets stay single use
		 * and, under unchanged trust, good). */
		t->keys = srdma__ticket_keys_ref(old->keys);
		t->replay = srdma__replay_ref(old->replay);
	} else {
		GUARD(srdma__ticket_keys_create(rotate, &t->keys));
		GUARD(srdma__replay_create(&t->replay));
	}
	SSL_CTX_set_session_cache_mode(
		ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_set_timeout(ctx, 2 * (long)rotate);
	if (!SSL_CTX_set_num_tickets(ctx, cfg->defer_tickets ? 0 : 1) ||
	    !SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) ||
	    !SSL_CTX_set_session_ticket_cb(ctx, ticket_gen_cb, ticket_dec_cb,
					   t))
		return srdma__err(SRDMA_ETLS,
				  "cannot set up session tickets: %s",
				  srdma__ctrl_ossl_reason(why, sizeof(why)));
	return 0;
}

int srdma__tls_ctx_rotate_ticket_keys(struct srdma__tls_ctx *t)
{
	ENSURE(t && t->server, SRDMA_EINVAL,
	       "only a server context has session ticket keys");
	return srdma__ticket_keys_rotate(t->keys);
}

int srdma__tls_ctx_copy_ticket_keys(struct srdma__tls_ctx *dst,
				    const struct srdma__tls_ctx *src)
{
	ENSURE(dst && src && dst->server && src->server, SRDMA_EINVAL,
	       "session ticket keys are copied between server contexts");
	return srdma__ticket_keys_copy(dst->keys, src->keys);
}

size_t srdma__tls_ctx_cached(struct srdma__tls_ctx *t, const char *peer_name,
			     const char *cache_key)
{
	char key[2 * NAME_MAX_LEN + 2];

	if (!t || !peer_name || !cache_key)
		return 0;
	snprintf(key, sizeof(key), "%s\n%s", peer_name, cache_key);
	return srdma__sess_cache_count(t->cache, key);
}

void srdma__tls_ctx_test_clock(struct srdma__tls_ctx *t, long offset_s)
{
	X509_VERIFY_PARAM *p = t ? SSL_CTX_get0_param(t->ssl_ctx) : NULL;

	if (!t)
		return;
	t->clock_offset = offset_s;
	/* Full handshakes from now on verify at the shifted time too (the
	 * resumed-session date check in handshake_done keeps the real one). */
	if (offset_s)
		X509_VERIFY_PARAM_set_time(p, time(NULL) + offset_s);
	else
		X509_VERIFY_PARAM_clear_flags(p, X509_V_FLAG_USE_CHECK_TIME);
}
