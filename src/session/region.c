/* SPDX-License-Identifier: MIT */
/*
 * Regions (docs/PROTOCOL.md §6-7): the ones this side owns and grants, and
 * the ones the peer granted us. Either side may grant; the owner keeps the
 * authoritative (writer, version) of every block and accepts, returns and
 * announces only exact matches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "session/conn.h"
#include "session/owner.h"

/* A region's connection and its context, for a public call; a region whose
 * connection was destroyed (detached) answers SRDMA_ECLOSED. */
#define USE_REGION(r, what)                                                    \
	ENSURE((r), SRDMA_EINVAL, "%s: the region is NULL", (what));           \
	ENSURE((r)->conn, SRDMA_ECLOSED,                                       \
	       "%s: region %u belonged to a connection that was destroyed",    \
	       (what), (r)->id);                                               \
	USE_CTX((r)->conn->ctx, (what))

/* ---- regions the peer granted us ---- */

int srdma__on_region_msg(struct srdma_conn *c,
			 const struct srdma__msg_region *g)
{
	struct remote_region *rr;
	uint64_t nb, track;
	uint32_t stride = (uint32_t)srdma__block_stride(c->protect);
	struct qev *e;

	ENSURE(g->block_size == SRDMA_BLK_PAYLOAD && g->block_stride == stride,
	       SRDMA_EPROTO, "region grant with block %u/%u, want %u/%u",
	       g->block_size, g->block_stride, SRDMA_BLK_PAYLOAD, stride);
	ENSURE(g->len > 0 && g->len % SRDMA_BLK_PAYLOAD == 0 &&
		       g->len <= SRDMA_REGION_MAX,
	       SRDMA_EPROTO, "region grant of %llu bytes",
	       (unsigned long long)g->len);
	/* Ids only grow: a revoked id is never granted again, so no block
	 * nonce of a region can repeat under a reused id. */
	ENSURE(g->region_id > c->max_remote_id, SRDMA_EPROTO,
	       "region %u granted after region %u: ids must grow", g->region_id,
	       c->max_remote_id);
	nb = g->len / SRDMA_BLK_PAYLOAD;
	/* What we keep to check reads is memory the peer makes us spend:
	 * a server counts it in the client's quota. */
	track = (g->access & SRDMA_ACCESS_REMOTE_READ) &&
				c->protect != SRDMA_PROTECT_NONE
			? nb * sizeof(uint64_t)
			: 0;
	ENSURE(!c->server || c->quota_used + track <= c->ctx->cfg.client_quota,
	       SRDMA_EQUOTA,
	       "the client's grant of %llu bytes would exceed its quota "
	       "(%llu bytes to track it)",
	       (unsigned long long)g->len, (unsigned long long)track);
	rr = calloc(1, sizeof(*rr));
	ENSURE(rr, SRDMA_ENOMEM, "out of memory");
	if (track && !(rr->exp = calloc(nb, sizeof(uint64_t)))) {
		free(rr);
		return srdma__err(SRDMA_ENOMEM, "out of memory");
	}
	c->max_remote_id = g->region_id;
	if (c->server)
		c->quota_used += track;
	rr->id = g->region_id;
	rr->access = g->access;
	rr->len = g->len;
	rr->nblocks = nb;
	rr->addr = g->addr;
	rr->key = g->key;
	rr->stride = stride;
	rr->base = rr->owner_max = g->version;
	rr->next = c->remote;
	c->remote = rr;
	GUARD(srdma__take_early_updates(c, rr->id));
	if (rr->access & SRDMA_WIRE_ACCESS_STREAM) {
		/* The peer's stream ring: the stream's, not the app's. */
		if (c->stream)
			srdma__stream_kick(c);
		return 0;
	}
	GUARD(srdma__queue_event(c->ctx, SRDMA_EV_REGION, 0, c, c->user, "",
				 &e));
	e->ev.region = rr->id;
	e->ev.len = rr->len;
	return 0;
}

