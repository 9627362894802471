/* SPDX-License-Identifier: MIT */
/*
 * ofi backend: conn_reset, which returns an idle server connection to
 * the state conn_create leaves, for the resource pool
 * (session/respool.c).
 */
#include <string.h>

#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "transport/ofi/ofi_int.h"

/*
 * Back to C_INIT for the next client (session/respool.c): the endpoint goes,
 * every completion and event still queued is read and dropped, the op pool
 * is whole again. The domain, CQ, EQ and the caller's local registrations
 * stay; a remotely accessible registration must already be gone.
 */
int srdma__ofi_conn_reset(struct srdma__tp_conn *c)
{
	struct fi_cq_data_entry ent[CQ_BATCH];
	struct fi_cq_err_entry cerr;
	struct fi_eq_err_entry eerr;
	uint8_t ev[sizeof(struct fi_eq_cm_entry) + PDATA_MAX];
	uint32_t event, i;
	ssize_t n;
	int guard;

	ENSURE(c && !c->dead && c->attr.server && c->depth == 0, SRDMA_ESTATE,
	       "reset: only an idle server connection");
	ENSURE(c->state == C_INIT || c->state == C_CLOSED, SRDMA_ESTATE,
	       "reset: the fabric connection is still live");
	for (struct ofi_mr *m = c->mrs; m; m = m->next)
		ENSURE(m->pub.key == 0, SRDMA_ESTATE,
		       "reset: a remotely accessible registration is still "
		       "live");
	srdma__ofi_close_fid(c->ep ? &c->ep->fid : NULL, "endpoint", c->o);
	c->ep = NULL;
	for (guard = 0; guard < 1 << 16; guard++) {
		n = fi_cq_read(c->cq, ent, CQ_BATCH);
		if (n == -FI_EAVAIL) {
			memset(&cerr, 0, sizeof(cerr));
			n = fi_cq_readerr(c->cq, &cerr, 0);
		}
		if (n == -FI_EAGAIN)
			break;
		ENSURE(n >= 0, SRDMA_EFABRIC, "reset: fi_cq_read: %s",
		       fi_strerror((int)-n));
	}
	for (guard = 0; guard < 1 << 16; guard++) {
		n = fi_eq_read(c->eq, &event, ev, sizeof(ev), 0);
		if (n == -FI_EAVAIL) {
			memset(&eerr, 0, sizeof(eerr));
			n = fi_eq_readerr(c->eq, &eerr, 0);
		}
		if (n == -FI_EAGAIN)
			break;
		ENSURE(n >= 0, SRDMA_EFABRIC, "reset: fi_eq_read: %s",
		       fi_strerror((int)-n));
	}
	c->free_ops = NULL;
	for (i = c->nops; i-- > 0;)
		srdma__ofi_op_put(c, &c->ops[i]);
	c->ring_head = c->ring_count = 0;
	c->close_pending = c->peer_dropped = false;
	c->rma_lost = 0;
	c->close_status = 0;
	c->close_detail[0] = '\0';
	c->state = C_INIT;
	srdma__loop_touch(c->cq_reg);
	return 0;
}
