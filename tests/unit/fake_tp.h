/* SPDX-License-Identifier: MIT */
/*
 * A fake transport for unit tests of the session layer: it implements the
 * transport ops table (src/transport/transport.h) in memory, so the state
 * machine, credits, notices and acknowledgements run with no socket and no
 * fabric. Two connections are joined with fake_link(); sends land in the
 * peer's posted receives, RDMA writes and reads copy between registrations
 * after checking the remote key, range and access exactly as a NIC would,
 * and every completion is delivered later from the context's event loop
 * (never inside the call that caused it), in posting order.
 *
 * Include once, after test.h, in a test that links the static library.
 */
#ifndef SRDMA_TEST_FAKE_TP_H
#define SRDMA_TEST_FAKE_TP_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "session/conn.h"

enum { FAKE_MAX_RECV = 4096 };

struct fake_mr {
	struct srdma__tp_mr pub;
	unsigned access;
	struct fake_conn *owner;
	struct fake_mr *next;
};

struct fake_recv {
	void *buf;
	size_t len;
	uint64_t wr_id;
};

struct fake_conn {
	struct fake_tp *ft;
	struct srdma__tp_conn_cb cb;
	struct fake_conn *peer;
	struct fake_mr *mrs;
	struct fake_recv rq[FAKE_MAX_RECV];
	uint32_t rq_head, rq_len;
	uint32_t qpn;
	bool dead;
	struct fake_conn *next;
};

/* Work in flight, delivered in order by the loop. */
enum fake_kind { F_SEND, F_WRITE, F_READ, F_CLOSED, F_ESTABLISHED };
struct fake_work {
	enum fake_kind kind;
	struct fake_conn *c;
	const void *buf; /* send/write source, read sink */
	void *sink;
	size_t len;
	uint64_t raddr, rkey, wr_id;
	int status;
	struct fake_work *next;
};

struct fake_tp {
	struct srdma__tp *tp;
	int efd;
	struct srdma__loop_fd *reg;
	struct fake_work *head, *tail;
	struct fake_conn *conns;
	uint32_t next_qpn;
	/* what the tests look at */
	uint64_t sends, writes, reads, rnr, access_errors;
	uint64_t dropped; /* sends lost to a disconnect */
	/* a hook run on every RDMA write before it lands: tests use it to
	 * play a hostile writer or an injector (may change the bytes) */
	void (*on_write)(void *arg, struct fake_conn *from, uint8_t *dst,
			 size_t len);
	void *on_write_arg;
};

static struct fake_tp *fake_of(struct srdma__tp *tp)
{
	return tp->priv;
}

static void fake_kick(struct fake_tp *ft)
{
	uint64_t one = 1;

	if (write(ft->efd, &one, sizeof(one)) != sizeof(one))
		abort();
}

static void fake_push(struct fake_tp *ft, struct fake_work w)
{
	struct fake_work *n = malloc(sizeof(*n));

	if (!n)
		abort();
	*n = w;
	n->next = NULL;
	if (ft->tail)
		ft->tail->next = n;
	else
		ft->head = n;
	ft->tail = n;
	fake_kick(ft);
}

/* The registration of c's peer that a remote access names, or NULL. */
static struct fake_mr *fake_find(struct fake_conn *target, uint64_t raddr,
				 uint64_t rkey, size_t len, unsigned need)
{
	for (struct fake_mr *m = target ? target->mrs : NULL; m; m = m->next)
		if (m->pub.key == rkey && (m->access & need) &&
		    raddr >= m->pub.addr && len <= m->pub.len &&
		    raddr - m->pub.addr <= m->pub.len - len)
			return m;
	return NULL;
}

static void fake_cqe(struct fake_conn *c, enum srdma__tp_op op, uint64_t wr_id,
		     int status, uint32_t len)
{
	struct srdma__tp_cqe e = {
		.wr_id = wr_id, .op = op, .status = status, .len = len};

	if (!c->dead && c->cb.on_cqe)
		c->cb.on_cqe(c->cb.arg, &e);
}