static void free_remote(struct srdma_conn *c, struct remote_region *rr)
{
	if (rr->exp && c->server) {
		uint64_t track = rr->nblocks * sizeof(uint64_t);
		c->quota_used -= track <= c->quota_used ? track : c->quota_used;
	}
	free(rr->exp);
	free(rr);
}

void srdma__on_revoke(struct srdma_conn *c, uint32_t id)
{
	struct remote_region **pp;

	for (pp = &c->remote; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct remote_region *rr = *pp;
			*pp = rr->next;
			free_remote(c, rr);
			return;
		}
}

void srdma__free_remotes(struct srdma_conn *c)
{
	while (c->remote) {
		struct remote_region *rr = c->remote;
		c->remote = rr->next;
		free_remote(c, rr);
	}
}

/* ---- regions we own ---- */

static bool sealed(const struct srdma_conn *c)
{
	return c->protect != SRDMA_PROTECT_NONE;
}

/* Whether the peer reads this region and so must hear of our puts. */
bool srdma__region_announced(const struct srdma_region *r)
{
	return r->granted && (r->access & SRDMA_ACCESS_REMOTE_READ) &&
	       sealed(r->conn);
}

SRDMA_API int srdma_region_create(srdma_conn *c, uint64_t len, int access,
				  srdma_region **out)
{
	unsigned tp_access = SRDMA_TP_LOCAL;
	struct srdma_region *r;
	int rc;

	USE_CONN(c, "srdma_region_create");
	ENSURE(out, SRDMA_EINVAL, "srdma_region_create: out is NULL");
	ENSURE(len > 0, SRDMA_EINVAL,
	       "srdma_region_create: a region of 0 bytes; give its length");
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ESTATE,
	       "regions can only be granted on an established connection");
	ENSURE(!(access &
		 ~(SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE |
		   SRDMA_REGION_DEFER_GRANT)),
	       SRDMA_EINVAL, "unknown access bits 0x%x", access);
	ENSURE(access & (SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE),
	       SRDMA_EINVAL, "a region needs remote read or write access");
	ENSURE(len <= SRDMA_REGION_MAX, SRDMA_EINVAL,
	       "a region of %llu bytes is above the 1 TiB limit",
	       (unsigned long long)len);
	ENSURE(c->next_region_id < SRDMA_WIRE_MAX_REGION, SRDMA_ELIMIT,
	       "a connection grants at most %d regions over its life",
	       SRDMA_WIRE_MAX_REGION);
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
				"a region of %llu bytes takes %llu sealed "
				"(srdma_region_footprint), which would exceed "
				"client_quota (%llu of %llu bytes used)",
				(unsigned long long)len,
				(unsigned long long)r->mem_len,
				(unsigned long long)c->quota_used,
				(unsigned long long)c->ctx->cfg.client_quota);
		free(r);
		return rc;
	}
	r->cur = calloc(r->nblocks, sizeof(uint64_t));
	r->mem = r->cur ? srdma__map_buf(r->mem_len) : NULL;
	if (!r->mem) {
		free(r->cur);
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
	free(r->cur);
	free(r);
	return rc;
}

/*
 * Before a reader may see a region, every block in it holds something we
 * sealed: blocks never written get an empty one (one version for all), so
 * a reader never has to take an all-zero block for a valid one and an
 * erased block is always caught.
 */
static int seal_unwritten(struct srdma_region *r)
{
	struct srdma_conn *c = r->conn;
	uint64_t v = r->put_version + 1;
	bool any = false;

	for (uint64_t b = 0; b < r->nblocks; b++) {
		if (r->cur[b])
			continue;
		ENSURE(v <= SRDMA_BLOCK_VERSION_MAX, SRDMA_EEXHAUSTED,
		       "region write counter exhausted");
		GUARD(srdma__block_seal(&c->blk_tx, (uint8_t)my_writer(c),
					r->id, b, v, (uint8_t)my_writer(c),
					NULL, 0, r->mem + b * r->stride));
		r->cur[b] = srdma__bv(my_writer(c), v);
		any = true;
	}
	if (any)
		r->put_version = v;
	return 0;
}

