/* SPDX-License-Identifier: MIT */
/*
 * RDMA write and read operations: staging chunks, sealing, notices,
 * verification of what was read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "session/conn.h"

static void complete_op(struct srdma_conn *c, struct op *op, int status);

#ifdef SRDMA_TAMPER
/* SRDMA_TAMPER=send|write|read flips one bit of the first sealed record,
 * write chunk or read chunk, to prove the receiver catches it. */
bool srdma__tamper(const char *what)
{
	static int done;
	const char *t = getenv("SRDMA_TAMPER");

	if (!t || done || strcmp(t, what))
		return false;
	done = 1;
	return true;
}
#else
bool srdma__tamper(const char *what)
{
	(void)what;
	return false;
}
#endif

static void unlink_op(struct srdma_conn *c, struct op *op)
{
	struct op **pp, *prev = NULL;

	for (pp = &c->ops_head; *pp; prev = *pp, pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			if (c->ops_tail == op)
				c->ops_tail = prev;
			op->next = NULL;
			return;
		}
}

/* The owner verified one of our writes: that write is done. */
int srdma__handle_ack(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	uint32_t id;
	uint64_t ver;

	ENSURE(len == WRITE_ACK_LEN, SRDMA_EPROTO,
	       "write acknowledgement of %zu bytes", len);
	id = srdma__get_be32(p);
	ver = srdma__get_be64(p + 4);
	for (struct op *op = c->ops_head; op; op = op->next)
		if (op->kind == OP_WRITE && op->notice_sent &&
		    op->region == id && op->version == ver) {
			complete_op(c, op, 0);
			return 0;
		}
	return srdma__err(SRDMA_EPROTO,
			  "acknowledgement for a write we did not make "
			  "(region %u version %llu)",
			  id, (unsigned long long)ver);
}

static int ensure_staging(struct srdma_conn *c)
{
	size_t stride = srdma__block_stride(c->protect);
	size_t chunk = stride * CHUNK_BLOCKS;

	if (c->staging)
		return 0;
	c->staging_len = chunk * NCHUNKS;
	c->staging = srdma__map_buf(c->staging_len);
	if (!c->staging)
		return srdma__err(SRDMA_ENOMEM, "out of memory for staging");
	GUARD(c->ctx->tp->ops->mr_reg(c->tc, c->staging, c->staging_len,
				      SRDMA_TP_LOCAL, &c->staging_mr));
	c->chunk_blocks = CHUNK_BLOCKS;
	for (int i = 0; i < NCHUNKS; i++)
		c->chunks[i].mem = c->staging + (size_t)i * chunk;
	return 0;
}

static void complete_op(struct srdma_conn *c, struct op *op, int status)
{
	unlink_op(c, op);
	srdma__queue(c,
		     op->kind == OP_WRITE ? SRDMA_EV_WRITE_DONE
					  : SRDMA_EV_READ_DONE,
		     status, op->user, "");
	free(op);
}

static int start_chunk(struct srdma_conn *c, struct op *op, int ci)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct remote_region *rr = find_remote(c, op->region);
	struct chunk *ch = &c->chunks[ci];
	uint64_t left = op->first_block + op->nblocks - op->next_block;
	uint64_t n = left < c->chunk_blocks ? left : c->chunk_blocks;
	uint64_t b0 = op->next_block;
	size_t stride = srdma__block_stride(c->protect);

	ENSURE(rr, SRDMA_ENOENT, "region %u was revoked by the peer",
	       op->region);
	if (op->kind == OP_WRITE) {
		for (uint64_t i = 0; i < n; i++) {
			uint64_t rel =
				(b0 + i - op->first_block) * SRDMA_BLK_PAYLOAD;
			size_t l = op->len - rel < SRDMA_BLK_PAYLOAD
					   ? op->len - rel
					   : SRDMA_BLK_PAYLOAD;
			GUARD(srdma__block_seal(
				&c->blk_tx, op->region, b0 + i, op->version,
				(uint8_t)my_writer(c), op->buf + rel, l,
				ch->mem + i * stride));
		}
		if (srdma__tamper("write"))
			ch->mem[SRDMA_BLK_HDR_LEN] ^= 0x01;
		GUARD(ops->post_write(c->tc, c->staging_mr, ch->mem, n * stride,
				      rr->addr + b0 * stride, rr->key,
				      WR_ID(WR_CHUNK, ci), 0));
	} else {
		GUARD(ops->post_read(c->tc, c->staging_mr, ch->mem, n * stride,
				     rr->addr + b0 * stride, rr->key,
				     WR_ID(WR_CHUNK, ci), 0));
	}
	ch->busy = true;
	ch->op = op;
	ch->first_block = b0;
	ch->nblocks = n;
	op->next_block += n;
	return 0;
}