static void fake_run(struct fake_tp *ft, struct fake_work *w)
{
	struct fake_conn *c = w->c, *p = c->peer;
	struct fake_mr *m;

	switch (w->kind) {
	case F_ESTABLISHED:
		if (!c->dead && c->cb.on_established)
			c->cb.on_established(c->cb.arg);
		return;
	case F_CLOSED:
		if (!c->dead && c->cb.on_closed)
			c->cb.on_closed(c->cb.arg, w->status, "fake close");
		return;
	case F_SEND:
		ft->sends++;
		if (!p || p->dead || !p->rq_len) {
			/* A real RC QP would retry (RNR); a sender past its
			 * credits is a flow-control bug the tests count. */
			ft->rnr++;
			fake_cqe(c, SRDMA_TP_OP_SEND, w->wr_id, SRDMA_EFABRIC,
				 0);
			return;
		}
		{
			struct fake_recv *r = &p->rq[p->rq_head];
			p->rq_head = (p->rq_head + 1) % FAKE_MAX_RECV;
			p->rq_len--;
			if (w->len > r->len) {
				fake_cqe(c, SRDMA_TP_OP_SEND, w->wr_id,
					 SRDMA_EFABRIC, 0);
				return;
			}
			memcpy(r->buf, w->buf, w->len);
			fake_cqe(c, SRDMA_TP_OP_SEND, w->wr_id, 0, 0);
			fake_cqe(p, SRDMA_TP_OP_RECV, r->wr_id, 0,
				 (uint32_t)w->len);
		}
		return;
	case F_WRITE:
		ft->writes++;
		m = fake_find(p, w->raddr, w->rkey, w->len,
			      SRDMA_TP_REMOTE_WRITE);
		if (!m) {
			ft->access_errors++;
			fake_cqe(c, SRDMA_TP_OP_WRITE, w->wr_id,
				 SRDMA_EREMOTE_ACCESS, 0);
			return;
		}
		memcpy((uint8_t *)m->pub.buf + (w->raddr - m->pub.addr), w->buf,
		       w->len);
		if (ft->on_write)
			ft->on_write(ft->on_write_arg, c,
				     (uint8_t *)m->pub.buf +
					     (w->raddr - m->pub.addr),
				     w->len);
		fake_cqe(c, SRDMA_TP_OP_WRITE, w->wr_id, 0, 0);
		return;
	case F_READ:
		ft->reads++;
		m = fake_find(p, w->raddr, w->rkey, w->len,
			      SRDMA_TP_REMOTE_READ);
		if (!m) {
			ft->access_errors++;
			fake_cqe(c, SRDMA_TP_OP_READ, w->wr_id,
				 SRDMA_EREMOTE_ACCESS, 0);
			return;
		}
		memcpy(w->sink,
		       (uint8_t *)m->pub.buf + (w->raddr - m->pub.addr),
		       w->len);
		fake_cqe(c, SRDMA_TP_OP_READ, w->wr_id, 0, 0);
		return;
	}
}

