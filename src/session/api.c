/* SPDX-License-Identifier: MIT */
/*
 * The public API of connections: connect, send/recv, write/read and their
 * blocking forms.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/text.h"
#include "session/conn.h"
#include "session/metrics.h"
#include "session/owner.h"

/* Client: the non-blocking TCP connect to c->addr (first, or again). */
static int tcp_start(struct srdma_conn *c)
{
	int rc;

	c->fd = socket(c->addr.ss_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return srdma__err(SRDMA_ESYS, "socket: %s", strerror(errno));
	/* TLS flights are several small writes: without NODELAY, Nagle and
	 * delayed ACKs add ~40 ms to a handshake. */
	srdma__tune_ctrl_socket(c->fd);
	if (connect(c->fd, (struct sockaddr *)&c->addr, c->addr_len) < 0 &&
	    errno != EINPROGRESS) {
		int e = errno;
		rc = srdma__err(e == ECONNREFUSED ? SRDMA_ECONNREFUSED
						  : SRDMA_EUNREACHABLE,
				"cannot connect to %s:%u: %s", c->host, c->port,
				strerror(e));
		goto out_close;
	}
	rc = srdma__loop_add(c->ctx->loop, c->fd, EPOLLOUT | EPOLLIN,
			     srdma__on_ctrl_fd, NULL, c, &c->fd_reg);
	if (rc == 0)
		return 0;
out_close:
	close(c->fd);
	c->fd = -1;
	return rc;
}

SRDMA_API int srdma_connect_start(srdma_ctx *ctx, const char *host,
				  uint16_t port, void *user, srdma_conn **out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct srdma_conn *c;
	char portstr[8];
	int rc;

	srdma__err_clear();
	ENSURE(ctx && host && out && port, SRDMA_EINVAL,
	       "srdma_connect_start: missing host, port or out");
	USE_CTX(ctx, "srdma_connect_start");
	ENSURE(ctx->cfg.role == SRDMA_ROLE_CLIENT, SRDMA_ESTATE,
	       "srdma_connect needs a client context");
	/* auto: verbs only if this destination is reached through a usable
	 * RDMA device (decided once, by the first destination). */
	if (!ctx->conns) {
		GUARD(srdma__tp_settle(&ctx->tp, host, false));
		srdma__log(&ctx->log, SRDMA_LOG_INFO, "transport %s: %s",
			   srdma_transport_name(ctx->tp->kind), ctx->tp->why);
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	ENSURE(rc == 0, SRDMA_EUNREACHABLE, "cannot resolve '%s': %s", host,
	       gai_strerror(rc));
	c = calloc(1, sizeof(*c));
	if (!c || ai->ai_addrlen > sizeof(c->addr)) {
		freeaddrinfo(ai);
		free(c);
		return srdma__err(SRDMA_ENOMEM, "out of memory");
	}
	c->ctx = ctx;
	c->user = user;
	c->app_owned = true;
	c->fd = -1;
	c->handed = true;
	srdma__conn_init_state(c, false);
	c->protect = ctx->cfg.protect;
	c->cipher = c->protect == SRDMA_PROTECT_NONE ? SRDMA_CIPHER_NONE
						     : ctx->cipher;
	c->max_msg = ctx->cfg.max_msg;
	c->depth = ctx->cfg.queue_depth;
	c->port = port;
	c->deadline_ms = srdma__now_ms() + ctx->cfg.handshake_timeout_ms;
	c->t_start_ns = srdma__now_ns();
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->peer_addr, sizeof(c->peer_addr), "%s:%u", host, port);
	memcpy(&c->addr, ai->ai_addr, ai->ai_addrlen);
	c->addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	rc = srdma__random(&c->local_psn, sizeof(c->local_psn));
	c->local_psn &= 0xffffff;
	if (rc == 0)
		rc = tcp_start(c);
	if (rc < 0) {
		free(c);
		return rc;
	}
	c->next = ctx->conns;
	if (ctx->conns)
		ctx->conns->prev = c;
	ctx->conns = c;
	*out = c;
	return 0;
}

/*
 * The server closed our TLS handshake without a word: it is busy (at its
 * handshake limit and shedding idle handshakes, overloaded, restarting).
 * Connect again after a pause, as long as the set-up deadline allows:
 * exponential from BUSY_MIN_MS to BUSY_MAX_MS with equal jitter (half the
 * step fixed, half random), so a crowd that was turned away together does
 * not come back together. The fabric endpoint prepared during TLS is kept;
 * the ticket we offered goes back to the cache (the server never used it).
 */
enum { BUSY_MIN_MS = 25, BUSY_MAX_MS = 1000 };

bool srdma__client_busy_retry(struct srdma_conn *c, int rc)
{
	uint64_t now = srdma__now_ms(), step, wait;
	uint32_t r = 0;

	if (c->server || rc != SRDMA_ELIMIT || c->state != ST_TLS)
		return false;
	step = c->busy_attempts < 6 ? (uint64_t)BUSY_MIN_MS << c->busy_attempts
				    : BUSY_MAX_MS;
	if (step > BUSY_MAX_MS)
		step = BUSY_MAX_MS;
	if (srdma__random(&r, sizeof(r)) < 0)
		r = 0;
	wait = step / 2 + r % (step / 2 + 1);
	if (now + wait >= c->deadline_ms) {
		if (c->busy_attempts)
			srdma__err(SRDMA_ELIMIT,
				   "the server at %s stayed busy: it closed %u "
				   "TLS handshakes in %llu ms without a word "
				   "(at its handshake limit, or overloaded); "
				   "try again later",
				   c->peer_addr, c->busy_attempts + 1,
				   (unsigned long long)((srdma__now_ns() -
							 c->t_start_ns) /
							1000000));
		return false;
	}
	if (srdma__conn_set_state(c, ST_TCP_CONNECTING) < 0)
		return false;
	srdma__ctrl_keep_ticket(c->ctrl);
	srdma__loop_del(c->fd_reg);
	c->fd_reg = NULL;
	srdma__ctrl_destroy(c->ctrl); /* closes the socket */
	c->ctrl = NULL;
	c->fd = -1;
	c->busy_attempts++;
	c->retry_at_ms = now + wait;
	c->ctx->nretry_wait++;
	srdma__metric_add(c->ctx, SRDMA__M_BUSY_RETRIES, 1);
	srdma__log(lg(c), SRDMA_LOG_INFO,
		   "%s is busy (attempt %u): connecting again in %llu ms",
		   c->peer_addr, c->busy_attempts, (unsigned long long)wait);
	return true;
}

uint64_t srdma__client_retries_due(struct srdma_ctx *ctx, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	uint32_t waiting = 0;

	if (!ctx->nretry_wait)
		return next;
	for (struct srdma_conn *c = ctx->conns; c; c = c->next) {
		if (!c->retry_at_ms)
			continue;
		if (c->state != ST_TCP_CONNECTING) {
			c->retry_at_ms = 0; /* failed meanwhile */
			continue;
		}
		if (now < c->retry_at_ms) {
			waiting++;
			if (c->retry_at_ms < next)
				next = c->retry_at_ms;
			continue;
		}
		c->retry_at_ms = 0;
		srdma__conn_step(c, tcp_start(c), c->state);
	}
	ctx->nretry_wait = waiting; /* also forgets destroyed ones */
	return next;
}

/* Unlinks the queued event *pp points to. */
static struct qev *unlink_event(struct srdma_ctx *ctx, struct qev **pp)
{
	struct qev *e = *pp;

	*pp = e->next;
	if (ctx->q_tail == e) {
		struct qev *t = ctx->q_head;
		while (t && t->next)
			t = t->next;
		ctx->q_tail = t;
	}
	e->next = NULL;
	return e;
}

/* Unlinks the first queued event matching (conn, type[, user]). */
static struct qev *take_event(struct srdma_ctx *ctx, struct srdma_conn *c,
			      enum srdma_event_type type, bool match_user,
			      void *user)
{
	struct qev **pp, *e;

	for (pp = &ctx->q_head; (e = *pp); pp = &e->next) {
		if (e->ev.conn != c || e->ev.type != type)
			continue;
		if (match_user && e->ev.user != user)
			continue;
		return unlink_event(ctx, pp);
	}
	return NULL;
}

/* Unlinks the first queued SRDMA_EV_ACCEPTED of a client of l. */
static struct qev *take_accepted(struct srdma_ctx *ctx,
				 const struct srdma_listener *l)
{
	struct qev **pp, *e;

	for (pp = &ctx->q_head; (e = *pp); pp = &e->next)
		if (e->ev.type == SRDMA_EV_ACCEPTED && e->ev.conn &&
		    e->ev.conn->listener == l)
			return unlink_event(ctx, pp);
	return NULL;
}

static void put_event(struct srdma_ctx *ctx, struct qev *e)
{
	/* Delivered to a blocking call: release now (reposts its slot). */
	e->next = ctx->delivered;
	ctx->delivered = e;
	srdma__release_delivered(ctx);
}

static int remaining(uint64_t deadline)
{
	uint64_t now = srdma__now_ms();

	if (deadline == UINT64_MAX)
		return -1;
	return now >= deadline ? 0 : (int)(deadline - now);
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX
			      : srdma__now_ms() + (uint64_t)timeout_ms;
}

SRDMA_API int srdma_connect(srdma_ctx *ctx, const char *host, uint16_t port,
			    int timeout_ms, srdma_conn **out)
{
	uint64_t dl = deadline_of(timeout_ms);
	struct srdma_conn *c;
	struct qev *e;
	int rc;

	ENSURE(out, SRDMA_EINVAL, "srdma_connect: out is NULL");
	*out = NULL;
	USE_CTX(ctx, "srdma_connect");
	GUARD(srdma_connect_start(ctx, host, port, NULL, &c));
	for (;;) {
		if ((e = take_event(ctx, c, SRDMA_EV_CONNECTED, false, NULL))) {
			put_event(ctx, e);
			*out = c;
			return 0;
		}
		if ((e = take_event(ctx, c, SRDMA_EV_CLOSED, false, NULL))) {
			char d[256];
			rc = e->ev.status ? e->ev.status : SRDMA_ECLOSED;
			snprintf(d, sizeof(d), "%s", e->detail);
			put_event(ctx, e);
			srdma__conn_free(c);
			return srdma__err(rc, "%s", d);
		}
		if (remaining(dl) == 0) {
			char d[256];
			snprintf(d, sizeof(d),
				 "connecting to %s:%u timed out in state %s%s",
				 host, port, srdma__state_name(c->state),
				 c->busy_attempts ? " (the server was busy)"
						  : "");
			srdma__conn_free(c);
			return srdma__err(SRDMA_ETIMEDOUT, "%s", d);
		}
		rc = srdma__ctx_run(ctx, remaining(dl));
		if (rc < 0) {
			srdma__conn_free(c);
			return rc;
		}
	}
}

SRDMA_API int srdma_accept(srdma_listener *l, int timeout_ms, srdma_conn **out)
{
	uint64_t dl = deadline_of(timeout_ms);
	struct srdma_ctx *ctx;
	struct qev *e;

	ENSURE(out, SRDMA_EINVAL, "srdma_accept: out is NULL");
	*out = NULL;
	ENSURE(l, SRDMA_EINVAL, "srdma_accept: the listener is NULL");
	ENSURE(l->ctx, SRDMA_ECLOSED,
	       "srdma_accept: the listener's context was destroyed");
	ctx = l->ctx;
	USE_CTX(ctx, "srdma_accept");
	for (bool last = false;;) {
		if ((e = take_accepted(ctx, l))) {
			struct srdma_conn *c = e->ev.conn;
			put_event(ctx, e);
			c->handed = true;
			*out = c;
			return 0;
		}
		if (last)
			return srdma__err(SRDMA_ETIMEDOUT,
					  "no client connected to port %u "
					  "within %d ms",
					  l->port, timeout_ms);
		/* One pass even at timeout 0, as srdma_ctx_poll. */
		last = remaining(dl) == 0;
		GUARD(srdma__ctx_run(ctx, remaining(dl)));
	}
}

SRDMA_API int srdma_conn_info(const srdma_conn *c, struct srdma_conn_info *o)
{
	struct srdma__tp_info ti = {0};

	USE_CONN(c, "srdma_conn_info");
	ENSURE(o, SRDMA_EINVAL, "srdma_conn_info: out is NULL");
	memset(o, 0, sizeof(*o));
	o->transport = c->ctx->tp->kind;
	o->protect = c->protect;
	if (c->tc)
		(void)c->ctx->tp->ops->conn_info(c->tc, &ti);
	snprintf(o->provider, sizeof(o->provider), "%s", ti.provider);
	if (c->ctrl) {
		srdma__safe_text(o->peer_identity, sizeof(o->peer_identity),
				 srdma__ctrl_peer_identity(c->ctrl),
				 sizeof(o->peer_identity));
		snprintf(o->tls_version, sizeof(o->tls_version), "%s",
			 srdma__ctrl_tls_version(c->ctrl));
		o->resumed = srdma__ctrl_resumed(c->ctrl);
	}
	snprintf(o->peer_addr, sizeof(o->peer_addr), "%s", c->peer_addr);
	snprintf(o->cipher, sizeof(o->cipher), "%s",
		 c->protect == SRDMA_PROTECT_NONE
			 ? ""
			 : srdma__cipher_name(c->cipher));
	o->session_id = c->session_id;
	if (c->ctx->tp->kind == SRDMA_TRANSPORT_VERBS) {
		o->local_psn = ti.sq_psn;
		o->remote_psn = ti.rq_psn;
		o->local_qpn = ti.local_qpn;
		o->remote_qpn = ti.remote_qpn;
	}
	o->max_msg = c->max_msg;
	o->queue_depth = c->depth;
	o->max_ops = c->ctx->cfg.max_ops;
	o->read_retries = c->read_retries;
	o->read_holds = c->read_holds;
	if (c->protect != SRDMA_PROTECT_NONE)
		snprintf(o->aead_impl, sizeof(o->aead_impl), "%s",
			 srdma__aead_impl(c->cipher));
	return 0;
}

SRDMA_API void srdma_conn_set_user(srdma_conn *c, void *user)
{
	if (!c)
		return;
	if (c->ctx) {
		USE_CTX_VOID(c->ctx, "srdma_conn_set_user");
		c->user = user;
		return;
	}
	c->user = user;
}

SRDMA_API void *srdma_conn_user(const srdma_conn *c)
{
	return c ? c->user : NULL;
}

SRDMA_API int srdma_conn_close(srdma_conn *c)
{
	struct srdma__msg m = {.type = SRDMA_MSG_GOODBYE};
	int rc;

	ENSURE(c, SRDMA_EINVAL, "srdma_conn_close: NULL");
	if (!c->ctx)
		return 0; /* detached: closed with its context */
	USE_CTX(c->ctx, "srdma_conn_close");
	if (c->state >= ST_CLOSING)
		return 0;
	if (c->state != ST_ESTABLISHED) {
		srdma__conn_fail(c, SRDMA_ECLOSED,
				 "closed by the application during set-up");
		return 0;
	}
	srdma__finish_ops(c, SRDMA_ECLOSED);
	m.u.goodbye.sent = c->tx.seq; /* what the peer reads before it ends */
	rc = srdma__conn_send_msg(c, &m);
	if (!srdma__conn_step(c, rc, ST_CLOSING))
		return srdma__err(SRDMA_ECLOSED, "%s", c->fail_detail);
	c->close_deadline_ms = srdma__now_ms() + CLOSE_GRACE_MS;
	c->goodbye_sent = true;
	/* The fabric goes down once the peer answers the goodbye. */
	return 0;
}

SRDMA_API int srdma_conn_abort(srdma_conn *c, int code, const char *why)
{
	ENSURE(c, SRDMA_EINVAL, "srdma_conn_abort: NULL");
	if (!c->ctx)
		return 0; /* detached: closed with its context */
	USE_CTX(c->ctx, "srdma_conn_abort");
	ENSURE(code < 0 && code >= SRDMA_ERROR_MIN, SRDMA_EINVAL,
	       "srdma_conn_abort: %d is not an SRDMA_E* code", code);
	srdma__conn_fail(c, code, why && *why ? why : srdma_strerror(code));
	return 0;
}

SRDMA_API void srdma_conn_destroy(srdma_conn *c)
{
	struct srdma_ctx *ctx;
	uint64_t dl;

	if (!c)
		return;
	ctx = c->ctx;
	if (!ctx) { /* detached: only the handle is left */
		srdma__conn_free(c);
		return;
	}
	USE_CTX_VOID(ctx, "srdma_conn_destroy");
	/* Not from inside another call on this context: it may be using c. */
	if (ctx->owner_depth > 1) {
		IGNORE_RESULT(srdma__err(SRDMA_ESTATE,
					 "srdma_conn_destroy: called from "
					 "inside another call on the same "
					 "context (a log callback); call it "
					 "after that call returns"));
		return;
	}
	if (c->state == ST_ESTABLISHED)
		(void)srdma_conn_close(c);
	dl = srdma__now_ms() + CLOSE_GRACE_MS + 500;
	while (c->state < ST_CLOSED && srdma__now_ms() < dl)
		if (srdma__ctx_run(ctx, remaining(dl)) < 0)
			break;
	if (c->state < ST_CLOSED)
		srdma__conn_fail(c, SRDMA_ECLOSED,
				 "destroyed by the application");
	srdma__conn_free(c);
}

/* Why an operation cannot start: the connection's own failure if it has
 * one (so the caller sees "server said: quota ..." rather than a state). */
int srdma__not_established(const struct srdma_conn *c)
{
	if (c->state >= ST_CLOSING && c->fail_code)
		return srdma__err(c->fail_code, "%s", c->fail_detail);
	return srdma__err(c->state >= ST_CLOSING ? SRDMA_ECLOSED : SRDMA_ESTATE,
			  "the connection is %s", srdma__state_name(c->state));
}

SRDMA_API int srdma_send(srdma_conn *c, const void *buf, size_t len)
{
	USE_CONN(c, "srdma_send");
	ENSURE(buf || !len, SRDMA_EINVAL, "srdma_send: buf is NULL");
	if (c->state != ST_ESTABLISHED)
		return srdma__not_established(c);
	ENSURE(len <= c->max_msg, SRDMA_EMSGSIZE,
	       "message of %zu bytes is above the connection's max_msg %u", len,
	       c->max_msg);
	/* One credit stays back so credit returns can always flow. */
	ENSURE(srdma__can_post(c, SRDMA_REC_DATA), SRDMA_EAGAIN,
	       "send window full");
	GUARD(srdma__post_record(c, SRDMA_REC_DATA, buf, len));
	srdma__metric_op(c, SRDMA_METRIC_SEND, len);
	return 0;
}

SRDMA_API int srdma_send_sync(srdma_conn *c, const void *buf, size_t len,
			      int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);

	USE_CONN(c, "srdma_send_sync");
	for (;;) {
		int rc = srdma_send(c, buf, len);
		if (rc != SRDMA_EAGAIN)
			return rc;
		ENSURE(remaining(dl) != 0, SRDMA_ETIMEDOUT,
		       "send window stayed full for %d ms", timeout_ms);
		GUARD(srdma__ctx_run(c->ctx, remaining(dl)));
	}
}