static int send_notice(struct srdma_conn *c, struct op *op)
{
	uint8_t p[WRITE_NOTICE_LEN];

	srdma__be32(p, op->region);
	srdma__be64(p + 4, op->offset);
	srdma__be64(p + 12, op->len);
	srdma__be64(p + 20, op->version);
	/* Keep one credit back for credit returns. */
	ENSURE(c->tx_credits > 1, SRDMA_EAGAIN, "send window full");
	return srdma__post_record(c, REC_WRITE_NOTICE, p, sizeof(p));
}

static bool overlaps(const struct op *a, const struct op *b)
{
	return a->region == b->region &&
	       a->first_block < b->first_block + b->nblocks &&
	       b->first_block < a->first_block + a->nblocks;
}

/*
 * An op may not start while an earlier op on overlapping blocks is still
 * open when either is a write: a read must not see a write half placed,
 * and a write must not overwrite blocks whose previous write the owner has
 * not verified and acknowledged yet.
 */
static bool blocked(const struct srdma_conn *c, const struct op *op)
{
	for (const struct op *e = c->ops_head; e && e != op; e = e->next)
		if ((e->kind == OP_WRITE || op->kind == OP_WRITE) &&
		    overlaps(e, op))
			return true;
	return false;
}

/*
 * Moves every op forward as far as it can: ops take staging chunks in
 * order; a write whose chunks all completed sends its notice (in order)
 * and completes when the owner acknowledges it; a read completes when its
 * last chunk has been verified.
 */
int srdma__progress_ops(struct srdma_conn *c)
{
	struct op *op, *next;
	bool issuing = true, noticing = true;
	int rc;

	if (c->state != ST_ESTABLISHED || !c->ops_head)
		return 0;
	GUARD(ensure_staging(c));
	for (op = c->ops_head; op; op = next) {
		next = op->next;
		if (issuing && op->next_block < op->first_block + op->nblocks) {
			if (blocked(c, op)) {
				issuing = false;
			} else {
				for (int i = 0; i < NCHUNKS; i++) {
					if (op->next_block >=
					    op->first_block + op->nblocks)
						break;
					if (c->chunks[i].busy)
						continue;
					rc = start_chunk(c, op, i);
					if (rc == SRDMA_EAGAIN)
						break;
					GUARD(rc);
				}
				if (op->next_block <
				    op->first_block + op->nblocks)
					issuing = false; /* keep order */
			}
		}
		if (op->done_blocks != op->nblocks)
			continue;
		if (op->kind == OP_READ) {
			complete_op(c, op, 0);
		} else if (!op->notice_sent && noticing) {
			rc = send_notice(c, op);
			if (rc == SRDMA_EAGAIN) {
				noticing = false; /* notices go in order */
				continue;
			}
			GUARD(rc);
			op->notice_sent = true;
		}
	}
	return 0;
}

static int open_read_chunk(struct srdma_conn *c, struct op *op,
			   struct chunk *ch)
{
	struct remote_region *rr = find_remote(c, op->region);
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	uint8_t tmp[SRDMA_BLK_PAYLOAD];
	size_t stride = srdma__block_stride(c->protect);

