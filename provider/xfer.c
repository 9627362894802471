/* SPDX-License-Identifier: MIT */
/*
 * The data path of an endpoint (ep.c has the object and the consumer's
 * calls): its transmit queue, the records it sends, what it does with the
 * records that arrive, and flushing when the connection ends.
 *
 * Everything travels as records (wire.h) inside srdma_send messages, so
 * every byte is authenticated (and, in encrypt, encrypted) by libsrdma and
 * arrives in order exactly once. A message larger than one record is cut
 * into records marked FIRST/LAST and reassembled into the posted receive.
 *
 * RMA is emulated over the same protected channel rather than through
 * libsrdma's sealed regions: ofi_rxm's rendezvous reads and writes the
 * consumer's own buffers at arbitrary byte offsets and lengths, while a
 * sealed region is 4 KiB blocks of the library's memory. A WRITE record
 * carries key, address and bytes; the target checks the key, the range and
 * FI_REMOTE_WRITE against its registrations before copying. A READ_REQ is
 * answered by READ_RESP records from the registered bytes, after the same
 * checks with FI_REMOTE_READ. A request outside what the peer registered
 * fails the connection (as a remote access error breaks an RDMA queue
 * pair). Records are executed in order, so every ordering libfabric names
 * holds.
 *
 * Transmit completions mean the payload is sealed into the connection's
 * registered send ring (srdma_send copies before it returns); the
 * consumer's buffer is free at once. Operations beyond the send window wait
 * in the endpoint's queue, in order, and leave it as credits return.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov.h"

struct sp_op {
	struct sp_list link;
	enum sp_op_kind kind;
	void *context;
	uint64_t flags; /* the completion's */
	bool completion;
	bool counted; /* a consumer operation (tx_size) */
	struct iovec iov[SP_IOV_LIMIT];
	size_t iov_count;
	size_t total, done;
	uint64_t data;
	bool has_data;
	uint64_t key, addr, id;
	uint8_t *owned;	  /* inject: our copy of the payload */
	struct sp_mr *mr; /* READ_RESP: the registration read from */
};

struct sp_rx {
	struct sp_list link;
	void *context;
	bool completion;
	struct iovec iov[SP_IOV_LIMIT];
	size_t iov_count;
	size_t cap;	   /* bytes the buffers hold */
	size_t total, got; /* the message being received */
};

struct sp_unexp {
	struct sp_list link;
	uint8_t *buf; /* grows with what arrives, not with what is announced */
	size_t cap, total, got;
	uint64_t data;
	bool has_data, complete;
};

/* Copies n bytes starting at off of the iov list to dst (out) or from src
 * into it (in); stops at the end of the list and returns what moved. */
static size_t iov_copy(const struct iovec *iov, size_t count, size_t off,
		       void *buf, size_t n, bool out)
{
	uint8_t *p = buf;
	size_t moved = 0;

	for (size_t i = 0; i < count && moved < n; i++) {
		size_t len = iov[i].iov_len, k;

		if (off >= len) {
			off -= len;
			continue;
		}
		k = len - off < n - moved ? len - off : n - moved;
		if (out)
			memcpy(p + moved, (uint8_t *)iov[i].iov_base + off, k);
		else
			memcpy((uint8_t *)iov[i].iov_base + off, p + moved, k);
		moved += k;
		off = 0;
	}
	return moved;
}

static int ensure_staging(struct sp_ep *ep)
{
	struct srdma_conn_info ci;

	if (ep->staging)
		return 0;
	if (srdma_conn_info(ep->conn, &ci) < 0 || ci.max_msg <= SP_REC_HDR_MAX)
		return SRDMA_ESTATE;
	ep->staging = malloc(ci.max_msg);
	if (!ep->staging)
		return SRDMA_ENOMEM;
	ep->staging_len = ci.max_msg;
	ep->chunk = ci.max_msg - SP_REC_HDR_MAX;
	return 0;
}

/* Fails the connection from our side; SRDMA_EV_CLOSED follows. A refused
 * remote access is announced first in an ERROR record, so that the
 * initiator's operations fail with "The peer refused a remote memory
 * access." rather than a bare "the peer reported an error". */
