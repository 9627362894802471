/* SPDX-License-Identifier: MIT */
/*
 * ofi backend: the data path. The preallocated op pool, the ring of
 * completions read but not yet delivered, reading the CQ (which drives
 * the provider's progress), delivery, and posting receives, sends,
 * RDMA writes and reads.
 */
#include <errno.h>
#include <string.h>

#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "transport/ofi/ofi_int.h"

/* Completion error -> SRDMA code. */
static int map_cq_err(int err)
{
	switch (err) {
	case FI_ECANCELED:
	case FI_ECONNRESET:
	case FI_ECONNABORTED:
	case FI_ENOTCONN:
	case EPIPE:
	case FI_ESHUTDOWN:
		return SRDMA_ECLOSED;
	case FI_EACCES:
	case FI_EPERM:
	case FI_EKEYREJECTED:
	case FI_EREMOTEIO:
	case FI_EFAULT:
		return SRDMA_EREMOTE_ACCESS;
	default:
		return SRDMA_EFABRIC;
	}
}

/* ---- connection: completions and events ------------------------------- */

static struct op *op_get(struct srdma__tp_conn *c)
{
	struct op *op = c->free_ops;

	if (!op)
		return NULL;
	c->free_ops = op->next_free;
	op->busy = true;
	return op;
}

void srdma__ofi_op_put(struct srdma__tp_conn *c, struct op *op)
{
	op->busy = false;
	op->next_free = c->free_ops;
	c->free_ops = op;
}

static struct op *own_op(struct srdma__tp_conn *c, void *ctx)
{
	struct op *op = ctx;

	if (!op || op < c->ops || op >= c->ops + c->nops || !op->busy)
		return NULL;
	return op;
}

/*
 * The tcp provider answers a remote access error (bad key, out-of-range
 * address) by dropping the connection: the initiator only sees its RDMA ops
 * flushed. Report those as remote access errors, not as a plain close.
 */
int srdma__ofi_flush_status(struct srdma__tp_conn *c, const struct op *op,
			    int status)
{
	if (status == SRDMA_ECLOSED && c->peer_dropped &&
	    (op->type == SRDMA_TP_OP_WRITE || op->type == SRDMA_TP_OP_READ)) {
		c->rma_lost++;
		return SRDMA_EREMOTE_ACCESS;
	}
	return status;
}

static void ring_push(struct srdma__tp_conn *c, void *ctx, int status,
		      uint32_t len)
{
	struct op *op = own_op(c, ctx);
	struct done *d;

	if (!op) /* e.g. remote CQ data: nothing of ours */
		return;
	d = &c->ring[(c->ring_head + c->ring_count) % c->nops];
	d->op = op;
	d->status = srdma__ofi_flush_status(c, op, status);
	d->len = len;
	c->ring_count++;
}

/* Reads the CQ (driving progress) into the ring. Returns entries read. */
int srdma__ofi_drain_cq(struct srdma__tp_conn *c)
{
	struct fi_cq_data_entry ent[CQ_BATCH];
	ssize_t n, i;
	int got = 0;

	while (c->cq && c->ring_count < c->nops) {
		size_t room = c->nops - c->ring_count;

		n = fi_cq_read(c->cq, ent, room < CQ_BATCH ? room : CQ_BATCH);
		if (n == -FI_EAGAIN)
			break;
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry err;
			char buf[128];

			memset(&err, 0, sizeof(err));
			n = fi_cq_readerr(c->cq, &err, 0);
			if (n == -FI_EAGAIN)
				break;
			if (n < 0)
				goto out_fail;
			srdma__log(c->o->tp->log, SRDMA_LOG_DEBUG,
				   "ofi: completion error: %s (%s)",
				   fi_strerror(err.err),
				   fi_cq_strerror(c->cq, err.prov_errno,
						  err.err_data, buf,
						  sizeof(buf)));
			/* A flush we did not cause: the peer dropped us. */
			if (err.err == FI_ECANCELED && c->state != C_CLOSING &&
			    c->state != C_CLOSED)
				c->peer_dropped = true;
			ring_push(c, err.op_context, map_cq_err(err.err), 0);
			got++;
			continue;
		}
		if (n < 0)
			goto out_fail;
		for (i = 0; i < n; i++)
			ring_push(c, ent[i].op_context, 0,
				  (uint32_t)ent[i].len);
		got += (int)n;
	}
	return got;

out_fail:
	/* A broken CQ fails the connection as a whole (DESIGN.md §3.6). */
	srdma__log(c->o->tp->log, SRDMA_LOG_WARN, "ofi: fi_cq_read: %s",
		   fi_strerror((int)-n));
	srdma__ofi_start_close(c, SRDMA_EFABRIC,
			       "reading the completion queue failed");
	return got;
}

void srdma__ofi_deliver(struct srdma__tp_conn *c)
{
	while (c->ring_count && !c->dead) {
		struct done d = c->ring[c->ring_head];
		struct srdma__tp_cqe e = {
			.wr_id = d.op->wr_id,
			.op = d.op->type,
			.status = d.status,
			.len = d.op->type == SRDMA_TP_OP_RECV ? d.len : 0,
		};

		c->ring_head = (c->ring_head + 1) % c->nops;
		c->ring_count--;
		srdma__ofi_op_put(c, d.op); /* the callback may post again */
		c->cb.on_cqe(c->cb.arg, &e);
	}
}

