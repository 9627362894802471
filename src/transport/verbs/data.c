/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: the data path. Work-request slots, completion polling
 * and delivery, and posting receives, sends, RDMA writes and reads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "transport/verbs/verbs_int.h"

/* ---- work-request slots -------------------------------------------- */

int srdma__verbs_slot_get(struct srdma__tp_conn *c, int op, uint64_t wr_id)
{
	int i;

	if (c->free_slot == SLOT_NONE) {
		int n = c->nslots ? c->nslots * 2 : 128;
		struct wslot *s = realloc(c->slots, (size_t)n * sizeof(*s));
		if (!s)
			return srdma__err(SRDMA_ENOMEM,
					  "out of memory for %d work slots", n);
		for (i = c->nslots; i < n; i++) {
			s[i].op = 0;
			s[i].next_free = i + 1 < n ? i + 1 : SLOT_NONE;
		}
		c->slots = s;
		c->free_slot = c->nslots;
		c->nslots = n;
	}
	i = c->free_slot;
	c->free_slot = c->slots[i].next_free;
	c->slots[i].op = op;
	c->slots[i].wr_id = wr_id;
	c->outstanding++;
	return i;
}

void srdma__verbs_slot_put(struct srdma__tp_conn *c, int i)
{
	c->slots[i].op = 0;
	c->slots[i].next_free = c->free_slot;
	c->free_slot = i;
	c->outstanding--;
}

/* Forget every outstanding work request (the QP they were on is gone). */
void srdma__verbs_slots_reset(struct srdma__tp_conn *c)
{
	int i;

	for (i = 0; i < c->nslots; i++)
		if (c->slots[i].op)
			srdma__verbs_slot_put(c, i);
}

/* ---- completions ------------------------------------------------------ */

static int map_status(const struct srdma__tp_conn *c, const struct ibv_wc *wc,
		      int op)
{
	switch (wc->status) {
	case IBV_WC_SUCCESS:
		return 0;
	case IBV_WC_WR_FLUSH_ERR:
		return SRDMA_ECLOSED;
	case IBV_WC_REM_ACCESS_ERR:
	case IBV_WC_REM_INV_REQ_ERR:
		srdma__log(lg(c->v), SRDMA_LOG_INFO,
			   "verbs: QP %u op %d: %s (vendor error 0x%x)",
			   wc->qp_num, op, ibv_wc_status_str(wc->status),
			   wc->vendor_err);
		return SRDMA_EREMOTE_ACCESS;
	default:
		/* A failed bind is reported (once) by srdma__verbs_bind_done.
		 */
		srdma__log(lg(c->v),
			   op == OP_BIND ? SRDMA_LOG_DEBUG : SRDMA_LOG_WARN,
			   "verbs: QP %u op %d completed with %s (vendor error "
			   "0x%x)",
			   wc->qp_num, op, ibv_wc_status_str(wc->status),
			   wc->vendor_err);
		return SRDMA_EFABRIC;
	}
}

static void handle_wc(struct srdma__tp_conn *c, const struct ibv_wc *wc)
{
	struct srdma__tp_cqe e = {0};
	uint64_t i = wc->wr_id;
	int op;

	if (i >= (uint64_t)c->nslots || !c->slots[i].op) {
		srdma__log(lg(c->v), SRDMA_LOG_WARN,
			   "verbs: completion for unknown work request %llu",
			   (unsigned long long)i);
		return;
	}
	op = c->slots[i].op;
	e.wr_id = c->slots[i].wr_id;
	srdma__verbs_slot_put(c, (int)i);
	e.status = map_status(c, wc, op);
	if (op == OP_BIND) {
		/* wr_id is the registration, 0 if it was freed meanwhile. */
		if (e.wr_id)
			srdma__verbs_bind_done(
				c, (struct vmr *)(uintptr_t)e.wr_id, e.status,
				ibv_wc_status_str(wc->status));
		return;
	}
	/* A completion can beat the RTU's ESTABLISHED event: the QP is up. */
	if (c->state == VS_ACCEPTING && !e.status)
		srdma__verbs_tell_established(c);
	e.op = (enum srdma__tp_op)op;
	if (op == SRDMA_TP_OP_RECV && !e.status)
		e.len = wc->byte_len;
	if (!c->destroyed && c->cb.on_cqe)
		c->cb.on_cqe(c->cb.arg, &e);
}

