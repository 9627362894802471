/* SPDX-License-Identifier: MIT */
/*
 * ofi backend: memory registration (random 64-bit keys, one domain per
 * connection) and the ops table. The design notes are in ofi_int.h.
 */
#include <stdlib.h>

#include <openssl/rand.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#include "transport/ofi/ofi_int.h"

/* ---- memory registration ------------------------------------------------ */

static int ofi_mr_reg(struct srdma__tp_conn *c, void *buf, size_t len,
		      unsigned access, struct srdma__tp_mr **out)
{
	const struct fi_domain_attr *da = c->o->info->domain_attr;
	uint64_t acc = FI_SEND | FI_RECV | FI_READ | FI_WRITE;
	struct ofi_mr *m;
	uint64_t key = 0;
	int rc = -FI_ENOKEY, tries;

	ENSURE(!c->dead && c->domain, SRDMA_ESTATE,
	       "mr_reg on a destroyed connection");
	ENSURE(buf && len, SRDMA_EINVAL, "mr_reg needs a buffer");
	if (access & SRDMA_TP_REMOTE_READ)
		acc |= FI_REMOTE_READ;
	if (access & SRDMA_TP_REMOTE_WRITE)
		acc |= FI_REMOTE_WRITE;
	m = calloc(1, sizeof(*m));
	ENSURE(m, SRDMA_ENOMEM, "out of memory for a registration");
	/* 64 random bits as the key (ReDMArk: unpredictable rkeys); retry
	 * on the (astronomically rare) collision inside this domain. */
	for (tries = 0; tries < MR_KEY_TRIES && rc == -FI_ENOKEY; tries++) {
		if (RAND_bytes((unsigned char *)&key, sizeof(key)) != 1) {
			free(m);
			return srdma__err(SRDMA_ESYS,
					  "RAND_bytes failed for a memory key");
		}
		if (da->mr_key_size < sizeof(key))
			key &= (UINT64_C(1) << (8 * da->mr_key_size)) - 1;
		if (!key)
			continue;
		rc = fi_mr_reg(c->domain, buf, len, acc, 0, key, 0, &m->mr, m);
	}
	if (rc) {
		free(m);
		return srdma__err(SRDMA_EFABRIC, "fi_mr_reg(%zu bytes): %s",
				  len, fi_strerror(-rc));
	}
	if (da->mr_mode & FI_MR_PROV_KEY)
		key = fi_mr_key(m->mr); /* refused at open; kept for safety */
	m->pub.buf = buf;
	m->pub.len = len;
	/* Without FI_MR_VIRT_ADDR the peer addresses the region from 0. */
	m->pub.addr = da->mr_mode & FI_MR_VIRT_ADDR ? (uintptr_t)buf : 0;
	m->pub.key = access & (SRDMA_TP_REMOTE_READ | SRDMA_TP_REMOTE_WRITE)
			     ? key
			     : 0;
	m->pub.desc = fi_mr_desc(m->mr);
	m->c = c;
	m->next = c->mrs;
	if (c->mrs)
		c->mrs->prev = m;
	c->mrs = m;
	*out = &m->pub;
	return 0;
}

void srdma__ofi_mr_dereg(struct srdma__tp_mr *pub)
{
	struct ofi_mr *m = (struct ofi_mr *)pub;

	if (!m)
		return;
	srdma__ofi_close_fid(&m->mr->fid, "mr", m->c->o);
	if (m->prev)
		m->prev->next = m->next;
	else
		m->c->mrs = m->next;
	if (m->next)
		m->next->prev = m->prev;
	free(m);
}

const struct srdma__tp_ops srdma__ofi_ops = {
	.name = "ofi",
	.open = srdma__ofi_open,
	.close = srdma__ofi_close,
	.listen = srdma__ofi_listen,
	.listener_port = srdma__ofi_listener_port,
	.listener_destroy = srdma__ofi_listener_destroy,
	.accept = srdma__ofi_accept,
	.reject = srdma__ofi_reject,
	.conn_create = srdma__ofi_conn_create,
	.resolve = srdma__ofi_resolve,
	.local_qpn = srdma__ofi_local_qpn,
	.set_psn = srdma__ofi_set_psn,
	.set_port = srdma__ofi_set_port,
	.connect = srdma__ofi_connect,
	.disconnect = srdma__ofi_disconnect,
	.conn_destroy = srdma__ofi_conn_destroy,
	.conn_info = srdma__ofi_conn_info,
	.conn_reset = srdma__ofi_conn_reset,
	.conn_set_cb = srdma__ofi_conn_set_cb,
	.mr_reg = ofi_mr_reg,
	.mr_dereg = srdma__ofi_mr_dereg,
	.post_recv = srdma__ofi_post_recv,
	.post_send = srdma__ofi_post_send,
	.post_write = srdma__ofi_post_write,
	.post_read = srdma__ofi_post_read,
};
