/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: conn_reset, which returns an idle server connection
 * to the state conn_create leaves, for the resource pool
 * (session/respool.c).
 */
#include <stdio.h>
#include <string.h>

#include "transport/verbs/verbs_int.h"

/*
 * Back to VS_NEW for the next client (session/respool.c): the rdma_cm id goes
 * (after TIMEWAIT_EXIT if the connection was accepted: conn_usable),
 * the QP returns to RESET (which empties both its queues), the CQ is polled
 * empty and re-armed, every work slot is free. PD, CQ, completion channel,
 * QP and the caller's local registrations stay; memory windows must already
 * be gone, so no key of the previous owner survives.
 */
int srdma__verbs_conn_reset(struct srdma__tp_conn *c)
{
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_RESET};
	struct ibv_wc wc[16];
	int rc, n, guard;

	ENSURE(c && !c->destroyed && c->attr.server && c->busy == 0 && c->qp,
	       SRDMA_ESTATE, "reset: only an idle server connection");
	ENSURE(c->state == VS_NEW || c->state == VS_CLOSED, SRDMA_ESTATE,
	       "reset: the fabric connection is still live");
	for (struct vmr *m = c->mrs; m; m = m->next)
		ENSURE(!m->mw && !m->mw_access, SRDMA_ESTATE,
		       "reset: a remotely accessible registration is still "
		       "live");
	if (c->id && c->accepted && !c->tw_exited) {
		/* The CM holds the connection in TIMEWAIT (IBA 12.9.8.6) until
		 * late packets of it can no longer arrive: the QP number
		 * serves nobody else before its TIMEWAIT_EXIT. */
		c->timewait = true;
		c->timewait_since_ms = srdma__now_ms();
	} else if (c->id) {
		c->id->context = NULL;
		rdma_destroy_id(c->id);
		c->id = NULL;
	}
	c->accepted = c->tw_exited = false;
	rc = ibv_modify_qp(c->qp, &a, IBV_QP_STATE);
	ENSURE(rc == 0, SRDMA_EFABRIC,
	       "reset: ibv_modify_qp(RESET) on QP %u: %s", c->qp->qp_num,
	       strerror(rc));
	for (guard = 0; guard < 1 << 12; guard++) {
		n = ibv_poll_cq(c->cq, 16, wc);
		ENSURE(n >= 0, SRDMA_EFABRIC, "reset: ibv_poll_cq failed (%d)",
		       n);
		if (n == 0)
			break;
	}
	srdma__verbs_slots_reset(c);
	c->nqr = 0;
	c->qp_rts = c->qp_err = c->qp_used = false;
	c->psn_set = c->psn_read = false;
	c->sq_psn = c->rq_psn = 0;
	c->remote_qpn = 0;
	c->check_pending = false;
	c->close_status = 0;
	c->close_detail[0] = '\0';
	c->resp_res = c->dev_resp_res;
	c->init_depth = c->dev_init_depth;
	snprintf(c->peer, sizeof(c->peer), "(unconnected)");
	c->state = VS_NEW;
	return 0;
}

void srdma__verbs_timewait_over(struct srdma__tp_conn *c)
{
	if (!c->timewait)
		return;
	c->timewait = false;
	if (c->id) {
		c->id->context = NULL;
		rdma_destroy_id(c->id);
		c->id = NULL;
	}
}

int srdma__verbs_conn_usable(const struct srdma__tp_conn *c)
{
	if (!c || c->destroyed || !c->qp || c->state != VS_NEW ||
	    (c->dev && c->dev->dead))
		return -1;
	if (c->timewait)
		return srdma__now_ms() - c->timewait_since_ms > TIMEWAIT_MAX_MS
			       ? -1
			       : 0;
	return 1;
}