SRDMA_API int srdma_recv(srdma_conn *c, void *buf, size_t cap, size_t *len,
			 int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	struct qev *e;

	USE_CONN(c, "srdma_recv");
	ENSURE((buf || !cap) && len, SRDMA_EINVAL,
	       "srdma_recv: NULL buf or len");
	for (;;) {
		if ((e = take_event(c->ctx, c, SRDMA_EV_RECV, false, NULL))) {
			if (e->ev.len > cap) {
				size_t need = e->ev.len;
				/* Put it back at the head for a retry. */
				e->next = c->ctx->q_head;
				c->ctx->q_head = e;
				if (!c->ctx->q_tail)
					c->ctx->q_tail = e;
				*len = need;
				return srdma__err(SRDMA_EMSGSIZE,
						  "message of %zu bytes does "
						  "not fit in %zu",
						  need, cap);
			}
			memcpy(buf, e->ev.data, e->ev.len);
			*len = e->ev.len;
			put_event(c->ctx, e);
			return 0;
		}
		if (c->state >= ST_CLOSING)
			return srdma__err(
				c->fail_code ? c->fail_code : SRDMA_ECLOSED,
				"%s",
				c->fail_detail[0] ? c->fail_detail
						  : "the connection is closed");
		ENSURE(remaining(dl) != 0, SRDMA_ETIMEDOUT,
		       "no message within %d ms", timeout_ms);
		GUARD(srdma__ctx_run(c->ctx, remaining(dl)));
	}
}