static void fake_on_fd(void *arg, uint32_t events)
{
	struct fake_tp *ft = arg;
	uint64_t n;
	struct fake_work *w;

	(void)events;
	if (read(ft->efd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing counted; the queue decides */
	}
	/* Only what was queued before this pass: new work kicks again. */
	struct fake_work *stop = ft->tail;
	while ((w = ft->head)) {
		ft->head = w->next;
		if (!ft->head)
			ft->tail = NULL;
		fake_run(ft, w);
		bool last = w == stop;
		free(w);
		if (last)
			break;
	}
}

static int fake_conn_create(struct srdma__tp *tp,
			    const struct srdma__tp_conn_attr *attr,
			    const struct srdma__tp_conn_cb *cb,
			    struct srdma__tp_conn **out)
{
	struct fake_tp *ft = fake_of(tp);
	struct fake_conn *c = calloc(1, sizeof(*c));

	(void)attr;
	if (!c)
		return SRDMA_ENOMEM;
	c->ft = ft;
	c->cb = *cb;
	c->qpn = ++ft->next_qpn;
	c->next = ft->conns;
	ft->conns = c;
	*out = (struct srdma__tp_conn *)c;
	return 0;
}

static void fake_forget(struct fake_tp *ft, struct fake_conn *c)
{
	struct fake_work **pp = &ft->head, *w, *last = NULL;

	while ((w = *pp)) {
		if (w->c == c) {
			*pp = w->next;
			free(w);
		} else {
			last = w;
			pp = &w->next;
		}
	}
	ft->tail = last;
}

static void fake_conn_destroy(struct srdma__tp_conn *tc)
{
	struct fake_conn *c = (struct fake_conn *)tc, **pp;

	if (!c)
		return;
	if (c->peer)
		c->peer->peer = NULL;
	fake_forget(c->ft, c);
	for (pp = &c->ft->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	while (c->mrs) {
		struct fake_mr *m = c->mrs;
		c->mrs = m->next;
		m->owner = NULL;
	}
	free(c);
}

static int fake_resolve(struct srdma__tp_conn *c, const char *host,
			uint16_t port, int timeout_ms)
{
	(void)c, (void)host, (void)port, (void)timeout_ms;
	return 0;
}

static uint32_t fake_local_qpn(const struct srdma__tp_conn *tc)
{
	return ((const struct fake_conn *)tc)->qpn;
}

static void fake_set_psn(struct srdma__tp_conn *c, uint32_t sq, uint32_t rq)
{
	(void)c, (void)sq, (void)rq;
}

static int fake_connect(struct srdma__tp_conn *c, const void *pd, size_t len)
{
	(void)c, (void)pd, (void)len;
	return 0;
}

/* A disconnect moves both QPs to error: sends between them that have not
 * landed yet are lost, as on a real fabric. */
static void fake_drop_sends(struct fake_tp *ft, struct fake_conn *c)
{
	struct fake_work **pp = &ft->head, *prev = NULL;

	while (*pp) {
		struct fake_work *w = *pp;
		if (w->kind == F_SEND && (w->c == c || w->c->peer == c)) {
			*pp = w->next;
			if (ft->tail == w)
				ft->tail = prev;
			ft->dropped++;
			free(w);
			continue;
		}
		prev = w;
		pp = &w->next;
	}
}

static int fake_disconnect(struct srdma__tp_conn *tc)
{
	struct fake_conn *c = (struct fake_conn *)tc;

	fake_drop_sends(c->ft, c);
	fake_push(c->ft, (struct fake_work){.kind = F_CLOSED, .c = c});
	if (c->peer)
		fake_push(c->ft,
			  (struct fake_work){.kind = F_CLOSED, .c = c->peer});
	return 0;
}

static int fake_conn_info(const struct srdma__tp_conn *c,
			  struct srdma__tp_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->provider, sizeof(out->provider), "fake");
	out->local_qpn = fake_local_qpn(c);
	return 0;
}

static int fake_mr_reg(struct srdma__tp_conn *tc, void *buf, size_t len,
		       unsigned access, struct srdma__tp_mr **out)
{
	struct fake_conn *c = (struct fake_conn *)tc;
	struct fake_mr *m = calloc(1, sizeof(*m));

	if (!m)
		return SRDMA_ENOMEM;
	m->pub.buf = buf;
	m->pub.len = len;
	m->pub.addr = (uint64_t)(uintptr_t)buf;
	m->pub.desc = m;
	m->access = access;
	m->owner = c;
	if (access & (SRDMA_TP_REMOTE_READ | SRDMA_TP_REMOTE_WRITE)) {
		if (srdma__random(&m->pub.key, sizeof(m->pub.key)) < 0) {
			free(m);
			return SRDMA_ESYS;
		}
	}
	m->next = c->mrs;
	c->mrs = m;
	*out = &m->pub;
	return 0;
}

static void fake_mr_dereg(struct srdma__tp_mr *mr)
{
	struct fake_mr *m, **pp;

	if (!mr)
		return;
	m = mr->desc;
	if (m->owner)
		for (pp = &m->owner->mrs; *pp; pp = &(*pp)->next)
			if (*pp == m) {
				*pp = m->next;
				break;
			}
	free(m);
}

static int fake_post_recv(struct srdma__tp_conn *tc, struct srdma__tp_mr *mr,
			  void *buf, size_t len, uint64_t wr_id)
{
	struct fake_conn *c = (struct fake_conn *)tc;

	(void)mr;
	if (c->rq_len >= FAKE_MAX_RECV)
		return SRDMA_EAGAIN;
	c->rq[(c->rq_head + c->rq_len) % FAKE_MAX_RECV] =
		(struct fake_recv){.buf = buf, .len = len, .wr_id = wr_id};
	c->rq_len++;
	return 0;
}

static int fake_post_send(struct srdma__tp_conn *tc, struct srdma__tp_mr *mr,
			  const void *buf, size_t len, uint64_t wr_id,
			  unsigned flags)
{
	struct fake_conn *c = (struct fake_conn *)tc;

	(void)mr, (void)flags;
	fake_push(c->ft, (struct fake_work){.kind = F_SEND,
					    .c = c,
					    .buf = buf,
					    .len = len,
					    .wr_id = wr_id});
	return 0;
}

static int fake_post_write(struct srdma__tp_conn *tc, struct srdma__tp_mr *mr,
			   const void *buf, size_t len, uint64_t raddr,
			   uint64_t rkey, uint64_t wr_id, unsigned flags)
{
	struct fake_conn *c = (struct fake_conn *)tc;

	(void)mr, (void)flags;
	fake_push(c->ft, (struct fake_work){.kind = F_WRITE,
					    .c = c,
					    .buf = buf,
					    .len = len,
					    .raddr = raddr,
					    .rkey = rkey,
					    .wr_id = wr_id});
	return 0;
}

static int fake_post_read(struct srdma__tp_conn *tc, struct srdma__tp_mr *mr,
			  void *buf, size_t len, uint64_t raddr, uint64_t rkey,
			  uint64_t wr_id, unsigned flags)
{
	struct fake_conn *c = (struct fake_conn *)tc;

	(void)mr, (void)flags;
	fake_push(c->ft, (struct fake_work){.kind = F_READ,
					    .c = c,
					    .sink = buf,
					    .len = len,
					    .raddr = raddr,
					    .rkey = rkey,
					    .wr_id = wr_id});
	return 0;
}

static const struct srdma__tp_ops fake_ops = {
	.name = "fake",
	.conn_create = fake_conn_create,
	.resolve = fake_resolve,
	.local_qpn = fake_local_qpn,
	.set_psn = fake_set_psn,
	.connect = fake_connect,
	.disconnect = fake_disconnect,
	.conn_destroy = fake_conn_destroy,
	.conn_info = fake_conn_info,
	.mr_reg = fake_mr_reg,
	.mr_dereg = fake_mr_dereg,
	.post_recv = fake_post_recv,
	.post_send = fake_post_send,
	.post_write = fake_post_write,
	.post_read = fake_post_read,
};

/* Swaps the context's transport for the fake one. */
static struct fake_tp *fake_install(struct srdma_ctx *ctx)
{
	struct fake_tp *ft = calloc(1, sizeof(*ft));
	struct srdma__tp *tp = calloc(1, sizeof(*tp));

	if (!ft || !tp)
		abort();
	srdma__tp_close(ctx->tp);
	tp->ops = &fake_ops;
	tp->kind = SRDMA_TRANSPORT_OFI;
	tp->loop = ctx->loop;
	tp->log = &ctx->log;
	tp->priv = ft;
	ft->tp = tp;
	ft->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ft->efd < 0 || srdma__loop_add(ctx->loop, ft->efd, EPOLLIN,
					   fake_on_fd, NULL, ft, &ft->reg) < 0)
		abort();
	ctx->tp = tp;
	ctx->cfg.no_resource_pool = 1;
	return ft;
}

/* Undoes fake_install before srdma_ctx_destroy (which closes ctx->tp). */
static void fake_uninstall(struct srdma_ctx *ctx, struct fake_tp *ft)
{
	struct fake_work *w;

	srdma__loop_del(ft->reg);
	close(ft->efd);
	while ((w = ft->head)) {
		ft->head = w->next;
		free(w);
	}
	free(ft->tp);
	free(ft);
	ctx->tp = NULL;
}

/* Joins two fake connections; each sees on_established from the loop. */
static void fake_link(struct srdma__tp_conn *a, struct srdma__tp_conn *b)
{
	struct fake_conn *x = (struct fake_conn *)a, *y = (struct fake_conn *)b;

	x->peer = y;
	y->peer = x;
}

#endif