/* Makes the region ready to be seen and the REGION message granting it. */
int srdma__region_grant_msg(struct srdma_region *r, struct srdma__msg *m)
{
	struct srdma_conn *c = r->conn;

	ENSURE(!r->granted, SRDMA_ESTATE, "region %u is already granted",
	       r->id);
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ESTATE, "the connection is %s",
	       srdma__state_name(c->state));
	if ((r->access & SRDMA_ACCESS_REMOTE_READ) && sealed(c))
		GUARD(seal_unwritten(r));
	*m = (struct srdma__msg){.type = SRDMA_MSG_REGION};
	m->u.region.region_id = r->id;
	m->u.region.access = (uint8_t)r->access;
	m->u.region.len = r->len;
	m->u.region.addr = r->mr->addr;
	m->u.region.key = r->mr->key;
	m->u.region.block_size = SRDMA_BLK_PAYLOAD;
	m->u.region.block_stride = r->stride;
	m->u.region.version = r->put_version;
	return 0;
}

static int send_grant(struct srdma_region *r)
{
	struct srdma__msg m;

	GUARD(srdma__region_grant_msg(r, &m));
	GUARD(srdma__conn_send_msg(r->conn, &m));
	r->granted = true;
	return 0;
}

/*
 * The peer hears of a region only once the backend's key works (verbs:
 * once the memory window's bind has completed; DESIGN.md §5): an access
 * that overtook the bind would fail and take the connection down.
 */
SRDMA_API int srdma_region_grant(srdma_region *r)
{
	USE_REGION(r, "srdma_region_grant");
	ENSURE(!r->grant_pending, SRDMA_ESTATE,
	       "region %u is already being granted", r->id);
	if (r->mr && r->mr->pending) {
		ENSURE(!r->granted, SRDMA_ESTATE,
		       "region %u is already granted", r->id);
		ENSURE(r->conn->state == ST_ESTABLISHED, SRDMA_ESTATE,
		       "the connection is %s",
		       srdma__state_name(r->conn->state));
		r->grant_pending = true;
		return 0;
	}
	return send_grant(r);
}

void srdma__on_tp_mr_ready(void *arg, struct srdma__tp_mr *mr, int status,
			   const char *detail)
{
	struct srdma_conn *c = arg;
	struct srdma_region *r;
	char d[300];
	int rc;

	for (r = c->regions; r; r = r->next)
		if (r->mr == mr)
			break;
	if (!r || !r->grant_pending)
		return;
	r->grant_pending = false;
	if (status == SRDMA_ECLOSED || c->state != ST_ESTABLISHED)
		return;
	if (status < 0) {
		snprintf(d, sizeof(d), "region %u cannot be granted: %s", r->id,
			 detail && *detail ? detail : srdma_strerror(status));
		rc = srdma__err(status, "%s", d);
	} else {
		rc = send_grant(r);
	}
	srdma__conn_step(c, rc, c->state);
}

SRDMA_API uint64_t srdma_region_footprint(uint64_t len, enum srdma_protect p)
{
	uint64_t nblocks =
		len / SRDMA_BLOCK_SIZE + (len % SRDMA_BLOCK_SIZE != 0);
	uint64_t stride = srdma__block_stride(p);

	return nblocks > UINT64_MAX / stride ? UINT64_MAX : nblocks * stride;
}

SRDMA_API uint32_t srdma_region_id(const srdma_region *r)
{
	return r ? r->id : 0;
}

SRDMA_API uint64_t srdma_region_len(const srdma_region *r)
{
	return r ? r->len : 0;
}

