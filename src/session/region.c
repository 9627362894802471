/* SPDX-License-Identifier: MIT */
/*
 * Regions: the ones this side owns and grants, and the ones the peer
 * granted us.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "session/conn.h"

int srdma__on_region_msg(struct srdma_conn *c,
			 const struct srdma__msg_region *g)
{
	struct remote_region *rr;
	uint64_t nb;
	uint32_t stride = (uint32_t)srdma__block_stride(c->protect);

	ENSURE(g->block_size == SRDMA_BLK_PAYLOAD && g->block_stride == stride,
	       SRDMA_EPROTO, "region grant with block %u/%u, want %u/%u",
	       g->block_size, g->block_stride, SRDMA_BLK_PAYLOAD, stride);
	ENSURE(g->len > 0 && g->len % SRDMA_BLK_PAYLOAD == 0 &&
		       g->len <= (1ull << 40),
	       SRDMA_EPROTO, "region grant of %llu bytes",
	       (unsigned long long)g->len);
	ENSURE(!find_remote(c, g->region_id), SRDMA_EPROTO,
	       "region %u granted twice", g->region_id);
	nb = g->len / SRDMA_BLK_PAYLOAD;
	rr = calloc(1, sizeof(*rr));
	ENSURE(rr, SRDMA_ENOMEM, "out of memory");
	rr->known = calloc(nb, sizeof(uint64_t));
	if (!rr->known) {
		free(rr);
		return srdma__err(SRDMA_ENOMEM, "out of memory");
	}
	rr->id = g->region_id;
	rr->access = g->access;
	rr->len = g->len;
	rr->addr = g->addr;
	rr->key = g->key;
	rr->stride = stride;
	rr->next = c->remote;
	c->remote = rr;
	{
		struct qev *e;
		GUARD(srdma__queue_event(c->ctx, SRDMA_EV_REGION, 0, c, c->user,
					 "", &e));
		e->ev.region = rr->id;
		e->ev.len = rr->len;
	}
	return 0;
}

void srdma__on_revoke(struct srdma_conn *c, uint32_t id)
{
	struct remote_region **pp;

	for (pp = &c->remote; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct remote_region *rr = *pp;
			*pp = rr->next;
			free(rr->known);
			free(rr);
			return;
		}
}

SRDMA_API int srdma_region_create(srdma_conn *c, uint64_t len, int access,
				  srdma_region **out)
{
	unsigned tp_access = SRDMA_TP_LOCAL;
	struct srdma_region *r;
	int rc;

	ENSURE(c && out && len, SRDMA_EINVAL, "srdma_region_create: bad args");
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ESTATE,
	       "regions can only be granted on an established connection");
	ENSURE(!(access &
		 ~(SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE |
		   SRDMA_REGION_DEFER_GRANT)),
	       SRDMA_EINVAL, "unknown access bits 0x%x", access);
	ENSURE(access & (SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE),
	       SRDMA_EINVAL, "a region needs remote read or write access");
	ENSURE(len <= (1ull << 40), SRDMA_EINVAL, "region too large");
	ENSURE(c->next_region_id < 0xffff, SRDMA_ELIMIT,
	       "too many regions on this connection");
	r = calloc(1, sizeof(*r));
	ENSURE(r, SRDMA_ENOMEM, "out of memory");
	r->conn = c;
	r->access = access;
	r->nblocks = (len + SRDMA_BLOCK_SIZE - 1) / SRDMA_BLOCK_SIZE;
	r->len = r->nblocks * SRDMA_BLOCK_SIZE;
	r->stride = (uint32_t)srdma__block_stride(c->protect);
	r->mem_len = r->nblocks * r->stride;
	if (c->server &&
	    c->quota_used + r->mem_len > c->ctx->cfg.client_quota) {
		rc = srdma__err(SRDMA_EQUOTA,
				"a region of %llu bytes would exceed the "
				"client quota (%llu of %llu bytes used)",
				(unsigned long long)r->mem_len,
				(unsigned long long)c->quota_used,
				(unsigned long long)c->ctx->cfg.client_quota);
		free(r);
		return rc;
	}
	r->newest = calloc(r->nblocks, sizeof(uint64_t));
	r->mem = r->newest ? srdma__map_buf(r->mem_len) : NULL;
	if (!r->mem) {
		free(r->newest);
		free(r);
		return srdma__err(SRDMA_ENOMEM, "out of memory for a region");
	}
	if (access & SRDMA_ACCESS_REMOTE_READ)
		tp_access |= SRDMA_TP_REMOTE_READ;
	if (access & SRDMA_ACCESS_REMOTE_WRITE)
		tp_access |= SRDMA_TP_REMOTE_WRITE;
	rc = c->ctx->tp->ops->mr_reg(c->tc, r->mem, r->mem_len, tp_access,
				     &r->mr);
	if (rc < 0)
		goto out_free;
	r->id = ++c->next_region_id;
	r->access =
		access & (SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE);
	if (!(access & SRDMA_REGION_DEFER_GRANT)) {
		rc = srdma_region_grant(r);
		if (rc < 0)
			goto out_dereg;
	}
	c->quota_used += r->mem_len;
	r->next = c->regions;
	c->regions = r;
	*out = r;
	return 0;

out_dereg:
	c->ctx->tp->ops->mr_dereg(r->mr);
out_free:
	srdma__unmap_buf(r->mem, r->mem_len);
	free(r->newest);
	free(r);
	return rc;
}

SRDMA_API int srdma_region_grant(srdma_region *r)
{
	struct srdma__msg m = {.type = SRDMA_MSG_REGION};
	struct srdma_conn *c;

	ENSURE(r, SRDMA_EINVAL, "srdma_region_grant: NULL");
	c = r->conn;
	ENSURE(!r->granted, SRDMA_ESTATE, "region %u is already granted",
	       r->id);
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ESTATE, "the connection is %s",
	       srdma__state_name(c->state));
	m.u.region.region_id = r->id;
	m.u.region.access = (uint8_t)r->access;
	m.u.region.len = r->len;
	m.u.region.addr = r->mr->addr;
	m.u.region.key = r->mr->key;
	m.u.region.block_size = SRDMA_BLK_PAYLOAD;
	m.u.region.block_stride = r->stride;
	GUARD(srdma__conn_send_msg(c, &m));
	r->granted = true;
	return 0;
}

SRDMA_API uint32_t srdma_region_id(const srdma_region *r)
{
	return r ? r->id : 0;
}

SRDMA_API uint64_t srdma_region_len(const srdma_region *r)
{
	return r ? r->len : 0;
}

SRDMA_API int srdma_region_get(srdma_region *r, uint64_t offset, void *buf,
			       size_t len)
{
	struct srdma_conn *c;
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	uint8_t tmp[SRDMA_BLK_PAYLOAD];
	uint8_t *out = buf;

	ENSURE(r && buf, SRDMA_EINVAL, "srdma_region_get: NULL argument");
	c = r->conn;
	ENSURE(c->state == ST_ESTABLISHED || c->state == ST_CLOSING,
	       SRDMA_ECLOSED, "the connection is %s",
	       srdma__state_name(c->state));
	ENSURE(offset % SRDMA_BLOCK_SIZE == 0, SRDMA_EINVAL,
	       "offset is not a multiple of %d", SRDMA_BLOCK_SIZE);
	ENSURE(offset <= r->len && len <= r->len - offset, SRDMA_ERANGE,
	       "outside the region");
	block_keys(c, keys);
	for (size_t done = 0; done < len; done += SRDMA_BLK_PAYLOAD) {
		uint64_t b = (offset + done) / SRDMA_BLK_PAYLOAD;
		size_t l = len - done < SRDMA_BLK_PAYLOAD ? len - done
							  : SRDMA_BLK_PAYLOAD;
		int rc = srdma__block_open(
			keys, r->id, b, r->mem + b * r->stride, true, tmp, &bi);
		if (rc == 0 && bi.writer != my_writer(c) &&
		    bi.version < r->newest[b])
			rc = SRDMA_EINTEGRITY;
		if (rc < 0) {
			memset(buf, 0, len);
			OPENSSL_cleanse(tmp, sizeof(tmp));
			return srdma__err(SRDMA_EINTEGRITY,
					  "block %llu of region %u failed "
					  "verification",
					  (unsigned long long)b, r->id);
		}
		memcpy(out + done, tmp, l);
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

SRDMA_API int srdma_region_put(srdma_region *r, uint64_t offset,
			       const void *buf, size_t len)
{
	struct srdma_conn *c;
	const uint8_t *in = buf;

	ENSURE(r && buf, SRDMA_EINVAL, "srdma_region_put: NULL argument");
	c = r->conn;
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ECLOSED,
	       "the connection is %s", srdma__state_name(c->state));
	ENSURE(offset % SRDMA_BLOCK_SIZE == 0, SRDMA_EINVAL,
	       "offset is not a multiple of %d", SRDMA_BLOCK_SIZE);
	ENSURE(offset <= r->len && len <= r->len - offset, SRDMA_ERANGE,
	       "outside the region");
	ENSURE(r->put_version < SRDMA_BLOCK_VERSION_MAX, SRDMA_EEXHAUSTED,
	       "region write counter exhausted");
	r->put_version++;
	for (size_t done = 0; done < len; done += SRDMA_BLK_PAYLOAD) {
		uint64_t b = (offset + done) / SRDMA_BLK_PAYLOAD;
		size_t l = len - done < SRDMA_BLK_PAYLOAD ? len - done
							  : SRDMA_BLK_PAYLOAD;
		GUARD(srdma__block_seal(&c->blk_tx, r->id, b, r->put_version,
					(uint8_t)my_writer(c), in + done, l,
					r->mem + b * r->stride));
	}
	return 0;
}

SRDMA_API void srdma_region_destroy(srdma_region *r)
{
	struct srdma_conn *c;
	struct srdma_region **pp;

	if (!r)
		return;
	c = r->conn;
	if (c->state == ST_ESTABLISHED) {
		struct srdma__msg m = {.type = SRDMA_MSG_REGION_REVOKE};
		m.u.revoke.region_id = r->id;
		IGNORE_RESULT(srdma__conn_send_msg(c, &m));
	}
	for (pp = &c->regions; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->mr)
		c->ctx->tp->ops->mr_dereg(r->mr);
	if (c->quota_used >= r->mem_len)
		c->quota_used -= r->mem_len;
	srdma__unmap_buf(r->mem, r->mem_len);
	free(r->newest);
	free(r);
}
