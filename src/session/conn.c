/* SPDX-License-Identifier: MIT */
/*
 * Connection state machine (DESIGN.md §3) and the protected data path (§4).
 *
 *   client: TCP_CONNECTING -> TLS -> HELLO -> PREPARE -> PARAMS -> FABRIC
 *   server:                   TLS -> HELLO ->            PARAMS -> FABRIC
 *   both:   -> ESTABLISHED -> CLOSING -> CLOSED, or FAILED from anywhere.
 *
 * Every handler checks its state first and moves the state last, only on
 * success. Only the loop thread runs these functions. Fabric resources of a
 * failed connection are torn down after the loop iteration (never inside a
 * transport callback), so a backend never sees its objects vanish under it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "session/session.h"

enum {
	CHUNK_BLOCKS = SRDMA_CHUNK_BLOCKS,
	NCHUNKS = SRDMA_NCHUNKS,
	CLOSE_GRACE_MS = 2000,
	TOKEN_TTL_MS = 5000,
};

#define WR_ID(kind, idx) (((uint64_t)(kind) << 56) | (uint64_t)(idx))
#define WR_KIND(id)	 ((int)((id) >> 56))
#define WR_IDX(id)	 ((uint32_t)((id)&0xffffffffu))

static void teardown(struct srdma_conn *c);
static void progress_ops(struct srdma_conn *c);
static void maybe_send_credit(struct srdma_conn *c);
static int ctrl_send_msg(struct srdma_conn *c, const struct srdma__msg *m);

static const char *state_name(enum conn_state s)
{
	static const char *const n[] = {"tcp-connecting", "tls",     "hello",
					"prepare",	  "params",  "fabric",
					"established",	  "closing", "closed",
					"failed"};
	return s <= ST_FAILED ? n[s] : "?";
}

static int my_writer(const struct srdma_conn *c)
{
	return c->server ? WRITER_SERVER : WRITER_CLIENT;
}

static const struct srdma__logger *lg(const struct srdma_conn *c)
{
	return &c->ctx->log;
}

static const char *who(const struct srdma_conn *c)
{
	static _Thread_local char buf[256];
	const char *id = c->ctrl ? srdma__ctrl_peer_identity(c->ctrl) : NULL;

	snprintf(buf, sizeof(buf), "%s%s%s%s", c->peer_addr,
		 id && *id ? " (" : "", id && *id ? id : "",
		 id && *id ? ")" : "");
	return buf;
}

/*
 * A control connection whose peer vanished (link down, host gone) must fail
 * in bounded time even when nothing is being sent: TCP keepalive probes an
 * idle socket, TCP_USER_TIMEOUT bounds unacknowledged data.
 */
void srdma__tune_ctrl_socket(int fd)
{
	int one = 1, idle = 10, intvl = 5, cnt = 3;
	unsigned int user_timeout_ms = 30000;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
		   sizeof(user_timeout_ms));
}

/* Debug log of set-up phases with their time since the start. */
static void phase(const struct srdma_conn *c, const char *what)
{
	srdma__log(lg(c), SRDMA_LOG_DEBUG, "set-up with %s: %s at %.2f ms",
		   c->peer_addr, what,
		   (double)(srdma__now_ns() - c->t_start_ns) / 1e6);
}

/* ---- tamper hook (test builds only) ---- */

#ifdef SRDMA_TAMPER
/* SRDMA_TAMPER=send|write|read flips one bit of the first sealed record,
 * write chunk or read chunk, to prove the receiver catches it. */
static bool tamper(const char *what)
{
	static int done;
	const char *t = getenv("SRDMA_TAMPER");

	if (!t || done || strcmp(t, what))
		return false;
	done = 1;
	return true;
}
#else
static bool tamper(const char *what)
{
	(void)what;
	return false;
}
#endif

/* ---- events and failure ---- */

static void queue(struct srdma_conn *c, enum srdma_event_type type, int status,
		  void *user, const char *detail)
{
	if (srdma__queue_event(c->ctx, type, status, c, user, detail, NULL) < 0)
		srdma__log(lg(c), SRDMA_LOG_ERROR, "dropped an event: %s",
			   srdma_error_detail());
}

static void finish_ops(struct srdma_conn *c, int code)
{
	struct op *op;

	while ((op = c->ops_head)) {
		c->ops_head = op->next;
		if (op->kind == OP_READ)
			memset(op->buf, 0, op->len);
		queue(c,
		      op->kind == OP_WRITE ? SRDMA_EV_WRITE_DONE
					   : SRDMA_EV_READ_DONE,
		      code, op->user, c->fail_detail);
		free(op);
	}
	c->ops_tail = NULL;
	for (int i = 0; i < NCHUNKS; i++)
		c->chunks[i].op = NULL;
}

static void leave_handshake(struct srdma_conn *c)
{
	if (c->counted_hs) {
		c->counted_hs = false;
		c->ctx->handshakes--;
	}
}

void srdma__conn_fail(struct srdma_conn *c, int code, const char *detail)
{
	if (c->state >= ST_CLOSED)
		return;
	c->fail_code = code ? code : SRDMA_ECLOSED;
	snprintf(c->fail_detail, sizeof(c->fail_detail), "%s",
		 detail && *detail ? detail : srdma_strerror(code));
	/* Tell an authenticated peer why, unless it is the one that told us. */
	if (c->ctrl && c->state >= ST_HELLO && code != SRDMA_EPEER &&
	    code != SRDMA_ECLOSED) {
		struct srdma__msg m = {.type = SRDMA_MSG_ERROR};
		m.u.error.code = code;
		snprintf(m.u.error.text, sizeof(m.u.error.text), "%s",
			 c->fail_detail);
		m.u.error.text_len = (uint16_t)strlen(m.u.error.text);
		IGNORE_RESULT(ctrl_send_msg(c, &m));
	}
	srdma__log(lg(c),
		   c->state == ST_ESTABLISHED ? SRDMA_LOG_WARN : SRDMA_LOG_INFO,
		   "connection %s failed in state %s: %s", who(c),
		   state_name(c->state), c->fail_detail);
	finish_ops(c, c->fail_code);
	leave_handshake(c);
	if (c->server && c->ctx->nclients)
		c->ctx->nclients--;
	if (c->app_owned)
		queue(c, SRDMA_EV_CLOSED, c->fail_code, NULL, c->fail_detail);
	else {
		char d[400];
		snprintf(d, sizeof(d), "%s: %s", who(c), c->fail_detail);
		IGNORE_RESULT(srdma__queue_event(c->ctx, SRDMA_EV_REJECTED,
						 c->fail_code, NULL, NULL, d,
						 NULL));
	}
	c->state = ST_FAILED;
}

static void finish_close(struct srdma_conn *c)
{
	if (c->state >= ST_CLOSED)
		return;
	srdma__log(lg(c), SRDMA_LOG_INFO, "connection %s closed", who(c));
	finish_ops(c, SRDMA_ECLOSED);
	leave_handshake(c);
	if (c->server && c->ctx->nclients)
		c->ctx->nclients--;
	c->fail_code = 0;
	queue(c, SRDMA_EV_CLOSED, 0, NULL, "closed by goodbye");
	c->state = ST_CLOSED;
}

static void read_ctrl(struct srdma_conn *c);

/*
 * The fabric broke under an established connection. When the peer failed
 * the connection on purpose (quota, tampering, policy) its reason travels on
 * TLS and may arrive a moment after the fabric drops: prefer it, and wait up
 * to FABRIC_REASON_WAIT_MS for it before reporting the fabric error.
 */
enum { FABRIC_REASON_WAIT_MS = 300 };
static void fabric_failed(struct srdma_conn *c, int code, const char *detail)
{
	if (c->state >= ST_CLOSED || c->fabric_fail_code)
		return;
	if (c->state != ST_ESTABLISHED || !c->ctrl) {
		srdma__conn_fail(c, code, detail);
		return;
	}
	c->fabric_fail_code = code ? code : SRDMA_ECLOSED;
	snprintf(c->fabric_fail_detail, sizeof(c->fabric_fail_detail), "%s",
		 detail);
	c->fabric_fail_deadline_ms = srdma__now_ms() + FABRIC_REASON_WAIT_MS;
	read_ctrl(c); /* the reason may be here already */
}

/* ---- control channel I/O ---- */

static void update_interest(struct srdma_conn *c)
{
	uint32_t ev = EPOLLIN;

	if (!c->fd_reg || !c->ctrl)
		return;
	if (c->state == ST_TLS ? srdma__ctrl_want_write(c->ctrl)
			       : srdma__ctrl_pending_out(c->ctrl))
		ev |= EPOLLOUT;
	IGNORE_RESULT(srdma__loop_mod(c->fd_reg, ev));
}

static int ctrl_send_msg(struct srdma_conn *c, const struct srdma__msg *m)
{
	uint8_t buf[SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY];
	int n = srdma__msg_encode(m, buf, sizeof(buf));

	if (n < 0)
		return n;
	n = srdma__ctrl_send(c->ctrl, buf, (size_t)n);
	update_interest(c);
	return n < 0 && n != SRDMA_EAGAIN ? n : 0;
}

static void send_hello(struct srdma_conn *c)
{
	struct srdma__msg m = {.type = SRDMA_MSG_HELLO};

	m.u.hello.version = SRDMA_WIRE_VERSION;
	m.u.hello.caps = SRDMA_CAP_OFI | SRDMA_CAP_VERBS |
			 SRDMA_CAP_PROTECT_NONE | SRDMA_CAP_PROTECT_INTEGRITY |
			 SRDMA_CAP_PROTECT_ENCRYPT;
	m.u.hello.transport = (uint8_t)c->ctx->tp->kind;
	m.u.hello.protect = (uint8_t)c->protect;
	m.u.hello.cipher = (uint8_t)c->cipher;
	m.u.hello.max_msg = c->max_msg;
	m.u.hello.queue_depth = c->depth;
	if (c->server && c->listener)
		m.u.hello.fabric_port = c->listener->fabric_port;
	if (ctrl_send_msg(c, &m) < 0)
		srdma__conn_fail(c, SRDMA_ECLOSED, srdma_error_detail());
}

/* ---- keys ---- */

static int setup_keys(struct srdma_conn *c)
{
	bool client = !c->server;
	struct srdma__keys *k = &c->keys;

	GUARD(srdma__keys_derive(srdma__ctrl_ssl(c->ctrl), client, c->protect,
				 c->cipher, k));
	GUARD(srdma__aead_init(&c->tx, c->protect, c->cipher, true,
			       k->tx_msg_key, k->tx_msg_salt));
	GUARD(srdma__aead_init(&c->rx, c->protect, c->cipher, false,
			       k->rx_msg_key, k->rx_msg_salt));
	GUARD(srdma__aead_init(&c->blk_tx, c->protect, c->cipher, true,
			       k->tx_blk_key, k->tx_blk_salt));
	GUARD(srdma__aead_init(&c->blk_own, c->protect, c->cipher, false,
			       k->tx_blk_key, k->tx_blk_salt));
	GUARD(srdma__aead_init(&c->blk_rx, c->protect, c->cipher, false,
			       k->rx_blk_key, k->rx_blk_salt));
	/* The aead contexts hold their own copies now. */
	srdma__keys_wipe(k);
	return 0;
}

