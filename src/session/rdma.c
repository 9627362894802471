/* SPDX-License-Identifier: MIT */
/*
 * RDMA write and read operations (docs/PROTOCOL.md §6): a preallocated pool
 * of operations, staging chunks, sealing, notices and their
 * acknowledgements, and the reader's freshness checks against what the
 * owner announced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "session/conn.h"
#include "session/metrics.h"

enum {
	/* Re-reads of one read that met a racing update before it gives up:
	 * with SRDMA_EAGAIN if the owner really kept changing the range,
	 * as a forgery if nothing was announced. */
	READ_RETRIES = 64,
	READ_RETRY_MS = 2, /* wait for an UPDATE at most this long */
	/* Re-reads after which a read asks the owner to hold its puts
	 * (hold.c). */
	READ_HOLD_AFTER = 2,
};

/* ---- the pool ---- */

static int ops_init(struct srdma_conn *c)
{
	if (c->op_pool)
		return 0;
	c->max_ops = c->ctx->cfg.max_ops;
	c->op_pool = calloc(c->max_ops, sizeof(*c->op_pool));
	ENSURE(c->op_pool, SRDMA_ENOMEM, "out of memory for %u operations",
	       c->max_ops);
	for (uint32_t i = 0; i < c->max_ops; i++) {
		c->op_pool[i].next = c->op_free;
		c->op_free = &c->op_pool[i];
	}
	return 0;
}

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

static void complete_op(struct srdma_conn *c, struct op *op, int status,
			const char *detail)
{
	unlink_op(c, op);
	srdma__hold_op_done(c, op);
	if (op->kind == OP_READ && status < 0)
		OPENSSL_cleanse(op->buf, op->len);
	if (status == 0 && !op->stream)
		srdma__metric_op(c,
				 op->kind == OP_WRITE ? SRDMA_METRIC_WRITE
						      : SRDMA_METRIC_READ,
				 op->len);
	if (op->stream)
		srdma__stream_op_done(c, status);
	else
		srdma__queue(c,
			     op->kind == OP_WRITE ? SRDMA_EV_WRITE_DONE
						  : SRDMA_EV_READ_DONE,
			     status, op->user, detail);
	srdma__mem_put(op->mem);
	memset(op, 0, sizeof(*op));
	op->next = c->op_free;
	c->op_free = op;
	c->nops--;
}

void srdma__finish_ops(struct srdma_conn *c, int code)
{
	while (c->ops_head)
		complete_op(c, c->ops_head, code, c->fail_detail);
	for (int i = 0; i < NCHUNKS; i++)
		c->chunks[i].op = NULL;
}

/* ---- staging ---- */

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

/* Payload bytes of block b of op (all but the last are whole). */
static size_t op_block_len(const struct op *op, uint64_t b)
{
	uint64_t rel = (b - op->first_block) * SRDMA_BLK_PAYLOAD;

	return op->len - rel < SRDMA_BLK_PAYLOAD ? op->len - rel
						 : SRDMA_BLK_PAYLOAD;
}

/*
 * Seals (write) or fetches (read) the op's next blocks through chunk ci in
 * one RDMA operation. Blocks sit at a fixed stride in the peer's region;
 * the last block of a write moves only the bytes it uses.
 */