	ENSURE(rr, SRDMA_ENOENT, "region %u was revoked during a read",
	       op->region);
	block_keys(c, keys);
	if (srdma__tamper("read"))
		ch->mem[SRDMA_BLK_HDR_LEN] ^= 0x01;
	for (uint64_t i = 0; i < ch->nblocks; i++) {
		uint64_t b = ch->first_block + i;
		uint64_t rel = (b - op->first_block) * SRDMA_BLK_PAYLOAD;
		size_t l = op->len - rel < SRDMA_BLK_PAYLOAD
				   ? op->len - rel
				   : SRDMA_BLK_PAYLOAD;
		uint8_t *dst = l == SRDMA_BLK_PAYLOAD ? op->buf + rel : tmp;
		int rc =
			srdma__block_open(keys, op->region, b,
					  ch->mem + i * stride, true, dst, &bi);
		if (rc < 0)
			return srdma__err(SRDMA_EINTEGRITY,
					  "block %llu of region %u read from "
					  "the peer failed verification",
					  (unsigned long long)b, op->region);
		/* Rollback: never older than what we wrote ourselves. */
		if (bi.writer == my_writer(c) && bi.version < rr->known[b])
			return srdma__err(SRDMA_EINTEGRITY,
					  "block %llu of region %u is stale "
					  "(version %llu, we wrote %llu)",
					  (unsigned long long)b, op->region,
					  (unsigned long long)bi.version,
					  (unsigned long long)rr->known[b]);
		if (dst == tmp)
			memcpy(op->buf + rel, tmp, l);
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

/* A staging chunk's write or read completed (a completion handler). */
void srdma__handle_chunk(struct srdma_conn *c, uint32_t ci, int status)
{
	struct chunk *ch;
	struct op *op;
	int rc;

	if (ci >= NCHUNKS)
		return;
	ch = &c->chunks[ci];
	op = ch->op;
	ch->busy = false;
	ch->op = NULL;
	if (c->state != ST_ESTABLISHED || !op)
		return;
	if (status < 0) {
		char d[300];
		snprintf(d, sizeof(d), "RDMA %s on region %u of %s failed: %s",
			 op->kind == OP_WRITE ? "write" : "read", op->region,
			 srdma__who(c), srdma_strerror(status));
		srdma__fabric_failed(c, status, d);
		return;
	}
	if (op->kind == OP_READ) {
		rc = open_read_chunk(c, op, ch);
	} else {
		struct remote_region *rr = find_remote(c, op->region);
		for (uint64_t i = 0; rr && i < ch->nblocks; i++)
			rr->known[ch->first_block + i] = op->version;
		rc = 0;
	}
	if (rc == 0) {
		op->done_blocks += ch->nblocks;
		rc = srdma__progress_ops(c);
	}
	srdma__conn_step(c, rc, c->state);
}

int srdma__start_op(struct srdma_conn *c, enum op_kind kind, uint32_t region,
		    uint64_t offset, void *buf, size_t len, void *user)
{
	struct remote_region *rr;
	struct op *op;

	ENSURE(c && buf && len, SRDMA_EINVAL, "write/read: bad argument");
	if (c->state != ST_ESTABLISHED)
		return srdma__not_established(c);
	rr = find_remote(c, region);
	ENSURE(rr, SRDMA_ENOENT, "the peer granted no region %u", region);
	ENSURE(rr->access & (kind == OP_WRITE ? SRDMA_ACCESS_REMOTE_WRITE
					      : SRDMA_ACCESS_REMOTE_READ),
	       SRDMA_EINVAL, "region %u does not allow remote %s", region,
	       kind == OP_WRITE ? "writes" : "reads");
	ENSURE(offset % SRDMA_BLOCK_SIZE == 0, SRDMA_EINVAL,
	       "offset %llu is not a multiple of %d",
	       (unsigned long long)offset, SRDMA_BLOCK_SIZE);
	ENSURE(offset < rr->len && len <= rr->len - offset, SRDMA_ERANGE,
	       "%zu bytes at offset %llu do not fit region %u (%llu bytes)",
	       len, (unsigned long long)offset, region,
	       (unsigned long long)rr->len);
	op = calloc(1, sizeof(*op));
	ENSURE(op, SRDMA_ENOMEM, "out of memory");
	if (kind == OP_WRITE) {
		if (rr->write_version >= SRDMA_BLOCK_VERSION_MAX) {
			free(op);
			return srdma__err(SRDMA_EEXHAUSTED,
					  "region %u: write counter exhausted; "
					  "reconnect",
					  region);
		}
		op->version = ++rr->write_version;
	}
	op->kind = kind;
	op->user = user;
	op->region = region;
	op->offset = offset;
	op->buf = buf;
	op->len = len;
	op->first_block = offset / SRDMA_BLOCK_SIZE;
	op->nblocks = (len + SRDMA_BLOCK_SIZE - 1) / SRDMA_BLOCK_SIZE;
	op->next_block = op->first_block;
	if (c->ops_tail)
		c->ops_tail->next = op;
	else
		c->ops_head = op;
	c->ops_tail = op;
	/* Queued: a failure from here on fails the connection, and the op
	 * completes with its error. */
	srdma__conn_step(c, srdma__progress_ops(c), c->state);
	return 0;
}
