/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: connection set-up. Per-connection resources (PD,
 * completion channel, CQ), QP creation and its INIT/RTR/RTS transitions,
 * receives queued before accept, the server's accept, and the client's
 * conn_create, resolve, PSNs and connect.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "transport/verbs/verbs_int.h"

static uint8_t clamp_atom(int dev_max, int peer)
{
	int v = dev_max < MAX_RD_ATOM ? dev_max : MAX_RD_ATOM;

	if (peer >= 0 && peer < v)
		v = peer;
	return (uint8_t)(v < 1 ? 1 : v);
}

/* ---- per-connection resources ----------------------------------------- */

int srdma__verbs_res_alloc(struct srdma__tp_conn *c, struct vdev *d)
{
	const struct ibv_device_attr *da = &d->da;
	uint32_t sq = c->attr.sq_depth + SQ_EXTRA, rq = c->attr.rq_depth;
	char hint[200];
	int rc, cqe;

	GUARD(srdma__verbs_dev_check(d));
	ENSURE(sq <= (uint32_t)da->max_qp_wr && rq <= (uint32_t)da->max_qp_wr,
	       SRDMA_ECONFIG,
	       "RDMA device %s allows %d work requests per queue but a "
	       "connection needs %u to send and %u to receive; lower "
	       "queue_depth in srdma_config",
	       d->name, da->max_qp_wr, sq, rq);
	cqe = (int)(sq + rq);
	ENSURE(cqe <= da->max_cqe, SRDMA_ECONFIG,
	       "RDMA device %s allows %d completion queue entries but a "
	       "connection needs %d; lower queue_depth in srdma_config",
	       d->name, da->max_cqe, cqe);
	c->dev = d;
	c->ctx = d->ctx;
	c->resp_res = clamp_atom(da->max_qp_rd_atom, -1);
	c->init_depth = clamp_atom(da->max_qp_init_rd_atom, -1);
	c->dev_resp_res = c->resp_res;
	c->dev_init_depth = c->init_depth;

	c->pd = ibv_alloc_pd(c->ctx);
	if (!c->pd)
		return srdma__err(
			SRDMA_EFABRIC, "ibv_alloc_pd(%s): %s%s", d->name,
			strerror(errno),
			srdma__verbs_memlock_hint(hint, sizeof(hint)));
	c->cch = ibv_create_comp_channel(c->ctx);
	if (!c->cch) {
		rc = srdma__err(SRDMA_EFABRIC, "ibv_create_comp_channel: %s",
				strerror(errno));
		goto out_free;
	}
	rc = srdma__verbs_set_nonblock(c->cch->fd);
	if (rc < 0)
		goto out_free;
	c->cq = ibv_create_cq(c->ctx, cqe, c, c->cch, 0);
	if (!c->cq) {
		int e = errno;
		rc = srdma__err(e == ENOMEM ? SRDMA_ENOMEM : SRDMA_EFABRIC,
				"ibv_create_cq(%d entries) on %s: %s%s", cqe,
				d->name, strerror(e),
				srdma__verbs_memlock_hint(hint, sizeof(hint)));
		goto out_free;
	}
	rc = ibv_req_notify_cq(c->cq, 0);
	if (rc) {
		rc = srdma__err(SRDMA_EFABRIC, "ibv_req_notify_cq: %s",
				strerror(rc));
		goto out_free;
	}
	rc = srdma__loop_add(c->v->tp->loop, c->cch->fd, EPOLLIN,
			     srdma__verbs_cq_ready, NULL, c, &c->cch_reg);
	if (rc < 0)
		goto out_free;
	return 0;

out_free:
	srdma__verbs_res_free(c);
	return rc;
}

