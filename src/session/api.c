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
	ENSURE(ctx->cfg.role == SRDMA_ROLE_CLIENT, SRDMA_ESTATE,
	       "srdma_connect needs a client context");
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	ENSURE(rc == 0, SRDMA_EUNREACHABLE, "cannot resolve '%s': %s", host,
	       gai_strerror(rc));
	c = calloc(1, sizeof(*c));
	if (!c) {
		freeaddrinfo(ai);
		return srdma__err(SRDMA_ENOMEM, "out of memory");
	}
	c->ctx = ctx;
	c->user = user;
	c->app_owned = true;
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
	rc = srdma__random(&c->local_psn, sizeof(c->local_psn));
	c->local_psn &= 0xffffff;
	c->fd = socket(ai->ai_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || rc < 0) {
		rc = srdma__err(SRDMA_ESYS, "socket: %s", strerror(errno));
		goto out_free;
	}
	/* TLS flights are several small writes: without NODELAY, Nagle and
	 * delayed ACKs add ~40 ms to a handshake. */
	srdma__tune_ctrl_socket(c->fd);
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
	    errno != EINPROGRESS) {
		int e = errno;
		rc = srdma__err(e == ECONNREFUSED ? SRDMA_ECONNREFUSED
						  : SRDMA_EUNREACHABLE,
				"cannot connect to %s:%u: %s", host, port,
				strerror(e));
		goto out_free;
	}
	rc = srdma__loop_add(ctx->loop, c->fd, EPOLLOUT | EPOLLIN,
			     srdma__on_ctrl_fd, NULL, c, &c->fd_reg);
	if (rc < 0)
		goto out_free;
	freeaddrinfo(ai);
	c->next = ctx->conns;
	if (ctx->conns)
		ctx->conns->prev = c;
	ctx->conns = c;
	*out = c;
	return 0;

out_free:
	freeaddrinfo(ai);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return rc;
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
				 "connecting to %s:%u timed out in state %s",
				 host, port, srdma__state_name(c->state));
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

SRDMA_API int srdma_conn_info(const srdma_conn *c, struct srdma_conn_info *o)
{
	struct srdma__tp_info ti = {0};

	ENSURE(c && o, SRDMA_EINVAL, "srdma_conn_info: NULL argument");
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
	if (c->protect != SRDMA_PROTECT_NONE)
		snprintf(o->aead_impl, sizeof(o->aead_impl), "%s",
			 srdma__aead_impl(c->cipher));
	return 0;
}

SRDMA_API void srdma_conn_set_user(srdma_conn *c, void *user)
{
	if (c)
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
	if (c->state >= ST_CLOSING)
		return 0;
	if (c->state != ST_ESTABLISHED) {
		srdma__conn_fail(c, SRDMA_ECLOSED,
				 "closed by the application during set-up");
		return 0;
	}
	srdma__finish_ops(c, SRDMA_ECLOSED);
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
	ENSURE(c && (buf || !len), SRDMA_EINVAL, "srdma_send: NULL argument");
	if (c->state != ST_ESTABLISHED)
		return srdma__not_established(c);
	ENSURE(len <= c->max_msg, SRDMA_EMSGSIZE,
	       "message of %zu bytes is above the connection's max_msg %u", len,
	       c->max_msg);
	/* One credit stays back so credit returns can always flow. */
	ENSURE(srdma__can_post(c, SRDMA_REC_DATA), SRDMA_EAGAIN,
	       "send window full");
	return srdma__post_record(c, SRDMA_REC_DATA, buf, len);
}

SRDMA_API int srdma_send_sync(srdma_conn *c, const void *buf, size_t len,
			      int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);

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

	ENSURE(c && (buf || !cap) && len, SRDMA_EINVAL,
	       "srdma_recv: NULL argument");
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
	return srdma__start_op(c, OP_WRITE, region, offset, (void *)buf, len,
			       user);
}

SRDMA_API int srdma_read(srdma_conn *c, uint32_t region, uint64_t offset,
			 void *buf, size_t len, void *user)
{
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

	GUARD(start_sync(c, OP_WRITE, region, offset, (void *)buf, len, &marker,
			 dl));
	return wait_op(c, SRDMA_EV_WRITE_DONE, &marker, remaining(dl));
}

SRDMA_API int srdma_read_sync(srdma_conn *c, uint32_t region, uint64_t offset,
			      void *buf, size_t len, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	int marker;

	GUARD(start_sync(c, OP_READ, region, offset, buf, len, &marker, dl));
	return wait_op(c, SRDMA_EV_READ_DONE, &marker, remaining(dl));
}

SRDMA_API int srdma_conn_remote_region(const srdma_conn *c, uint32_t region,
				       uint64_t *len)
{
	struct remote_region *rr;

	ENSURE(c, SRDMA_EINVAL, "NULL connection");
	rr = find_remote((struct srdma_conn *)c, region);
	ENSURE(rr, SRDMA_ENOENT, "the peer granted no region %u", region);
	if (len)
		*len = rr->len;
	return 0;
}

SRDMA_API int srdma_conn_wait_region(srdma_conn *c, uint32_t region,
				     int timeout_ms, uint64_t *len)
{
	uint64_t dl = deadline_of(timeout_ms);

	ENSURE(c, SRDMA_EINVAL, "NULL connection");
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