static void ep_abort(struct sp_ep *ep, int code, const char *why)
{
	if (ep->aborted || !ep->conn)
		return;
	sp_log(SRDMA_LOG_WARN, "failing the connection with %s: %s",
	       ep->peer_text, why);
	ep->aborted = true;
	if (code == SRDMA_EREMOTE_ACCESS && ep->staging) {
		struct sp_rec r = {.type = SP_REC_ERROR, .a = (uint64_t)-code};
		size_t n, len = strlen(why);

		if (len > ep->chunk)
			len = ep->chunk;
		r.len = len;
		n = sp_rec_encode(ep->staging, &r);
		memcpy(ep->staging + n, why, len);
		(void)srdma_send(ep->conn, ep->staging, n + len);
	}
	(void)srdma_conn_abort(ep->conn, code, why);
}

/* The peer refused our remote access (ERROR record): fail here with its
 * reason; its abort follows and finds the endpoint failed already. */
static void rx_error(struct sp_ep *ep, const struct sp_rec *r)
{
	char text[SP_ERR_TEXT];
	int code = r->a == (uint64_t)-SRDMA_EREMOTE_ACCESS
			   ? SRDMA_EREMOTE_ACCESS
			   : SRDMA_EPEER;

	snprintf(text, sizeof(text),
		 "srdma: connection with %s failed: %s "
		 "%s said: %.*s",
		 ep->peer_text, srdma_strerror(code), ep->peer_text,
		 (int)(r->len > 200 ? 200 : r->len), (const char *)r->payload);
	sp_log(SRDMA_LOG_WARN, "%s", text + strlen("srdma: "));
	ep->aborted = true;
	sp_ep_fail(ep, code, text);
	if (ep->eq)
		(void)sp_eq_push_err(ep->eq, &ep->fid.fid, ep->fid.fid.context,
				     sp_srdma_to_fi(code), code, text, NULL, 0);
}

int sp_ep_send_cm(struct sp_ep *ep, enum sp_rec_type type, const void *data,
		  size_t len)
{
	struct sp_rec r = {.type = type, .len = len};
	size_t n;
	int rc;

	rc = ensure_staging(ep);
	if (rc)
		return rc;
	n = sp_rec_encode(ep->staging, &r);
	if (len)
		memcpy(ep->staging + n, data, len);
	return srdma_send(ep->conn, ep->staging, n + len);
}

int sp_ep_attach(struct sp_ep *ep, srdma_conn *conn, struct sp_sctx *s)
{
	struct srdma_conn_info ci;

	ep->conn = conn;
	ep->sctx = s;
	srdma_conn_set_user(conn, &ep->own);
	if (srdma_conn_info(conn, &ci) == 0) {
		snprintf(ep->peer_text, sizeof(ep->peer_text), "%s",
			 ci.peer_addr);
		if (sp_addr_parse(ci.peer_addr, &ep->peer, &ep->peer_len))
			ep->peer_len = 0;
	}
	return ensure_staging(ep);
}

/* ---- transmit ----------------------------------------------------------- */

static void busy_update(struct sp_ep *ep)
{
	bool queued = !sp_list_empty(&ep->txq);
	bool listed = !sp_list_empty(&ep->busy_link);

	if (queued && !listed)
		sp_list_add_tail(&ep->fab->busy, &ep->busy_link);
	else if (!queued && listed)
		sp_list_del(&ep->busy_link);
}

static void op_free(struct sp_op *op)
{
	sp_mr_put(op->mr);
	free(op->owned);
	free(op);
}

static uint64_t op_comp_flags(enum sp_op_kind k)
{
	switch (k) {
	case OP_SEND:
		return FI_SEND | FI_MSG;
	case OP_WRITE:
		return FI_WRITE | FI_RMA;
	case OP_READ:
		return FI_READ | FI_RMA;
	default:
		return 0;
	}
}

/* One record of op; 1 when op has sent its last, 0 when more remain, or a
 * negative SRDMA_E* (SRDMA_EAGAIN: the window is full). */
