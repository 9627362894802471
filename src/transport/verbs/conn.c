/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: a connection's lifetime. Holds while handlers run,
 * teardown of its resources, the callbacks to the session (established,
 * prepared, closed once drained), disconnect, destroy, and its info.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/verbs/verbs_int.h"

/* ---- conn lifetime ---------------------------------------------------- */

void srdma__verbs_hold(struct srdma__tp_conn *c)
{
	c->busy++;
}

static void maybe_free(struct srdma__tp_conn *c)
{
	if (c->destroyed && c->reap && c->busy == 0)
		srdma__verbs_conn_free(c);
}

void srdma__verbs_release(struct srdma__tp_conn *c)
{
	c->busy--;
	maybe_free(c);
}

static void kick(struct srdma__tp_conn *c)
{
	uint64_t one = 1;

	c->check_pending = true;
	if (write(c->v->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		srdma__log(lg(c->v), SRDMA_LOG_ERROR,
			   "verbs: eventfd write: %s", strerror(errno));
}

static void qp_to_err(struct srdma__tp_conn *c)
{
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
	int rc;

	if (!c->qp || c->qp_err)
		return;
	c->qp_err = true;
	c->qp_rts = false;
	if (!c->qp_used) /* still in RESET: no work to flush (rxe refuses) */
		return;
	rc = ibv_modify_qp(c->qp, &a, IBV_QP_STATE);
	if (rc)
		srdma__log(lg(c->v), SRDMA_LOG_WARN,
			   "verbs: ibv_modify_qp(ERR) on QP %u: %s",
			   c->qp->qp_num, strerror(rc));
}

/* Teardown order: QP, CQ, completion channel, (MWs, MRs), PD. */
void srdma__verbs_res_free(struct srdma__tp_conn *c)
{
	int rc;

	srdma__loop_del(c->cch_reg);
	c->cch_reg = NULL;
	if (c->qp) {
		qp_to_err(c);
		rc = ibv_destroy_qp(c->qp);
		if (rc)
			srdma__log(lg(c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_destroy_qp: %s", strerror(rc));
		c->qp = NULL;
		srdma__verbs_slots_reset(c);
	}
	if (c->cq) {
		rc = ibv_destroy_cq(c->cq);
		if (rc)
			srdma__log(lg(c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_destroy_cq: %s", strerror(rc));
		c->cq = NULL;
	}
	if (c->cch) {
		ibv_destroy_comp_channel(c->cch);
		c->cch = NULL;
	}
	while (c->mrs) {
		struct vmr *m = c->mrs;
		c->mrs = m->next;
		srdma__verbs_mr_free(m);
	}
	if (c->pd) {
		rc = ibv_dealloc_pd(c->pd);
		if (rc)
			srdma__log(lg(c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_dealloc_pd: %s", strerror(rc));
		c->pd = NULL;
	}
}

void srdma__verbs_conn_free(struct srdma__tp_conn *c)
{
	struct vtp *v = c->v;

	srdma__verbs_res_free(c);
	if (c->id) {
		rdma_destroy_id(c->id);
		c->id = NULL;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		v->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->slots);
	free(c->qr);
	free(c);
}

/* ---- callbacks to the session --------------------------------------- */

void srdma__verbs_tell_established(struct srdma__tp_conn *c)
{
	c->state = VS_ESTABLISHED;
	if (!c->destroyed && c->cb.on_established)
		c->cb.on_established(c->cb.arg);
}

void srdma__verbs_tell_prepared(struct srdma__tp_conn *c, int status)
{
	if (!c->destroyed && c->cb.on_prepared)
		c->cb.on_prepared(c->cb.arg, status);
}

/* Closes once DRAINING and every work request has completed. */
void srdma__verbs_check_drained(struct srdma__tp_conn *c)
{
	if (c->state != VS_DRAINING || c->outstanding || c->destroyed)
		return;
	/* Windows whose bind was never posted will not be bound now. */
	for (struct vmr *m = c->mrs; m && !c->destroyed; m = m->next)
		if (m->pub.pending && !m->bound) {
			m->bound = true;
			srdma__verbs_bind_done(c, m, SRDMA_ECLOSED, "");
		}
	/* Receives queued before accept() never reached a QP: flush them. */
	while (c->nqr && !c->destroyed) {
		struct qrecv q = c->qr[--c->nqr];
		struct srdma__tp_cqe e = {.wr_id = q.wr_id,
					  .op = SRDMA_TP_OP_RECV,
					  .status = SRDMA_ECLOSED};
		if (c->cb.on_cqe)
			c->cb.on_cqe(c->cb.arg, &e);
	}
	if (c->destroyed || c->state != VS_DRAINING)
		return;
	c->state = VS_CLOSED;
	if (c->cb.on_closed)
		c->cb.on_closed(c->cb.arg, c->close_status, c->close_detail);
}

/* The connection is going away: flush everything, then on_closed. */
void srdma__verbs_begin_close(struct srdma__tp_conn *c, int status,
			      const char *detail)
{
	if (c->state >= VS_DRAINING)
		return;
	c->state = VS_DRAINING;
	c->close_status = status;
	snprintf(c->close_detail, sizeof(c->close_detail), "%s", detail);
	if (status)
		srdma__log(lg(c->v), SRDMA_LOG_INFO, "verbs: %s: %s", c->peer,
			   detail);
	qp_to_err(c);
	kick(c);
}

int srdma__verbs_disconnect(struct srdma__tp_conn *c)
{
	switch (c->state) {
	case VS_ESTABLISHED:
		qp_to_err(c);
		if (rdma_disconnect(c->id)) {
			srdma__log(lg(c->v), SRDMA_LOG_INFO,
				   "verbs: rdma_disconnect(%s): %s", c->peer,
				   strerror(errno));
			srdma__verbs_begin_close(c, 0, "disconnected");
			return 0;
		}
		c->state = VS_DISCONNECTING;
		return 0;
	case VS_DISCONNECTING:
	case VS_DRAINING:
		return 0;
	case VS_CLOSED:
		return srdma__err(SRDMA_ESTATE, "disconnect: already closed");
	default:
		/*
		 * Not up yet. Mid-handshake, destroying the cm_id makes the
		 * CM send a REJ, so the peer hears of it at once.
		 */
		if (c->id &&
		    (c->state == VS_CONNECTING || c->state == VS_ACCEPTING)) {
			rdma_destroy_id(c->id);
			c->id = NULL;
		}
		srdma__verbs_begin_close(c, 0,
					 "closed before the connection was up");
		return 0;
	}
}

void srdma__verbs_conn_destroy(struct srdma__tp_conn *c)
{
	bool zombie;

	if (!c || c->destroyed)
		return;
	c->destroyed = true;
	zombie = c->id &&
		 (c->state == VS_ESTABLISHED || c->state == VS_DISCONNECTING);
	if (zombie && c->state == VS_ESTABLISHED && rdma_disconnect(c->id))
		zombie = false;
	/* Quiesce now: no DMA into the session's buffers after return. */
	srdma__loop_del(c->cch_reg);
	c->cch_reg = NULL;
	qp_to_err(c);
	while (c->mrs) {
		struct vmr *m = c->mrs;
		c->mrs = m->next;
		srdma__verbs_mr_free(m);
	}
	c->nqr = 0;
	c->reap = !zombie;
	maybe_free(c);
}

void srdma__verbs_conn_set_cb(struct srdma__tp_conn *c,
			      const struct srdma__tp_conn_cb *cb)
{
	c->cb = *cb;
}

int srdma__verbs_conn_info(const struct srdma__tp_conn *c,
			   struct srdma__tp_info *out)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	int rc;

	memset(out, 0, sizeof(*out));
	if (c->ctx)
		snprintf(out->provider, sizeof(out->provider), "%s",
			 dev_name(c->ctx));
	out->max_inline = c->max_inline;
	out->traffic_class = -1;
	if (!c->qp)
		return 0;
	out->local_qpn = c->qp->qp_num;
	out->remote_qpn = c->remote_qpn;
	memset(&a, 0, sizeof(a));
	rc = ibv_query_qp(c->qp, &a,
			  IBV_QP_SQ_PSN | IBV_QP_RQ_PSN | IBV_QP_DEST_QPN |
				  IBV_QP_STATE | IBV_QP_AV,
			  &ia);
	ENSURE(rc == 0, SRDMA_EFABRIC, "ibv_query_qp(QP %u): %s", c->qp->qp_num,
	       strerror(rc));
	out->sq_psn = c->psn_read ? c->rts_sq_psn : a.sq_psn;
	out->rq_psn = c->psn_read ? c->rts_rq_psn : a.rq_psn;
	out->sq_psn_now = a.sq_psn;
	out->rq_psn_now = a.rq_psn;
	if (a.qp_state >= IBV_QPS_RTR && a.dest_qp_num)
		out->remote_qpn = a.dest_qp_num;
	if (a.qp_state >= IBV_QPS_RTR)
		out->traffic_class = a.ah_attr.grh.traffic_class;
	return 0;
}

int srdma__verbs_qp_query(const struct srdma__tp_conn *c, int *traffic_class,
			  int *min_rnr_timer)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	int rc;

	ENSURE(c && c->qp, SRDMA_ESTATE, "no queue pair");
	memset(&a, 0, sizeof(a));
	rc = ibv_query_qp(c->qp, &a, IBV_QP_AV | IBV_QP_MIN_RNR_TIMER, &ia);
	ENSURE(rc == 0, SRDMA_EFABRIC, "ibv_query_qp(QP %u): %s", c->qp->qp_num,
	       strerror(rc));
	*traffic_class = a.ah_attr.grh.traffic_class;
	*min_rnr_timer = a.min_rnr_timer;
	return 0;
}

int srdma__verbs_conn_count(const struct srdma__tp *tp)
{
	const struct vtp *v = tp->priv;
	const struct srdma__tp_conn *c;
	int n = 0;

	for (c = v->conns; c; c = c->next)
		n++;
	return n;
}