int srdma__verbs_qp_create(struct srdma__tp_conn *c)
{
	struct ibv_qp_init_attr ia = {0};
	char hint[200];

	ia.qp_context = c;
	ia.send_cq = c->cq;
	ia.recv_cq = c->cq;
	ia.qp_type = IBV_QPT_RC;
	ia.sq_sig_all = 0;
	ia.cap.max_send_wr = c->attr.sq_depth + SQ_EXTRA;
	ia.cap.max_recv_wr = c->attr.rq_depth;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	ia.cap.max_inline_data = c->attr.max_inline;
	c->qp = ibv_create_qp(c->pd, &ia);
	if (!c->qp && ia.cap.max_inline_data) {
		srdma__log(lg(c->v), SRDMA_LOG_INFO,
			   "verbs: %s refused max_inline %u; no inline sends",
			   dev_name(c->ctx), ia.cap.max_inline_data);
		ia.cap.max_inline_data = 0;
		c->qp = ibv_create_qp(c->pd, &ia);
	}
	if (!c->qp) {
		int e = errno;
		return srdma__err(
			e == ENOMEM ? SRDMA_ENOMEM : SRDMA_EFABRIC,
			"ibv_create_qp(RC, sq %u, rq %u) on %s: %s%s",
			ia.cap.max_send_wr, ia.cap.max_recv_wr,
			dev_name(c->ctx), strerror(e),
			srdma__verbs_memlock_hint(hint, sizeof(hint)));
	}
	c->max_inline = ia.cap.max_inline_data;
	c->qp_err = false;
	c->qp_used = false;
	c->qp_rts = false;
	return 0;
}

static const char *qps_name(enum ibv_qp_state s)
{
	return s == IBV_QPS_INIT ? "INIT" : s == IBV_QPS_RTR ? "RTR" : "RTS";
}

/* One transition with the CM's attributes and our overrides. */
int srdma__verbs_qp_move(struct srdma__tp_conn *c, enum ibv_qp_state st)
{
	struct ibv_qp_attr a;
	int mask = 0, rc;

	memset(&a, 0, sizeof(a));
	a.qp_state = st;
	if (rdma_init_qp_attr(c->id, &a, &mask))
		return srdma__err(SRDMA_EFABRIC, "rdma_init_qp_attr(%s): %s",
				  qps_name(st), strerror(errno));
	switch (st) {
	case IBV_QPS_INIT:
		/* The per-MR/MW flags decide what the peer may touch. */
		a.qp_access_flags =
			IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
		mask |= IBV_QP_ACCESS_FLAGS;
		break;
	case IBV_QPS_RTR:
		if (c->psn_set) {
			a.rq_psn = c->rq_psn;
			mask |= IBV_QP_RQ_PSN;
		}
		/* A send that finds no receive is retried after this, not
		 * after the CM's 655 ms. */
		a.min_rnr_timer = MIN_RNR_TIMER;
		mask |= IBV_QP_MIN_RNR_TIMER;
		if (c->attr.server) {
			a.max_dest_rd_atomic = c->resp_res;
			mask |= IBV_QP_MAX_DEST_RD_ATOMIC;
		}
		break;
	case IBV_QPS_RTS:
		if (c->psn_set) {
			a.sq_psn = c->sq_psn;
			mask |= IBV_QP_SQ_PSN;
		}
		if (c->attr.server) {
			a.max_rd_atomic = c->init_depth;
			mask |= IBV_QP_MAX_QP_RD_ATOMIC;
		}
		break;
	default:
		break;
	}
	rc = ibv_modify_qp(c->qp, &a, mask);
	if (rc)
		return srdma__err(SRDMA_EFABRIC,
				  "ibv_modify_qp(%s) on QP %u: %s",
				  qps_name(st), c->qp->qp_num, strerror(rc));
	c->qp_used = true;
	if (st == IBV_QPS_RTS) {
		struct ibv_qp_init_attr ia;
		c->qp_rts = true;
		/* Read back now: the server's receives are posted, so the
		 * peer's first message may move rq_psn right after the REP. */
		memset(&a, 0, sizeof(a));
		c->psn_read =
			ibv_query_qp(c->qp, &a, IBV_QP_SQ_PSN | IBV_QP_RQ_PSN,
				     &ia) == 0;
		c->rts_sq_psn = a.sq_psn;
		c->rts_rq_psn = a.rq_psn;
	}
	return 0;
}

static int post_queued_recvs(struct srdma__tp_conn *c)
{
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;
	size_t i;
	int slot, rc;

	for (i = 0; i < c->nqr; i++) {
		struct qrecv *q = &c->qr[i];
		slot = srdma__verbs_slot_get(c, SRDMA_TP_OP_RECV, q->wr_id);
		GUARD(slot);
		sge.addr = (uint64_t)(uintptr_t)q->buf;
		sge.length = (uint32_t)q->len;
		sge.lkey = q->m->mr->lkey;
		memset(&wr, 0, sizeof(wr));
		wr.wr_id = (uint64_t)slot;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		rc = ibv_post_recv(c->qp, &wr, &bad);
		if (rc) {
			srdma__verbs_slot_put(c, slot);
			return srdma__err(SRDMA_EFABRIC,
					  "ibv_post_recv (queued #%zu): %s", i,
					  strerror(rc));
		}
	}
	return 0;
}

