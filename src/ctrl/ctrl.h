/* SPDX-License-Identifier: MIT */
/*
 * Control channel: TLS 1.3 only, mutual X.509, over a non-blocking TCP
 * socket, driven from the event loop. Framing of control messages is the
 * session's job (wire.h); this module moves bytes and reports identities.
 */
#ifndef SRDMA_CTRL_CTRL_H
#define SRDMA_CTRL_CTRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "base/err.h"

struct srdma__tls_config {
	bool server;
	const char *cert_file; /* PEM: our certificate (chain) */
	const char *key_file;  /* PEM: our private key */
	const char *ca_file;   /* PEM: the CA that signs peers */
	const char *const
		*allow; /* server: NULL-terminated identities or NULL */
	/*
	 * PEM file with one CRL per CA in ca_file, or NULL: the peer's leaf
	 * certificate is checked against it on every full handshake, and a
	 * server checks the client certificate in a session ticket against it
	 * before resuming. A CRL that is missing for a CA, unparsable, not
	 * signed by its CA or past its next update is SRDMA_ECONFIG.
	 */
	const char *crl_file;
	/*
	 * TLS 1.3 session resumption (RFC 8446 §2.2, §4.6.1) is on unless
	 * this is set. Server: issues stateless tickets sealed under a
	 * rotating key ring. Client: keeps the tickets it gets in a cache
	 * per context (see srdma__ctrl_create_client).
	 */
	bool no_resumption;
	/*
	 * Server: seconds between ticket key rotations (0 = 3600). A ticket
	 * is accepted under the current and the previous key, so it lives
	 * at most two periods; its advertised lifetime is two periods.
	 */
	unsigned int ticket_rotate_s;
	/*
	 * Server: issue no ticket with the handshake; the application calls
	 * srdma__ctrl_issue_ticket once the connection is set up, so ticket
	 * sealing is off the set-up path (RFC 8446 §4.6.1: any time after
	 * the client's Finished).
	 */
	bool defer_tickets;
};

struct srdma__tls_ctx; /* SSL_CTX plus policy (allow-list) */

/*
 * Loads certificate, key and CA, checks the key matches the certificate,
 * and pins TLS 1.3 as both minimum and maximum. Errors are SRDMA_ECONFIG
 * with a detail naming the file and what is wrong with it.
 */
int srdma__tls_ctx_create(const struct srdma__tls_config *cfg,
			  struct srdma__tls_ctx **out) SRDMA__WUR;
/*
 * Reload: a new context from cfg (files read again) that, on a server with
 * resumption, keeps old's ticket key ring and replay filter, so tickets
 * stay single use across the reload and those issued under unchanged trust
 * still resume. A ticket carries a digest of the CA certificates trusted
 * when it was issued: one issued under a CA set the new context does not
 * have falls back to a full handshake (and the allow-list and CRL of the new
 * context apply to every resumed session). old is untouched; connections
 * made from it keep it until they are destroyed.
 */
int srdma__tls_ctx_reload(struct srdma__tls_ctx *old,
			  const struct srdma__tls_config *cfg,
			  struct srdma__tls_ctx **out) SRDMA__WUR;
/*
 * Drops the creator's reference. Every control connection holds one too, so
 * the context outlives a reload for as long as connections made from it do.
 */
void srdma__tls_ctx_destroy(struct srdma__tls_ctx *t);

/*
 * Resolves the files for identity `name` in a directory written by
 * `srdma certs`: DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key. Writes paths into
 * the given buffers; SRDMA_ECONFIG if any is missing.
 */
int srdma__certs_paths(const char *dir, const char *name, char *cert,
		       size_t cert_len, char *key, size_t key_len, char *ca,
		       size_t ca_len) SRDMA__WUR;

struct srdma__ctrl; /* one TLS connection */

/*
 * Takes ownership of fd (connected or accepted TCP socket; made
 * non-blocking here). peer_name: client side, the name the server
 * certificate must carry (DNS name or IP address); NULL on the server.
 */
int srdma__ctrl_create(struct srdma__tls_ctx *t, int fd, const char *peer_name,
		       struct srdma__ctrl **out) SRDMA__WUR;
/*
 * Client with session resumption: as srdma__ctrl_create, and cache_key (for
 * example "host:port"; NULL = no resumption for this connection) names,
 * together with peer_name, the server whose tickets are kept and offered.
 * A cached ticket is offered once and then dropped (RFC 8446 §C.4: tickets
 * are single use); a fresh one arrives with the first srdma__ctrl_recv
 * after the handshake. srdma__ctrl_create on a client is this with a NULL
 * cache_key.
 */
int srdma__ctrl_create_client(struct srdma__tls_ctx *t, int fd,
			      const char *peer_name, const char *cache_key,
			      struct srdma__ctrl **out) SRDMA__WUR;
/* Frees SSL and closes fd. NULL ok. */
void srdma__ctrl_destroy(struct srdma__ctrl *c);
int srdma__ctrl_fd(const struct srdma__ctrl *c);