static int op_step(struct sp_ep *ep, struct sp_op *op)
{
	size_t n = op->total - op->done, hdr;
	struct sp_rec r = {0};
	bool last;
	int rc;

	if (op->kind == OP_READ)
		n = 0;
	else if (n > ep->chunk)
		n = ep->chunk;
	last = op->done + n == op->total;
	switch (op->kind) {
	case OP_SEND:
		r.type = SP_REC_MSG;
		r.flags = (op->done == 0 ? SP_F_FIRST : 0) |
			  (last ? SP_F_LAST : 0) |
			  (op->has_data ? SP_F_DATA : 0);
		r.a = op->data;
		r.b = op->total;
		break;
	case OP_WRITE:
		r.type = SP_REC_WRITE;
		r.flags = (last ? SP_F_LAST : 0) |
			  (last && op->has_data ? SP_F_DATA : 0);
		r.a = op->key;
		r.b = op->addr + op->done;
		r.c = last ? op->data : 0;
		break;
	case OP_READ:
		r.type = SP_REC_READ_REQ;
		r.a = op->id;
		r.b = op->key;
		r.c = op->addr;
		r.d = op->total;
		last = true;
		break;
	case OP_READ_RESP:
		if (op->mr->closed)
			return SRDMA_EREMOTE_ACCESS;
		r.type = SP_REC_READ_RESP;
		r.flags = last ? SP_F_LAST : 0;
		r.a = op->id;
		r.b = op->done;
		break;
	}
	r.len = n;
	hdr = sp_rec_encode(ep->staging, &r);
	if (n)
		iov_copy(op->iov, op->iov_count, op->done, ep->staging + hdr, n,
			 true);
	rc = srdma_send(ep->conn, ep->staging, hdr + n);
	if (rc < 0)
		return rc;
	op->done += n;
	return last ? 1 : 0;
}

static void op_finish(struct sp_ep *ep, struct sp_op *op)
{
	sp_list_del(&op->link);
	if (op->kind == OP_READ) {
		op->done = 0; /* now counts bytes answered */
		sp_list_add_tail(&ep->reads, &op->link);
		return;
	}
	if (op->completion && ep->tx_cq)
		(void)sp_cq_push(ep->tx_cq, op->context,
				 op_comp_flags(op->kind), 0, NULL, 0);
	if (op->counted)
		ep->tx_count--;
	if (op->kind == OP_READ_RESP)
		ep->reads_served--;
	op_free(op);
}

void sp_ep_push(struct sp_ep *ep)
{
	while (ep->state == EP_CONNECTED && !ep->aborted &&
	       !sp_list_empty(&ep->txq)) {
		struct sp_op *op =
			SP_CONTAINER(ep->txq.next, struct sp_op, link);
		int rc = op_step(ep, op);

		if (rc == SRDMA_EAGAIN)
			break;
		if (rc == SRDMA_EREMOTE_ACCESS) {
			ep_abort(ep, rc,
				 "a region was deregistered while the peer "
				 "read it");
			break;
		}
		if (rc < 0)
			break; /* the connection failed: EV_CLOSED follows */
		if (rc == 1)
			op_finish(ep, op);
	}
	busy_update(ep);
}

static ssize_t tx_state_check(struct sp_ep *ep)
{
	switch (ep->state) {
	case EP_CONNECTED:
		return ep->aborted ? -FI_ECONNRESET : 0;
	case EP_SHUTDOWN:
	case EP_FAILED:
		return -FI_ECONNRESET;
	default:
		return -FI_ENOTCONN;
	}
}

/* Sends a message that fits one record at once if nothing is queued
 * ahead of it: no allocation on the common path. 1: sent. */
static int try_send_now(struct sp_ep *ep, const struct iovec *iov, size_t count,
			size_t total, bool has_data, uint64_t data)
{
	struct sp_rec r = {.type = SP_REC_MSG};
	size_t hdr;

	if (!sp_list_empty(&ep->txq) || total > ep->chunk)
		return 0;
	r.flags = SP_F_FIRST | SP_F_LAST | (has_data ? SP_F_DATA : 0);
	r.a = data;
	r.b = total;
	r.len = total;
	hdr = sp_rec_encode(ep->staging, &r);
	iov_copy(iov, count, 0, ep->staging + hdr, total, true);
	return srdma_send(ep->conn, ep->staging, hdr + total) == 0;
}