/* ---- data path ---------------------------------------------------------- */

struct post_args {
	enum srdma__tp_op type;
	struct srdma__tp_mr *mr;
	void *buf;
	size_t len;
	uint64_t raddr, rkey;
	unsigned flags;
};

static ssize_t issue(struct srdma__tp_conn *c, struct op *op,
		     const struct post_args *a)
{
	void *desc = a->mr ? a->mr->desc : NULL;
	struct iovec iov = {.iov_base = a->buf, .iov_len = a->len};
	struct fi_rma_iov rma = {
		.addr = a->raddr, .len = a->len, .key = a->rkey};

	switch (a->type) {
	case SRDMA_TP_OP_SEND:
		if ((a->flags & SRDMA_TP_F_INLINE) &&
		    a->len <= c->inject_size) {
			struct fi_msg msg = {.msg_iov = &iov,
					     .desc = &desc,
					     .iov_count = 1,
					     .context = op};
			return fi_sendmsg(c->ep, &msg,
					  FI_INJECT | FI_COMPLETION);
		}
		return fi_send(c->ep, a->buf, a->len, desc, 0, op);
	case SRDMA_TP_OP_RECV:
		return fi_recv(c->ep, a->buf, a->len, desc, 0, op);
	case SRDMA_TP_OP_WRITE: {
		struct fi_msg_rma msg = {.msg_iov = &iov,
					 .desc = &desc,
					 .iov_count = 1,
					 .rma_iov = &rma,
					 .rma_iov_count = 1,
					 .context = op};
		return fi_writemsg(c->ep, &msg,
				   FI_COMPLETION |
					   (a->flags & SRDMA_TP_F_DELIVERED
						    ? c->o->write_flags
						    : 0));
	}
	case SRDMA_TP_OP_READ:
		return fi_read(c->ep, a->buf, a->len, desc, 0, a->raddr,
			       a->rkey, op);
	}
	return -FI_EINVAL;
}

static const char *op_name(enum srdma__tp_op t)
{
	static const char *const names[] = {"?", "fi_send", "fi_recv",
					    "fi_write", "fi_read"};
	return t <= SRDMA_TP_OP_READ ? names[t] : "?";
}

static int post(struct srdma__tp_conn *c, const struct post_args *a,
		uint64_t wr_id)
{
	struct op *op;
	ssize_t rc;
	int tries;

	ENSURE(!c->dead && c->state != C_CLOSED && c->state != C_CLOSING &&
		       !c->close_pending,
	       SRDMA_ECLOSED, "%s on a closed fabric connection",
	       op_name(a->type));
	ENSURE(c->ep, SRDMA_ESTATE, "%s before the connection has an endpoint",
	       op_name(a->type));
	op = op_get(c);
	ENSURE(op, SRDMA_EAGAIN, "all %u work requests are in flight", c->nops);
	/* New work: fi_trywait must run again before the loop sleeps. */
	srdma__loop_touch(c->cq_reg);
	op->wr_id = wr_id;
	op->type = a->type;
	for (tries = 0;; tries++) {
		rc = issue(c, op, a);
		if (rc != -FI_EAGAIN || tries >= POST_RETRIES)
			break;
		/* Drive progress; completions wait in the ring. */
		srdma__ofi_drain_cq(c);
	}
	if (rc) {
		srdma__ofi_op_put(c, op);
		ENSURE(rc != -FI_EAGAIN, SRDMA_EAGAIN,
		       "%s: the provider's queue stays full", op_name(a->type));
		return srdma__err(SRDMA_EFABRIC, "%s(%zu bytes): %s",
				  op_name(a->type), a->len,
				  fi_strerror((int)-rc));
	}
	return 0;
}

int srdma__ofi_post_recv(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 void *buf, size_t len, uint64_t wr_id)
{
	struct post_args a = {
		.type = SRDMA_TP_OP_RECV, .mr = mr, .buf = buf, .len = len};

	return post(c, &a, wr_id);
}

int srdma__ofi_post_send(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 const void *buf, size_t len, uint64_t wr_id,
			 unsigned flags)
{
	struct post_args a = {.type = SRDMA_TP_OP_SEND,
			      .mr = mr,
			      .buf = (void *)buf,
			      .len = len,
			      .flags = flags};

	return post(c, &a, wr_id);
}

int srdma__ofi_post_write(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			  const void *buf, size_t len, uint64_t raddr,
			  uint64_t rkey, uint64_t wr_id, unsigned flags)
{
	struct post_args a = {.type = SRDMA_TP_OP_WRITE,
			      .mr = mr,
			      .buf = (void *)buf,
			      .len = len,
			      .raddr = raddr,
			      .rkey = rkey,
			      .flags = flags};

	return post(c, &a, wr_id);
}

int srdma__ofi_post_read(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 void *buf, size_t len, uint64_t raddr, uint64_t rkey,
			 uint64_t wr_id, unsigned flags)
{
	struct post_args a = {.type = SRDMA_TP_OP_READ,
			      .mr = mr,
			      .buf = buf,
			      .len = len,
			      .raddr = raddr,
			      .rkey = rkey,
			      .flags = flags};

	return post(c, &a, wr_id);
}