SRDMA_API int srdma_write(srdma_conn *c, uint32_t region, uint64_t offset,
			  const void *buf, size_t len, void *user)
{
	USE_CONN(c, "srdma_write");
	return srdma__start_op(c, OP_WRITE, region, offset, (void *)buf, len,
			       user);
}

SRDMA_API int srdma_read(srdma_conn *c, uint32_t region, uint64_t offset,
			 void *buf, size_t len, void *user)
{
	USE_CONN(c, "srdma_read");
	return srdma__start_op(c, OP_READ, region, offset, buf, len, user);
}

static int wait_op(srdma_conn *c, enum srdma_event_type type, void *user,
		   int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	struct qev *e;

	for (;;) {
		if ((e = take_event(c->ctx, c, type, true, user))) {
			int st = e->ev.status;
			char d[256];
			snprintf(d, sizeof(d), "%s", e->detail);
			put_event(c->ctx, e);
			if (st < 0)
				return srdma__err(st, "%s",
						  d[0] ? d
						       : srdma_strerror(st));
			return 0;
		}
		if (remaining(dl) == 0) {
			/* The op stays queued; fail the connection so the
			 * buffer is never touched after we return. */
			srdma__conn_fail(c, SRDMA_ETIMEDOUT,
					 "an RDMA operation timed out");
			return srdma__err(SRDMA_ETIMEDOUT,
					  "the operation did not finish within "
					  "%d ms",
					  timeout_ms);
		}
		GUARD(srdma__ctx_run(c->ctx, remaining(dl)));
	}
}

