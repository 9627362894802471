/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 control channel (OpenSSL 3.0): mutual X.509 authentication, an
 * allow-list of client identities, and buffered non-blocking I/O.
 *
 * Failures are mapped to the most specific SRDMA_E* code, because "the TLS
 * handshake failed" tells a user nothing: the local verification result
 * (SSL_get_verify_result), the alert the peer sent us, and the first bytes
 * the peer sent (is it TLS at all?) each decide a case.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ctrl/ctrl.h"
#include "ctrl/resume.h"

enum {
	OUT_CAP = 64 * 1024, /* bound of the send queue (ctrl.h) */
	NAME_MAX_LEN = 256,
	PEEK_LEN = 5, /* one TLS record header */
	ROTATE_DEFAULT_S = 3600,
	/* RFC 8446 §4.6.1: a ticket lives at most 7 days (two periods) */
	ROTATE_MAX_S = 7 * 24 * 3600 / 2,
};

struct srdma__tls_ctx {
	SSL_CTX *ssl_ctx;
	bool server;
	char **allow; /* NULL-terminated copy, or NULL = any client */
	char *ca_file;
	char *cert_file;
	char *key_file;
	/* session resumption (NULL when off, or not this role's part) */
	struct srdma__ticket_keys *keys; /* server */
	struct srdma__replay *replay;	 /* server */
	struct srdma__sess_cache *cache; /* client */
	long clock_offset;		 /* test hook */
};

struct srdma__ctrl {
	struct srdma__tls_ctx *t;
	SSL *ssl;
	int fd;
	bool server;
	bool done;	 /* handshake finished and accepted */
	bool failed;	 /* handshake failed: no more I/O */
	bool want_write; /* last EAGAIN was for writing */
	bool got_data;	 /* the peer sent at least one byte */
	size_t peek_len; /* first bytes the peer sent (record header) */
	unsigned char peek[PEEK_LEN];
	X509 *leaf; /* the peer's leaf certificate, as verified */
	char peer_name[NAME_MAX_LEN]; /* client: expected server name */
	char identity[NAME_MAX_LEN];
	char version[96];
	unsigned char *out; /* send queue: out[out_off..out_len) unsent */
	size_t out_off, out_len;
	char *cache_key;	   /* client: peer name + cache key, or NULL */
	bool started;		   /* the handshake was driven at least once */
	bool offered;		   /* a ticket was offered (client: by us) */
	bool ticket_issued;	   /* server, deferred tickets: sent one */
	enum srdma__resume resume; /* set when the handshake is done */
	char resume_note[200];
};

/* ---------------------------------------------------------------------- */
/* A socket BIO that never raises SIGPIPE (send with MSG_NOSIGNAL): a      */
/* library must not change the process's signal disposition, and a peer    */
/* that closes mid-write must not kill its host.                           */

static BIO_METHOD *sock_method;
static CRYPTO_ONCE sock_once = CRYPTO_ONCE_STATIC_INIT;

static int sock_write(BIO *b, const char *buf, size_t len, size_t *written)
{
	const struct srdma__ctrl *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return 0;
	}
	*written = (size_t)n;
	return 1;
}

static int sock_read(BIO *b, char *buf, size_t len, size_t *got)
{
	struct srdma__ctrl *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		return 0;
	}
	if (n == 0) {
		/* libssl asks BIO_eof() to tell EOF from an error */
		BIO_set_flags(b, BIO_FLAGS_IN_EOF);
		return 0;
	}
	/* Keep the first bytes the peer sent: are they TLS at all? */
	if (c->peek_len < PEEK_LEN) {
		size_t k = PEEK_LEN - c->peek_len;

		k = k < (size_t)n ? k : (size_t)n;
		memcpy(c->peek + c->peek_len, buf, k);
		c->peek_len += k;
		c->got_data = true;
	}
	*got = (size_t)n;
	return 1;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
	default:
		return 0;
	}
}

static int sock_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void sock_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "srdma socket");

	if (!m)
		return;
	if (!BIO_meth_set_write_ex(m, sock_write) ||
	    !BIO_meth_set_read_ex(m, sock_read) ||
	    !BIO_meth_set_ctrl(m, sock_ctrl) ||
	    !BIO_meth_set_create(m, sock_create)) {
		BIO_meth_free(m);
		return;
	}
	sock_method = m;
}

static BIO *sock_bio_new(struct srdma__ctrl *c)
{
	BIO *b;

	if (!CRYPTO_THREAD_run_once(&sock_once, sock_method_init) ||
	    !sock_method)
		return NULL;
	b = BIO_new(sock_method);
	if (b)
		BIO_set_data(b, c);
	return b;
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

static int ctrl_idx = -1;
static CRYPTO_ONCE idx_once = CRYPTO_ONCE_STATIC_INIT;

static void idx_init(void)
{
	ctrl_idx = SSL_get_ex_new_index(0, "srdma ctrl", NULL, NULL, NULL);
}

/* The first error on the OpenSSL queue, as text; clears the queue. */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();

	if (!e) {
		snprintf(buf, len, "no OpenSSL error recorded");
	} else {
		const char *r = ERR_reason_error_string(e);

		if (r)
			snprintf(buf, len, "%s", r);
		else
			snprintf(buf, len, "OpenSSL error 0x%lx", e);
	}
	ERR_clear_error();
	return buf;
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Subject CN of x into buf (may be ""). */
static void cert_cn(X509 *x, char *buf, size_t len)
{
	X509_NAME *n = x ? X509_get_subject_name(x) : NULL;
	int i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
	const ASN1_STRING *s;

	buf[0] = '\0';
	if (i < 0)
		return;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
	if (!s)
		return;
	snprintf(buf, len, "%.*s", ASN1_STRING_length(s),
		 (const char *)ASN1_STRING_get0_data(s));
	/* An embedded NUL would let "alice\0.evil" pass as "alice". */
	if (strlen(buf) != (size_t)ASN1_STRING_length(s))
		buf[0] = '\0';
}

typedef bool (*name_fn)(void *arg, const char *name);

/* Calls fn for the CN and each DNS/email/URI SAN; stops when fn is true. */
static bool for_each_identity(X509 *x, name_fn fn, void *arg)
{
	char cn[NAME_MAX_LEN];
	GENERAL_NAMES *gens;
	bool hit = false;

	cert_cn(x, cn, sizeof(cn));
	if (cn[0] && fn(arg, cn))
		return true;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; !hit && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_IA5STRING *s;
		char name[NAME_MAX_LEN];

		if (g->type == GEN_DNS)
			s = g->d.dNSName;
		else if (g->type == GEN_EMAIL)
			s = g->d.rfc822Name;
		else if (g->type == GEN_URI)
			s = g->d.uniformResourceIdentifier;
		else
			continue;
		if (ASN1_STRING_length(s) <= 0 ||
		    ASN1_STRING_length(s) >= (int)sizeof(name))
			continue;
		memcpy(name, ASN1_STRING_get0_data(s),
		       (size_t)ASN1_STRING_length(s));
		name[ASN1_STRING_length(s)] = '\0';
		if (strlen(name) != (size_t)ASN1_STRING_length(s))
			continue;
		hit = fn(arg, name);
	}
	GENERAL_NAMES_free(gens);
	return hit;
}