static int start_chunk(struct srdma_conn *c, struct op *op,
		       struct remote_region *rr, int ci)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct chunk *ch = &c->chunks[ci];
	/* Mode none with registered memory: no staging, no copy, and so
	 * no reason to cut the op at a staging chunk's size: a 1 MiB write
	 * in 128 KiB pieces cost 8 fabric writes and as many wake-ups of
	 * the peer's progress. */
	bool direct = c->protect == SRDMA_PROTECT_NONE && op->mem;
	uint64_t left = op->first_block + op->nblocks - op->next_block;
	uint32_t span = 1;
	uint64_t cap, n;

	/* Staged, a large op joins the free chunks that follow (staging is
	 * one buffer, so they are contiguous) into one fabric op: chunks
	 * are small so that many small ops fit, and a 1 MiB op in 128 KiB
	 * pieces cost 8 fabric ops (mode none: half the old 512 KiB
	 * chunks' rate, A/B). */
	while (!direct && span < MAX_SPAN && ci + (int)span < NCHUNKS &&
	       !c->chunks[ci + (int)span].busy &&
	       left > (uint64_t)span * c->chunk_blocks)
		span++;
	cap = direct ? DIRECT_BLOCKS : (uint64_t)span * c->chunk_blocks;
	n = left < cap ? left : cap;
	uint64_t b0 = op->next_block;
	size_t stride = rr->stride, last = op_block_len(op, b0 + n - 1);
	uint8_t owner = (uint8_t)!my_writer(c);
	uint64_t rel = (b0 - op->first_block) * SRDMA_BLK_PAYLOAD;

	ch->direct = direct;
	if (ch->direct) {
		size_t bytes = (n - 1) * stride + last;
		GUARD(op->kind == OP_WRITE
			      ? ops->post_write(c->tc, op->mem->mr,
						op->buf + rel, bytes,
						rr->addr + b0 * stride, rr->key,
						WR_ID(WR_CHUNK, ci), 0)
			      : ops->post_read(c->tc, op->mem->mr,
					       op->buf + rel, bytes,
					       rr->addr + b0 * stride, rr->key,
					       WR_ID(WR_CHUNK, ci), 0));
	} else if (op->kind == OP_WRITE) {
		for (uint64_t i = 0; i < n; i++)
			GUARD(srdma__block_seal(
				&c->blk_tx, owner, op->region, b0 + i,
				op->version, (uint8_t)my_writer(c),
				op->buf + rel + i * SRDMA_BLK_PAYLOAD,
				op_block_len(op, b0 + i),
				ch->mem + i * stride));
		if (srdma__tamper("write"))
			ch->mem[srdma__block_payload_off(c->protect)] ^= 0x01;
		GUARD(ops->post_write(
			c->tc, c->staging_mr, ch->mem,
			(n - 1) * stride + srdma__block_used(c->protect, last),
			rr->addr + b0 * stride, rr->key, WR_ID(WR_CHUNK, ci),
			0));
	} else {
		/* A sealed block is read whole (its length is inside). */
		size_t bytes = c->protect == SRDMA_PROTECT_NONE
				       ? (n - 1) * stride + last
				       : n * stride;
		GUARD(ops->post_read(c->tc, c->staging_mr, ch->mem, bytes,
				     rr->addr + b0 * stride, rr->key,
				     WR_ID(WR_CHUNK, ci), 0));
		ch->stamp = rr->stamp;
	}
	for (int i = 1; i < (int)span; i++) {
		c->chunks[ci + i].busy = true;
		c->chunks[ci + i].op = NULL;
	}
	ch->span = span;
	ch->busy = true;
	ch->op = op;
	ch->first_block = b0;
	ch->nblocks = n;
	op->next_block += n;
	op->busy++;
	return 0;
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

/* Reads of region id overlapping blocks [first, first+n) that have begun
 * must read again before they complete: the range changed under them. */
static void mark_reads(struct srdma_conn *c, uint32_t id, uint64_t first,
		       uint64_t n)
{
	struct op probe = {.region = id, .first_block = first, .nblocks = n};

	for (struct op *op = c->ops_head; op; op = op->next)
		if (op->kind == OP_READ && overlaps(op, &probe)) {
			if (op->next_block > op->first_block)
				op->dirty = true;
			op->waiting = false;
		}
}

/* ---- notices and their acknowledgement ---- */

/* Announces, in one record, the writes whose blocks all landed, in the
 * order they were started (the owner verifies and acknowledges them in
 * that order). */
static int send_notices(struct srdma_conn *c)
{
	struct srdma__notice n[SRDMA_REC_MAX_ENTRIES];
	uint8_t p[SRDMA_REC_MAX_ENTRIES * SRDMA_NOTICE_LEN];
	uint32_t k = 0, max = srdma__rec_entries(c);
	int len;

	if (!srdma__can_post(c, SRDMA_REC_NOTICE))
		return 0;
	for (struct op *op = c->ops_head; op && k < max; op = op->next) {
		if (op->kind != OP_WRITE || op->noticed)
			continue;
		if (op->busy || op->done_blocks != op->nblocks)
			break; /* notices go in order */
		n[k++] = (struct srdma__notice){.region = op->region,
						.offset = op->offset,
						.len = op->len,
						.version = op->version};
	}
	if (!k)
		return 0;
	len = srdma__notices_encode(n, k, p, sizeof(p));
	GUARD(len);
	GUARD(srdma__post_record(c, SRDMA_REC_NOTICE, p, (size_t)len));
	for (struct op *op = c->ops_head; op && k; op = op->next)
		if (op->kind == OP_WRITE && !op->noticed) {
			op->noticed = true;
			k--;
		}
	return 0;
}