/*
 * Starts an operation for a blocking call: waits (within the timeout) for
 * room among max_ops and for a grant of the region that has not arrived
 * yet, as srdma_conn_wait_region would.
 */
static int start_sync(srdma_conn *c, enum op_kind kind, uint32_t region,
		      uint64_t offset, void *buf, size_t len, void *marker,
		      uint64_t dl)
{
	for (;;) {
		int rc = srdma__start_op(c, kind, region, offset, buf, len,
					 marker);
		bool later = rc == SRDMA_EAGAIN || (rc == SRDMA_ENOENT && c &&
						    region > c->max_remote_id);
		if (!later)
			return rc;
		if (remaining(dl) == 0)
			return rc == SRDMA_EAGAIN
				       ? srdma__err(SRDMA_ETIMEDOUT,
						    "all %u operations stayed "
						    "in flight (max_ops)",
						    c->max_ops)
				       : srdma__err(SRDMA_ETIMEDOUT,
						    "the peer granted no "
						    "region %u in time",
						    region);
		GUARD(srdma__ctx_run(c->ctx, remaining(dl)));
	}
}

SRDMA_API int srdma_write_sync(srdma_conn *c, uint32_t region, uint64_t offset,
			       const void *buf, size_t len, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	int marker;

	USE_CONN(c, "srdma_write_sync");
	GUARD(start_sync(c, OP_WRITE, region, offset, (void *)buf, len, &marker,
			 dl));
	return wait_op(c, SRDMA_EV_WRITE_DONE, &marker, remaining(dl));
}