int srdma__verbs_accept(struct srdma__tp_conn *c, struct srdma__tp_connreq *req,
			const void *pdata, size_t len)
{
	struct rdma_cm_id *id = req ? req->handle : NULL;
	struct rdma_conn_param p;
	int rc;

	ENSURE(id, SRDMA_EINVAL, "accept: the request was already decided");
	ENSURE(c->attr.server && c->state == VS_NEW && !c->destroyed && c->qp,
	       SRDMA_ESTATE,
	       "accept: the connection is not a fresh server "
	       "connection");
	ENSURE(len <= ACCEPT_PDATA_MAX, SRDMA_EMSGSIZE,
	       "accept private data is %zu bytes; at most %d fit", len,
	       ACCEPT_PDATA_MAX);
	ENSURE(srdma__verbs_dev_of(c->v, id->verbs) == c->dev, SRDMA_ENODEV,
	       "the connect request from %s arrived on RDMA device %s but the "
	       "connection's resources are on %s",
	       req->peer, dev_name(id->verbs), c->dev->name);
	c->id = id;
	snprintf(c->peer, sizeof(c->peer), "%s", req->peer);
	c->resp_res = clamp_atom(c->resp_res, c->v->req_initiator_depth);
	c->init_depth =
		clamp_atom(c->init_depth, c->v->req_responder_resources);
	rc = srdma__verbs_qp_move(c, IBV_QPS_INIT);
	if (rc < 0)
		goto out_destroy_qp;
	/* Receives before RTR, so the peer's first sends find them. */
	rc = post_queued_recvs(c);
	if (rc < 0)
		goto out_destroy_qp;
	rc = srdma__verbs_qp_move(c, IBV_QPS_RTR);
	if (rc < 0)
		goto out_destroy_qp;
	rc = srdma__verbs_qp_move(c, IBV_QPS_RTS);
	if (rc < 0)
		goto out_destroy_qp;
	rc = srdma__verbs_bind_pending(c);
	if (rc < 0)
		goto out_destroy_qp;
	memset(&p, 0, sizeof(p));
	p.private_data = pdata;
	p.private_data_len = (uint8_t)len;
	p.responder_resources = c->resp_res;
	p.initiator_depth = c->init_depth;
	p.retry_count = 7;
	p.rnr_retry_count = 7;
	p.flow_control = 1;
	p.qp_num = c->qp->qp_num;
	if (rdma_accept(id, &p)) {
		rc = srdma__err(SRDMA_EFABRIC, "rdma_accept from %s: %s",
				req->peer, strerror(errno));
		goto out_destroy_qp;
	}
	c->nqr = 0;
	c->accepted = true;
	c->remote_qpn = req->initiator_qpn;
	id->context = c;
	req->handle = NULL;
	c->state = VS_ACCEPTING;
	return 0;

out_destroy_qp:
	ibv_destroy_qp(c->qp);
	c->qp = NULL;
	srdma__verbs_slots_reset(c);
	for (struct vmr *m = c->mrs; m; m = m->next)
		m->bound = false;
	c->id = NULL; /* the listener path rejects and frees it */
	return rc;
}

/* ---- ops: connection ----------------------------------------------------- */

int srdma__verbs_conn_create(struct srdma__tp *tp,
			     const struct srdma__tp_conn_attr *attr,
			     const struct srdma__tp_conn_cb *cb,
			     struct srdma__tp_conn **out)
{
	struct vtp *v = tp->priv;
	struct srdma__tp_conn *c;
	struct vdev *d = NULL;
	int rc;