ssize_t sp_post_tx(struct sp_ep *ep, enum sp_op_kind kind,
		   const struct iovec *iov, size_t count, void *context,
		   uint64_t flags, bool completion, bool has_data,
		   uint64_t data, uint64_t key, uint64_t addr)
{
	size_t total = sp_iov_total(iov, count);
	struct sp_op *op;
	ssize_t rc;

	if (count > SP_IOV_LIMIT || total > SP_MAX_MSG_SIZE)
		return -FI_EINVAL;
	if ((flags & FI_INJECT) && total > SP_INJECT_SIZE)
		return -FI_EINVAL;
	sp_lock(ep->fab);
	rc = ep->closed ? -FI_EINVAL : tx_state_check(ep);
	if (rc)
		goto out;
	if (ep->tx_count >= SP_TX_SIZE) {
		sp_progress(ep->fab);
		if (ep->tx_count >= SP_TX_SIZE) {
			rc = -FI_EAGAIN;
			goto out;
		}
	}
	if (kind == OP_SEND &&
	    try_send_now(ep, iov, count, total, has_data, data)) {
		if (completion && ep->tx_cq)
			rc = sp_cq_push(ep->tx_cq, context, FI_SEND | FI_MSG, 0,
					NULL, 0);
		goto out;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		rc = -FI_ENOMEM;
		goto out;
	}
	op->kind = kind;
	op->context = context;
	op->completion = completion;
	op->counted = true;
	op->total = total;
	op->has_data = has_data;
	op->data = data;
	op->key = key;
	op->addr = addr;
	if ((flags & FI_INJECT) && kind != OP_READ) {
		op->owned = malloc(total ? total : 1);
		if (!op->owned) {
			free(op);
			rc = -FI_ENOMEM;
			goto out;
		}
		iov_copy(iov, count, 0, op->owned, total, true);
		op->iov[0].iov_base = op->owned;
		op->iov[0].iov_len = total;
		op->iov_count = 1;
	} else {
		if (count)
			memcpy(op->iov, iov, count * sizeof(*iov));
		op->iov_count = count;
	}
	if (kind == OP_READ)
		op->id = ep->next_read_id++;
	sp_list_add_tail(&ep->txq, &op->link);
	ep->tx_count++;
	sp_ep_push(ep);
	rc = 0;
out:
	sp_unlock(ep->fab);
	return rc;
}

/* ---- receive ------------------------------------------------------------ */

static void rx_complete(struct sp_ep *ep, struct sp_rx *rx, bool has_data,
			uint64_t data)
{
	if (rx->completion && ep->rx_cq) {
		uint64_t flags =
			FI_RECV | FI_MSG | (has_data ? FI_REMOTE_CQ_DATA : 0);

		if (rx->total > rx->cap)
			(void)sp_cq_push_err(ep->rx_cq, rx->context, flags,
					     FI_ETRUNC, SRDMA_EMSGSIZE,
					     "The message is larger than the "
					     "posted receive buffer.",
					     rx->total - rx->cap);
		else
			(void)sp_cq_push(
				ep->rx_cq, rx->context, flags, rx->total,
				rx->iov_count ? rx->iov[0].iov_base : NULL,
				data);
	}
	ep->rx_count--;
	free(rx);
}

/* Hands complete buffered messages to posted receives, in order. */
static void match_unexp(struct sp_ep *ep)
{
	while (!sp_list_empty(&ep->unexp) && !sp_list_empty(&ep->rxq)) {
		struct sp_unexp *u =
			SP_CONTAINER(ep->unexp.next, struct sp_unexp, link);
		struct sp_rx *rx =
			SP_CONTAINER(ep->rxq.next, struct sp_rx, link);

		if (!u->complete)
			return;
		sp_list_del(&u->link);
		sp_list_del(&rx->link);
		rx->total = u->total;
		ep->unexp_bytes -= u->got;
		if (u->total)
			iov_copy(rx->iov, rx->iov_count, 0, u->buf, u->total,
				 false);
		rx_complete(ep, rx, u->has_data, u->data);
		free(u->buf);
		free(u);
	}
}