/*
 * The owner verified our oldest `count` announced writes: they are done,
 * and the blocks they wrote now hold exactly what we sealed (what a later
 * read of ours must find, unless the owner announces newer).
 */
int srdma__handle_ack(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	struct srdma__ack a;
	struct op *op, *next;
	uint32_t left;

	GUARD(srdma__ack_decode(p, len, &a));
	left = a.count;
	for (op = c->ops_head; op && left; op = next) {
		struct remote_region *rr;

		next = op->next;
		if (op->kind != OP_WRITE || !op->noticed)
			continue;
		ENSURE(left > 1 || (op->region == a.region &&
				    op->version == a.version),
		       SRDMA_EPROTO,
		       "acknowledgement names region %u version %llu, our "
		       "write was region %u version %llu",
		       a.region, (unsigned long long)a.version, op->region,
		       (unsigned long long)op->version);
		rr = find_remote(c, op->region);
		if (rr && rr->exp) {
			for (uint64_t b = op->first_block;
			     b < op->first_block + op->nblocks; b++)
				rr->exp[b] =
					srdma__bv(my_writer(c), op->version);
			rr->stamp++;
			mark_reads(c, op->region, op->first_block, op->nblocks);
		}
		complete_op(c, op, op->status, "");
		left--;
	}
	ENSURE(!left, SRDMA_EPROTO,
	       "acknowledgement for %u writes we did not announce", left);
	return 0;
}

/* ---- what a read finds ---- */

enum read_verdict { READ_OK, READ_NEWER, READ_TORN, READ_CHANGED, READ_STALE };

/* Header and tag all zero: a block never sealed, or erased (no put tears
 * a block into that: every sealed header has a version). */
static bool erased(const uint8_t *in)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < SRDMA_BLK_HDR_LEN + SRDMA_TAG_LEN; i++)
		acc |= in[i];
	return acc == 0;
}

/*
 * Judges one block a read brought back against what we know (rc and bi:
 * how it opened). Current: exactly the version we know, or, for a block
 * not announced since the grant, any owner version up to the grant's.
 * A whole block the owner sealed with a version it has not announced yet
 * is a race with an UPDATE on its way; a mismatch after our knowledge
 * changed during the read is a race too. A block that fails to verify may
 * be one the owner was sealing in place while the NIC read it (verbs: the
 * header and tag read before the put reached them, the payload after, or
 * the other way round): it is read again, and open_read_chunk and
 * finish_read tell a tear from a forgery. A whole block older than what
 * we know is rolled back; an erased one is forged.
 */
static enum read_verdict
judge(const struct remote_region *rr, const struct chunk *ch, uint8_t owner,
      uint64_t b, int rc, const struct srdma__block_info *bi, const uint8_t *in)
{
	if (rc < 0 && !erased(in))
		return READ_TORN;
	if (rc == 0) {
		uint64_t e = rr->exp[b];
		if (e ? srdma__bv(bi->writer, bi->version) == e
		      : bi->writer == owner && bi->version <= rr->base)
			return READ_OK;
		if (bi->writer == owner && bi->version > rr->owner_max)
			return READ_NEWER;
	}
	return ch->stamp != rr->stamp ? READ_CHANGED : READ_STALE;
}

/* Opens a chunk a read brought back into the caller's buffer. */
static int open_read_chunk(struct srdma_conn *c, struct op *op,
			   struct chunk *ch)
{
	struct remote_region *rr = find_remote(c, op->region);
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	uint8_t tmp[SRDMA_BLK_PAYLOAD];
	uint8_t owner = (uint8_t)!my_writer(c);
	int rc = 0;

