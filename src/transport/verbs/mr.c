/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: memory registration and type-2 memory windows (the key
 * handed out, the bind once the QP reaches RTS, the registration pending
 * until the bind completed, deregistration), and the policy for devices
 * without usable windows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "transport/verbs/verbs_int.h"

/* A bind still in the send queue must not name a freed registration. */
static void orphan_bind(struct vmr *m)
{
	struct srdma__tp_conn *c = m->c;

	if (m->bind_slot != SLOT_NONE && m->bind_slot < c->nslots &&
	    c->slots[m->bind_slot].op == OP_BIND &&
	    c->slots[m->bind_slot].wr_id == (uint64_t)(uintptr_t)m)
		c->slots[m->bind_slot].wr_id = 0;
	m->bind_slot = SLOT_NONE;
}

void srdma__verbs_mr_free(struct vmr *m)
{
	int rc;

	orphan_bind(m);
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

#ifdef SRDMA_TEST_HOOKS
	if (c->dev->bind_delay_ms > 0) {
		/* Test builds: the bind waits, as behind a long transfer. */
		uint64_t now = srdma__now_ms();
		if (!m->bind_at_ms) {
			m->bind_at_ms = now + (uint64_t)c->dev->bind_delay_ms;
			srdma__verbs_timer_arm(c->v, c->dev->bind_delay_ms);
			return 0;
		}
		if (now < m->bind_at_ms) {
			srdma__verbs_timer_arm(c->v,
					       (int)(m->bind_at_ms - now));
			return 0;
		}
	}
#endif
	slot = srdma__verbs_slot_get(c, OP_BIND, (uint64_t)(uintptr_t)m);
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
#ifdef SRDMA_TEST_HOOKS
	if (c->dev->imitate & SRDMA_VI_BIND_FAIL)
		wr.bind_mw.bind_info.length += 4096; /* past the MR: refused */
#endif
	wr.bind_mw.bind_info.mw_access_flags = m->mw_access;
	rc = ibv_post_send(c->qp, &wr, &bad);
	if (rc) {
		srdma__verbs_slot_put(c, slot);
		return srdma__err(SRDMA_EFABRIC,
				  "ibv_post_send(BIND_MW) on QP %u: %s",
				  c->qp->qp_num, strerror(rc));
	}
	m->bind_slot = slot;
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

void srdma__verbs_bind_done(struct srdma__tp_conn *c, struct vmr *m, int status,
			    const char *wc_status)
{
	char d[192] = "";

	m->bind_slot = SLOT_NONE;
	if (status == 0) {
		m->pub.pending = false;
	} else if (status == SRDMA_ECLOSED) {
		snprintf(d, sizeof(d),
			 "the connection with %s closed before the memory "
			 "window was bound",
			 c->peer);
	} else {
		snprintf(d, sizeof(d),
			 "the memory window bind for a %zu-byte region on RDMA "
			 "device %s failed (%s); its key was not handed out",
			 m->pub.len, c->dev->name, wc_status);
		srdma__log(lg(c->v), SRDMA_LOG_INFO, "verbs: %s: %s", c->peer,
			   d);
	}
	if (!c->destroyed && c->cb.on_mr_ready)
		c->cb.on_mr_ready(c->cb.arg, &m->pub, status, d);
}

/* No usable type-2 windows on the device: refuse remote access, or (when
 * the context allows it) hand out the MR's own rkey, logged once. */
static int mr_key_policy(struct srdma__tp_conn *c)
{
	struct vdev *d = c->dev;

	ENSURE(c->v->tp->opts.allow_mr_keys, SRDMA_ENOTSUP,
	       "RDMA device %s has no usable type-2 memory windows, so remote "
	       "access would hand out the registration's own key, which some "
	       "devices make predictable; set allow_mr_keys in srdma_config "
	       "to accept that",
	       d->name);
	if (!d->mr_keys_logged) {
		d->mr_keys_logged = true;
		srdma__log(lg(c->v), SRDMA_LOG_WARN,
			   "verbs: RDMA device %s has no usable type-2 memory "
			   "windows; remote keys are the registrations' own "
			   "(allow_mr_keys); payloads stay sealed",
			   d->name);
	}
	return 0;
}

/* ---- ops: memory --------------------------------------------------------- */

int srdma__verbs_mr_reg(struct srdma__tp_conn *c, void *buf, size_t len,
			unsigned access, struct srdma__tp_mr **out)
{
	unsigned remote =
		access & (SRDMA_TP_REMOTE_READ | SRDMA_TP_REMOTE_WRITE);
	int flags = IBV_ACCESS_LOCAL_WRITE, rc;
	bool use_mw;
	struct vmr *m;
	char hint[200];
	uint8_t tag;

	ENSURE(buf && len, SRDMA_EINVAL, "mr_reg needs a buffer");
	ENSURE(!(access & ~7u), SRDMA_EINVAL, "mr_reg: unknown access bits");
	ENSURE(c->pd && !c->destroyed, SRDMA_ESTATE,
	       "mr_reg: no protection domain yet (client: after on_prepared)");
	ENSURE(len <= c->dev->da.max_mr_size, SRDMA_EINVAL,
	       "a registration of %zu bytes is larger than RDMA device %s "
	       "allows (%llu bytes)",
	       len, c->dev->name, (unsigned long long)c->dev->da.max_mr_size);
	use_mw = remote && c->dev->mw;
	if (remote && !use_mw)
		GUARD(mr_key_policy(c));
	/* One window per region: split regions would need several keys. */
	ENSURE(!use_mw || len <= MW_MAX_LEN, SRDMA_EINVAL,
	       "a region of %zu bytes is larger than the %zu bytes one memory "
	       "window covers (ConnectX binds no more); use regions of at "
	       "most 2 GiB",
	       len, MW_MAX_LEN);
	m = calloc(1, sizeof(*m));
	ENSURE(m, SRDMA_ENOMEM, "out of memory for a registration");
	m->c = c;
	m->bind_slot = SLOT_NONE;
	if (access & SRDMA_TP_REMOTE_READ)
		m->mw_access |= IBV_ACCESS_REMOTE_READ;
	if (access & SRDMA_TP_REMOTE_WRITE)
		m->mw_access |= IBV_ACCESS_REMOTE_WRITE;
	if (use_mw) {
		m->mw = ibv_alloc_mw(c->pd, IBV_MW_TYPE_2);
		if (!m->mw) {
			rc = srdma__err(SRDMA_EFABRIC,
					"ibv_alloc_mw(type 2) on %s: %s",
					c->dev->name, strerror(errno));
			goto out_free;
		}
		flags |= IBV_ACCESS_MW_BIND;
	} else {
		flags |= (int)m->mw_access;
	}
	m->mr = ibv_reg_mr(c->pd, buf, len, flags);
	if (!m->mr) {
		int e = errno;
		rc = srdma__err(e == ENOMEM ? SRDMA_ENOMEM : SRDMA_EFABRIC,
				"registering %zu bytes on RDMA device %s "
				"failed: %s%s",
				len, c->dev->name, strerror(e),
				srdma__verbs_memlock_hint(hint, sizeof(hint)));
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
		/* Usable once the bind has completed (on_mr_ready). */
		m->pub.pending = true;
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