static int check_range(const struct srdma_region *r, const char *what,
		       uint64_t offset, size_t len)
{
	ENSURE(offset % SRDMA_BLOCK_SIZE == 0, SRDMA_EINVAL,
	       "%s: offset %llu is not a multiple of %d", what,
	       (unsigned long long)offset, SRDMA_BLOCK_SIZE);
	ENSURE(offset <= r->len && len <= r->len - offset, SRDMA_ERANGE,
	       "%s: %zu bytes at offset %llu do not fit region %u (%llu "
	       "bytes)",
	       what, len, (unsigned long long)offset, r->id,
	       (unsigned long long)r->len);
	return 0;
}

/*
 * One block for the owner: it must open and hold exactly the block's
 * authoritative version (a block never written reads as zeros). A block the
 * peer sealed with a version newer than any notice of its is a write still
 * landing: SRDMA_EAGAIN. Anything else was rolled back, erased or forged.
 */
static int get_block(struct srdma_region *r, uint64_t b, uint8_t *out)
{
	struct srdma_conn *c = r->conn;
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	const uint8_t *in = r->mem + b * r->stride;
	int peer = !my_writer(c), rc;

	if (!sealed(c)) {
		memcpy(out, in, SRDMA_BLK_PAYLOAD);
		return 0;
	}
	block_keys(c, keys);
	rc = srdma__block_open(keys, (uint8_t)my_writer(c), r->id, b, in,
			       r->cur[b] == 0, out, &bi);
	if (rc == 0 && srdma__bv(bi.writer, bi.version) == r->cur[b])
		return 0;
	if (rc < 0 && srdma__block_peek(in, &bi) < 0)
		return srdma__err(SRDMA_EINTEGRITY,
				  "block %llu of region %u failed "
				  "verification (erased or forged)",
				  (unsigned long long)b, r->id);
	if (bi.writer == peer && bi.version > r->peer_last)
		return srdma__err(SRDMA_EAGAIN,
				  "block %llu of region %u is being written by "
				  "the peer: wait for SRDMA_EV_PEER_WRITE",
				  (unsigned long long)b, r->id);
	if (rc < 0)
		return srdma__err(SRDMA_EINTEGRITY,
				  "block %llu of region %u failed "
				  "verification",
				  (unsigned long long)b, r->id);
	return srdma__err(SRDMA_EINTEGRITY,
			  "block %llu of region %u holds version %llu by the "
			  "%s, not the current one (rolled back)",
			  (unsigned long long)b, r->id,
			  (unsigned long long)bi.version,
			  bi.writer == WRITER_SERVER ? "server" : "client");
}

