/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 control channel (OpenSSL 3.0): mutual X.509 authentication, an
 * allow-list of client identities, and buffered non-blocking I/O.
 *
 * What the files of the control channel share: ctx.c (TLS context:
 * certificate, key, CA, allow-list; certificate paths), verify.c
 * (certificate identities, the verify callback, the failure mapping),
 * tickets.c (the OpenSSL side of session resumption) and ctrl.c (one
 * connection: socket BIO, handshake, send/recv/flush, peer identity).
 * resume.c holds the ticket key ring, replay filter and session cache.
 * Nothing outside src/ctrl/ includes it.
 *
 * Failures are mapped to the most specific SRDMA_E* code, because "the TLS
 * handshake failed" tells a user nothing: the local verification result
 * (SSL_get_verify_result), the alert the peer sent us, and the first bytes
 * the peer sent (is it TLS at all?) each decide a case.
 */
#ifndef SRDMA_CTRL_CTRL_INT_H
#define SRDMA_CTRL_CTRL_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

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
	atomic_int refs; /* the creator and every control connection */
	SSL_CTX *ssl_ctx;
	bool server;
	char **allow; /* NULL-terminated copy, or NULL = any client */
	char *ca_file;
	char *cert_file;
	char *key_file;
	char *crl_file;		   /* NULL: no revocation checking */
	STACK_OF(X509_CRL) * crls; /* as loaded, for resumed sessions */
	STACK_OF(X509) * crl_cas;  /* crls[i] is signed by crl_cas[i] */
	/* Digest of the CA certificates we trust, sealed into every ticket:
	 * a ticket issued under another CA set does not resume (reload). */
	unsigned char trust[TICKET_TRUST_LEN];
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
	bool progressed;	   /* the peer completed a handshake message */
	uint64_t progress_ms;	   /* when it last did (creation before) */
	enum srdma__resume resume; /* set when the handshake is done */
	char resume_note[200];
};

typedef bool (*name_fn)(void *arg, const char *name);

/* ctx.c */
const char *srdma__ctrl_ossl_reason(char *buf, size_t len);
extern int srdma__ctrl_idx;

/* verify.c */
bool srdma__ctrl_for_each_identity(X509 *x, name_fn fn, void *arg);
bool srdma__ctrl_allowed_by(const struct srdma__tls_ctx *t, X509 *peer);
/*
 * Revocation of a certificate held in a session (no chain is verified on
 * resumption): 0 = not revoked, 1 = on the CRL of its issuer, -1 = cannot
 * tell (the issuer's CRL is past its next update, or missing). Always 0
 * without a CRL file.
 */
int srdma__ctrl_revoked(const struct srdma__tls_ctx *t, X509 *cert, time_t now);
int srdma__ctrl_verify_cb(int ok, X509_STORE_CTX *x);
void srdma__ctrl_asn1_time_str(const ASN1_TIME *tm, char *buf, size_t len);
int srdma__ctrl_tls_failure(struct srdma__ctrl *c, int ssl_err, int sys_errno);

/* tickets.c */
void srdma__ctrl_note(struct srdma__ctrl *c, const char *why);
int srdma__ctrl_set_sid_ctx(SSL_CTX *ctx);
int srdma__ctrl_trust_digest(struct srdma__tls_ctx *t);
/* old: a context whose ticket key ring and replay filter to keep, or NULL */
int srdma__ctrl_resumption_setup(struct srdma__tls_ctx *t,
				 const struct srdma__tls_config *cfg,
				 const struct srdma__tls_ctx *old);
/* A control connection takes a reference (ctx.c). */
struct srdma__tls_ctx *srdma__tls_ctx_ref(struct srdma__tls_ctx *t);

#endif
