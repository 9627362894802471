/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: memory registration and type-2 memory windows (the
 * key handed out, the bind once the QP reaches RTS, deregistration).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "transport/verbs/verbs_int.h"

void srdma__verbs_mr_free(struct vmr *m)
{
	int rc;

	if (m->mw) {
		rc = ibv_dealloc_mw(m->mw);
		if (rc)
			srdma__log(lg(m->c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_dealloc_mw: %s", strerror(rc));
	}
	if (m->mr) {
		rc = ibv_dereg_mr(m->mr);
		if (rc)
			srdma__log(lg(m->c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_dereg_mr: %s", strerror(rc));
	}
	free(m);
}

static int bind_mw(struct srdma__tp_conn *c, struct vmr *m)
{
	struct ibv_send_wr wr, *bad = NULL;
	int slot, rc;

	slot = srdma__verbs_slot_get(c, OP_BIND, 0);
	GUARD(slot);
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = (uint64_t)slot;
	wr.opcode = IBV_WR_BIND_MW;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.bind_mw.mw = m->mw;
	wr.bind_mw.rkey = (uint32_t)m->pub.key;
	wr.bind_mw.bind_info.mr = m->mr;
	wr.bind_mw.bind_info.addr = (uint64_t)(uintptr_t)m->pub.buf;
	wr.bind_mw.bind_info.length = m->pub.len;
	wr.bind_mw.bind_info.mw_access_flags = m->mw_access;
	rc = ibv_post_send(c->qp, &wr, &bad);
	if (rc) {
		srdma__verbs_slot_put(c, slot);
		return srdma__err(SRDMA_EFABRIC,
				  "ibv_post_send(BIND_MW) on QP %u: %s",
				  c->qp->qp_num, strerror(rc));
	}
	m->bound = true;
	return 0;
}

int srdma__verbs_bind_pending(struct srdma__tp_conn *c)
{
	struct vmr *m;

	for (m = c->mrs; m; m = m->next)
		if (m->mw && !m->bound)
			GUARD(bind_mw(c, m));
	return 0;
}

/* ---- ops: memory --------------------------------------------------------- */

int srdma__verbs_mr_reg(struct srdma__tp_conn *c, void *buf, size_t len,
			unsigned access, struct srdma__tp_mr **out)
{
	unsigned remote =
		access & (SRDMA_TP_REMOTE_READ | SRDMA_TP_REMOTE_WRITE);
	int flags = IBV_ACCESS_LOCAL_WRITE, rc;
	struct vmr *m;
	uint8_t tag;

	ENSURE(buf && len, SRDMA_EINVAL, "mr_reg needs a buffer");
	ENSURE(!(access & ~7u), SRDMA_EINVAL, "mr_reg: unknown access bits");
	ENSURE(c->pd && !c->destroyed, SRDMA_ESTATE,
	       "mr_reg: no protection domain yet (client: after on_prepared)");
	m = calloc(1, sizeof(*m));
	ENSURE(m, SRDMA_ENOMEM, "out of memory for a registration");
	m->c = c;
	if (access & SRDMA_TP_REMOTE_READ)
		m->mw_access |= IBV_ACCESS_REMOTE_READ;
	if (access & SRDMA_TP_REMOTE_WRITE)
		m->mw_access |= IBV_ACCESS_REMOTE_WRITE;
	if (remote && c->mw_ok) {
		m->mw = ibv_alloc_mw(c->pd, IBV_MW_TYPE_2);
		if (!m->mw)
			srdma__log(lg(c->v), SRDMA_LOG_INFO,
				   "verbs: ibv_alloc_mw(type 2) on %s: %s; "
				   "handing out the MR's rkey",
				   dev_name(c->ctx), strerror(errno));
	} else if (remote) {
		srdma__log(lg(c->v), SRDMA_LOG_INFO,
			   "verbs: %s has no type-2 memory windows; handing "
			   "out the MR's rkey",
			   dev_name(c->ctx));
	}
	if (m->mw)
		flags |= IBV_ACCESS_MW_BIND;
	else
		flags |= (int)m->mw_access;
	m->mr = ibv_reg_mr(c->pd, buf, len, flags);
	if (!m->mr) {
		rc = srdma__err(errno == ENOMEM ? SRDMA_ENOMEM : SRDMA_EFABRIC,
				"ibv_reg_mr(%zu bytes) on %s: %s", len,
				dev_name(c->ctx), strerror(errno));
		goto out_free;
	}
	m->pub.buf = buf;
	m->pub.len = len;
	m->pub.addr = (uint64_t)(uintptr_t)buf;
	m->pub.desc = m;
	if (m->mw) {
		/* The MW's index, a fresh random tag (ReDMArk: no guessing). */
		if (getrandom(&tag, 1, 0) != 1) {
			rc = srdma__err(SRDMA_ESYS, "getrandom: %s",
					strerror(errno));
			goto out_free;
		}
		m->pub.key = (m->mw->rkey & 0xffffff00u) | tag;
		if (c->qp_rts) {
			rc = bind_mw(c, m);
			if (rc < 0)
				goto out_free;
		}
	} else if (remote) {
		m->pub.key = m->mr->rkey;
	}
	m->next = c->mrs;
	c->mrs = m;
	*out = &m->pub;
	return 0;

out_free:
	srdma__verbs_mr_free(m);
	return rc;
}

void srdma__verbs_mr_dereg(struct srdma__tp_mr *pub)
{
	struct vmr *m = (struct vmr *)pub, **pp;

	if (!m)
		return;
	for (pp = &m->c->mrs; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	srdma__verbs_mr_free(m);
}

bool srdma__verbs_mr_uses_mw(const struct srdma__tp_mr *pub)
{
	const struct vmr *m = (const struct vmr *)pub;

	return m && m->mw;
}

uint32_t srdma__verbs_mr_rkey(const struct srdma__tp_mr *pub)
{
	const struct vmr *m = (const struct vmr *)pub;

	return m && m->mr ? m->mr->rkey : 0;
}