static int rx_msg(struct sp_ep *ep, const struct sp_rec *r)
{
	if (r->flags & SP_F_FIRST) {
		if (ep->cur_rx || ep->cur_unexp || r->b > SP_MAX_MSG_SIZE)
			return SRDMA_EPROTO;
		if (sp_list_empty(&ep->unexp) && !sp_list_empty(&ep->rxq)) {
			ep->cur_rx =
				SP_CONTAINER(ep->rxq.next, struct sp_rx, link);
			sp_list_del(&ep->cur_rx->link);
			ep->cur_rx->total = r->b;
			ep->cur_rx->got = 0;
		} else {
			struct sp_unexp *u = calloc(1, sizeof(*u));

			if (!u)
				return SRDMA_ENOMEM;
			u->total = r->b;
			sp_list_add_tail(&ep->unexp, &u->link);
			ep->cur_unexp = u;
		}
	}
	if (ep->cur_rx) {
		struct sp_rx *rx = ep->cur_rx;

		if (r->b != rx->total || r->len > rx->total - rx->got)
			return SRDMA_EPROTO;
		iov_copy(rx->iov, rx->iov_count, rx->got, (void *)r->payload,
			 r->len, false);
		rx->got += r->len;
		if (r->flags & SP_F_LAST) {
			if (rx->got != rx->total)
				return SRDMA_EPROTO;
			ep->cur_rx = NULL;
			rx_complete(ep, rx, r->flags & SP_F_DATA, r->a);
		}
	} else if (ep->cur_unexp) {
		struct sp_unexp *u = ep->cur_unexp;

		if (r->b != u->total || r->len > u->total - u->got)
			return SRDMA_EPROTO;
		if (ep->unexp_bytes + r->len > SP_UNEXP_MAX)
			return SRDMA_EQUOTA;
		if (u->got + r->len > u->cap) {
			size_t cap = u->cap ? u->cap * 2 : 4096;
			uint8_t *b;

			while (cap < u->got + r->len)
				cap *= 2;
			if (cap > u->total)
				cap = u->total;
			b = realloc(u->buf, cap ? cap : 1);
			if (!b)
				return SRDMA_ENOMEM;
			u->buf = b;
			u->cap = cap;
		}
		if (r->len)
			memcpy(u->buf + u->got, r->payload, r->len);
		u->got += r->len;
		ep->unexp_bytes += r->len;
		if (r->flags & SP_F_LAST) {
			if (u->got != u->total)
				return SRDMA_EPROTO;
			u->complete = true;
			u->has_data = r->flags & SP_F_DATA;
			u->data = r->a;
			ep->cur_unexp = NULL;
			match_unexp(ep);
		}
	} else {
		return SRDMA_EPROTO; /* a continuation of nothing */
	}
	return 0;
}

static int rx_write(struct sp_ep *ep, const struct sp_rec *r)
{
	uint8_t *dst;

	if (!sp_mr_lookup(ep->dom, r->a, r->b, r->len, FI_REMOTE_WRITE, &dst))
		return SRDMA_EREMOTE_ACCESS;
	memcpy(dst, r->payload, r->len);
	if ((r->flags & (SP_F_LAST | SP_F_DATA)) == (SP_F_LAST | SP_F_DATA) &&
	    ep->rx_cq)
		(void)sp_cq_push(ep->rx_cq, NULL,
				 FI_REMOTE_WRITE | FI_RMA | FI_REMOTE_CQ_DATA,
				 0, NULL, r->c);
	return 0;
}

static int rx_read_req(struct sp_ep *ep, const struct sp_rec *r)
{
	struct sp_op *op;
	struct sp_mr *m;
	uint8_t *src;

	m = sp_mr_lookup(ep->dom, r->b, r->c, r->d, FI_REMOTE_READ, &src);
	if (!m)
		return SRDMA_EREMOTE_ACCESS;
	if (ep->reads_served >= SP_READS_MAX)
		return SRDMA_ELIMIT;
	op = calloc(1, sizeof(*op));
	if (!op)
		return SRDMA_ENOMEM;
	op->kind = OP_READ_RESP;
	op->id = r->a;
	op->total = r->d;
	op->iov[0].iov_base = src;
	op->iov[0].iov_len = r->d;
	op->iov_count = 1;
	op->mr = m;
	m->refs++;
	sp_list_add_tail(&ep->txq, &op->link);
	ep->reads_served++;
	return 0;
}