SRDMA_API int srdma_region_get(srdma_region *r, uint64_t offset, void *buf,
			       size_t len)
{
	struct srdma_conn *c;
	uint8_t tmp[SRDMA_BLK_PAYLOAD];
	uint8_t *out = buf;
	int rc = 0;

	USE_REGION(r, "srdma_region_get");
	ENSURE(buf, SRDMA_EINVAL, "srdma_region_get: buf is NULL");
	c = r->conn;
	ENSURE(c->state == ST_ESTABLISHED || c->state == ST_CLOSING,
	       SRDMA_ECLOSED, "the connection is %s",
	       srdma__state_name(c->state));
	GUARD(check_range(r, "srdma_region_get", offset, len));
	for (size_t done = 0; done < len; done += SRDMA_BLK_PAYLOAD) {
		size_t l = len - done < SRDMA_BLK_PAYLOAD ? len - done
							  : SRDMA_BLK_PAYLOAD;
		rc = get_block(r, (offset + done) / SRDMA_BLK_PAYLOAD, tmp);
		if (rc < 0) {
			OPENSSL_cleanse(buf, len);
			break;
		}
		memcpy(out + done, tmp, l);
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rc;
}

SRDMA_API int srdma_region_set_sink(srdma_region *r, void *buf, size_t len)
{
	ENSURE(r, SRDMA_EINVAL, "srdma_region_set_sink: NULL region");
	ENSURE(!buf || len >= r->len, SRDMA_EINVAL,
	       "srdma_region_set_sink: %zu bytes cannot mirror region %u "
	       "(%llu bytes)",
	       len, r->id, (unsigned long long)r->len);
	r->sink = buf;
	return 0;
}

/* Room for the UPDATE a put into a region the peer reads needs. */
static int update_room(struct srdma_conn *c)
{
	if (c->nupd < srdma__rec_entries(c))
		return 0;
	GUARD(srdma__flush(c));
	ENSURE(c->nupd < srdma__rec_entries(c), SRDMA_EAGAIN,
	       "the peer has not taken the last %u updates yet: poll and "
	       "put again",
	       c->nupd);
	return 0;
}

SRDMA_API int srdma_region_put(srdma_region *r, uint64_t offset,
			       const void *buf, size_t len)
{
	struct srdma_conn *c;
	const uint8_t *in = buf;
	uint64_t first, v, done_blocks = 0;
	int rc = 0;

	USE_REGION(r, "srdma_region_put");
	ENSURE(buf || !len, SRDMA_EINVAL, "srdma_region_put: buf is NULL");
	c = r->conn;
	ENSURE(c->state == ST_ESTABLISHED, SRDMA_ECLOSED,
	       "the connection is %s", srdma__state_name(c->state));
	GUARD(check_range(r, "srdma_region_put", offset, len));
	ENSURE(r->put_version < SRDMA_BLOCK_VERSION_MAX, SRDMA_EEXHAUSTED,
	       "region write counter exhausted");
	if (!len)
		return 0;
	first = offset / SRDMA_BLK_PAYLOAD;
	GUARD(srdma__hold_check_put(c, r, first,
				    (len + SRDMA_BLK_PAYLOAD - 1) /
					    SRDMA_BLK_PAYLOAD));
	if (srdma__region_announced(r))
		GUARD(update_room(c));
	v = ++r->put_version;
	for (size_t done = 0; rc == 0 && done < len;
	     done += SRDMA_BLK_PAYLOAD) {
		uint64_t b = first + done / SRDMA_BLK_PAYLOAD;
		size_t l = len - done < SRDMA_BLK_PAYLOAD ? len - done
							  : SRDMA_BLK_PAYLOAD;
		rc = srdma__block_seal(&c->blk_tx, (uint8_t)my_writer(c), r->id,
				       b, v, (uint8_t)my_writer(c), in + done,
				       l, r->mem + b * r->stride);
		if (rc == 0 && sealed(c)) {
			r->cur[b] = srdma__bv(my_writer(c), v);
			done_blocks++;
		}
	}
	if (srdma__region_announced(r) && done_blocks) {
		/* What was sealed is announced even if sealing stopped
		 * half-way: the reader must know those blocks changed. */
		c->upd[c->nupd++] = (struct srdma__update){.region = r->id,
							   .first = first,
							   .count = done_blocks,
							   .version = v};
		if (rc == 0)
			rc = srdma__flush(c);
	}
	return rc;
}

void srdma__region_detach(struct srdma_region *r)
{
	struct srdma_conn *c = r->conn;

	if (r->mr)
		c->ctx->tp->ops->mr_dereg(r->mr);
	r->mr = NULL;
	if (c->quota_used >= r->mem_len)
		c->quota_used -= r->mem_len;
	srdma__unmap_buf(r->mem, r->mem_len);
	r->mem = NULL;
	free(r->cur);
	r->cur = NULL;
	r->conn = NULL;
	r->next = NULL;
}

SRDMA_API void srdma_region_destroy(srdma_region *r)
{
	struct srdma_conn *c;
	struct srdma_region **pp;

	if (!r)
		return;
	c = r->conn;
	if (!c) { /* detached: its connection is gone */
		free(r);
		return;
	}
	USE_CTX_VOID(c->ctx, "srdma_region_destroy");
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
	srdma__region_detach(r);
	free(r);
}