void srdma__verbs_poll_cq(struct srdma__tp_conn *c)
{
	struct ibv_wc wc[16];
	int n = 0, i;

	while (c->cq && !c->destroyed && (n = ibv_poll_cq(c->cq, 16, wc)) > 0)
		for (i = 0; i < n && !c->destroyed; i++)
			handle_wc(c, &wc[i]);
	if (n < 0)
		srdma__log(lg(c->v), SRDMA_LOG_ERROR,
			   "verbs: ibv_poll_cq failed (%d)", n);
}

void srdma__verbs_cq_ready(void *arg, uint32_t events)
{
	struct srdma__tp_conn *c = arg;
	struct ibv_cq *cq;
	void *ctx;
	int rc;

	srdma__verbs_hold(c);
	while (ibv_get_cq_event(c->cch, &cq, &ctx) == 0)
		ibv_ack_cq_events(cq, 1);
	/* Re-arm first, then poll until empty: nothing slips between. */
	rc = ibv_req_notify_cq(c->cq, 0);
	if (rc)
		srdma__log(lg(c->v), SRDMA_LOG_ERROR,
			   "verbs: ibv_req_notify_cq: %s", strerror(rc));
	srdma__verbs_poll_cq(c);
	srdma__verbs_check_drained(c);
	srdma__verbs_release(c);
}

/* ---- ops: data path ------------------------------------------------------ */

static int check_buf(const struct vmr *m, const void *buf, size_t len)
{
	const uint8_t *b = buf, *base = m->pub.buf;

	ENSURE(b >= base && len <= m->pub.len &&
		       (size_t)(b - base) <= m->pub.len - len,
	       SRDMA_ERANGE, "buffer %p+%zu is outside its registration", buf,
	       len);
	return 0;
}

static int post_rc(struct srdma__tp_conn *c, int rc, const char *what)
{
	if (rc == ENOMEM)
		return srdma__err(SRDMA_EAGAIN, "%s: the queue is full", what);
	return srdma__err(SRDMA_EFABRIC, "%s on QP %u: %s", what,
			  c->qp ? c->qp->qp_num : 0, strerror(rc));
}

int srdma__verbs_post_recv(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			   void *buf, size_t len, uint64_t wr_id)
{
	struct vmr *m = (struct vmr *)mr;
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;
	int slot, rc;

	ENSURE(m && buf, SRDMA_EINVAL, "post_recv needs a registered buffer");
	GUARD(check_buf(m, buf, len));
	ENSURE(c->state < VS_DISCONNECTING, SRDMA_ECLOSED,
	       "post_recv: the connection is closing");
	/* Server: the QP waits in RESET (or does not exist yet) until
	 * accept(); queue receives until then. */
	if (!c->qp || (c->attr.server && c->state == VS_NEW)) {
		ENSURE(c->attr.server && c->state == VS_NEW, SRDMA_ESTATE,
		       "post_recv: no queue pair yet");
		ENSURE(c->nqr < c->attr.rq_depth, SRDMA_EAGAIN,
		       "post_recv: %zu receives queued already", c->nqr);
		if (c->nqr == c->qr_cap) {
			size_t n = c->qr_cap ? c->qr_cap * 2 : 16;
			struct qrecv *q = realloc(c->qr, n * sizeof(*q));
			ENSURE(q, SRDMA_ENOMEM, "out of memory queueing recvs");
			c->qr = q;
			c->qr_cap = n;
		}
		c->qr[c->nqr++] = (struct qrecv){
			.m = m, .buf = buf, .len = len, .wr_id = wr_id};
		return 0;
	}
	slot = srdma__verbs_slot_get(c, SRDMA_TP_OP_RECV, wr_id);
	GUARD(slot);
	sge.addr = (uint64_t)(uintptr_t)buf;
	sge.length = (uint32_t)len;
	sge.lkey = m->mr->lkey;
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = (uint64_t)slot;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	rc = ibv_post_recv(c->qp, &wr, &bad);
	if (rc) {
		srdma__verbs_slot_put(c, slot);
		return post_rc(c, rc, "ibv_post_recv");
	}
	return 0;
}