	ENSURE(attr && cb, SRDMA_EINVAL, "conn_create needs attr and cb");
	c = calloc(1, sizeof(*c));
	ENSURE(c, SRDMA_ENOMEM, "out of memory for a connection");
	c->kind = KIND_CONN;
	c->v = v;
	c->attr = *attr;
	c->cb = *cb;
	c->free_slot = SLOT_NONE;
	if (!c->attr.sq_depth)
		c->attr.sq_depth = DEFAULT_DEPTH;
	if (!c->attr.rq_depth)
		c->attr.rq_depth = DEFAULT_DEPTH;
	snprintf(c->peer, sizeof(c->peer), "(unconnected)");
	c->next = v->conns;
	if (v->conns)
		v->conns->prev = c;
	v->conns = c;
	if (attr->server) {
		if (attr->dev > 0 && attr->dev <= v->ndevs) {
			d = v->devs[attr->dev - 1];
		} else {
			rc = srdma__verbs_dev_default(v, &d);
			if (rc < 0)
				goto out_free;
		}
		rc = srdma__verbs_res_alloc(c, d);
		if (rc < 0)
			goto out_free;
		/* The QP exists before any client is seen (its number comes
		 * out of the server's resource pool, not the connect). */
		rc = srdma__verbs_qp_create(c);
		if (rc < 0)
			goto out_free;
	} else if (rdma_create_id(v->ech, &c->id, c, RDMA_PS_TCP)) {
		rc = srdma__err(SRDMA_EFABRIC, "rdma_create_id: %s",
				strerror(errno));
		goto out_free;
	} else if (tp->opts.tos &&
		   rdma_set_option(c->id, RDMA_OPTION_ID, RDMA_OPTION_ID_TOS,
				   &tp->opts.tos, sizeof(uint8_t))) {
		/* Before route resolution, which puts it in the path. */
		rc = srdma__err(SRDMA_ECONFIG,
				"rdma_set_option(TOS 0x%02x): %s", tp->opts.tos,
				strerror(errno));
		goto out_free;
	}
	*out = c;
	return 0;

out_free:
	c->destroyed = true;
	srdma__verbs_conn_free(c);
	return rc;
}

int srdma__verbs_resolve(struct srdma__tp_conn *c, const char *host,
			 uint16_t port, int timeout_ms)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM},
			*ai;
	char ps[8];
	int rc;

	ENSURE(!c->attr.server && c->state == VS_NEW && c->id, SRDMA_ESTATE,
	       "resolve: only once, on a new client connection");
	ENSURE(host && host[0], SRDMA_EINVAL, "resolve needs a host");
	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(host, ps, &hints, &ai);
	ENSURE(rc == 0, SRDMA_EUNREACHABLE, "cannot resolve %s: %s", host,
	       gai_strerror(rc));
	srdma__verbs_fmt_addr(ai->ai_addr, c->peer, sizeof(c->peer));
	rc = rdma_resolve_addr(c->id, NULL, ai->ai_addr,
			       timeout_ms > 0 ? timeout_ms : 2000);
	freeaddrinfo(ai);
	ENSURE(rc == 0, SRDMA_EUNREACHABLE, "rdma_resolve_addr(%s): %s",
	       c->peer, strerror(errno));
	c->state = VS_RESOLVING;
	return SRDMA_EAGAIN;
}

uint32_t srdma__verbs_local_qpn(const struct srdma__tp_conn *c)
{
	return c && c->qp ? c->qp->qp_num : 0;
}

void srdma__verbs_set_psn(struct srdma__tp_conn *c, uint32_t sq_psn,
			  uint32_t rq_psn)
{
	c->sq_psn = sq_psn & PSN_MASK;
	c->rq_psn = rq_psn & PSN_MASK;
	c->psn_set = true;
	if (c->qp_rts)
		srdma__log(lg(c->v), SRDMA_LOG_WARN,
			   "verbs: set_psn after the QP reached RTS has no "
			   "effect");
}

int srdma__verbs_connect(struct srdma__tp_conn *c, const void *pdata,
			 size_t len)
{
	struct rdma_conn_param p;

	ENSURE(c->state == VS_PREPARED, SRDMA_ESTATE,
	       "connect: wait for on_prepared(0) first");
	ENSURE(len <= CONNECT_PDATA_MAX, SRDMA_EMSGSIZE,
	       "connect private data is %zu bytes; at most %d fit", len,
	       CONNECT_PDATA_MAX);
	memset(&p, 0, sizeof(p));
	p.private_data = pdata;
	p.private_data_len = (uint8_t)len;
	p.responder_resources = c->resp_res;
	p.initiator_depth = c->init_depth;
	p.retry_count = 7;
	p.rnr_retry_count = 7;
	p.flow_control = 1;
	p.qp_num = c->qp->qp_num;
	ENSURE(rdma_connect(c->id, &p) == 0, SRDMA_EFABRIC,
	       "rdma_connect to %s: %s", c->peer, strerror(errno));
	c->state = VS_CONNECTING;
	return 0;
}