static int rx_read_resp(struct sp_ep *ep, const struct sp_rec *r)
{
	struct sp_op *op;

	if (sp_list_empty(&ep->reads))
		return SRDMA_EPROTO;
	op = SP_CONTAINER(ep->reads.next, struct sp_op, link);
	/* Reads are answered in the order they were asked, each in order. */
	if (r->a != op->id || r->b != op->done || r->len > op->total - op->done)
		return SRDMA_EPROTO;
	iov_copy(op->iov, op->iov_count, op->done, (void *)r->payload, r->len,
		 false);
	op->done += r->len;
	if (!(r->flags & SP_F_LAST))
		return 0;
	if (op->done != op->total)
		return SRDMA_EPROTO;
	sp_list_del(&op->link);
	if (op->completion && ep->tx_cq)
		(void)sp_cq_push(ep->tx_cq, op->context, FI_READ | FI_RMA, 0,
				 NULL, 0);
	ep->tx_count--;
	op_free(op);
	return 0;
}

static void rx_record(struct sp_ep *ep, const void *data, size_t len)
{
	struct sp_rec r;
	char why[160];
	int rc;

	if (ep->aborted)
		return;
	if (sp_rec_parse(data, len, &r) != 0) {
		ep_abort(ep, SRDMA_EPROTO, "a malformed provider record");
		return;
	}
	if (r.type <= SP_REC_REJECT || r.type == SP_REC_BYE) {
		sp_ep_cm_record(ep, &r);
		return;
	}
	if (ep->state != EP_CONNECTED && ep->state != EP_SHUTDOWN) {
		ep_abort(ep, SRDMA_EPROTO,
			 "data before the connection was "
			 "accepted");
		return;
	}
	switch (r.type) {
	case SP_REC_ERROR:
		rx_error(ep, &r);
		return;
	case SP_REC_MSG:
		rc = rx_msg(ep, &r);
		break;
	case SP_REC_WRITE:
		rc = rx_write(ep, &r);
		break;
	case SP_REC_READ_REQ:
		rc = rx_read_req(ep, &r);
		break;
	default:
		rc = rx_read_resp(ep, &r);
		break;
	}
	if (rc == SRDMA_EREMOTE_ACCESS) {
		snprintf(why, sizeof(why),
			 "the peer's RMA %s of %llu bytes at 0x%llx with key "
			 "0x%llx is outside what this side registered for it",
			 r.type == SP_REC_WRITE ? "write" : "read",
			 (unsigned long long)(r.type == SP_REC_WRITE ? r.len
								     : r.d),
			 (unsigned long long)(r.type == SP_REC_WRITE ? r.b
								     : r.c),
			 (unsigned long long)(r.type == SP_REC_WRITE ? r.a
								     : r.b));
		ep_abort(ep, rc, why);
	} else if (rc == SRDMA_ENOMEM) {
		ep_abort(ep, rc, "out of memory for a message");
	} else if (rc == SRDMA_EQUOTA) {
		ep_abort(ep, rc,
			 "the peer sent more than 64 MiB that no posted "
			 "receive took");
	} else if (rc == SRDMA_ELIMIT) {
		ep_abort(ep, rc,
			 "the peer asked for more than 4096 reads at once");
	} else if (rc) {
		ep_abort(ep, rc, "a provider record out of sequence");
	}
}

void sp_ep_event(struct sp_ep *ep, const struct srdma_event *ev)
{
	int rc;

	switch (ev->type) {
	case SRDMA_EV_CONNECTED:
		if (ep->state != EP_CONNECTING)
			return;
		rc = sp_ep_send_cm(ep, SP_REC_CONNREQ, ep->cm_data, ep->cm_len);
		if (rc < 0) {
			ep_abort(ep, rc, "cannot send the connection request");
			return;
		}
		ep->state = EP_WAIT_ACCEPT;
		return;
	case SRDMA_EV_RECV:
		rx_record(ep, ev->data, ev->len);
		if (!sp_list_empty(&ep->txq))
			sp_ep_push(ep);
		return;
	case SRDMA_EV_CLOSED:
		sp_ep_closed(ep, ev->status, ev->detail);
		return;
	default:
		return;
	}
}

/* ---- failure and flushing --------------------------------------------- */