static bool take_first(void *arg, const char *name)
{
	snprintf(arg, NAME_MAX_LEN, "%s", name);
	return true;
}

static bool on_allow_list(void *arg, const char *name)
{
	char *const *allow = arg;

	for (size_t i = 0; allow[i]; i++)
		if (!strcmp(allow[i], name))
			return true;
	return false;
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	       inet_pton(AF_INET6, s, buf) == 1;
}

/* ---------------------------------------------------------------------- */
/* Context                                                                 */

static int check_readable(const char *what, const char *path)
{
	struct stat st;

	ENSURE(path && path[0], SRDMA_ECONFIG, "no %s file was given", what);
	if (stat(path, &st) < 0)
		return srdma__err(SRDMA_ECONFIG, "cannot use %s file %s: %s",
				  what, path, strerror(errno));
	ENSURE(S_ISREG(st.st_mode), SRDMA_ECONFIG,
	       "%s file %s is not a regular file", what, path);
	ENSURE(access(path, R_OK) == 0, SRDMA_ECONFIG,
	       "cannot read %s file %s: %s", what, path, strerror(errno));
	return 0;
}

/*
 * Captures the leaf certificate as it is verified: on a verification
 * failure libssl does not keep the peer's certificate, and the detail
 * should still name whom we rejected and, for an expired one, since when.
 */
static bool allowed_by(const struct srdma__tls_ctx *t, X509 *peer)
{
	if (!t->allow)
		return true;
	return for_each_identity(peer, on_allow_list, t->allow);
}

static int verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct srdma__ctrl *c = ssl ? SSL_get_ex_data(ssl, ctrl_idx) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);

	if (c && leaf && !c->leaf && X509_up_ref(leaf))
		c->leaf = leaf;
	/*
	 * A client we are about to refuse gets no ticket (the refusal itself
	 * happens in handshake_done, as for everyone).
	 */
	if (c && c->server && ok && leaf &&
	    X509_STORE_CTX_get_error_depth(x) == 0 && !allowed_by(c->t, leaf))
		SSL_set_num_tickets(ssl, 0);
	return ok;
}

/* ---------------------------------------------------------------------- */
/* Session resumption (RFC 8446 §2.2): the OpenSSL callbacks               */

static time_t now_s(const struct srdma__tls_ctx *t)
{
	return time(NULL) + t->clock_offset;
}

static void note(struct srdma__ctrl *c, const char *why)
{
	if (c && !c->resume_note[0])
		snprintf(c->resume_note, sizeof(c->resume_note), "%s", why);
}

/* Server: seals and opens tickets with the context's key ring. */
static int ticket_key_cb(SSL *ssl, unsigned char key_name[16],
			 unsigned char iv[EVP_MAX_IV_LENGTH],
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct srdma__ctrl *c = SSL_get_ex_data(ssl, ctrl_idx);

	if (!c)
		return enc ? -1 : 0;
	return srdma__ticket_keys_cb(c->t->keys, key_name, iv, cctx, hctx, enc);
}

