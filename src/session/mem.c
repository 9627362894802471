/* SPDX-License-Identifier: MIT */
/*
 * Registered application memory: zero-copy RDMA writes and reads in mode
 * none, straight from and into the caller's buffer.
 */
#include <stdlib.h>

#include "session/conn.h"
#include "session/owner.h"

SRDMA_API int srdma_mem_register(srdma_conn *c, void *buf, size_t len,
				 srdma_mem **out)
{
	struct srdma_mem *m;
	int rc;

	ENSURE(buf && out, SRDMA_EINVAL,
	       "srdma_mem_register: NULL buffer or out");
	USE_CONN(c, "srdma_mem_register");
	ENSURE(len > 0, SRDMA_EINVAL,
	       "srdma_mem_register: a length of 0 registers nothing");
	if (c->state != ST_ESTABLISHED)
		return srdma__not_established(c);
	m = calloc(1, sizeof(*m));
	ENSURE(m, SRDMA_ENOMEM, "out of memory");
	rc = c->ctx->tp->ops->mr_reg(c->tc, buf, len, SRDMA_TP_LOCAL, &m->mr);
	if (rc < 0) {
		free(m);
		return rc;
	}
	m->conn = c;
	m->buf = buf;
	m->len = len;
	m->next = c->mems;
	c->mems = m;
	*out = m;
	return 0;
}

/* Unlinks m from its connection and drops its registration; m itself
 * stays for the application's srdma_mem_deregister (detached). */
static void mem_detach(struct srdma_mem *m)
{
	struct srdma_mem **pp;

	if (!m->conn)
		return;
	for (pp = &m->conn->mems; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	m->conn->ctx->tp->ops->mr_dereg(m->mr);
	m->mr = NULL;
	m->conn = NULL;
	m->next = NULL;
}

SRDMA_API void srdma_mem_deregister(srdma_mem *m)
{
	if (!m)
		return;
	if (!m->conn) { /* detached: its connection is gone */
		free(m);
		return;
	}
	USE_CTX_VOID(m->conn->ctx, "srdma_mem_deregister");
	m->dying = true;
	if (!m->inflight) {
		mem_detach(m);
		free(m);
	}
}

/* The registered memory holding [buf, buf + len), if any. */
struct srdma_mem *srdma__mem_find(struct srdma_conn *c, const void *buf,
				  size_t len)
{
	const uint8_t *p = buf;

	for (struct srdma_mem *m = c->mems; m; m = m->next)
		if (!m->dying && p >= m->buf && len <= m->len &&
		    (size_t)(p - m->buf) <= m->len - len)
			return m;
	return NULL;
}

void srdma__mem_put(struct srdma_mem *m)
{
	if (m && --m->inflight == 0 && m->dying) {
		mem_detach(m);
		free(m);
	}
}

/*
 * The connection goes: every registration with it is dropped. Handles the
 * application still holds are detached (srdma_mem_deregister frees them);
 * one it already deregistered, waiting for its last operation, goes now.
 */
void srdma__mem_free_all(struct srdma_conn *c)
{
	while (c->mems) {
		struct srdma_mem *m = c->mems;
		bool dying = m->dying;

		mem_detach(m);
		if (dying)
			free(m);
	}
}