static int post_sq(struct srdma__tp_conn *c, struct ibv_send_wr *wr,
		   struct ibv_sge *sge, int op, uint64_t wr_id,
		   const char *what)
{
	int slot, rc;
	struct ibv_send_wr *bad;

	ENSURE(c->state < VS_DISCONNECTING, SRDMA_ECLOSED,
	       "%s: the connection is closing", what);
	ENSURE(c->qp_rts, SRDMA_ESTATE, "%s: the connection is not up", what);
	slot = srdma__verbs_slot_get(c, op, wr_id);
	GUARD(slot);
	wr->wr_id = (uint64_t)slot;
	wr->sg_list = sge;
	wr->num_sge = 1;
	wr->send_flags |= IBV_SEND_SIGNALED;
	rc = ibv_post_send(c->qp, wr, &bad);
	if (rc) {
		srdma__verbs_slot_put(c, slot);
		return post_rc(c, rc, what);
	}
	return 0;
}

int srdma__verbs_post_send(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			   const void *buf, size_t len, uint64_t wr_id,
			   unsigned flags)
{
	struct vmr *m = (struct vmr *)mr;
	struct ibv_send_wr wr;
	struct ibv_sge sge;
	bool inl = (flags & SRDMA_TP_F_INLINE) && len <= c->max_inline;

	ENSURE(buf && (m || inl), SRDMA_EINVAL,
	       "post_send needs a registered buffer");
	if (m)
		GUARD(check_buf(m, buf, len));
	memset(&wr, 0, sizeof(wr));
	wr.opcode = IBV_WR_SEND;
	if (inl)
		wr.send_flags = IBV_SEND_INLINE;
	sge.addr = (uint64_t)(uintptr_t)buf;
	sge.length = (uint32_t)len;
	sge.lkey = m ? m->mr->lkey : 0;
	return post_sq(c, &wr, &sge, SRDMA_TP_OP_SEND, wr_id, "post_send");
}

static int post_rdma(struct srdma__tp_conn *c, struct vmr *m, const void *buf,
		     size_t len, uint64_t raddr, uint64_t rkey, uint64_t wr_id,
		     bool write)
{
	struct ibv_send_wr wr;
	struct ibv_sge sge;

	ENSURE(m && buf, SRDMA_EINVAL, "RDMA %s needs a registered buffer",
	       write ? "write" : "read");
	GUARD(check_buf(m, buf, len));
	ENSURE(rkey <= UINT32_MAX, SRDMA_EINVAL,
	       "remote key 0x%llx does not fit verbs' 32 bits",
	       (unsigned long long)rkey);
	memset(&wr, 0, sizeof(wr));
	wr.opcode = write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = (uint32_t)rkey;
	sge.addr = (uint64_t)(uintptr_t)buf;
	sge.length = (uint32_t)len;
	sge.lkey = m->mr->lkey;
	return post_sq(c, &wr, &sge,
		       write ? SRDMA_TP_OP_WRITE : SRDMA_TP_OP_READ, wr_id,
		       write ? "post_write" : "post_read");
}

int srdma__verbs_post_write(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			    const void *buf, size_t len, uint64_t raddr,
			    uint64_t rkey, uint64_t wr_id, unsigned flags)
{
	return post_rdma(c, (struct vmr *)mr, buf, len, raddr, rkey, wr_id,
			 true);
}

int srdma__verbs_post_read(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			   void *buf, size_t len, uint64_t raddr, uint64_t rkey,
			   uint64_t wr_id, unsigned flags)
{
	return post_rdma(c, (struct vmr *)mr, buf, len, raddr, rkey, wr_id,
			 false);
}