static void flush_ops(struct sp_ep *ep, struct sp_list *l, int err, int code,
		      const char *text)
{
	while (!sp_list_empty(l)) {
		struct sp_op *op = SP_CONTAINER(l->next, struct sp_op, link);

		sp_list_del(&op->link);
		if (op->completion && ep->tx_cq)
			(void)sp_cq_push_err(ep->tx_cq, op->context,
					     op_comp_flags(op->kind), err, code,
					     text, 0);
		op_free(op);
	}
}

void sp_ep_flush_tx(struct sp_ep *ep)
{
	flush_ops(ep, &ep->txq, FI_ECANCELED, SRDMA_ECLOSED,
		  "The connection is closed.");
	flush_ops(ep, &ep->reads, FI_ECANCELED, SRDMA_ECLOSED,
		  "The connection is closed.");
	ep->tx_count = 0;
	ep->reads_served = 0;
	busy_update(ep);
}

static void flush_rx(struct sp_ep *ep, struct sp_rx *rx, int err, int code,
		     const char *text)
{
	if (rx->completion && ep->rx_cq)
		(void)sp_cq_push_err(ep->rx_cq, rx->context, FI_RECV | FI_MSG,
				     err, code, text, 0);
	free(rx);
}

static void free_unexp(struct sp_ep *ep)
{
	while (!sp_list_empty(&ep->unexp)) {
		struct sp_unexp *u =
			SP_CONTAINER(ep->unexp.next, struct sp_unexp, link);

		sp_list_del(&u->link);
		free(u->buf);
		free(u);
	}
	ep->cur_unexp = NULL;
	ep->unexp_bytes = 0;
}

void sp_ep_fail(struct sp_ep *ep, int code, const char *text)
{
	int err = sp_srdma_to_fi(code);

	ep->state = EP_FAILED;
	ep->fail_code = code;
	snprintf(ep->fail_text, sizeof(ep->fail_text), "%s", text);
	flush_ops(ep, &ep->txq, err, code, text);
	flush_ops(ep, &ep->reads, err, code, text);
	ep->tx_count = 0;
	ep->reads_served = 0;
	busy_update(ep);
	if (ep->cur_rx) {
		flush_rx(ep, ep->cur_rx, err, code, text);
		ep->cur_rx = NULL;
	}
	while (!sp_list_empty(&ep->rxq)) {
		struct sp_rx *rx =
			SP_CONTAINER(ep->rxq.next, struct sp_rx, link);

		sp_list_del(&rx->link);
		flush_rx(ep, rx, err, code, text);
	}
	ep->rx_count = 0;
	free_unexp(ep);
}

/* ---- receives posted by the consumer ----------------------------------- */

ssize_t sp_post_rx(struct sp_ep *ep, const struct iovec *iov, size_t count,
		   void *context, bool completion)
{
	struct sp_rx *rx;
	ssize_t rc = 0;

	if (count > SP_IOV_LIMIT)
		return -FI_EINVAL;
	sp_lock(ep->fab);
	if (ep->closed) {
		rc = -FI_EINVAL;
		goto out;
	}
	if (ep->state == EP_FAILED) {
		rc = -FI_ECONNRESET;
		goto out;
	}
	if (ep->rx_count >= SP_RX_SIZE) {
		rc = -FI_EAGAIN;
		goto out;
	}
	rx = calloc(1, sizeof(*rx));
	if (!rx) {
		rc = -FI_ENOMEM;
		goto out;
	}
	rx->context = context;
	rx->completion = completion;
	if (count)
		memcpy(rx->iov, iov, count * sizeof(*iov));
	rx->iov_count = count;
	rx->cap = sp_iov_total(iov, count);
	sp_list_add_tail(&ep->rxq, &rx->link);
	ep->rx_count++;
	match_unexp(ep);
out:
	sp_unlock(ep->fab);
	return rc;
}

int sp_ep_cancel_rx(struct sp_ep *ep, void *context)
{
	for (struct sp_list *e = ep->rxq.next; e != &ep->rxq; e = e->next) {
		struct sp_rx *rx = SP_CONTAINER(e, struct sp_rx, link);

		if (rx->context != context)
			continue;
		sp_list_del(&rx->link);
		ep->rx_count--;
		flush_rx(ep, rx, FI_ECANCELED, SRDMA_ECLOSED,
			 "The receive was cancelled.");
		return 0;
	}
	return -FI_ENOENT;
}