/* ---- registered buffers ---- */

/*
 * Message rings, staging areas and regions come straight from mmap: pages
 * arrive zeroed, are touched only where data lands, and munmap hands them
 * back to the kernel, which zeroes them before anyone else sees them. So no
 * plaintext outlives a connection in this process, without the cost of
 * wiping (and first faulting in) megabytes a short connection never used.
 */
static void *map_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void unmap_buf(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

/* ---- fabric set-up ---- */

static void on_tp_prepared(void *arg, int status);
static void on_tp_established(void *arg);
static void on_tp_closed(void *arg, int status, const char *detail);
static void on_tp_cqe(void *arg, const struct srdma__tp_cqe *cqe);
static int on_region_msg(struct srdma_conn *c,
			 const struct srdma__msg_region *g);

void srdma__conn_tp_cb(struct srdma_conn *c, struct srdma__tp_conn_cb *cb)
{
	*cb = (struct srdma__tp_conn_cb){
		.arg = c,
		.on_prepared = on_tp_prepared,
		.on_established = on_tp_established,
		.on_closed = on_tp_closed,
		.on_cqe = on_tp_cqe,
	};
}

static int create_tp_conn(struct srdma_conn *c)
{
	struct srdma__tp_conn_attr attr = srdma__conn_attr(c->server, c->depth);
	struct srdma__tp_conn_cb cb;

	srdma__conn_tp_cb(c, &cb);
	return c->ctx->tp->ops->conn_create(c->ctx->tp, &attr, &cb, &c->tc);
}

/* Registers the receive and send rings (needs the domain/PD), unless they
 * came registered with a kit from the resource pool (at least as large). */
static int setup_rings(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;

	/* The layout is fixed here; a client that sends PARAMS early sizes it
	 * by its own limits, which the server's HELLO may lower after. */
	c->slot_len = srdma__slot_len(c->max_msg);
	c->ring_depth = c->depth;
	if (!c->ring) {
		c->ring_len = srdma__ring_len(c->max_msg, c->ring_depth);
		c->ring = map_buf(c->ring_len);
		if (!c->ring)
			return srdma__err(SRDMA_ENOMEM,
					  "out of memory for %zu bytes "
					  "of message buffers",
					  c->ring_len);
	}
	c->send_free = calloc(c->ring_depth, sizeof(uint32_t));
	c->acks = calloc(c->ring_depth, sizeof(*c->acks));
	c->verifies = calloc(c->ring_depth, sizeof(*c->verifies));
	ENSURE(c->send_free && c->acks && c->verifies, SRDMA_ENOMEM,
	       "out of memory");
	for (uint32_t i = 0; i < c->ring_depth; i++)
		c->send_free[i] = c->ring_depth - 1 - i;
	c->nsend_free = c->ring_depth;
	c->tx_credits = c->depth;
	if (c->ring_mr)
		return 0;
	return ops->mr_reg(c->tc, c->ring, c->ring_len, SRDMA_TP_LOCAL,
			   &c->ring_mr);
}

static uint8_t *recv_slot(struct srdma_conn *c, uint32_t i)
{
	return c->ring + (size_t)i * c->slot_len;
}

static uint8_t *send_slot(struct srdma_conn *c, uint32_t i)
{
	return c->ring + (size_t)(c->ring_depth + i) * c->slot_len;
}

static int post_all_recvs(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;

	for (uint32_t i = 0; i < c->ring_depth; i++) {
		GUARD(ops->post_recv(c->tc, c->ring_mr, recv_slot(c, i),
				     c->slot_len, WR_ID(WR_RECV, i)));
	}
	return 0;
}

void srdma__repost_slot(struct srdma_conn *c, int slot)
{
	int rc;

	if (c->state != ST_ESTABLISHED && c->state != ST_CLOSING)
		return;
	if (!c->tc || c->fabric_closed)
		return;
	rc = c->ctx->tp->ops->post_recv(c->tc, c->ring_mr,
					recv_slot(c, (uint32_t)slot),
					c->slot_len, WR_ID(WR_RECV, slot));
	if (rc < 0) {
		srdma__conn_fail(c, rc, srdma_error_detail());
		return;
	}
	c->rx_credits_due++;
	maybe_send_credit(c);
}

/* Seals one record into a free send slot and posts it. */
static int post_record(struct srdma_conn *c, uint8_t type, const void *buf,
		       size_t len)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	uint32_t slot;
	uint8_t *p;
	uint16_t credits = (uint16_t)c->rx_credits_due;
	int n, rc;

	ENSURE(c->nsend_free > 0 && c->tx_credits > 0, SRDMA_EAGAIN,
	       "send window full");
	slot = c->send_free[--c->nsend_free];
	p = send_slot(c, slot);
	n = srdma__record_seal(&c->tx, type, credits, buf, len, p, c->slot_len);
	if (n < 0) {
		c->nsend_free++;
		return n;
	}
	if (type == REC_DATA && tamper("send"))
		p[SRDMA_REC_HDR_LEN] ^= 0x01;
	rc = ops->post_send(c->tc, c->ring_mr, p, (size_t)n,
			    WR_ID(WR_SEND, slot),
			    n <= 64 ? SRDMA_TP_F_INLINE : 0);
	if (rc < 0) {
		/* The sequence number is spent: the connection cannot go on. */
		c->nsend_free++;
		srdma__conn_fail(c, rc, srdma_error_detail());
		return rc;
	}
	c->rx_credits_due -= credits;
	c->tx_credits--;
	return 0;
}

static void flush_acks(struct srdma_conn *c);

static void maybe_send_credit(struct srdma_conn *c)
{
	uint32_t want = c->depth / 2 ? c->depth / 2 : 1;

	if (c->state != ST_ESTABLISHED && c->state != ST_CLOSING)
		return;
	if (c->nacks)
		flush_acks(c);
	if (c->rx_credits_due < want || c->tx_credits < 1 || !c->nsend_free)
		return;
	IGNORE_RESULT(post_record(c, REC_CREDIT, NULL, 0));
}

static void fill_params_common(struct srdma_conn *c, struct srdma__msg *m)
{
	m->type = SRDMA_MSG_PARAMS;
	m->u.params.psn = c->local_psn;
	m->u.params.qpn = c->ctx->tp->ops->local_qpn(c->tc);
}

/* Client: our PARAMS carry nothing beyond the common fields. */
static int send_client_params(struct srdma_conn *c)
{
	struct srdma__msg m = {0};

	fill_params_common(c, &m);
	return ctrl_send_msg(c, &m);
}

/* Client: fabric side ready (QPN known): register, post, send PARAMS. */
static void client_prepared(struct srdma_conn *c)
{
	int rc;

	phase(c, "fabric prepared");
	if (c->state != ST_PREPARE)
		return;
	rc = setup_rings(c);
	if (rc == 0)
		rc = post_all_recvs(c);
	if (rc == 0)
		rc = send_client_params(c);
	if (rc < 0) {
		srdma__conn_fail(c, rc, srdma_error_detail());
		return;
	}
	c->state = ST_PARAMS;
}

/*
 * Client, while TLS waits for the server's first flight, where resolution is
 * synchronous and does not bind the port (ofi): make the endpoint (with the
 * control port; the server's PARAMS name the fabric port before we connect),
 * register the rings and post the receives, so PARAMS can follow HELLO at
 * once when TLS is done, one round trip early. The rings are sized by our
 * own limits, which the server's HELLO can only lower. Nothing goes out on
 * the fabric before the server is authenticated.
 */
static int prepare_early(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	int rc;

	if (c->server || c->tc || !ops->set_port)
		return 0;
	phase(c, "ClientHello sent");
	GUARD(create_tp_conn(c));
	rc = ops->resolve(c->tc, c->host, c->port,
			  (int)c->ctx->cfg.handshake_timeout_ms);
	ENSURE(rc != SRDMA_EAGAIN, SRDMA_EFABRIC,
	       "early resolution went asynchronous");
	GUARD(rc);
	GUARD(setup_rings(c));
	GUARD(post_all_recvs(c));
	c->params_early = true;
	phase(c, "fabric prepared during TLS");
	return 0;
}

/* ---- client: fabric ports seen, for route resolution during TLS ---- */

static struct fport_cache *fport_find(struct srdma_ctx *ctx, const char *host,
				      uint16_t port)
{
	for (size_t i = 0; i < sizeof(ctx->fports) / sizeof(ctx->fports[0]);
	     i++) {
		struct fport_cache *f = &ctx->fports[i];
		if (f->port == port && !strcmp(f->host, host))
			return f;
	}
	return NULL;
}

static void fport_remember(struct srdma_conn *c)
{
	struct srdma_ctx *ctx = c->ctx;
	struct fport_cache *f = fport_find(ctx, c->host, c->port);

	if (strlen(c->host) >= sizeof(f->host))
		return;
	if (!f) {
		size_t n = sizeof(ctx->fports) / sizeof(ctx->fports[0]);
		f = &ctx->fports[ctx->fports_next++ % n];
		snprintf(f->host, sizeof(f->host), "%s", c->host);
		f->port = c->port;
	}
	f->fabric_port = c->fabric_port;
}

/*
 * Client, while TLS runs, where resolution binds the port (verbs): if this
 * context met the server before, resolve the route to the fabric port it
 * named then, so the QP exists (and PARAMS can go) as soon as the server's
 * HELLO confirms the port. A different port, or a failed resolution, means
 * starting over the usual way. Nothing reaches the server's fabric before
 * TLS is done.
 */
static int resolve_early(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct fport_cache *f;
	int rc;

	if (c->server || c->tc || ops->set_port)
		return 0;
	f = fport_find(c->ctx, c->host, c->port);
	if (!f || !f->fabric_port)
		return 0;
	GUARD(create_tp_conn(c));
	c->early_resolve = true;
	c->early_port = f->fabric_port;
	rc = ops->resolve(c->tc, c->host, c->early_port,
			  (int)c->ctx->cfg.handshake_timeout_ms);
	if (rc == 0)
		c->early_ready = true;
	else if (rc != SRDMA_EAGAIN)
		c->early_failed = true;
	phase(c, "route resolution started during TLS");
	return 0;
}

/* Drops an early resolution that cannot be used (port changed, failed). */
static void drop_early(struct srdma_conn *c)
{
	c->ctx->tp->ops->conn_destroy(c->tc);
	c->tc = NULL;
	c->early_resolve = c->early_ready = c->early_failed = false;
}