	if (!rr) {
		op->status = SRDMA_ENOENT; /* revoked during the read */
		return 0;
	}
	block_keys(c, keys);
	if (srdma__tamper("read"))
		ch->mem[srdma__block_payload_off(c->protect)] ^= 0x01;
	for (uint64_t i = 0; i < ch->nblocks; i++) {
		uint64_t b = ch->first_block + i;
		uint64_t rel = (b - op->first_block) * SRDMA_BLK_PAYLOAD;
		size_t l = op_block_len(op, b);
		const uint8_t *in = ch->mem + i * rr->stride;
		uint8_t *dst = l == SRDMA_BLK_PAYLOAD ? op->buf + rel : tmp;
		int orc;

		if (c->protect == SRDMA_PROTECT_NONE) {
			if (!ch->direct)
				memcpy(op->buf + rel, in, l);
			continue;
		}
		orc = srdma__block_open(keys, owner, op->region, b, in, false,
					dst, &bi);
		switch (judge(rr, ch, owner, b, orc, &bi, in)) {
		case READ_OK:
			if (dst == tmp)
				memcpy(op->buf + rel, tmp, l);
			continue;
		case READ_TORN:
			op->suspect = true;
			op->suspect_stamp = ch->stamp;
			/* fall through */
		case READ_NEWER:
			op->waiting = true;
			/* fall through */
		case READ_CHANGED:
			op->dirty = true;
			continue;
		case READ_STALE:
			rc = orc < 0 ? srdma__err(SRDMA_EINTEGRITY,
						  "block %llu of region %u "
						  "read from the peer failed "
						  "verification",
						  (unsigned long long)b,
						  op->region)
				     : srdma__err(
					       SRDMA_EINTEGRITY,
					       "block %llu of region %u "
					       "read from the peer is "
					       "stale: version %llu by the "
					       "%s is not the current one "
					       "(rolled back)",
					       (unsigned long long)b,
					       op->region,
					       (unsigned long long)bi.version,
					       bi.writer == WRITER_SERVER
						       ? "server"
						       : "client");
			goto out;
		}
	}
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rc;
}

/*
 * A read whose blocks are all back: done, or read again when it raced
 * with the owner (after the owner's UPDATE, or a moment). A read that keeps
 * racing ends with SRDMA_EAGAIN when the owner did announce changes, and as
 * a forgery when it did not.
 *
 * A block that failed to verify and then reads back whole and current,
 * with nothing announced in between, was not torn by the owner: a put
 * that tore it would have left a newer version there (the owner never
 * seals a version twice), or announced one. It was corrupted on the way or
 * forged: the read fails.
 */
static int finish_read(struct srdma_conn *c, struct op *op,
		       struct remote_region *rr, bool *done)
{
	*done = true;
	if (!op->dirty) {
		ENSURE(!op->suspect || rr->stamp != op->suspect_stamp,
		       SRDMA_EINTEGRITY,
		       "region %u: a block read from the peer failed "
		       "verification, and read again it had not changed "
		       "(tampered with on the way)",
		       op->region);
		complete_op(c, op, 0, "");
		return 0;
	}
	if (op->retries >= READ_RETRIES) {
		ENSURE(rr->stamp != op->stamp, SRDMA_EINTEGRITY,
		       "region %u: a read kept finding blocks that failed "
		       "verification or that the owner never announced "
		       "(forged)",
		       op->region);
		complete_op(c, op, SRDMA_EAGAIN,
			    "the owner kept changing the range during the "
			    "read; read it again");
		return 0;
	}
	*done = false;
	if (op->waiting) {
		if (!c->read_retry_at_ms)
			c->read_retry_at_ms = srdma__now_ms() + READ_RETRY_MS;
		return 0;
	}
	/* It keeps racing the owner: ask it to hold its puts. */
	if (op->retries >= READ_HOLD_AFTER)
		srdma__hold_ask(c, op);
	op->retries++;
	c->read_retries++;
	op->dirty = false;
	op->next_block = op->first_block;
	op->done_blocks = 0;
	return 0;
}

/* ---- moving operations ---- */

/*
 * Moves every op forward as far as it can: ops take staging chunks in
 * order; a write whose chunks all completed is announced (in order) and
 * completes when the owner acknowledges it; a read completes when its
 * blocks are all back and current.
 */