SRDMA_API int srdma_read_sync(srdma_conn *c, uint32_t region, uint64_t offset,
			      void *buf, size_t len, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	int marker;

	USE_CONN(c, "srdma_read_sync");
	GUARD(start_sync(c, OP_READ, region, offset, buf, len, &marker, dl));
	return wait_op(c, SRDMA_EV_READ_DONE, &marker, remaining(dl));
}

SRDMA_API int srdma_conn_remote_region(const srdma_conn *c, uint32_t region,
				       uint64_t *len)
{
	struct srdma_conn *cc = (struct srdma_conn *)c;
	struct remote_region *rr;

	USE_CONN(cc, "srdma_conn_remote_region");
	rr = find_remote(cc, region);
	ENSURE(rr, SRDMA_ENOENT, "the peer granted no region %u", region);
	if (len)
		*len = rr->len;
	return 0;
}

SRDMA_API int srdma_conn_wait_region(srdma_conn *c, uint32_t region,
				     int timeout_ms, uint64_t *len)
{
	uint64_t dl = deadline_of(timeout_ms);

	USE_CONN(c, "srdma_conn_wait_region");
	for (;;) {
		struct remote_region *rr = NULL;
		if (region)
			rr = find_remote(c, region);
		else /* the oldest grant (a stream ring is no region) */
			for (struct remote_region *x = c->remote; x;
			     x = x->next)
				if (!(x->access & SRDMA_WIRE_ACCESS_STREAM))
					rr = x;
		if (rr && (rr->access & SRDMA_WIRE_ACCESS_STREAM))
			rr = NULL;
		if (rr) {
			if (len)
				*len = rr->len;
			return (int)rr->id;
		}
		if (c->state >= ST_CLOSING)
			return srdma__err(c->fail_code ? c->fail_code
						       : SRDMA_ECLOSED,
					  "%s", c->fail_detail);
		ENSURE(remaining(dl) != 0, SRDMA_ETIMEDOUT,
		       "the peer granted no region %u within %d ms", region,
		       timeout_ms);
		GUARD(srdma__ctx_run(c->ctx, remaining(dl)));
	}
}