static void on_tp_prepared(void *arg, int status)
{
	struct srdma_conn *c = arg;

	if (c->early_resolve && c->state < ST_PREPARE) {
		/* Resolved during TLS: client_on_hello takes it from here. */
		c->early_ready = status == 0;
		c->early_failed = status < 0;
		phase(c, status == 0 ? "route resolved during TLS"
				     : "route resolution during TLS failed");
		return;
	}
	if (c->state != ST_PREPARE)
		return;
	if (status < 0) {
		char d[300];
		snprintf(d, sizeof(d),
			 "fabric address resolution for %s "
			 "failed: %s",
			 c->host, srdma_error_detail());
		srdma__conn_fail(c, status, d);
		return;
	}
	client_prepared(c);
}

/* verbs: show that the QP carries the PSNs agreed over TLS. Called right
 * after the QP reached RTS, before any traffic moved the counters. */
static void log_psn_check(struct srdma_conn *c)
{
	struct srdma__tp_info ti = {0};

	if (c->ctx->tp->kind != SRDMA_TRANSPORT_VERBS || !c->tc ||
	    c->ctx->tp->ops->conn_info(c->tc, &ti) < 0)
		return;
	srdma__log(lg(c), SRDMA_LOG_INFO,
		   "psn check %s: agreed sq 0x%06x rq 0x%06x, on QP %u sq "
		   "0x%06x rq 0x%06x",
		   who(c), c->local_psn, c->remote_psn, ti.local_qpn, ti.sq_psn,
		   ti.rq_psn);
}

static void on_tp_established(void *arg)
{
	struct srdma_conn *c = arg;

	if (c->state != ST_FABRIC)
		return;
	c->deadline_ms = 0;
	leave_handshake(c);
	c->app_owned = true;
	phase(c, "established");
	srdma__log(
		lg(c), SRDMA_LOG_INFO, "connection %s established: %s, %s%s%s",
		who(c), srdma_transport_name(c->ctx->tp->kind),
		srdma_protect_name(c->protect),
		c->protect != SRDMA_PROTECT_NONE ? " with " : "",
		c->protect != SRDMA_PROTECT_NONE ? srdma__cipher_name(c->cipher)
						 : "");
	if (!c->server)
		log_psn_check(c);
	c->state = ST_ESTABLISHED;
	/* The client's resumption ticket, now that set-up no longer waits
	 * for it; a ticket that cannot be sent costs resumption only. */
	if (c->server && srdma__ctrl_issue_ticket(c->ctrl) < 0)
		srdma__log(lg(c), SRDMA_LOG_INFO,
			   "no session ticket for %s: %s", who(c),
			   srdma_error_detail());
	if (c->server)
		update_interest(c);
	queue(c, c->server ? SRDMA_EV_ACCEPTED : SRDMA_EV_CONNECTED, 0, c->user,
	      "");
	for (uint32_t i = 0; i < c->nearly && c->state == ST_ESTABLISHED; i++) {
		int rc = on_region_msg(c, &c->early_grants[i]);
		if (rc < 0)
			srdma__conn_fail(c, rc, srdma_error_detail());
	}
	c->nearly = 0;
}

static void maybe_finish_close(struct srdma_conn *c)
{
	if (c->state == ST_CLOSING && c->goodbye_rcvd && c->goodbye_sent &&
	    c->fabric_closed)
		finish_close(c);
}

static void on_tp_closed(void *arg, int status, const char *detail)
{
	struct srdma_conn *c = arg;
	char d[400];

	if (c->state >= ST_CLOSED)
		return;
	c->fabric_closed = true;
	if (c->state == ST_CLOSING) {
		maybe_finish_close(c);
		return;
	}
	if (c->state == ST_ESTABLISHED && status == 0) {
		/* The peer's goodbye may still be in flight on TLS: wait. */
		c->state = ST_CLOSING;
		c->close_deadline_ms = srdma__now_ms() + CLOSE_GRACE_MS;
		finish_ops(c, SRDMA_ECLOSED);
		return;
	}
	if (c->state == ST_FABRIC && status == SRDMA_ECONNREFUSED) {
		snprintf(d, sizeof(d),
			 "the server refused the fabric "
			 "connection to %s port %u: %s",
			 c->host, c->fabric_port, detail ? detail : "");
	} else {
		snprintf(d, sizeof(d), "fabric connection to %s lost: %s",
			 who(c),
			 detail && *detail ? detail : srdma_strerror(status));
	}
	fabric_failed(c, status ? status : SRDMA_ECLOSED, d);
}

/* The keys that open a block, indexed by the writer byte in its header:
 * blocks we sealed open with our own key, the peer's with its key. */
static void block_keys(struct srdma_conn *c, struct srdma__aead *keys[2])
{
	keys[my_writer(c)] = &c->blk_own;
	keys[!my_writer(c)] = &c->blk_rx;
}

/* ---- message channel ---- */