int srdma__progress_ops(struct srdma_conn *c)
{
	struct op *op, *next;
	bool issuing = true;
	int rc;

	if (c->state != ST_ESTABLISHED || !c->ops_head)
		return 0;
	GUARD(ensure_staging(c));
	for (op = c->ops_head; op; op = next) {
		struct remote_region *rr = find_remote(c, op->region);

		next = op->next;
		if (!rr && !op->status)
			op->status = SRDMA_ENOENT; /* revoked by the peer */
		if (op->status) {
			/* Ends once nothing of it is in flight; an announced
			 * write still waits for its acknowledgement. */
			if (!op->busy && !op->noticed)
				complete_op(c, op, op->status,
					    "the region was revoked by the "
					    "peer");
			continue;
		}
		if (op->kind == OP_READ && !op->busy &&
		    op->done_blocks == op->nblocks) {
			bool done;
			GUARD(finish_read(c, op, rr, &done));
			if (done)
				continue;
		}
		if (issuing && op->next_block < op->first_block + op->nblocks &&
		    !op->waiting && !op->hold_wait) {
			if (blocked(c, op)) {
				issuing = false;
				continue;
			}
			if (op->next_block == op->first_block && !op->retries)
				op->stamp = rr->stamp;
			for (int i = 0; i < NCHUNKS; i++) {
				if (op->next_block >=
				    op->first_block + op->nblocks)
					break;
				if (c->chunks[i].busy)
					continue;
				rc = start_chunk(c, op, rr, i);
				if (rc == SRDMA_EAGAIN)
					break;
				GUARD(rc);
			}
			if (op->next_block < op->first_block + op->nblocks)
				issuing = false; /* keep order */
		}
	}
	GUARD(send_notices(c));
	return srdma__flush_holds(c);
}

/* A staging chunk's write or read completed (a completion handler). */
void srdma__handle_chunk(struct srdma_conn *c, uint32_t ci, int status)
{
	struct chunk *ch;
	struct op *op;
	int rc = 0;

	if (ci >= NCHUNKS)
		return;
	ch = &c->chunks[ci];
	op = ch->op;
	for (uint32_t i = 1; i < ch->span && ci + i < (uint32_t)NCHUNKS; i++)
		c->chunks[ci + i].busy = false;
	ch->span = 1;
	ch->busy = false;
	ch->op = NULL;
	if (c->state != ST_ESTABLISHED || !op)
		return;
	op->busy--;
	if (status < 0) {
		char d[300];
		snprintf(d, sizeof(d), "RDMA %s on region %u of %s failed: %s",
			 op->kind == OP_WRITE ? "write" : "read", op->region,
			 srdma__who(c), srdma_strerror(status));
		srdma__fabric_failed(c, status, d);
		return;
	}
	if (op->kind == OP_READ)
		rc = open_read_chunk(c, op, ch);
	if (rc == 0) {
		op->done_blocks += ch->nblocks;
		rc = srdma__progress_ops(c);
	}
	srdma__conn_step(c, rc, c->state);
}

/* The retry moment of reads that waited for an UPDATE has come. */
void srdma__retry_reads(struct srdma_conn *c)
{
	c->read_retry_at_ms = 0;
	for (struct op *op = c->ops_head; op; op = op->next)
		op->waiting = false;
	srdma__conn_step(c, srdma__progress_ops(c), c->state);
}

/* ---- the owner's announcements ---- */

/*
 * The owner sealed new versions into blocks of a region we may read. An
 * UPDATE can overtake the grant it belongs to (grants travel over TLS):
 * those for ids above every grant so far wait for it; those for a revoked
 * region are moot.
 */
static int apply_update(struct srdma_conn *c, const struct srdma__update *u)
{
	struct remote_region *rr = find_remote(c, u->region);

	if (!rr) {
		uint32_t cap = c->depth * srdma__rec_entries(c);
		if (u->region <= c->max_remote_id)
			return 0;
		if (!c->early_upd) {
			c->early_upd = calloc(cap, sizeof(*c->early_upd));
			ENSURE(c->early_upd, SRDMA_ENOMEM, "out of memory");
		}
		ENSURE(c->nearly_upd < cap, SRDMA_EPROTO,
		       "too many updates for regions not granted yet");
		c->early_upd[c->nearly_upd++] = *u;
		return 0;
	}
	ENSURE(rr->exp, SRDMA_EPROTO,
	       "UPDATE for region %u, which we may not read", u->region);
	ENSURE(u->first < rr->nblocks && u->count <= rr->nblocks - u->first,
	       SRDMA_EPROTO, "UPDATE for blocks %llu+%llu of region %u (%llu)",
	       (unsigned long long)u->first, (unsigned long long)u->count,
	       u->region, (unsigned long long)rr->nblocks);
	for (uint64_t b = u->first; b < u->first + u->count; b++)
		rr->exp[b] = srdma__bv(!my_writer(c), u->version);
	if (u->version > rr->owner_max)
		rr->owner_max = u->version;
	rr->stamp++;
	mark_reads(c, u->region, u->first, u->count);
	return 0;
}

