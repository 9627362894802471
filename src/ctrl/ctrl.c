/* SPDX-License-Identifier: MIT */
/*
 * Control channel: one TLS connection. The socket BIO, creation (server
 * name, offered ticket), the handshake and its end (peer identity,
 * allow-list), and buffered non-blocking send, recv and flush.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "base/loop.h"
#include "ctrl/ctrl_int.h"

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

static bool take_first(void *arg, const char *name)
{
	snprintf(arg, NAME_MAX_LEN, "%s", name);
	return true;
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	       inet_pton(AF_INET6, s, buf) == 1;
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
	c->t = srdma__tls_ctx_ref(t);
	c->fd = fd;
	c->server = t->server;
	c->progress_ms = srdma__now_ms();

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
				srdma__ctrl_ossl_reason(why, sizeof(why)));
		goto out_destroy;
	}
	SSL_set_ex_data(c->ssl, srdma__ctrl_idx, c);
	bio = sock_bio_new(c);
	if (!bio) {
		rc = srdma__err(SRDMA_ENOMEM, "cannot create socket BIO: %s",
				srdma__ctrl_ossl_reason(why, sizeof(why)));
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
						srdma__ctrl_ossl_reason(
							why, sizeof(why)));
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
						srdma__ctrl_ossl_reason(
							why, sizeof(why)));
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
	srdma__tls_ctx_destroy(c->t); /* our reference */
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

uint64_t srdma__ctrl_progress_ms(const struct srdma__ctrl *c)
{
	return c ? c->progress_ms : 0;
}

bool srdma__ctrl_progressed(const struct srdma__ctrl *c)
{
	return c && c->progressed;
}

bool srdma__ctrl_got_data(const struct srdma__ctrl *c)
{
	return c && c->got_data;
}

void srdma__ctrl_keep_ticket(struct srdma__ctrl *c)
{
	SSL_SESSION *s;

	if (!c || c->server || !c->offered || !c->cache_key || !c->t->cache)
		return;
	s = SSL_get1_session(c->ssl);
	if (s && (!SSL_SESSION_is_resumable(s) ||
		  !srdma__sess_cache_put(c->t->cache, c->cache_key, s)))
		SSL_SESSION_free(s);
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
	/* also after a failed handshake: the full one that followed a
	 * refused ticket may itself have failed (a revoked certificate) */
	if (!c || c->resume == SRDMA__RESUME_OK ||
	    (c->resume == SRDMA__RESUME_NONE && c->done))
		return "";
	return c->resume_note;
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
		srdma__ctrl_note(
			c, c->server ? "the client's session ticket was not "
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
	srdma__ctrl_for_each_identity(peer, take_first, c->identity);
	/* A resumed session skipped chain verification: recheck the date. */
	if (resumed && X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0) {
		srdma__ctrl_asn1_time_str(X509_get0_notAfter(peer), when,
					  sizeof(when));
		if (c->server)
			blind_close(c);
		c->failed = true;
		return srdma__err(SRDMA_ECERT_EXPIRED,
				  "the resumed session's %s certificate '%s' "
				  "expired on %s",
				  c->server ? "client" : "server", c->identity,
				  when);
	}
	if (c->server && !srdma__ctrl_allowed_by(c->t, peer)) {
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
	OSSL_HANDSHAKE_STATE before;
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
	before = SSL_get_state(c->ssl);
	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(c->ssl);
	sys = errno;
	/* A whole message arrived (or ours went out in answer): the state
	 * moved. An idle peer, or one with a partial record, leaves it. */
	if (SSL_get_state(c->ssl) != before) {
		c->progressed = true;
		c->progress_ms = srdma__now_ms();
	}
	if (rc == 1)
		return handshake_done(c);
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		c->want_write = err == SSL_ERROR_WANT_WRITE;
		return SRDMA_EAGAIN;
	}
	c->failed = true;
	rc = srdma__ctrl_tls_failure(c, err, sys);
	/* A refused ticket is half the story of a failed full handshake
	 * (revoked since it was issued, say): tell both. */
	if (c->server && c->offered && c->resume_note[0]) {
		char d[512];

		srdma__err_copy(d, sizeof(d));
		rc = srdma__err(rc, "%s; its session ticket was not used: %s",
				d, c->resume_note);
	}
	return rc;
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
		return srdma__ctrl_tls_failure(c, err, sys);
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
				  srdma__ctrl_ossl_reason(why, sizeof(why)));
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