/* Server: every ticket carries a random id, sealed inside it. */
static int ticket_gen_cb(SSL *ssl, void *arg)
{
	unsigned char id[TICKET_ID_LEN];
	SSL_SESSION *sess = SSL_get0_session(ssl);
	int ok;

	ok = sess && RAND_bytes(id, sizeof(id)) == 1 &&
	     SSL_SESSION_set1_ticket_appdata(sess, id, sizeof(id)) == 1;
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
	struct srdma__ctrl *c = SSL_get_ex_data(ssl, ctrl_idx);
	time_t now = now_s(t);
	const void *id = NULL;
	size_t id_len = 0;
	X509 *peer;
	int seen;

	if (status == SSL_TICKET_EMPTY || status == SSL_TICKET_NONE)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	if (c)
		c->offered = true;
	if (status != SSL_TICKET_SUCCESS &&
	    status != SSL_TICKET_SUCCESS_RENEW) {
		note(c, "the client's session ticket is sealed under a key "
			"this server does not hold (rotated out, from another "
			"server, or forged)");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	if ((time_t)(SSL_SESSION_get_time(sess) +
		     SSL_SESSION_get_timeout(sess)) < now) {
		note(c, "the client's session ticket has expired");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	peer = SSL_SESSION_get0_peer(sess);
	if (!peer || X509_cmp_time(X509_get0_notAfter(peer), &now) <= 0) {
		note(c, "the client certificate in the session ticket has "
			"expired since it was issued");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	if (SSL_SESSION_get0_ticket_appdata(sess, (void **)&id, &id_len) != 1 ||
	    id_len != TICKET_ID_LEN) {
		note(c, "the client's session ticket carries no ticket id");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	/* Single use (RFC 8446 §8.1 recommends it; OpenSSL's stateless
	 * tickets alone would accept one ticket any number of times). */
	seen = srdma__replay_check(t->replay, id,
				   now + SSL_SESSION_get_timeout(sess), now);
	if (seen != 0) {
		note(c, seen > 0
				? "the client's session ticket was already "
				  "used (replayed)"
				: "this server's ticket replay filter is full");
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
	if (!allowed_by(t, peer))
		SSL_set_num_tickets(ssl, 0); /* refused in handshake_done */
	return SSL_TICKET_RETURN_USE_RENEW;
}

/* Client: a NewSessionTicket arrived (after the handshake, on a read). */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct srdma__ctrl *c = SSL_get_ex_data(ssl, ctrl_idx);

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
 * Server: tickets are bound to this trust configuration (our certificate
 * and the CAs we accept): OpenSSL refuses to resume a session whose id
 * context differs, and requires one when it verifies clients.
 */
static int set_sid_ctx(SSL_CTX *ctx)
{
	static const char label[] = "srdma ctrl session v1";
	STACK_OF(X509_OBJECT) *objs =
		X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
	X509 *me = SSL_CTX_get0_certificate(ctx);
	unsigned char md[EVP_MAX_MD_SIZE], d[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0, d_len;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int ok;

	ok = m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(m, label, sizeof(label)) == 1 && me &&
	     X509_digest(me, EVP_sha256(), d, &d_len) == 1 &&
	     EVP_DigestUpdate(m, d, d_len) == 1;
	for (int i = 0; ok && i < sk_X509_OBJECT_num(objs); i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

		if (x)
			ok = X509_digest(x, EVP_sha256(), d, &d_len) == 1 &&
			     EVP_DigestUpdate(m, d, d_len) == 1;
	}
	ok = ok && EVP_DigestFinal_ex(m, md, &md_len) == 1 &&
	     md_len <= SSL_MAX_SID_CTX_LENGTH &&
	     SSL_CTX_set_session_id_context(ctx, md, md_len) == 1;
	EVP_MD_CTX_free(m);
	return ok ? 0 : -1;
}

static int resumption_setup(struct srdma__tls_ctx *t,
			    const struct srdma__tls_config *cfg)
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
				  ossl_reason(why, sizeof(why)));
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
	GUARD(srdma__ticket_keys_create(rotate, &t->keys));
	GUARD(srdma__replay_create(&t->replay));
	SSL_CTX_set_session_cache_mode(
		ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_set_timeout(ctx, 2 * (long)rotate);
	if (!SSL_CTX_set_num_tickets(ctx, cfg->defer_tickets ? 0 : 1) ||
	    !SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) ||
	    !SSL_CTX_set_session_ticket_cb(ctx, ticket_gen_cb, ticket_dec_cb,
					   t))
		return srdma__err(SRDMA_ETLS,
				  "cannot set up session tickets: %s",
				  ossl_reason(why, sizeof(why)));
	return 0;
}

int srdma__tls_ctx_create(const struct srdma__tls_config *cfg,
			  struct srdma__tls_ctx **out)
{
	char why[256];
	struct srdma__tls_ctx *t;
	STACK_OF(X509_NAME) * cas;
	int rc;

	*out = NULL;
	ENSURE(cfg, SRDMA_EINVAL, "no TLS configuration");
	GUARD(check_readable("certificate", cfg->cert_file));
	GUARD(check_readable("private key", cfg->key_file));
	GUARD(check_readable("CA certificate", cfg->ca_file));
	if (!CRYPTO_THREAD_run_once(&idx_once, idx_init) || ctrl_idx < 0)
		return srdma__err(SRDMA_ENOMEM, "cannot set up OpenSSL: %s",
				  ossl_reason(why, sizeof(why)));

	t = calloc(1, sizeof(*t));
	if (!t)
		return srdma__err(SRDMA_ENOMEM,
				  "out of memory for TLS context");
	t->server = cfg->server;
	t->ca_file = dup_str(cfg->ca_file);
	t->cert_file = dup_str(cfg->cert_file);
	t->key_file = dup_str(cfg->key_file);
	if (!t->ca_file || !t->cert_file || !t->key_file) {
		rc = srdma__err(SRDMA_ENOMEM, "out of memory for TLS context");
		goto out_free_t;
	}
	if (cfg->allow) {
		size_t n = 0;

		while (cfg->allow[n])
			n++;
		t->allow = calloc(n + 1, sizeof(*t->allow));
		if (!t->allow) {
			rc = srdma__err(SRDMA_ENOMEM,
					"out of memory for allow-list");
			goto out_free_t;
		}
		for (size_t i = 0; i < n; i++) {
			t->allow[i] = strdup(cfg->allow[i]);
			if (!t->allow[i]) {
				rc = srdma__err(SRDMA_ENOMEM,
						"out of memory for allow-list");
				goto out_free_t;
			}
		}
	}

	ERR_clear_error();
	t->ssl_ctx = SSL_CTX_new(cfg->server ? TLS_server_method()
					     : TLS_client_method());
	if (!t->ssl_ctx) {
		rc = srdma__err(SRDMA_ENOMEM, "cannot create TLS context: %s",
				ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	/* Design brief §3: TLS 1.3, nothing older. */
	if (!SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(t->ssl_ctx, TLS1_3_VERSION)) {
		rc = srdma__err(SRDMA_ETLS, "cannot pin TLS 1.3: %s",
				ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	rc = resumption_setup(t, cfg);
	if (rc < 0)
		goto out_free_t;
	SSL_CTX_set_mode(t->ssl_ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE |
				 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

	if (SSL_CTX_use_certificate_chain_file(t->ssl_ctx, cfg->cert_file) !=
	    1) {
		rc = srdma__err(SRDMA_ECONFIG,
				"cannot load the certificate in %s: %s",
				cfg->cert_file, ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ssl_ctx, cfg->key_file,
					SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			rc = srdma__err(SRDMA_ECONFIG,
					"the private key in %s does not match "
					"the certificate in %s (use the .key "
					"and .crt of the same identity)",
					cfg->key_file, cfg->cert_file);
		} else {
			rc = srdma__err(SRDMA_ECONFIG,
					"cannot load the private key in %s: %s",
					cfg->key_file,
					ossl_reason(why, sizeof(why)));
		}
		goto out_free_t;
	}
	if (SSL_CTX_check_private_key(t->ssl_ctx) != 1) {
		ERR_clear_error();
		rc = srdma__err(SRDMA_ECONFIG,
				"the private key in %s does not match the "
				"certificate in %s (use the .key and .crt of "
				"the same identity)",
				cfg->key_file, cfg->cert_file);
		goto out_free_t;
	}
	if (SSL_CTX_load_verify_locations(t->ssl_ctx, cfg->ca_file, NULL) !=
	    1) {
		rc = srdma__err(SRDMA_ECONFIG,
				"cannot load a CA certificate from %s: %s",
				cfg->ca_file, ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	if (cfg->server) {
		SSL_CTX_set_verify(t->ssl_ctx,
				   SSL_VERIFY_PEER |
					   SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   verify_cb);
		/* Tell clients which CA we accept (CertificateRequest). */
		cas = SSL_load_client_CA_file(cfg->ca_file);
		if (cas)
			SSL_CTX_set_client_CA_list(t->ssl_ctx, cas);
		if (set_sid_ctx(t->ssl_ctx) < 0) {
			rc = srdma__err(SRDMA_ETLS,
					"cannot set the TLS session id "
					"context: %s",
					ossl_reason(why, sizeof(why)));
			goto out_free_t;
		}
	} else {
		SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_PEER, verify_cb);
	}
	ERR_clear_error();
	*out = t;
	return 0;

out_free_t:
	srdma__tls_ctx_destroy(t);
	return rc;
}

void srdma__tls_ctx_destroy(struct srdma__tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ssl_ctx);
	srdma__sess_cache_destroy(t->cache);
	srdma__replay_destroy(t->replay);
	srdma__ticket_keys_destroy(t->keys); /* wipes them */
	if (t->allow) {
		for (size_t i = 0; t->allow[i]; i++)
			free(t->allow[i]);
		free(t->allow);
	}
	free(t->ca_file);
	free(t->cert_file);
	free(t->key_file);
	free(t);
}

int srdma__certs_paths(const char *dir, const char *name, char *cert,
		       size_t cert_len, char *key, size_t key_len, char *ca,
		       size_t ca_len)
{
	struct {
		char *buf;
		size_t len;
		const char *base;
		const char *ext;
	} f[3] = {
		{cert, cert_len, name, ".crt"},
		{key, key_len, name, ".key"},
		{ca, ca_len, "ca", ".crt"},
	};

	ENSURE(dir && dir[0], SRDMA_ECONFIG, "no certificate directory given");
	ENSURE(name && name[0] && !strchr(name, '/'), SRDMA_ECONFIG,
	       "invalid identity name '%s' for %s", name ? name : "", dir);
	for (int i = 0; i < 3; i++) {
		int n = snprintf(f[i].buf, f[i].len, "%s/%s%s", dir, f[i].base,
				 f[i].ext);

		ENSURE(n > 0 && (size_t)n < f[i].len, SRDMA_ECONFIG,
		       "path %s/%s%s is too long", dir, f[i].base, f[i].ext);
		if (access(f[i].buf, R_OK) < 0)
			return srdma__err(SRDMA_ECONFIG,
					  "cannot read %s: %s (create it with "
					  "`srdma certs %s`)",
					  f[i].buf, strerror(errno), dir);
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Connection                                                              */

int srdma__ctrl_create(struct srdma__tls_ctx *t, int fd, const char *peer_name,
		       struct srdma__ctrl **out)
{
	return srdma__ctrl_create_client(t, fd, peer_name, NULL, out);
}

/* Client: offers the newest cached ticket for this server, if any. */
static int offer_session(struct srdma__ctrl *c, const char *cache_key)
{
	SSL_SESSION *sess;
	size_t n;

	if (!cache_key || !c->t->cache)
		return 0;
	/* the name the certificate was checked against is part of the key */
	n = strlen(c->peer_name) + strlen(cache_key) + 2;
	c->cache_key = malloc(n);
	ENSURE(c->cache_key, SRDMA_ENOMEM, "out of memory for a cache key");
	snprintf(c->cache_key, n, "%s\n%s", c->peer_name, cache_key);
	sess = srdma__sess_cache_take(c->t->cache, c->cache_key, time(NULL));
	if (!sess)
		return 0;
	/* the SSL takes its own reference; ours is dropped: single use */
	if (SSL_set_session(c->ssl, sess) != 1)
		ERR_clear_error();
	SSL_SESSION_free(sess);
	return 0;
}

int srdma__ctrl_create_client(struct srdma__tls_ctx *t, int fd,
			      const char *peer_name, const char *cache_key,
			      struct srdma__ctrl **out)
{
	char why[256];
	struct srdma__ctrl *c;
	BIO *bio;
	int flags, rc;

	*out = NULL;
	if (!t || fd < 0) {
		if (fd >= 0)
			close(fd);
		return srdma__err(SRDMA_EINVAL, "no TLS context or socket");
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return srdma__err(SRDMA_ENOMEM, "out of memory for connection");
	}
	c->t = t;
	c->fd = fd;
	c->server = t->server;

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		rc = srdma__err(SRDMA_ESYS,
				"cannot make socket %d non-blocking: %s", fd,
				strerror(errno));
		goto out_destroy;
	}
	c->out = malloc(OUT_CAP);
	if (!c->out) {
		rc = srdma__err(SRDMA_ENOMEM, "out of memory for send queue");
		goto out_destroy;
	}
	ERR_clear_error();
	c->ssl = SSL_new(t->ssl_ctx);
	if (!c->ssl) {
		rc = srdma__err(SRDMA_ENOMEM,
				"cannot create TLS connection: %s",
				ossl_reason(why, sizeof(why)));
		goto out_destroy;
	}
	SSL_set_ex_data(c->ssl, ctrl_idx, c);
	bio = sock_bio_new(c);
	if (!bio) {
		rc = srdma__err(SRDMA_ENOMEM, "cannot create socket BIO: %s",
				ossl_reason(why, sizeof(why)));
		goto out_destroy;
	}
	SSL_set_bio(c->ssl, bio, bio);

	if (t->server) {
		SSL_set_accept_state(c->ssl);
	} else {
		if (!peer_name || !peer_name[0]) {
			rc = srdma__err(SRDMA_EINVAL,
					"the client needs the server's name to "
					"check its certificate");
			goto out_destroy;
		}
		if (strlen(peer_name) >= sizeof(c->peer_name)) {
			rc = srdma__err(SRDMA_EINVAL,
					"server name '%.40s...' is too long",
					peer_name);
			goto out_destroy;
		}
		snprintf(c->peer_name, sizeof(c->peer_name), "%s", peer_name);
		if (is_ip_literal(peer_name)) {
			/* RFC 6066 §3: no SNI for IP literals. */
			if (X509_VERIFY_PARAM_set1_ip_asc(
				    SSL_get0_param(c->ssl), peer_name) != 1) {
				rc = srdma__err(SRDMA_EINVAL,
						"cannot use '%s' as server "
						"address: %s",
						peer_name,
						ossl_reason(why, sizeof(why)));
				goto out_destroy;
			}
		} else {
			SSL_set_hostflags(c->ssl,
					  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(c->ssl, peer_name) != 1 ||
			    SSL_set_tlsext_host_name(c->ssl, peer_name) != 1) {
				rc = srdma__err(SRDMA_EINVAL,
						"cannot use '%s' as server "
						"name: %s",
						peer_name,
						ossl_reason(why, sizeof(why)));
				goto out_destroy;
			}
		}
		SSL_set_connect_state(c->ssl);
		rc = offer_session(c, cache_key);
		if (rc < 0)
			goto out_destroy;
	}
	*out = c;
	return 0;

out_destroy:
	srdma__ctrl_destroy(c);
	return rc;
}

void srdma__ctrl_destroy(struct srdma__ctrl *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	X509_free(c->leaf);
	if (c->fd >= 0)
		close(c->fd);
	if (c->out) {
		/* control messages carry connect tokens */
		OPENSSL_cleanse(c->out, OUT_CAP);
		free(c->out);
	}
	free(c->cache_key);
	free(c);
}

int srdma__ctrl_fd(const struct srdma__ctrl *c)
{
	return c ? c->fd : -1;
}

bool srdma__ctrl_want_write(const struct srdma__ctrl *c)
{
	return c && c->want_write;
}

SSL *srdma__ctrl_ssl(struct srdma__ctrl *c)
{
	return c ? c->ssl : NULL;
}

const char *srdma__ctrl_peer_identity(const struct srdma__ctrl *c)
{
	return c ? c->identity : "";
}

const char *srdma__ctrl_tls_version(const struct srdma__ctrl *c)
{
	return c ? c->version : "";
}

enum srdma__resume srdma__ctrl_resumption(const struct srdma__ctrl *c)
{
	return c ? c->resume : SRDMA__RESUME_NONE;
}

bool srdma__ctrl_resumed(const struct srdma__ctrl *c)
{
	return c && c->ssl && SSL_session_reused(c->ssl) == 1;
}

const char *srdma__ctrl_resume_note(const struct srdma__ctrl *c)
{
	return c && c->resume == SRDMA__RESUME_REFUSED ? c->resume_note : "";
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
	if (t)
		t->clock_offset = offset_s;
}

/* ---------------------------------------------------------------------- */
/* Failure mapping                                                         */

static const char *own_cn(struct srdma__ctrl *c, char *buf, size_t len)
{
	cert_cn(SSL_get_certificate(c->ssl), buf, len);
	return buf;
}

/* "client certificate 'bob'" / "server certificate for 'localhost'" */
static void peer_desc(const struct srdma__ctrl *c, char *buf, size_t len)
{
	char cn[NAME_MAX_LEN];

	cert_cn(c->leaf, cn, sizeof(cn));
	if (c->server)
		snprintf(buf, len, "client certificate '%s'",
			 cn[0] ? cn : "(no CN)");
	else if (cn[0])
		snprintf(buf, len, "server certificate for '%s' (CN '%s')",
			 c->peer_name, cn);
	else
		snprintf(buf, len, "server certificate for '%s'", c->peer_name);
}

static void asn1_time_str(const ASN1_TIME *tm, char *buf, size_t len)
{
	struct tm t;

	if (tm && ASN1_TIME_to_tm(tm, &t))
		strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &t);
	else
		snprintf(buf, len, "(unknown time)");
}

static int verify_failure(struct srdma__ctrl *c, long v)
{
	const char *fix = c->server ? "reissue it with `srdma certs` from "
				      "the server's CA, or check the "
				      "client's --certs"
				    : "check --ca/--certs";
	char who[2 * NAME_MAX_LEN + 64], when[64];

	peer_desc(c, who, sizeof(who));
	switch (v) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return srdma__err(SRDMA_ECERT_UNKNOWN_CA,
				  "%s is not signed by the CA in %s (%s)", who,
				  c->t->ca_file, fix);
	case X509_V_ERR_CERT_HAS_EXPIRED:
		asn1_time_str(c->leaf ? X509_get0_notAfter(c->leaf) : NULL,
			      when, sizeof(when));
		return srdma__err(SRDMA_ECERT_EXPIRED,
				  "%s expired on %s (issue a new one with "
				  "`srdma certs`, or check the clock)",
				  who, when);
	case X509_V_ERR_CERT_NOT_YET_VALID:
		asn1_time_str(c->leaf ? X509_get0_notBefore(c->leaf) : NULL,
			      when, sizeof(when));
		return srdma__err(SRDMA_ECERT_NOT_YET_VALID,
				  "%s is not valid until %s (check the clock "
				  "on both hosts)",
				  who, when);
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return srdma__err(SRDMA_ECERT_NAME,
				  "%s does not carry the name '%s' (connect "
				  "with a name it has, or reissue it with "
				  "`srdma certs --name %s`)",
				  who, c->peer_name, c->peer_name);
	default:
		return srdma__err(SRDMA_ETLS, "%s failed verification: %s (%s)",
				  who, X509_verify_cert_error_string(v), fix);
	}
}

/* The alert the peer sent us, from its ERR reason (SSL_AD_REASON_OFFSET). */
static int alert_failure(struct srdma__ctrl *c, int reason)
{
	const char *rej = c->server ? "the client rejected our certificate"
				    : "the server rejected our certificate";
	char cn[NAME_MAX_LEN];
	X509 *mine = SSL_get_certificate(c->ssl);

	cert_cn(mine, cn, sizeof(cn));
	switch (reason) {
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return srdma__err(SRDMA_ECERT_UNKNOWN_CA,
				  "%s: unknown ca (our certificate '%s' is not "
				  "signed by the CA the peer trusts; check "
				  "--certs on both sides)",
				  rej, cn);
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		return srdma__err(SRDMA_ECERT_EXPIRED,
				  "%s: certificate expired (issue a new one "
				  "for '%s' with `srdma certs`)",
				  rej, cn);
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
		/* OpenSSL sends bad_certificate for a not-yet-valid one. */
		if (mine &&
		    X509_cmp_current_time(X509_get0_notBefore(mine)) > 0)
			return srdma__err(SRDMA_ECERT_NOT_YET_VALID,
					  "%s: bad certificate (ours, '%s', is "
					  "not valid yet; check the clock)",
					  rej, cn);
		if (c->server)
			return srdma__err(SRDMA_ETLS,
					  "%s: bad certificate (does '%s' "
					  "carry the name or address the "
					  "client connects to? see `srdma "
					  "certs --name`)",
					  rej, cn);
		return srdma__err(SRDMA_ETLS, "%s: bad certificate ('%s')", rej,
				  cn);
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_SSLV3_ALERT_NO_CERTIFICATE:
		return srdma__err(SRDMA_ECERT_MISSING,
				  "%s: certificate required (give a client "
				  "certificate with --certs)",
				  rej);
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
		return srdma__err(SRDMA_ENOT_ALLOWED,
				  "%s: access denied ('%s' is not on the "
				  "peer's allow-list)",
				  rej, cn);
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return srdma__err(SRDMA_ETLS_VERSION,
				  "the peer refused TLS 1.3 (protocol version "
				  "alert); it must support TLS 1.3");
	default:
		return srdma__err(SRDMA_ETLS,
				  "the peer aborted the TLS "
				  "handshake: %s",
				  ERR_reason_error_string(
					  ERR_PACK(ERR_LIB_SSL, 0, reason)));
	}
}

static bool peek_is_tls(const struct srdma__ctrl *c)
{
	/* record type change_cipher_spec..heartbeat, version major 3 */
	if (c->peek_len >= 1 && (c->peek[0] < 20 || c->peek[0] > 24))
		return false;
	if (c->peek_len >= 2 && c->peek[1] != 3)
		return false;
	return true;
}

static int not_tls(struct srdma__ctrl *c)
{
	char shown[PEEK_LEN * 4 + 1];
	size_t n = 0;

	for (size_t i = 0; i < c->peek_len; i++) {
		unsigned char b = c->peek[i];

		if (b >= 0x20 && b < 0x7f && b != '\\')
			shown[n++] = (char)b;
		else
			n += (size_t)snprintf(shown + n, sizeof(shown) - n,
					      "\\x%02x", b);
	}
	shown[n] = '\0';
	if (c->peek_len >= 4 && !memcmp(c->peek, "HTTP", 4))
		return srdma__err(SRDMA_ENOT_TLS,
				  "the server at '%s' answered in plain HTTP, "
				  "not TLS (wrong port?)",
				  c->peer_name);
	if (c->peek_len >= 4 &&
	    (!memcmp(c->peek, "GET ", 4) || !memcmp(c->peek, "POST", 4) ||
	     !memcmp(c->peek, "HEAD", 4) || !memcmp(c->peek, "PUT ", 4)))
		return srdma__err(SRDMA_ENOT_TLS,
				  "the peer sent a plain HTTP request, not TLS "
				  "(point it at the right port, using srdma)");
	return srdma__err(SRDMA_ENOT_TLS,
			  "the peer does not speak TLS (its first bytes were "
			  "\"%s\"; is it an srdma %s?)",
			  shown, c->server ? "client" : "server");
}

static bool is_eof_reason(int lib, int reason)
{
	return lib == ERR_LIB_SSL &&
	       reason == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/*
 * Maps a failed SSL call to an SRDMA code with a detail; clears the error
 * queue. ssl_err is SSL_get_error()'s verdict, sys_errno the errno after the
 * call.
 */
static int tls_failure(struct srdma__ctrl *c, int ssl_err, int sys_errno)
{
	unsigned long e, first = 0;
	int alert = 0, eof = 0, r = 0;
	int ver = 0, missing = 0, http = 0, wrongver = 0, not_record = 0;
	long v = SSL_get_verify_result(c->ssl);
	char why[256], cn[NAME_MAX_LEN];
	const char *file, *func, *data;
	int line, flags;

	while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags))) {
		int lib = ERR_GET_LIB(e);

		r = ERR_GET_REASON(e);
		if (!first)
			first = e;
		if (lib != ERR_LIB_SSL)
			continue;
		if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
			alert = alert ? alert : r;
		else if (r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
			missing = 1;
		else if (r == SSL_R_UNSUPPORTED_PROTOCOL ||
			 r == SSL_R_VERSION_TOO_LOW ||
			 r == SSL_R_NO_PROTOCOLS_AVAILABLE)
			ver = 1;
		else if (r == SSL_R_HTTP_REQUEST ||
			 r == SSL_R_HTTPS_PROXY_REQUEST)
			http = 1;
		else if (r == SSL_R_WRONG_VERSION_NUMBER)
			wrongver = 1;
		else if (r == SSL_R_PACKET_LENGTH_TOO_LONG ||
			 r == SSL_R_LENGTH_TOO_SHORT ||
			 r == SSL_R_BAD_PACKET_LENGTH ||
			 r == SSL_R_UNEXPECTED_RECORD ||
			 r == SSL_R_RECORD_LENGTH_MISMATCH ||
			 r == SSL_R_ENCRYPTED_LENGTH_TOO_LONG)
			not_record = 1;
		if (is_eof_reason(lib, r))
			eof = 1;
	}
	if (first)
		snprintf(why, sizeof(why), "%s",
			 ERR_reason_error_string(first)
				 ? ERR_reason_error_string(first)
				 : "unknown OpenSSL error");
	else
		snprintf(why, sizeof(why), "%s",
			 sys_errno ? strerror(sys_errno) : "end of stream");
	ERR_clear_error();

	/* Our own verification of the peer's chain and name. */
	if (v != X509_V_OK)
		return verify_failure(c, v);
	if (c->server && missing)
		return srdma__err(SRDMA_ECERT_MISSING,
				  "the client sent no certificate (it must "
				  "present one signed by the CA in %s)",
				  c->t->ca_file);
	/* What the peer sent first tells TLS from something else. */
	if (c->got_data && !peek_is_tls(c)) {
		/* an SSLv2-format ClientHello: an ancient TLS client */
		if (c->server && c->peek_len >= 3 && (c->peek[0] & 0x80) &&
		    c->peek[2] == 1)
			return srdma__err(SRDMA_ETLS_VERSION,
					  "the client offered only SSLv2-era "
					  "TLS; it must support TLS 1.3");
		return not_tls(c);
	}
	if (http)
		return not_tls(c);
	if (alert)
		return alert_failure(c, alert);
	if (ver || (wrongver && c->got_data))
		return srdma__err(SRDMA_ETLS_VERSION,
				  "the %s offered only TLS older than 1.3 "
				  "(%s); upgrade it to TLS 1.3",
				  c->server ? "client" : "server", why);
	if (wrongver || not_record)
		return not_tls(c);
	if (eof || (ssl_err == SSL_ERROR_SYSCALL && !first)) {
		if (sys_errno && sys_errno != ECONNRESET && sys_errno != EPIPE)
			return srdma__err(SRDMA_ESYS,
					  "TLS connection failed: %s",
					  strerror(sys_errno));
		if (c->done && !c->server)
			return srdma__err(SRDMA_ECLOSED,
					  "the server closed the connection "
					  "without a word (if this follows "
					  "the handshake, it refused us: is "
					  "'%s' on its allow-list?)",
					  own_cn(c, cn, sizeof(cn)));
		if (c->done)
			return srdma__err(SRDMA_ECLOSED,
					  "the client closed the connection "
					  "without a TLS close");
		return srdma__err(SRDMA_ECLOSED,
				  "the %s closed the connection during the "
				  "TLS handshake (%s)",
				  c->server ? "client" : "server",
				  c->got_data ? "after a partial TLS record"
				  : c->server
					  ? "before sending anything"
					  : "before sending anything: it may "
					    "be at its handshake limit "
					    "(--max-handshakes) or "
					    "overloaded; try again later");
	}
	if (ssl_err == SSL_ERROR_ZERO_RETURN)
		return srdma__err(SRDMA_ECLOSED, "the %s closed the connection",
				  c->server ? "client" : "server");
	return srdma__err(SRDMA_ETLS, "TLS %s failed: %s",
			  c->done ? "connection" : "handshake", why);
}

/* Error blinding: no alert, no close_notify; the socket just closes. */
static void blind_close(struct srdma__ctrl *c)
{
	c->failed = true;
	shutdown(c->fd, SHUT_RDWR);
}

/*
 * Runs after every successful handshake, full or resumed: on a resumed one
 * the peer certificate comes from the session (the ticket, on a server),
 * and is held to the same allow-list.
 */
static int handshake_done(struct srdma__ctrl *c)
{
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	bool resumed = SSL_session_reused(c->ssl) == 1;
	char when[64];

	c->resume = resumed	 ? SRDMA__RESUME_OK
		    : c->offered ? SRDMA__RESUME_REFUSED
				 : SRDMA__RESUME_NONE;
	if (c->resume == SRDMA__RESUME_REFUSED)
		note(c, c->server ? "the client's session ticket was not "
				    "accepted (issued under another "
				    "certificate or CA)"
				  : "the server did not accept our session "
				    "ticket (rotated key, expired, already "
				    "used, or resumption off there)");
	if (!peer) {
		c->failed = true;
		return srdma__err(SRDMA_ECERT_MISSING,
				  "the %s sent no certificate",
				  c->server ? "client" : "server");
	}
	c->identity[0] = '\0';
	for_each_identity(peer, take_first, c->identity);
	/* A resumed session skipped chain verification: recheck the date. */
	if (resumed && X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0) {
		asn1_time_str(X509_get0_notAfter(peer), when, sizeof(when));
		if (c->server)
			blind_close(c);
		c->failed = true;
		return srdma__err(SRDMA_ECERT_EXPIRED,
				  "the resumed session's %s certificate '%s' "
				  "expired on %s",
				  c->server ? "client" : "server", c->identity,
				  when);
	}
	if (c->server && !allowed_by(c->t, peer)) {
		blind_close(c);
		return srdma__err(SRDMA_ENOT_ALLOWED,
				  "client '%s' is not on the allow-list%s",
				  c->identity[0] ? c->identity : "(no name)",
				  resumed ? " (resumed session)" : "");
	}
	snprintf(c->version, sizeof(c->version), "%s %s",
		 SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
	c->done = true;
	return 0;
}

int srdma__ctrl_handshake(struct srdma__ctrl *c)
{
	int rc, err, sys;

	ENSURE(c, SRDMA_EINVAL, "no control connection");
	if (c->done)
		return 0;
	ENSURE(!c->failed, SRDMA_ESTATE,
	       "the TLS handshake already failed on this connection");
	if (!c->started && !c->server) {
		SSL_SESSION *sess = SSL_get0_session(c->ssl);

		c->offered = sess && SSL_SESSION_is_resumable(sess);
	}
	c->started = true;
	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(c->ssl);
	sys = errno;
	if (rc == 1)
		return handshake_done(c);
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		c->want_write = err == SSL_ERROR_WANT_WRITE;
		return SRDMA_EAGAIN;
	}
	c->failed = true;
	return tls_failure(c, err, sys);
}

/* ---------------------------------------------------------------------- */
/* Data                                                                    */

static int io_failure(struct srdma__ctrl *c, int rc, int sys)
{
	int err = SSL_get_error(c->ssl, rc);

	switch (err) {
	case SSL_ERROR_WANT_READ:
		c->want_write = false;
		ERR_clear_error();
		return SRDMA_EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->want_write = true;
		ERR_clear_error();
		return SRDMA_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		return srdma__err(SRDMA_ECLOSED,
				  "the %s closed the control connection",
				  c->server ? "client" : "server");
	default:
		c->failed = true;
		return tls_failure(c, err, sys);
	}
}

int srdma__ctrl_flush(struct srdma__ctrl *c)
{
	ENSURE(c, SRDMA_EINVAL, "no control connection");
	ENSURE(c->done && !c->failed, SRDMA_ESTATE,
	       "the control connection is not established");
	/* A session ticket the socket had no room for (issue_ticket). */
	if (c->out_off >= c->out_len && SSL_in_init(c->ssl)) {
		int rc;
		ERR_clear_error();
		errno = 0;
		rc = SSL_do_handshake(c->ssl);
		if (rc != 1)
			return io_failure(c, rc, errno);
	}
	while (c->out_off < c->out_len) {
		size_t n = 0;
		int rc, sys;

		ERR_clear_error();
		errno = 0;
		rc = SSL_write_ex(c->ssl, c->out + c->out_off,
				  c->out_len - c->out_off, &n);
		sys = errno;
		if (rc != 1)
			return io_failure(c, rc, sys);
		c->out_off += n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

int srdma__ctrl_issue_ticket(struct srdma__ctrl *c)
{
	int rc;

	ENSURE(c, SRDMA_EINVAL, "no control connection");
	if (!c->server || !c->t->keys || c->failed || !c->done ||
	    c->ticket_issued)
		return 0;
	c->ticket_issued = true;
	ERR_clear_error();
	if (SSL_new_session_ticket(c->ssl) != 1) {
		char why[256];
		return srdma__err(SRDMA_ETLS,
				  "cannot issue a session ticket: %s",
				  ossl_reason(why, sizeof(why)));
	}
	/* Writes it now, or on a later flush if the socket is full. */
	rc = srdma__ctrl_flush(c);
	return rc == SRDMA_EAGAIN ? 0 : rc;
}

int srdma__ctrl_send(struct srdma__ctrl *c, const void *buf, size_t len)
{
	int rc;

	ENSURE(c, SRDMA_EINVAL, "no control connection");
	ENSURE(len <= OUT_CAP, SRDMA_EMSGSIZE,
	       "control message of %zu bytes exceeds the %d-byte send queue",
	       len, OUT_CAP);
	ENSURE(c->done && !c->failed, SRDMA_ESTATE,
	       "the control connection is not established");
	if (c->out_len + len > OUT_CAP) {
		rc = srdma__ctrl_flush(c);
		if (rc < 0 && rc != SRDMA_EAGAIN)
			return rc;
		if (c->out_len - c->out_off + len > OUT_CAP)
			return SRDMA_EAGAIN;
		/*
		 * Compacting moves the unsent tail: fine with
		 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER.
		 */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	rc = srdma__ctrl_flush(c);
	return rc == SRDMA_EAGAIN ? 0 : rc;
}

bool srdma__ctrl_pending_out(const struct srdma__ctrl *c)
{
	return c && (c->out_off < c->out_len ||
		     (c->done && !c->failed && c->want_write &&
		      SSL_in_init(c->ssl)));
}

int srdma__ctrl_recv(struct srdma__ctrl *c, void *buf, size_t cap)
{
	size_t n = 0;
	int rc, sys;

	ENSURE(c, SRDMA_EINVAL, "no control connection");
	ENSURE(c->done && !c->failed, SRDMA_ESTATE,
	       "the control connection is not established");
	if (cap > INT_MAX)
		cap = INT_MAX;
	ERR_clear_error();
	errno = 0;
	rc = SSL_read_ex(c->ssl, buf, cap, &n);
	sys = errno;
	if (rc == 1)
		return (int)n;
	return io_failure(c, rc, sys);
}

void srdma__ctrl_shutdown(struct srdma__ctrl *c)
{
	if (!c || !c->ssl || !c->done || c->failed)
		return;
	/* best effort: one try, never block */
	if (SSL_shutdown(c->ssl) < 0)
		ERR_clear_error();
}