int srdma__handle_update(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	struct srdma__update u[SRDMA_REC_MAX_ENTRIES];
	size_t k;

	GUARD(srdma__updates_decode(p, len, u, srdma__rec_entries(c), &k));
	for (size_t i = 0; i < k; i++)
		GUARD(apply_update(c, &u[i]));
	return 0;
}

/* A new grant takes the UPDATEs that overtook it. */
int srdma__take_early_updates(struct srdma_conn *c, uint32_t id)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < c->nearly_upd; i++) {
		if (c->early_upd[i].region == id)
			GUARD(apply_update(c, &c->early_upd[i]));
		else
			c->early_upd[kept++] = c->early_upd[i];
	}
	c->nearly_upd = kept;
	return 0;
}

/* ---- starting one ---- */

static int start(struct srdma_conn *c, enum op_kind kind, uint32_t region,
		 uint64_t offset, void *buf, size_t len, void *user,
		 bool stream)
{
	const char *what = kind == OP_WRITE ? "srdma_write" : "srdma_read";
	struct remote_region *rr;
	struct op *op;

	ENSURE(c && buf, SRDMA_EINVAL, "%s: NULL connection or buffer", what);
	ENSURE(len > 0, SRDMA_EINVAL,
	       "%s: a length of 0 moves nothing; give at least one byte", what);
	if (c->state != ST_ESTABLISHED)
		return srdma__not_established(c);
	rr = find_remote(c, region);
	ENSURE(rr, SRDMA_ENOENT,
	       "the peer granted no region %u (yet: srdma_conn_wait_region "
	       "waits for a grant)",
	       region);
	ENSURE(rr->access & (kind == OP_WRITE ? SRDMA_ACCESS_REMOTE_WRITE
					      : SRDMA_ACCESS_REMOTE_READ),
	       SRDMA_EREMOTE_ACCESS, "region %u does not allow remote %s",
	       region, kind == OP_WRITE ? "writes" : "reads");
	ENSURE(stream == !!(rr->access & SRDMA_WIRE_ACCESS_STREAM),
	       SRDMA_EREMOTE_ACCESS,
	       "region %u is %sthe peer's stream ring (srdma_stream_*)", region,
	       stream ? "not " : "");
	ENSURE(offset % SRDMA_BLOCK_SIZE == 0, SRDMA_EINVAL,
	       "offset %llu is not a multiple of %d",
	       (unsigned long long)offset, SRDMA_BLOCK_SIZE);
	ENSURE(offset < rr->len && len <= rr->len - offset, SRDMA_ERANGE,
	       "%zu bytes at offset %llu do not fit region %u (%llu bytes)",
	       len, (unsigned long long)offset, region,
	       (unsigned long long)rr->len);
	GUARD(ops_init(c));
	ENSURE(c->op_free, SRDMA_EAGAIN,
	       "all %u operations of the connection are in flight (max_ops): "
	       "poll and try again",
	       c->max_ops);
	if (kind == OP_WRITE)
		ENSURE(rr->write_version < SRDMA_BLOCK_VERSION_MAX,
		       SRDMA_EEXHAUSTED,
		       "region %u: write counter exhausted; reconnect", region);
	op = c->op_free;
	c->op_free = op->next;
	c->nops++;
	memset(op, 0, sizeof(*op));
	if (kind == OP_WRITE)
		op->version = ++rr->write_version;
	op->kind = kind;
	op->stream = stream;
	op->user = user;
	op->region = region;
	op->offset = offset;
	op->buf = buf;
	op->len = len;
	op->first_block = offset / SRDMA_BLOCK_SIZE;
	op->nblocks = (len + SRDMA_BLOCK_SIZE - 1) / SRDMA_BLOCK_SIZE;
	op->next_block = op->first_block;
	op->mem = srdma__mem_find(c, buf, len);
	if (op->mem)
		op->mem->inflight++;
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

int srdma__start_op(struct srdma_conn *c, enum op_kind kind, uint32_t region,
		    uint64_t offset, void *buf, size_t len, void *user)
{
	return start(c, kind, region, offset, buf, len, user, false);
}

int srdma__start_stream_write(struct srdma_conn *c, uint32_t region,
			      uint64_t offset, void *buf, size_t len)
{
	return start(c, OP_WRITE, region, offset, buf, len, NULL, true);
}