static struct srdma_region *find_region(struct srdma_conn *c, uint32_t id)
{
	for (struct srdma_region *r = c->regions; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static struct remote_region *find_remote(struct srdma_conn *c, uint32_t id)
{
	for (struct remote_region *r = c->remote; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

/* Sends acknowledgements for verified writes, in order, as credits allow.
 * Like credit returns they may use the last credit. */
static void flush_acks(struct srdma_conn *c)
{
	uint32_t done = 0;

	while (done < c->nacks && c->tx_credits >= 1 && c->nsend_free) {
		uint8_t p[WRITE_ACK_LEN];
		srdma__be32(p, c->acks[done].region);
		srdma__be64(p + 4, c->acks[done].version);
		if (post_record(c, REC_WRITE_ACK, p, sizeof(p)) < 0)
			break;
		done++;
	}
	if (done) {
		memmove(c->acks, c->acks + done,
			(c->nacks - done) * sizeof(*c->acks));
		c->nacks -= done;
	}
}

static void unlink_op(struct srdma_conn *c, struct op *op)
{
	struct op **pp, *prev = NULL;

	for (pp = &c->ops_head; *pp; prev = *pp, pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			if (c->ops_tail == op)
				c->ops_tail = prev;
			op->next = NULL;
			return;
		}
}

static void complete_op(struct srdma_conn *c, struct op *op, int status);

/* The owner verified one of our writes: that write is done. */
static int handle_ack(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	uint32_t id;
	uint64_t ver;

	ENSURE(len == WRITE_ACK_LEN, SRDMA_EPROTO,
	       "write acknowledgement of %zu bytes", len);
	id = srdma__get_be32(p);
	ver = srdma__get_be64(p + 4);
	for (struct op *op = c->ops_head; op; op = op->next)
		if (op->kind == OP_WRITE && op->notice_sent &&
		    op->region == id && op->version == ver) {
			complete_op(c, op, 0);
			return 0;
		}
	return srdma__err(SRDMA_EPROTO,
			  "acknowledgement for a write we did not make "
			  "(region %u version %llu)",
			  id, (unsigned long long)ver);
}

/* The peer wrote blocks into one of our regions: verify them all. */
static int handle_notice(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	struct pending_verify *v;
	struct srdma_region *r;
	uint64_t off, n;
	uint32_t id;

	ENSURE(len == WRITE_NOTICE_LEN, SRDMA_EPROTO,
	       "write notice of %zu bytes (want %d)", len, WRITE_NOTICE_LEN);
	id = srdma__get_be32(p);
	off = srdma__get_be64(p + 4);
	n = srdma__get_be64(p + 12);
	r = find_region(c, id);
	ENSURE(r, SRDMA_EPROTO, "write notice for unknown region %u", id);
	ENSURE(r->access & SRDMA_ACCESS_REMOTE_WRITE, SRDMA_EPROTO,
	       "write notice for read-only region %u", id);
	ENSURE(off % SRDMA_BLK_PAYLOAD == 0 && n > 0 && off <= r->len &&
		       n <= r->len - off,
	       SRDMA_EPROTO, "write notice outside region %u", id);
	/* Credits bound the writer's notices in flight to our window. */
	ENSURE(c->nverify < c->depth, SRDMA_EPROTO,
	       "the peer has more unacknowledged writes than its window");
	v = &c->verifies[c->nverify++];
	v->region = id;
	v->off = off;
	v->len = n;
	v->version = srdma__get_be64(p + 20);
	v->next = off / SRDMA_BLK_PAYLOAD;
	v->end = v->next + (n + SRDMA_BLK_PAYLOAD - 1) / SRDMA_BLK_PAYLOAD;
	c->ctx->work_pending = true;
	return 0;
}

enum { VERIFY_SLICE = 32 }; /* blocks per connection per loop iteration */

/*
 * Verifies the next slice of the oldest announced write: every block must
 * open, be sealed by the peer, and carry the announced version. When the
 * last block checks out, the application hears of the write and the
 * writer gets its acknowledgement (it completes its write only then, so it
 * never overwrites blocks we have not verified).
 */
static int verify_slice(struct srdma_conn *c)
{
	struct pending_verify *v = &c->verifies[0];
	struct srdma_region *r = find_region(c, v->region);
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	uint8_t scratch[SRDMA_BLK_PAYLOAD];
	int peer = !my_writer(c);
	uint64_t stop;

	block_keys(c, keys);
	stop = v->end - v->next > VERIFY_SLICE ? v->next + VERIFY_SLICE
					       : v->end;
	for (; r && v->next < stop; v->next++) {
		uint64_t b = v->next;
		int rc;
		if (c->protect == SRDMA_PROTECT_NONE) {
			/* Nothing to authenticate in mode none: check the
			 * header only, without copying the payload out. */
			const uint8_t *h = r->mem + b * r->stride;
			bi.version = srdma__get_be64(h);
			bi.writer = h[12];
			rc = srdma__get_be32(h + 8) <= SRDMA_BLK_PAYLOAD
				     ? 0
				     : SRDMA_EPROTO;
		} else {
			rc = srdma__block_open(keys, v->region, b,
					       r->mem + b * r->stride, false,
					       scratch, &bi);
		}
		if (rc < 0) {
			OPENSSL_cleanse(scratch, sizeof(scratch));
			return srdma__err(SRDMA_EINTEGRITY,
					  "block %llu of region %u failed "
					  "verification after the peer's write",
					  (unsigned long long)b, v->region);
		}
		ENSURE(bi.writer == peer && bi.version == v->version,
		       SRDMA_EINTEGRITY,
		       "block %llu of region %u holds version %llu, the "
		       "notice says %llu",
		       (unsigned long long)b, v->region,
		       (unsigned long long)bi.version,
		       (unsigned long long)v->version);
		r->newest[b] = v->version;
	}
	OPENSSL_cleanse(scratch, sizeof(scratch));
	if (r && v->next < v->end)
		return 0;
	/* Done (or the region was destroyed meanwhile: nothing to report). */
	if (r) {
		struct qev *e;
		GUARD(srdma__queue_event(c->ctx, SRDMA_EV_PEER_WRITE, 0, c,
					 c->user, "", &e));
		e->ev.region = v->region;
		e->ev.offset = v->off;
		e->ev.len = v->len;
	}
	ENSURE(c->nacks < c->depth, SRDMA_EPROTO,
	       "too many unacknowledged writes");
	c->acks[c->nacks].region = v->region;
	c->acks[c->nacks].version = v->version;
	c->nacks++;
	memmove(c->verifies, c->verifies + 1,
		(c->nverify - 1) * sizeof(*c->verifies));
	c->nverify--;
	flush_acks(c);
	return 0;
}

bool srdma__conn_work(struct srdma_ctx *ctx)
{
	bool more = false;

	for (struct srdma_conn *c = ctx->conns; c; c = c->next) {
		if (!c->nverify || c->state != ST_ESTABLISHED)
			continue;
		int rc = verify_slice(c);
		if (rc < 0)
			srdma__conn_fail(c, rc, srdma_error_detail());
		else if (c->nverify)
			more = true;
	}
	return more;
}

static void handle_recv(struct srdma_conn *c, uint32_t slot, uint32_t len)
{
	struct srdma__record rec;
	int rc;

	if (c->state != ST_ESTABLISHED && c->state != ST_CLOSING)
		return;
	rc = srdma__record_open(&c->rx, recv_slot(c, slot), len, &rec);
	if (rc < 0) {
		char d[300];
		snprintf(d, sizeof(d),
			 "a message from %s failed "
			 "verification: %s",
			 who(c), srdma_error_detail());
		srdma__conn_fail(c, rc, d);
		return;
	}
	c->tx_credits += rec.credits;
	if (c->tx_credits > c->depth) {
		srdma__conn_fail(c, SRDMA_EPROTO,
				 "the peer returned more credits than it had");
		return;
	}
	switch (rec.type) {
	case REC_DATA: {
		struct qev *e;
		if (srdma__queue_event(c->ctx, SRDMA_EV_RECV, 0, c, c->user, "",
				       &e) < 0) {
			srdma__conn_fail(c, SRDMA_ENOMEM, srdma_error_detail());
			return;
		}
		e->ev.data = rec.payload;
		e->ev.len = rec.len;
		e->recv_slot = (int)slot;
		break;
	}
	case REC_WRITE_NOTICE:
		rc = handle_notice(c, rec.payload, rec.len);
		if (rc < 0) {
			srdma__conn_fail(c, rc, srdma_error_detail());
			return;
		}
		srdma__repost_slot(c, (int)slot);
		break;
	case REC_WRITE_ACK:
		rc = handle_ack(c, rec.payload, rec.len);
		if (rc < 0) {
			srdma__conn_fail(c, rc, srdma_error_detail());
			return;
		}
		srdma__repost_slot(c, (int)slot);
		break;
	case REC_CREDIT:
		srdma__repost_slot(c, (int)slot);
		break;
	default:
		srdma__conn_fail(c, SRDMA_EPROTO, "unknown record type");
		return;
	}
	progress_ops(c);
	maybe_send_credit(c);
}

/* ---- write / read operations ---- */

static int ensure_staging(struct srdma_conn *c)
{
	size_t stride = srdma__block_stride(c->protect);
	size_t chunk = stride * CHUNK_BLOCKS;

	if (c->staging)
		return 0;
	c->staging_len = chunk * NCHUNKS;
	c->staging = map_buf(c->staging_len);
	if (!c->staging)
		return srdma__err(SRDMA_ENOMEM, "out of memory for staging");
	GUARD(c->ctx->tp->ops->mr_reg(c->tc, c->staging, c->staging_len,
				      SRDMA_TP_LOCAL, &c->staging_mr));
	c->chunk_blocks = CHUNK_BLOCKS;
	for (int i = 0; i < NCHUNKS; i++)
		c->chunks[i].mem = c->staging + (size_t)i * chunk;
	return 0;
}

static void complete_op(struct srdma_conn *c, struct op *op, int status)
{
	unlink_op(c, op);
	queue(c,
	      op->kind == OP_WRITE ? SRDMA_EV_WRITE_DONE : SRDMA_EV_READ_DONE,
	      status, op->user, "");
	free(op);
}

static int start_chunk(struct srdma_conn *c, struct op *op, int ci)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct remote_region *rr = find_remote(c, op->region);
	struct chunk *ch = &c->chunks[ci];
	uint64_t left = op->first_block + op->nblocks - op->next_block;
	uint64_t n = left < c->chunk_blocks ? left : c->chunk_blocks;
	uint64_t b0 = op->next_block;
	size_t stride = srdma__block_stride(c->protect);

	ENSURE(rr, SRDMA_ENOENT, "region %u was revoked by the peer",
	       op->region);
	if (op->kind == OP_WRITE) {
		for (uint64_t i = 0; i < n; i++) {
			uint64_t rel =
				(b0 + i - op->first_block) * SRDMA_BLK_PAYLOAD;
			size_t l = op->len - rel < SRDMA_BLK_PAYLOAD
					   ? op->len - rel
					   : SRDMA_BLK_PAYLOAD;
			GUARD(srdma__block_seal(
				&c->blk_tx, op->region, b0 + i, op->version,
				(uint8_t)my_writer(c), op->buf + rel, l,
				ch->mem + i * stride));
		}
		if (tamper("write"))
			ch->mem[SRDMA_BLK_HDR_LEN] ^= 0x01;
		GUARD(ops->post_write(c->tc, c->staging_mr, ch->mem, n * stride,
				      rr->addr + b0 * stride, rr->key,
				      WR_ID(WR_CHUNK, ci), 0));
	} else {
		GUARD(ops->post_read(c->tc, c->staging_mr, ch->mem, n * stride,
				     rr->addr + b0 * stride, rr->key,
				     WR_ID(WR_CHUNK, ci), 0));
	}
	ch->busy = true;
	ch->op = op;
	ch->first_block = b0;
	ch->nblocks = n;
	op->next_block += n;
	return 0;
}

static int send_notice(struct srdma_conn *c, struct op *op)
{
	uint8_t p[WRITE_NOTICE_LEN];

	srdma__be32(p, op->region);
	srdma__be64(p + 4, op->offset);
	srdma__be64(p + 12, op->len);
	srdma__be64(p + 20, op->version);
	/* Keep one credit back for credit returns. */
	ENSURE(c->tx_credits > 1, SRDMA_EAGAIN, "send window full");
	return post_record(c, REC_WRITE_NOTICE, p, sizeof(p));
}

static bool overlaps(const struct op *a, const struct op *b)
{
	return a->region == b->region &&
	       a->first_block < b->first_block + b->nblocks &&
	       b->first_block < a->first_block + a->nblocks;
}

/*
 * An op may not start while an earlier op on overlapping blocks is still
 * open when either is a write: a read must not see a write half placed,
 * and a write must not overwrite blocks whose previous write the owner has
 * not verified and acknowledged yet.
 */
static bool blocked(const struct srdma_conn *c, const struct op *op)
{
	for (const struct op *e = c->ops_head; e && e != op; e = e->next)
		if ((e->kind == OP_WRITE || op->kind == OP_WRITE) &&
		    overlaps(e, op))
			return true;
	return false;
}

/*
 * Moves every op forward as far as it can: ops take staging chunks in
 * order; a write whose chunks all completed sends its notice (in order)
 * and completes when the owner acknowledges it; a read completes when its
 * last chunk has been verified.
 */
static void progress_ops(struct srdma_conn *c)
{
	struct op *op, *next;
	bool issuing = true, noticing = true;
	int rc;

	if (c->state != ST_ESTABLISHED || !c->ops_head)
		return;
	rc = ensure_staging(c);
	if (rc < 0)
		goto fail;
	for (op = c->ops_head; op && c->state == ST_ESTABLISHED; op = next) {
		next = op->next;
		if (issuing && op->next_block < op->first_block + op->nblocks) {
			if (blocked(c, op)) {
				issuing = false;
			} else {
				for (int i = 0; i < NCHUNKS; i++) {
					if (op->next_block >=
					    op->first_block + op->nblocks)
						break;
					if (c->chunks[i].busy)
						continue;
					rc = start_chunk(c, op, i);
					if (rc == SRDMA_EAGAIN)
						break;
					if (rc < 0)
						goto fail;
				}
				if (op->next_block <
				    op->first_block + op->nblocks)
					issuing = false; /* keep order */
			}
		}
		if (op->done_blocks != op->nblocks)
			continue;
		if (op->kind == OP_READ) {
			complete_op(c, op, 0);
		} else if (!op->notice_sent && noticing) {
			rc = send_notice(c, op);
			if (rc == SRDMA_EAGAIN) {
				noticing = false; /* notices go in order */
				continue;
			}
			if (rc < 0)
				goto fail;
			op->notice_sent = true;
		}
	}
	return;
fail:
	srdma__conn_fail(c, rc, srdma_error_detail());
}

static int open_read_chunk(struct srdma_conn *c, struct op *op,
			   struct chunk *ch)
{
	struct remote_region *rr = find_remote(c, op->region);
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	uint8_t tmp[SRDMA_BLK_PAYLOAD];
	size_t stride = srdma__block_stride(c->protect);

	ENSURE(rr, SRDMA_ENOENT, "region %u was revoked during a read",
	       op->region);
	block_keys(c, keys);
	if (tamper("read"))
		ch->mem[SRDMA_BLK_HDR_LEN] ^= 0x01;
	for (uint64_t i = 0; i < ch->nblocks; i++) {
		uint64_t b = ch->first_block + i;
		uint64_t rel = (b - op->first_block) * SRDMA_BLK_PAYLOAD;
		size_t l = op->len - rel < SRDMA_BLK_PAYLOAD
				   ? op->len - rel
				   : SRDMA_BLK_PAYLOAD;
		uint8_t *dst = l == SRDMA_BLK_PAYLOAD ? op->buf + rel : tmp;
		int rc =
			srdma__block_open(keys, op->region, b,
					  ch->mem + i * stride, true, dst, &bi);
		if (rc < 0)
			return srdma__err(SRDMA_EINTEGRITY,
					  "block %llu of region %u read from "
					  "the peer failed verification",
					  (unsigned long long)b, op->region);
		/* Rollback: never older than what we wrote ourselves. */
		if (bi.writer == my_writer(c) && bi.version < rr->known[b])
			return srdma__err(SRDMA_EINTEGRITY,
					  "block %llu of region %u is stale "
					  "(version %llu, we wrote %llu)",
					  (unsigned long long)b, op->region,
					  (unsigned long long)bi.version,
					  (unsigned long long)rr->known[b]);
		if (dst == tmp)
			memcpy(op->buf + rel, tmp, l);
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

static void handle_chunk(struct srdma_conn *c, uint32_t ci, int status)
{
	struct chunk *ch;
	struct op *op;
	int rc;

	if (ci >= NCHUNKS)
		return;
	ch = &c->chunks[ci];
	op = ch->op;
	ch->busy = false;
	ch->op = NULL;
	if (c->state != ST_ESTABLISHED || !op)
		return;
	if (status < 0) {
		char d[300];
		snprintf(d, sizeof(d), "RDMA %s on region %u of %s failed: %s",
			 op->kind == OP_WRITE ? "write" : "read", op->region,
			 who(c), srdma_strerror(status));
		fabric_failed(c, status, d);
		return;
	}
	if (op->kind == OP_READ) {
		rc = open_read_chunk(c, op, ch);
		if (rc < 0) {
			srdma__conn_fail(c, rc, srdma_error_detail());
			return;
		}
	} else {
		struct remote_region *rr = find_remote(c, op->region);
		for (uint64_t i = 0; rr && i < ch->nblocks; i++)
			rr->known[ch->first_block + i] = op->version;
	}
	op->done_blocks += ch->nblocks;
	progress_ops(c);
}

static void on_tp_cqe(void *arg, const struct srdma__tp_cqe *cqe)
{
	struct srdma_conn *c = arg;
	uint32_t idx = WR_IDX(cqe->wr_id);

	/* A backend may hand us the peer's first message before its own
	 * "connected" event (libfabric reads the CQ before the EQ): a
	 * successful completion proves the connection is up. */
	if (c->state == ST_FABRIC && cqe->status == 0)
		on_tp_established(c);
	switch (WR_KIND(cqe->wr_id)) {
	case WR_RECV:
		if (cqe->status < 0) {
			if (c->state == ST_ESTABLISHED)
				fabric_failed(c, cqe->status,
					      "the fabric connection failed (a "
					      "receive was cancelled)");
			return;
		}
		if (idx < c->ring_depth)
			handle_recv(c, idx, cqe->len);
		break;
	case WR_SEND:
		if (idx < c->ring_depth)
			c->send_free[c->nsend_free++] = idx;
		if (cqe->status < 0) {
			if (c->state == ST_ESTABLISHED)
				fabric_failed(c, cqe->status,
					      "the fabric connection failed (a "
					      "send did not complete)");
			return;
		}
		progress_ops(c);
		maybe_send_credit(c);
		break;
	case WR_CHUNK:
		handle_chunk(c, idx, cqe->status);
		break;
	default:
		break;
	}
}

/* ---- control messages ---- */

static bool transport_ok(uint8_t t)
{
	return t == SRDMA_TRANSPORT_VERBS || t == SRDMA_TRANSPORT_OFI;
}

static int server_on_hello(struct srdma_conn *c,
			   const struct srdma__msg_hello *h)
{
	struct srdma_ctx *ctx = c->ctx;

	ENSURE(h->version == SRDMA_WIRE_VERSION, SRDMA_EVERSION,
	       "client speaks protocol version %u, we speak %u", h->version,
	       SRDMA_WIRE_VERSION);
	ENSURE(transport_ok(h->transport) && h->transport == ctx->tp->kind,
	       SRDMA_ENOTSUP,
	       "the client asked for transport %s but this server runs %s",
	       srdma_transport_name((enum srdma_transport)h->transport),
	       srdma_transport_name(ctx->tp->kind));
	ENSURE(h->protect >= ctx->cfg.protect, SRDMA_EPOLICY,
	       "the client asked for protection '%s' but this server "
	       "requires at least '%s'",
	       srdma_protect_name((enum srdma_protect)h->protect),
	       srdma_protect_name(ctx->cfg.protect));
	ENSURE(h->max_msg >= 64 && h->queue_depth >= 4, SRDMA_EPROTO,
	       "client HELLO has max_msg %u / queue depth %u", h->max_msg,
	       h->queue_depth);
	c->protect = (enum srdma_protect)h->protect;
	c->cipher = c->protect == SRDMA_PROTECT_NONE
			    ? SRDMA_CIPHER_NONE
			    : (h->cipher == SRDMA_CIPHER_CHACHA20_POLY1305
				       ? SRDMA_CIPHER_CHACHA20_POLY1305
				       : SRDMA_CIPHER_AES_256_GCM);
	if (h->max_msg < c->max_msg)
		c->max_msg = h->max_msg;
	if (h->queue_depth < c->depth)
		c->depth = h->queue_depth;
	send_hello(c);
	GUARD(setup_keys(c));
	c->state = ST_PARAMS;
	return 0;
}

static int client_on_hello(struct srdma_conn *c,
			   const struct srdma__msg_hello *h)
{
	int rc;

	ENSURE(h->version == SRDMA_WIRE_VERSION, SRDMA_EVERSION,
	       "server speaks protocol version %u, we speak %u", h->version,
	       SRDMA_WIRE_VERSION);
	ENSURE(h->transport == c->ctx->tp->kind && h->protect == c->protect,
	       SRDMA_EPROTO, "server HELLO changed transport or mode");
	ENSURE(h->max_msg <= c->max_msg && h->queue_depth <= c->depth &&
		       h->max_msg >= 64 && h->queue_depth >= 4,
	       SRDMA_EPROTO, "server HELLO raised limits");
	c->cipher = (enum srdma__cipher)h->cipher;
	ENSURE((c->protect == SRDMA_PROTECT_NONE) ==
		       (c->cipher == SRDMA_CIPHER_NONE),
	       SRDMA_EPROTO, "server HELLO chose an inconsistent cipher");
	phase(c, "server HELLO");
	c->max_msg = h->max_msg;
	c->depth = h->queue_depth;
	c->fabric_port = h->fabric_port;
	ENSURE(c->fabric_port != 0, SRDMA_EPROTO,
	       "server HELLO names no fabric port");
	fport_remember(c);
	GUARD(setup_keys(c));
	if (c->params_early) {
		/* Nothing was sent on the fabric yet: the server's depth
		 * bounds what we may send. */
		c->tx_credits = c->depth;
		c->state = ST_PARAMS;
		return 0;
	}
	if (c->early_resolve &&
	    (c->early_failed || c->early_port != c->fabric_port))
		drop_early(c);
	if (c->early_resolve) {
		c->state = ST_PREPARE;
		if (c->early_ready)
			client_prepared(c);
		/* else on_tp_prepared follows */
		return 0;
	}
	GUARD(create_tp_conn(c));
	c->state = ST_PREPARE;
	/* verbs resolves address and route asynchronously and learns its
	 * QPN only then; PARAMS (which carry the QPN) wait for it. */
	rc = c->ctx->tp->ops->resolve(c->tc, c->host, c->fabric_port,
				      (int)c->ctx->cfg.handshake_timeout_ms);
	if (rc == SRDMA_EAGAIN)
		return 0;
	GUARD(rc);
	client_prepared(c);
	return 0;
}

static int server_on_params(struct srdma_conn *c,
			    const struct srdma__msg_params *p)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct srdma__msg m = {0};
	uint32_t ttl;
	int rc;

	ENSURE(c->listener, SRDMA_ECLOSED, "the listener was closed");
	c->remote_psn = p->psn & 0xffffff;
	c->remote_qpn = p->qpn;
	rc = srdma__respool_take(c);
	GUARD(rc);
	if (rc == 0)
		GUARD(create_tp_conn(c));
	GUARD(setup_rings(c));
	ops->set_psn(c->tc, c->local_psn, c->remote_psn);
	ttl = TOKEN_TTL_MS;
	GUARD(srdma__token_new(&c->token, srdma__now_ms(), ttl));
	c->session_id = c->token.session_id;
	fill_params_common(c, &m);
	m.u.params.session_id = c->session_id;
	memcpy(m.u.params.token, c->token.secret, sizeof(m.u.params.token));
	m.u.params.token_ttl_ms = ttl;
	m.u.params.fabric_port = c->listener->fabric_port;
	GUARD(ctrl_send_msg(c, &m));
	OPENSSL_cleanse(m.u.params.token, sizeof(m.u.params.token));
	c->state = ST_FABRIC;
	return 0;
}

static int client_on_params(struct srdma_conn *c,
			    const struct srdma__msg_params *p)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct srdma__connect_pdata pd = {0};
	uint8_t buf[SRDMA_WIRE_CONNECT_PDATA_LEN];
	int rc;

	ENSURE(p->session_id != 0, SRDMA_EPROTO,
	       "server PARAMS lack a session id");
	phase(c, "server PARAMS");
	c->session_id = p->session_id;
	c->remote_psn = p->psn & 0xffffff;
	ops->set_psn(c->tc, c->local_psn, c->remote_psn);
	if (c->params_early) {
		ENSURE(p->fabric_port != 0, SRDMA_EPROTO,
		       "server PARAMS name no fabric port");
		ops->set_port(c->tc, p->fabric_port);
	}
	pd.version = SRDMA_WIRE_VERSION;
	pd.session_id = p->session_id;
	pd.initiator_id = ops->local_qpn(c->tc);
	rc = srdma__token_mac(p->token, p->session_id, pd.initiator_id, pd.mac);
	if (rc == 0)
		rc = srdma__pdata_encode(&pd, buf);
	OPENSSL_cleanse(&pd, sizeof(pd));
	GUARD(rc);
#ifdef SRDMA_TAMPER
	/* Test builds: keep the private data so a test can replay it. */
	if (getenv("SRDMA_TEST_SAVE_PDATA")) {
		FILE *f = fopen(getenv("SRDMA_TEST_SAVE_PDATA"), "wb");
		if (f) {
			fwrite(buf, 1, sizeof(buf), f);
			fclose(f);
		}
	}
#endif
	GUARD(ops->connect(c->tc, buf, sizeof(buf)));
	c->state = ST_FABRIC;
	return 0;
}

static int on_region_msg(struct srdma_conn *c,
			 const struct srdma__msg_region *g)
{
	struct remote_region *rr;
	uint64_t nb;
	uint32_t stride = (uint32_t)srdma__block_stride(c->protect);

	ENSURE(g->block_size == SRDMA_BLK_PAYLOAD && g->block_stride == stride,
	       SRDMA_EPROTO, "region grant with block %u/%u, want %u/%u",
	       g->block_size, g->block_stride, SRDMA_BLK_PAYLOAD, stride);
	ENSURE(g->len > 0 && g->len % SRDMA_BLK_PAYLOAD == 0 &&
		       g->len <= (1ull << 40),
	       SRDMA_EPROTO, "region grant of %llu bytes",
	       (unsigned long long)g->len);
	ENSURE(!find_remote(c, g->region_id), SRDMA_EPROTO,
	       "region %u granted twice", g->region_id);
	nb = g->len / SRDMA_BLK_PAYLOAD;
	rr = calloc(1, sizeof(*rr));
	ENSURE(rr, SRDMA_ENOMEM, "out of memory");
	rr->known = calloc(nb, sizeof(uint64_t));
	if (!rr->known) {
		free(rr);
		return srdma__err(SRDMA_ENOMEM, "out of memory");
	}
	rr->id = g->region_id;
	rr->access = g->access;
	rr->len = g->len;
	rr->addr = g->addr;
	rr->key = g->key;
	rr->stride = stride;
	rr->next = c->remote;
	c->remote = rr;
	{
		struct qev *e;
		GUARD(srdma__queue_event(c->ctx, SRDMA_EV_REGION, 0, c, c->user,
					 "", &e));
		e->ev.region = rr->id;
		e->ev.len = rr->len;
	}
	return 0;
}

static void on_revoke(struct srdma_conn *c, uint32_t id)
{
	struct remote_region **pp;

	for (pp = &c->remote; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct remote_region *rr = *pp;
			*pp = rr->next;
			free(rr->known);
			free(rr);
			return;
		}
}

static void start_disconnect(struct srdma_conn *c)
{
	if (c->tc && !c->fabric_closed) {
		int rc = c->ctx->tp->ops->disconnect(c->tc);
		if (rc < 0)
			c->fabric_closed = true;
	}
	maybe_finish_close(c);
}

static void on_goodbye(struct srdma_conn *c)
{
	c->goodbye_rcvd = true;
	if (c->state == ST_ESTABLISHED) {
		c->state = ST_CLOSING;
		c->close_deadline_ms = srdma__now_ms() + CLOSE_GRACE_MS;
		finish_ops(c, SRDMA_ECLOSED);
	}
	if (c->state != ST_CLOSING) {
		srdma__conn_fail(c, SRDMA_ECLOSED,
				 "the peer said goodbye during set-up");
		return;
	}
	if (!c->goodbye_sent) {
		struct srdma__msg m = {.type = SRDMA_MSG_GOODBYE};
		IGNORE_RESULT(ctrl_send_msg(c, &m));
		c->goodbye_sent = true;
	}
	start_disconnect(c);
}

static int handle_msg(struct srdma_conn *c, const struct srdma__msg *m)
{
	switch (m->type) {
	case SRDMA_MSG_HELLO:
		ENSURE(c->state == ST_HELLO, SRDMA_EPROTO,
		       "unexpected HELLO in state %s", state_name(c->state));
		return c->server ? server_on_hello(c, &m->u.hello)
				 : client_on_hello(c, &m->u.hello);
	case SRDMA_MSG_PARAMS:
		ENSURE(c->state == ST_PARAMS, SRDMA_EPROTO,
		       "unexpected PARAMS in state %s", state_name(c->state));
		return c->server ? server_on_params(c, &m->u.params)
				 : client_on_params(c, &m->u.params);
	case SRDMA_MSG_REGION:
		if (c->state == ST_CLOSING)
			return 0; /* crossed our goodbye: moot */
		if (c->state == ST_FABRIC && !c->server) {
			/* The server is up before our fabric event arrived:
			 * hold the grant until we are established too. */
			ENSURE(c->nearly < 4, SRDMA_EPROTO,
			       "too many region grants before the connection "
			       "was established");
			c->early_grants[c->nearly++] = m->u.region;
			return 0;
		}
		ENSURE(c->state == ST_ESTABLISHED && !c->server, SRDMA_EPROTO,
		       "unexpected REGION grant in state %s",
		       state_name(c->state));
		return on_region_msg(c, &m->u.region);
	case SRDMA_MSG_REGION_REVOKE:
		on_revoke(c, m->u.revoke.region_id);
		return 0;
	case SRDMA_MSG_GOODBYE:
		on_goodbye(c);
		return 0;
	case SRDMA_MSG_ERROR: {
		char d[300];
		int code = m->u.error.code;
		if (code >= 0 || code < SRDMA_ERROR_MIN)
			code = SRDMA_EPEER;
		snprintf(d, sizeof(d), "%s said: %s",
			 c->server ? "client" : "server", m->u.error.text);
		c->goodbye_rcvd = true;
		/* Don't echo an ERROR back. */
		struct srdma__ctrl *keep = c->ctrl;
		c->ctrl = NULL;
		srdma__conn_fail(c, code, d);
		c->ctrl = keep;
		return 0;
	}
	default:
		return srdma__err(SRDMA_EPROTO, "unknown control message %u",
				  m->type);
	}
}

static void read_ctrl(struct srdma_conn *c)
{
	for (;;) {
		int n, fl;
		struct srdma__msg m;

		if (c->state >= ST_CLOSED)
			return;
		/* Parse whole frames first. */
		while (c->cin_len >= SRDMA_WIRE_HDR_LEN) {
			fl = srdma__msg_frame_len(c->cin, c->cin_len);
			if (fl < 0) {
				srdma__conn_fail(c, fl, srdma_error_detail());
				return;
			}
			if (c->cin_len < (size_t)fl)
				break;
			n = srdma__msg_decode(c->cin, (size_t)fl, &m);
			if (n == 0)
				n = handle_msg(c, &m);
			if (m.type == SRDMA_MSG_PARAMS)
				OPENSSL_cleanse(&m, sizeof(m));
			memmove(c->cin, c->cin + fl, c->cin_len - (size_t)fl);
			c->cin_len -= (size_t)fl;
			if (n < 0) {
				srdma__conn_fail(c, n, srdma_error_detail());
				return;
			}
			if (c->state >= ST_CLOSED)
				return;
		}
		n = srdma__ctrl_recv(c->ctrl, c->cin + c->cin_len,
				     sizeof(c->cin) - c->cin_len);
		if (n == SRDMA_EAGAIN)
			return;
		if (n < 0) {
			char d[300];
			if (c->state == ST_CLOSING && c->goodbye_rcvd) {
				maybe_finish_close(c);
				return;
			}
			if (n != SRDMA_ECLOSED) {
				/* e.g. the server rejected our certificate:
				 * TLS 1.3 reports it on the first read. */
				snprintf(d, sizeof(d), "%s",
					 srdma_error_detail());
			} else if (!c->server && c->state == ST_HELLO) {
				snprintf(d, sizeof(d),
					 "the server closed the connection "
					 "right "
					 "after TLS: is this client's identity "
					 "on "
					 "its allow-list?");
				n = SRDMA_ENOT_ALLOWED;
			} else {
				snprintf(d, sizeof(d),
					 "%s closed the control connection%s",
					 c->server ? "the client"
						   : "the server",
					 c->state == ST_ESTABLISHED
						 ? " (did it exit or crash?)"
						 : "");
			}
			srdma__conn_fail(c, n, d);
			return;
		}
		c->cin_len += (size_t)n;
	}
}

static void tls_done(struct srdma_conn *c)
{
	struct srdma_ctx *ctx = c->ctx;

	phase(c, "TLS done");
	srdma__log(lg(c), SRDMA_LOG_DEBUG, "TLS 1.3 with %s complete%s", who(c),
		   srdma__ctrl_resumed(c->ctrl) ? " (resumed)" : "");
	/* A refused ticket falls back to a full handshake: say why, once. */
	if (srdma__ctrl_resumption(c->ctrl) == SRDMA__RESUME_REFUSED)
		srdma__log(lg(c), SRDMA_LOG_INFO,
			   "full TLS handshake with %s: %s", who(c),
			   srdma__ctrl_resume_note(c->ctrl));
	if (c->server && ctx->nclients > ctx->cfg.max_clients) {
		char d[200];
		c->state = ST_HELLO; /* authenticated: tell it why */
		snprintf(d, sizeof(d),
			 "the server is at its limit of %u clients; try "
			 "again later",
			 ctx->cfg.max_clients);
		srdma__conn_fail(c, SRDMA_ELIMIT, d);
		return;
	}
	c->state = ST_HELLO;
	if (c->server)
		return;
	send_hello(c);
	if (c->params_early && c->state == ST_HELLO) {
		if (send_client_params(c) < 0) {
			srdma__conn_fail(c, SRDMA_ECLOSED,
					 srdma_error_detail());
			return;
		}
		phase(c, "PARAMS sent with HELLO");
	}
}

static void on_ctrl_fd(void *arg, uint32_t events)
{
	struct srdma_conn *c = arg;
	int rc;

	if (c->state >= ST_CLOSED)
		return;
	if (c->state == ST_TCP_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			char d[300];
			snprintf(d, sizeof(d), "cannot connect to %s:%u: %s%s",
				 c->host, c->port, strerror(err),
				 err == ECONNREFUSED
					 ? " (is `srdma serve` running there?)"
					 : "");
			srdma__conn_fail(c,
					 err == ECONNREFUSED
						 ? SRDMA_ECONNREFUSED
						 : SRDMA_EUNREACHABLE,
					 d);
			return;
		}
		{
			/* Tickets are cached per server: resumption needs the
			 * same name, host and port. */
			char key[300];
			snprintf(key, sizeof(key), "%s:%u", c->host, c->port);
			rc = srdma__ctrl_create_client(
				c->ctx->tls, c->fd,
				c->ctx->cfg.peer_name ? c->ctx->cfg.peer_name
						      : c->host,
				key, &c->ctrl);
		}
		if (rc < 0) {
			srdma__conn_fail(c, rc, srdma_error_detail());
			return;
		}
		c->state = ST_TLS;
	}
	if (c->state == ST_TLS) {
		rc = srdma__ctrl_handshake(c->ctrl);
		if (rc == SRDMA_EAGAIN) {
			/* The ClientHello is out: use the wait. */
			if (prepare_early(c) < 0 || resolve_early(c) < 0) {
				srdma__conn_fail(c, SRDMA_EFABRIC,
						 srdma_error_detail());
				return;
			}
			update_interest(c);
			return;
		}
		if (rc < 0) {
			char d[400];
			snprintf(d, sizeof(d), "%s", srdma_error_detail());
			srdma__conn_fail(c, rc, d);
			return;
		}
		tls_done(c);
	}
	if (c->ctrl && (events & EPOLLOUT)) {
		rc = srdma__ctrl_flush(c->ctrl);
		if (rc < 0 && rc != SRDMA_EAGAIN) {
			srdma__conn_fail(c, SRDMA_ECLOSED,
					 "the control connection broke");
			return;
		}
	}
	if (c->state >= ST_HELLO)
		read_ctrl(c);
	update_interest(c);
}

/* ---- server: connect requests on the fabric listener ---- */

void srdma__on_connreq(void *arg, struct srdma__tp_connreq *req)
{
	struct srdma_listener *l = arg;
	struct srdma_ctx *ctx = l->ctx;
	const struct srdma__tp_ops *ops = ctx->tp->ops;
	struct srdma__connect_pdata pd;
	struct srdma_conn *c = NULL;
	char d[300];
	int rc;

	rc = srdma__pdata_decode(req->pdata, req->pdata_len, &pd);
	if (rc == 0) {
		for (c = ctx->conns; c; c = c->next)
			if (c->server && c->state == ST_FABRIC &&
			    c->session_id == pd.session_id && !c->token.used)
				break;
		if (!c)
			rc = srdma__err(SRDMA_ETOKEN,
					"unknown or used session");
	}
	if (rc == 0)
		rc = srdma__token_check(&c->token, pd.session_id,
					pd.initiator_id, pd.mac,
					srdma__now_ms());
	if (rc == 0 && ctx->tp->kind == SRDMA_TRANSPORT_VERBS &&
	    (pd.initiator_id != c->remote_qpn ||
	     req->initiator_qpn != c->remote_qpn))
		rc = srdma__err(SRDMA_ETOKEN,
				"the connecting QPN does not match the one "
				"agreed over TLS");
	if (rc < 0) {
		snprintf(d, sizeof(d), "fabric connect from %s rejected: %s",
			 req->peer, srdma_error_detail());
		IGNORE_RESULT(ops->reject(l->tpl, req, NULL, 0));
		srdma__log(&ctx->log, SRDMA_LOG_INFO, "%s", d);
		if (c)
			srdma__conn_fail(c, SRDMA_ETOKEN, d);
		else
			IGNORE_RESULT(srdma__queue_event(ctx, SRDMA_EV_REJECTED,
							 SRDMA_ETOKEN, NULL,
							 NULL, d, NULL));
		return;
	}
	rc = ops->accept(c->tc, req, NULL, 0);
	if (rc == 0) {
		log_psn_check(c);
		rc = post_all_recvs(c);
	}
	if (rc < 0)
		srdma__conn_fail(c, rc, srdma_error_detail());
}

int srdma__conn_new_server(struct srdma_listener *l, int fd, const char *peer)
{
	struct srdma_ctx *ctx = l->ctx;
	struct srdma_conn *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		close(fd);
		return srdma__err(SRDMA_ENOMEM, "out of memory");
	}
	c->ctx = ctx;
	c->listener = l;
	c->server = true;
	c->fd = fd;
	c->state = ST_TLS;
	c->max_msg = ctx->cfg.max_msg;
	c->depth = ctx->cfg.queue_depth;
	c->deadline_ms = srdma__now_ms() + ctx->cfg.handshake_timeout_ms;
	c->t_start_ns = srdma__now_ns();
	snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", peer);
	rc = srdma__random(&c->local_psn, sizeof(c->local_psn));
	c->local_psn &= 0xffffff;
	if (rc == 0)
		rc = srdma__ctrl_create(ctx->tls, fd, NULL, &c->ctrl);
	if (rc < 0) {
		close(fd);
		free(c);
		return rc;
	}
	rc = srdma__loop_add(ctx->loop, fd, EPOLLIN, on_ctrl_fd, NULL, c,
			     &c->fd_reg);
	if (rc < 0) {
		srdma__ctrl_destroy(c->ctrl);
		free(c);
		return rc;
	}
	c->counted_hs = true;
	ctx->handshakes++;
	ctx->nclients++;
	c->next = ctx->conns;
	if (ctx->conns)
		ctx->conns->prev = c;
	ctx->conns = c;
	return 0;
}

/* ---- teardown ---- */

static void teardown(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;

	srdma__loop_del(c->fd_reg);
	c->fd_reg = NULL;
	if (c->ctrl) {
		int lfd = -1;

		srdma__ctrl_shutdown(c->ctrl);
		/* A failed peer still gets to read why: close with a FIN after
		 * our alert or ERROR, never an RST (linger.c). */
		if (c->state == ST_FAILED)
			lfd = dup(srdma__ctrl_fd(c->ctrl));
		srdma__ctrl_destroy(c->ctrl); /* closes fd */
		srdma__linger_start(c->ctx, lfd);
		c->ctrl = NULL;
		c->fd = -1;
	} else if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	for (struct srdma_region *r = c->regions; r; r = r->next) {
		ops->mr_dereg(r->mr);
		r->mr = NULL;
	}
	ops->mr_dereg(c->staging_mr);
	c->staging_mr = NULL;
	if (srdma__respool_give(c)) {
		c->tc = NULL;
		c->ring = NULL;
		c->ring_mr = NULL;
	}
	ops->mr_dereg(c->ring_mr);
	c->ring_mr = NULL;
	if (c->tc) {
		ops->conn_destroy(c->tc);
		c->tc = NULL;
	}
}

void srdma__conn_free(struct srdma_conn *c)
{
	struct srdma_ctx *ctx;

	if (!c)
		return;
	ctx = c->ctx;
	teardown(c);
	srdma__drop_events(ctx, c);
	finish_ops(c, SRDMA_ECLOSED);
	srdma__drop_events(ctx, c);
	while (c->regions) {
		struct srdma_region *r = c->regions;
		c->regions = r->next;
		unmap_buf(r->mem, r->mem_len);
		free(r->newest);
		free(r);
	}
	while (c->remote) {
		struct remote_region *rr = c->remote;
		c->remote = rr->next;
		free(rr->known);
		free(rr);
	}
	if (c->ring) {
		unmap_buf(c->ring, c->ring_len);
	}
	if (c->staging) {
		unmap_buf(c->staging, c->staging_len);
	}
	free(c->send_free);
	free(c->acks);
	free(c->verifies);
	srdma__aead_wipe(&c->tx);
	srdma__aead_wipe(&c->rx);
	srdma__aead_wipe(&c->blk_tx);
	srdma__aead_wipe(&c->blk_own);
	srdma__aead_wipe(&c->blk_rx);
	srdma__keys_wipe(&c->keys);
	srdma__token_wipe(&c->token);
	leave_handshake(c);
	if (c->state < ST_CLOSED && c->server && ctx->nclients)
		ctx->nclients--;
	if (c->prev)
		c->prev->next = c->next;
	else if (ctx->conns == c)
		ctx->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

/* ---- timeouts and deferred teardown (after each loop iteration) ---- */

void srdma__conn_check_timeouts(struct srdma_ctx *ctx, uint64_t now)
{
	struct srdma_conn *c, *next;

	srdma__linger_expire(ctx, now, false);
	for (c = ctx->conns; c; c = next) {
		next = c->next;
		if (c->state < ST_ESTABLISHED && c->deadline_ms &&
		    now >= c->deadline_ms) {
			char d[200];
			snprintf(d, sizeof(d),
				 "set-up with %s did not finish within %u ms "
				 "(stuck in %s)",
				 c->peer_addr, ctx->cfg.handshake_timeout_ms,
				 state_name(c->state));
			srdma__conn_fail(c, SRDMA_ETIMEDOUT, d);
		} else if (c->fabric_fail_code && c->state < ST_CLOSED &&
			   now >= c->fabric_fail_deadline_ms) {
			srdma__conn_fail(c, c->fabric_fail_code,
					 c->fabric_fail_detail);
		} else if (c->state == ST_CLOSING &&
			   now >= c->close_deadline_ms) {
			if (c->goodbye_rcvd)
				finish_close(c);
			else
				srdma__conn_fail(
					c, SRDMA_ECLOSED,
					"the peer disconnected without "
					"a goodbye");
		}
		if (c->state >= ST_CLOSED) {
			if (!c->app_owned)
				srdma__conn_free(c);
			else if (c->tc || c->ctrl)
				teardown(c);
		}
	}
}

int srdma__conn_next_deadline(struct srdma_ctx *ctx, uint64_t now)
{
	uint64_t best = UINT64_MAX;

	for (struct srdma_conn *c = ctx->conns; c; c = c->next) {
		uint64_t d = 0;
		if (c->state < ST_ESTABLISHED && c->deadline_ms)
			d = c->deadline_ms;
		else if (c->fabric_fail_code && c->state < ST_CLOSED)
			d = c->fabric_fail_deadline_ms;
		else if (c->state == ST_CLOSING)
			d = c->close_deadline_ms;
		else if (c->state >= ST_CLOSED &&
			 (c->tc || c->ctrl || !c->app_owned))
			return 0;
		if (d && d < best)
			best = d;
	}
	if (srdma__linger_next_deadline(ctx) < best)
		best = srdma__linger_next_deadline(ctx);
	if (best == UINT64_MAX)
		return -1;
	return best <= now ? 0 : (int)(best - now);
}

/* ---- public API: connecting ---- */

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
	c->state = ST_TCP_CONNECTING;
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
	rc = srdma__loop_add(ctx->loop, c->fd, EPOLLOUT | EPOLLIN, on_ctrl_fd,
			     NULL, c, &c->fd_reg);
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
				 host, port, state_name(c->state));
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

/* ---- public API: connection ---- */

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
		snprintf(o->peer_identity, sizeof(o->peer_identity), "%s",
			 srdma__ctrl_peer_identity(c->ctrl));
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