/*
 * Drives the handshake. 0 = done (and, on the server, the client identity
 * passed the allow-list); SRDMA_EAGAIN = call again when the fd is ready
 * (srdma__ctrl_want_write tells which way); anything else is the failure,
 * mapped to the most specific code: SRDMA_ECERT_UNKNOWN_CA,
 * SRDMA_ECERT_EXPIRED, SRDMA_ECERT_NOT_YET_VALID, SRDMA_ECERT_NAME,
 * SRDMA_ECERT_MISSING, SRDMA_ECERT_REVOKED, SRDMA_ENOT_ALLOWED,
 * SRDMA_ETLS_VERSION, SRDMA_ENOT_TLS, SRDMA_ECLOSED, SRDMA_ETLS; a client
 * whose server closed the connection before the handshake finished and
 * without an alert gets SRDMA_ELIMIT (the server was busy: retry later).
 * The detail is one sentence a
 * user can act on ("the server's certificate is not signed by the CA in
 * ca.crt: wrong --ca or --certs?").
 */
int srdma__ctrl_handshake(struct srdma__ctrl *c) SRDMA__WUR;
/* True when the last EAGAIN was for writing. */
bool srdma__ctrl_want_write(const struct srdma__ctrl *c);
/*
 * Handshake progress, for shedding idle handshakes: the monotonic time
 * (srdma__now_ms) of the last handshake message the peer completed (the
 * creation time before the first), and whether there was one at all (a
 * server: the whole ClientHello arrived). Bytes that complete nothing do not
 * count: a peer trickling a record keeps no slot alive by it.
 */
uint64_t srdma__ctrl_progress_ms(const struct srdma__ctrl *c);
bool srdma__ctrl_progressed(const struct srdma__ctrl *c);
/* Whether the peer sent any byte at all (a whole message or not). */
bool srdma__ctrl_got_data(const struct srdma__ctrl *c);
/*
 * Client, before retrying a handshake the server dropped (SRDMA_ELIMIT from
 * srdma__ctrl_handshake: it closed before finishing the handshake and
 * without an alert, i.e. it was busy): puts the ticket this connection
 * offered back in the cache, since the server never used it.
 */
void srdma__ctrl_keep_ticket(struct srdma__ctrl *c);

/*
 * Queues len bytes and tries to flush. Never blocks: unsent bytes stay in an
 * internal buffer (bounded: SRDMA_EAGAIN if it would exceed 64 KiB).
 */
int srdma__ctrl_send(struct srdma__ctrl *c, const void *buf,
		     size_t len) SRDMA__WUR;
/* Flushes queued bytes: 0 all sent, SRDMA_EAGAIN some left, <0 error. */
/* Server with defer_tickets: sends one session ticket now (no-op without
 * resumption, on a client, or with a ticket already issued). */
int srdma__ctrl_issue_ticket(struct srdma__ctrl *c) SRDMA__WUR;
int srdma__ctrl_flush(struct srdma__ctrl *c) SRDMA__WUR;
bool srdma__ctrl_pending_out(const struct srdma__ctrl *c);
/*
 * Reads available bytes (up to cap). Returns the count (>0), SRDMA_EAGAIN,
 * SRDMA_ECLOSED on an orderly TLS close or EOF, or another error.
 */
int srdma__ctrl_recv(struct srdma__ctrl *c, void *buf, size_t cap) SRDMA__WUR;
/* Sends close_notify (best effort, non-blocking). */
void srdma__ctrl_shutdown(struct srdma__ctrl *c);

SSL *srdma__ctrl_ssl(struct srdma__ctrl *c);
/* The verified peer's identity (certificate CN, else first SAN). */
const char *srdma__ctrl_peer_identity(const struct srdma__ctrl *c);
/* "TLSv1.3" and the TLS cipher suite, for info. */
const char *srdma__ctrl_tls_version(const struct srdma__ctrl *c);

/* ---- session resumption ---- */
enum srdma__resume {
	SRDMA__RESUME_NONE = 0, /* no ticket was offered: full handshake */
	SRDMA__RESUME_OK,      /* resumed from a ticket (identity re-checked) */
	SRDMA__RESUME_REFUSED, /* a ticket was offered and not used: full */
};

/* After the handshake: how it went. */
enum srdma__resume srdma__ctrl_resumption(const struct srdma__ctrl *c);
/* True when the handshake resumed a session (SSL_session_reused). */
bool srdma__ctrl_resumed(const struct srdma__ctrl *c);
/*
 * For SRDMA__RESUME_REFUSED, and after a failed handshake whose client
 * offered a ticket: one sentence saying why the ticket was not used
 * (unknown or rotated-out key, forged, expired, revoked, issued under
 * other CAs, replayed, resumption off), for one log line; "" otherwise.
 */
const char *srdma__ctrl_resume_note(const struct srdma__ctrl *c);

/*
 * Test hooks and multi-process servers. Rotate the ticket key ring now
 * (the current key becomes the previous one; the previous one is gone).
 */
int srdma__tls_ctx_rotate_ticket_keys(struct srdma__tls_ctx *t) SRDMA__WUR;
/*
 * Makes dst seal and open tickets with src's key ring (a copy: each rotates
 * on its own afterwards). Both must be servers with resumption on.
 */
int srdma__tls_ctx_copy_ticket_keys(struct srdma__tls_ctx *dst,
				    const struct srdma__tls_ctx *src)
	SRDMA__WUR;
/* Client: how many sessions are cached for (peer_name, cache_key). */
size_t srdma__tls_ctx_cached(struct srdma__tls_ctx *t, const char *peer_name,
			     const char *cache_key);
/*
 * Shifts the server's clock (tests only): for ticket age, the certificate
 * and revocation checks of a ticket, and the verification of certificates
 * in full handshakes started afterwards. Not for handshake_done's check of a
 * resumed session's certificate date, which keeps the real time.
 */
void srdma__tls_ctx_test_clock(struct srdma__tls_ctx *t, long offset_s);

#endif