	ENSURE(c, SRDMA_EINVAL, "srdma_conn_close: NULL");
	if (c->state >= ST_CLOSING)
		return 0;
	if (c->state != ST_ESTABLISHED) {
		srdma__conn_fail(c, SRDMA_ECLOSED,
				 "closed by the application during set-up");
		return 0;
	}
	finish_ops(c, SRDMA_ECLOSED);
	c->state = ST_CLOSING;
	c->close_deadline_ms = srdma__now_ms() + CLOSE_GRACE_MS;
	GUARD(ctrl_send_msg(c, &m));
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

/* ---- public API: messages ---- */

/* Why an operation cannot start: the connection's own failure if it has
 * one (so the caller sees "server said: quota ..." rather than a state). */
static int not_established(const struct srdma_conn *c)
{
	if (c->state >= ST_CLOSING && c->fail_code)
		return srdma__err(c->fail_code, "%s", c->fail_detail);
	return srdma__err(c->state >= ST_CLOSING ? SRDMA_ECLOSED : SRDMA_ESTATE,
			  "the connection is %s", state_name(c->state));
}

SRDMA_API int srdma_send(srdma_conn *c, const void *buf, size_t len)
{
	ENSURE(c && (buf || !len), SRDMA_EINVAL, "srdma_send: NULL argument");
	if (c->state != ST_ESTABLISHED)
		return not_established(c);
	ENSURE(len <= c->max_msg, SRDMA_EMSGSIZE,
	       "message of %zu bytes is above the connection's max_msg %u", len,
	       c->max_msg);
	/* Keep one credit back so credit returns can always flow. */
	ENSURE(c->tx_credits > 1 && c->nsend_free > 0, SRDMA_EAGAIN,
	       "send window full");
	return post_record(c, REC_DATA, buf, len);
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

/* ---- public API: write / read ---- */

static int start_op(struct srdma_conn *c, enum op_kind kind, uint32_t region,
		    uint64_t offset, void *buf, size_t len, void *user)
{
	struct remote_region *rr;
	struct op *op;

	ENSURE(c && buf && len, SRDMA_EINVAL, "write/read: bad argument");
	if (c->state != ST_ESTABLISHED)
		return not_established(c);
	rr = find_remote(c, region);
	ENSURE(rr, SRDMA_ENOENT, "the peer granted no region %u", region);
	ENSURE(rr->access & (kind == OP_WRITE ? SRDMA_ACCESS_REMOTE_WRITE
					      : SRDMA_ACCESS_REMOTE_READ),
	       SRDMA_EINVAL, "region %u does not allow remote %s", region,
	       kind == OP_WRITE ? "writes" : "reads");
	ENSURE(offset % SRDMA_BLOCK_SIZE == 0, SRDMA_EINVAL,
	       "offset %llu is not a multiple of %d",
	       (unsigned long long)offset, SRDMA_BLOCK_SIZE);
	ENSURE(offset < rr->len && len <= rr->len - offset, SRDMA_ERANGE,
	       "%zu bytes at offset %llu do not fit region %u (%llu bytes)",
	       len, (unsigned long long)offset, region,
	       (unsigned long long)rr->len);
	op = calloc(1, sizeof(*op));
	ENSURE(op, SRDMA_ENOMEM, "out of memory");
	if (kind == OP_WRITE) {
		if (rr->write_version >= SRDMA_BLOCK_VERSION_MAX) {
			free(op);
			return srdma__err(SRDMA_EEXHAUSTED,
					  "region %u: write counter exhausted; "
					  "reconnect",
					  region);
		}
		op->version = ++rr->write_version;
	}
	op->kind = kind;
	op->user = user;
	op->region = region;
	op->offset = offset;
	op->buf = buf;
	op->len = len;
	op->first_block = offset / SRDMA_BLOCK_SIZE;
	op->nblocks = (len + SRDMA_BLOCK_SIZE - 1) / SRDMA_BLOCK_SIZE;
	op->next_block = op->first_block;
	if (c->ops_tail)
		c->ops_tail->next = op;
	else
		c->ops_head = op;
	c->ops_tail = op;
	progress_ops(c);
	return 0;
}

SRDMA_API int srdma_write(srdma_conn *c, uint32_t region, uint64_t offset,
			  const void *buf, size_t len, void *user)
{
	return start_op(c, OP_WRITE, region, offset, (void *)buf, len, user);
}

SRDMA_API int srdma_read(srdma_conn *c, uint32_t region, uint64_t offset,
			 void *buf, size_t len, void *user)
{
	return start_op(c, OP_READ, region, offset, buf, len, user);
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

SRDMA_API int srdma_write_sync(srdma_conn *c, uint32_t region, uint64_t offset,
			       const void *buf, size_t len, int timeout_ms)
{
	int marker;

	GUARD(srdma_write(c, region, offset, buf, len, &marker));
	return wait_op(c, SRDMA_EV_WRITE_DONE, &marker, timeout_ms);
}

SRDMA_API int srdma_read_sync(srdma_conn *c, uint32_t region, uint64_t offset,
			      void *buf, size_t len, int timeout_ms)
{
	int marker;

	GUARD(srdma_read(c, region, offset, buf, len, &marker));
	return wait_op(c, SRDMA_EV_READ_DONE, &marker, timeout_ms);
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
		else if (c->remote)
			for (rr = c->remote; rr->next; rr = rr->next)
				; /* the oldest grant */
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

/* ---- regions we own ---- */

SRDMA_API int srdma_region_create(srdma_conn *c, uint64_t len, int access,
				  srdma_region **out)
{
	unsigned tp_access = SRDMA_TP_LOCAL;
	struct srdma_region *r;
	int rc;

	ENSURE(c && out && len, SRDMA_EINVAL, "srdma_region_create: bad args");
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ESTATE,
	       "regions can only be granted on an established connection");
	ENSURE(!(access &
		 ~(SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE |
		   SRDMA_REGION_DEFER_GRANT)),
	       SRDMA_EINVAL, "unknown access bits 0x%x", access);
	ENSURE(access & (SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE),
	       SRDMA_EINVAL, "a region needs remote read or write access");
	ENSURE(len <= (1ull << 40), SRDMA_EINVAL, "region too large");
	ENSURE(c->next_region_id < 0xffff, SRDMA_ELIMIT,
	       "too many regions on this connection");
	r = calloc(1, sizeof(*r));
	ENSURE(r, SRDMA_ENOMEM, "out of memory");
	r->conn = c;
	r->access = access;
	r->nblocks = (len + SRDMA_BLOCK_SIZE - 1) / SRDMA_BLOCK_SIZE;
	r->len = r->nblocks * SRDMA_BLOCK_SIZE;
	r->stride = (uint32_t)srdma__block_stride(c->protect);
	r->mem_len = r->nblocks * r->stride;
	if (c->server &&
	    c->quota_used + r->mem_len > c->ctx->cfg.client_quota) {
		rc = srdma__err(SRDMA_EQUOTA,
				"a region of %llu bytes would exceed the "
				"client quota (%llu of %llu bytes used)",
				(unsigned long long)r->mem_len,
				(unsigned long long)c->quota_used,
				(unsigned long long)c->ctx->cfg.client_quota);
		free(r);
		return rc;
	}
	r->newest = calloc(r->nblocks, sizeof(uint64_t));
	r->mem = r->newest ? map_buf(r->mem_len) : NULL;
	if (!r->mem) {
		free(r->newest);
		free(r);
		return srdma__err(SRDMA_ENOMEM, "out of memory for a region");
	}
	if (access & SRDMA_ACCESS_REMOTE_READ)
		tp_access |= SRDMA_TP_REMOTE_READ;
	if (access & SRDMA_ACCESS_REMOTE_WRITE)
		tp_access |= SRDMA_TP_REMOTE_WRITE;
	rc = c->ctx->tp->ops->mr_reg(c->tc, r->mem, r->mem_len, tp_access,
				     &r->mr);
	if (rc < 0)
		goto out_free;
	r->id = ++c->next_region_id;
	r->access =
		access & (SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE);
	if (!(access & SRDMA_REGION_DEFER_GRANT)) {
		rc = srdma_region_grant(r);
		if (rc < 0)
			goto out_dereg;
	}
	c->quota_used += r->mem_len;
	r->next = c->regions;
	c->regions = r;
	*out = r;
	return 0;

out_dereg:
	c->ctx->tp->ops->mr_dereg(r->mr);
out_free:
	unmap_buf(r->mem, r->mem_len);
	free(r->newest);
	free(r);
	return rc;
}

SRDMA_API int srdma_region_grant(srdma_region *r)
{
	struct srdma__msg m = {.type = SRDMA_MSG_REGION};
	struct srdma_conn *c;

	ENSURE(r, SRDMA_EINVAL, "srdma_region_grant: NULL");
	c = r->conn;
	ENSURE(!r->granted, SRDMA_ESTATE, "region %u is already granted",
	       r->id);
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ESTATE, "the connection is %s",
	       state_name(c->state));
	m.u.region.region_id = r->id;
	m.u.region.access = (uint8_t)r->access;
	m.u.region.len = r->len;
	m.u.region.addr = r->mr->addr;
	m.u.region.key = r->mr->key;
	m.u.region.block_size = SRDMA_BLK_PAYLOAD;
	m.u.region.block_stride = r->stride;
	GUARD(ctrl_send_msg(c, &m));
	r->granted = true;
	return 0;
}

SRDMA_API uint32_t srdma_region_id(const srdma_region *r)
{
	return r ? r->id : 0;
}

SRDMA_API uint64_t srdma_region_len(const srdma_region *r)
{
	return r ? r->len : 0;
}

SRDMA_API int srdma_region_get(srdma_region *r, uint64_t offset, void *buf,
			       size_t len)
{
	struct srdma_conn *c;
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	uint8_t tmp[SRDMA_BLK_PAYLOAD];
	uint8_t *out = buf;

	ENSURE(r && buf, SRDMA_EINVAL, "srdma_region_get: NULL argument");
	c = r->conn;
	ENSURE(c->state == ST_ESTABLISHED || c->state == ST_CLOSING,
	       SRDMA_ECLOSED, "the connection is %s", state_name(c->state));
	ENSURE(offset % SRDMA_BLOCK_SIZE == 0, SRDMA_EINVAL,
	       "offset is not a multiple of %d", SRDMA_BLOCK_SIZE);
	ENSURE(offset <= r->len && len <= r->len - offset, SRDMA_ERANGE,
	       "outside the region");
	block_keys(c, keys);
	for (size_t done = 0; done < len; done += SRDMA_BLK_PAYLOAD) {
		uint64_t b = (offset + done) / SRDMA_BLK_PAYLOAD;
		size_t l = len - done < SRDMA_BLK_PAYLOAD ? len - done
							  : SRDMA_BLK_PAYLOAD;
		int rc = srdma__block_open(
			keys, r->id, b, r->mem + b * r->stride, true, tmp, &bi);
		if (rc == 0 && bi.writer != my_writer(c) &&
		    bi.version < r->newest[b])
			rc = SRDMA_EINTEGRITY;
		if (rc < 0) {
			memset(buf, 0, len);
			OPENSSL_cleanse(tmp, sizeof(tmp));
			return srdma__err(SRDMA_EINTEGRITY,
					  "block %llu of region %u failed "
					  "verification",
					  (unsigned long long)b, r->id);
		}
		memcpy(out + done, tmp, l);
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

SRDMA_API int srdma_region_put(srdma_region *r, uint64_t offset,
			       const void *buf, size_t len)
{
	struct srdma_conn *c;
	const uint8_t *in = buf;

	ENSURE(r && buf, SRDMA_EINVAL, "srdma_region_put: NULL argument");
	c = r->conn;
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ECLOSED,
	       "the connection is %s", state_name(c->state));
	ENSURE(offset % SRDMA_BLOCK_SIZE == 0, SRDMA_EINVAL,
	       "offset is not a multiple of %d", SRDMA_BLOCK_SIZE);
	ENSURE(offset <= r->len && len <= r->len - offset, SRDMA_ERANGE,
	       "outside the region");
	ENSURE(r->put_version < SRDMA_BLOCK_VERSION_MAX, SRDMA_EEXHAUSTED,
	       "region write counter exhausted");
	r->put_version++;
	for (size_t done = 0; done < len; done += SRDMA_BLK_PAYLOAD) {
		uint64_t b = (offset + done) / SRDMA_BLK_PAYLOAD;
		size_t l = len - done < SRDMA_BLK_PAYLOAD ? len - done
							  : SRDMA_BLK_PAYLOAD;
		GUARD(srdma__block_seal(&c->blk_tx, r->id, b, r->put_version,
					(uint8_t)my_writer(c), in + done, l,
					r->mem + b * r->stride));
	}
	return 0;
}

SRDMA_API void srdma_region_destroy(srdma_region *r)
{
	struct srdma_conn *c;
	struct srdma_region **pp;

	if (!r)
		return;
	c = r->conn;
	if (c->state == ST_ESTABLISHED) {
		struct srdma__msg m = {.type = SRDMA_MSG_REGION_REVOKE};
		m.u.revoke.region_id = r->id;
		IGNORE_RESULT(ctrl_send_msg(c, &m));
	}
	for (pp = &c->regions; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->mr)
		c->ctx->tp->ops->mr_dereg(r->mr);
	if (c->quota_used >= r->mem_len)
		c->quota_used -= r->mem_len;
	unmap_buf(r->mem, r->mem_len);
	free(r->newest);
	free(r);
}
