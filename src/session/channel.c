/* SPDX-License-Identifier: MIT */
/*
 * The message channel: rings, credits, records, and the owner's side of
 * peer writes (notices, verification, acknowledgements).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>

#include "session/conn.h"

static int maybe_send_credit(struct srdma_conn *c);
static int flush_acks(struct srdma_conn *c);

/*
 * Message rings, staging areas and regions come straight from mmap: pages
 * arrive zeroed, are touched only where data lands, and munmap hands them
 * back to the kernel, which zeroes them before anyone else sees them. So no
 * plaintext outlives a connection in this process, without the cost of
 * wiping (and first faulting in) megabytes a short connection never used.
 */
void *srdma__map_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void srdma__unmap_buf(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

/* Registers the receive and send rings (needs the domain/PD), unless they
 * came registered with a kit from the resource pool (at least as large). */
int srdma__setup_rings(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;

	/* The layout is fixed here; a client that sends PARAMS early sizes it
	 * by its own limits, which the server's HELLO may lower after. */
	c->slot_len = srdma__slot_len(c->max_msg);
	c->ring_depth = c->depth;
	if (!c->ring) {
		c->ring_len = srdma__ring_len(c->max_msg, c->ring_depth);
		c->ring = srdma__map_buf(c->ring_len);
		if (!c->ring)
			return srdma__err(SRDMA_ENOMEM,
					  "out of memory for %zu bytes "
					  "of message buffers",
					  c->ring_len);
	}
	c->send_free = calloc(c->ring_depth, sizeof(uint32_t));
	c->acks = calloc(c->ring_depth, sizeof(*c->acks));
	c->verifies = calloc(c->ring_depth, sizeof(*c->verifies));
	ENSURE(c->send_free && c->acks && c->verifies, SRDMA_ENOMEM,
	       "out of memory");
	for (uint32_t i = 0; i < c->ring_depth; i++)
		c->send_free[i] = c->ring_depth - 1 - i;
	c->nsend_free = c->ring_depth;
	c->tx_credits = c->depth;
	if (c->ring_mr)
		return 0;
	return ops->mr_reg(c->tc, c->ring, c->ring_len, SRDMA_TP_LOCAL,
			   &c->ring_mr);
}

static uint8_t *recv_slot(struct srdma_conn *c, uint32_t i)
{
	return c->ring + (size_t)i * c->slot_len;
}

static uint8_t *send_slot(struct srdma_conn *c, uint32_t i)
{
	return c->ring + (size_t)(c->ring_depth + i) * c->slot_len;
}

int srdma__post_all_recvs(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;

	for (uint32_t i = 0; i < c->ring_depth; i++) {
		GUARD(ops->post_recv(c->tc, c->ring_mr, recv_slot(c, i),
				     c->slot_len, WR_ID(WR_RECV, i)));
	}
	return 0;
}

int srdma__repost_slot(struct srdma_conn *c, int slot)
{
	if (c->state != ST_ESTABLISHED && c->state != ST_CLOSING)
		return 0;
	if (!c->tc || c->fabric_closed)
		return 0;
	GUARD(c->ctx->tp->ops->post_recv(c->tc, c->ring_mr,
					 recv_slot(c, (uint32_t)slot),
					 c->slot_len, WR_ID(WR_RECV, slot)));
	c->rx_credits_due++;
	return maybe_send_credit(c);
}

/* Seals one record into a free send slot and posts it. */
int srdma__post_record(struct srdma_conn *c, uint8_t type, const void *buf,
		       size_t len)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	uint32_t slot;
	uint8_t *p;
	uint16_t credits = (uint16_t)c->rx_credits_due;
	int n, rc;

	ENSURE(c->nsend_free > 0 && c->tx_credits > 0, SRDMA_EAGAIN,
	       "send window full");
	slot = c->send_free[--c->nsend_free];
	p = send_slot(c, slot);
	n = srdma__record_seal(&c->tx, type, credits, buf, len, p, c->slot_len);
	if (n < 0) {
		c->nsend_free++;
		return n;
	}
	if (type == REC_DATA && srdma__tamper("send"))
		p[SRDMA_REC_HDR_LEN] ^= 0x01;
	rc = ops->post_send(c->tc, c->ring_mr, p, (size_t)n,
			    WR_ID(WR_SEND, slot),
			    n <= 64 ? SRDMA_TP_F_INLINE : 0);
	if (rc < 0) {
		/* The sequence number is spent: the connection cannot go on
		 * (never EAGAIN, which callers take as "window full"). */
		c->nsend_free++;
		return rc == SRDMA_EAGAIN ? SRDMA_EFABRIC : rc;
	}
	c->rx_credits_due -= credits;
	c->tx_credits--;
	return 0;
}

static int maybe_send_credit(struct srdma_conn *c)
{
	uint32_t want = c->depth / 2 ? c->depth / 2 : 1;

	if (c->state != ST_ESTABLISHED && c->state != ST_CLOSING)
		return 0;
	if (c->nacks)
		GUARD(flush_acks(c));
	if (c->rx_credits_due < want || c->tx_credits < 1 || !c->nsend_free)
		return 0;
	return srdma__post_record(c, REC_CREDIT, NULL, 0);
}

/* Sends acknowledgements for verified writes, in order, as credits allow.
 * Like credit returns they may use the last credit. */
static int flush_acks(struct srdma_conn *c)
{
	uint32_t done = 0;
	int rc = 0;

	while (done < c->nacks && c->tx_credits >= 1 && c->nsend_free) {
		uint8_t p[WRITE_ACK_LEN];
		srdma__be32(p, c->acks[done].region);
		srdma__be64(p + 4, c->acks[done].version);
		rc = srdma__post_record(c, REC_WRITE_ACK, p, sizeof(p));
		if (rc < 0)
			break;
		done++;
	}
	if (done) {
		memmove(c->acks, c->acks + done,
			(c->nacks - done) * sizeof(*c->acks));
		c->nacks -= done;
	}
	return rc;
}

/* The peer wrote blocks into one of our regions: verify them all. */
static int handle_notice(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	struct pending_verify *v;
	struct srdma_region *r;
	uint64_t off, n;
	uint32_t id;

	ENSURE(len == WRITE_NOTICE_LEN, SRDMA_EPROTO,
	       "write notice of %zu bytes (want %d)", len, WRITE_NOTICE_LEN);
	id = srdma__get_be32(p);
	off = srdma__get_be64(p + 4);
	n = srdma__get_be64(p + 12);
	r = find_region(c, id);
	ENSURE(r, SRDMA_EPROTO, "write notice for unknown region %u", id);
	ENSURE(r->access & SRDMA_ACCESS_REMOTE_WRITE, SRDMA_EPROTO,
	       "write notice for read-only region %u", id);
	ENSURE(off % SRDMA_BLK_PAYLOAD == 0 && n > 0 && off <= r->len &&
		       n <= r->len - off,
	       SRDMA_EPROTO, "write notice outside region %u", id);
	/* Credits bound the writer's notices in flight to our window. */
	ENSURE(c->nverify < c->depth, SRDMA_EPROTO,
	       "the peer has more unacknowledged writes than its window");
	v = &c->verifies[c->nverify++];
	v->region = id;
	v->off = off;
	v->len = n;
	v->version = srdma__get_be64(p + 20);
	v->next = off / SRDMA_BLK_PAYLOAD;
	v->end = v->next + (n + SRDMA_BLK_PAYLOAD - 1) / SRDMA_BLK_PAYLOAD;
	c->ctx->work_pending = true;
	return 0;
}

enum { VERIFY_SLICE = 32 }; /* blocks per connection per loop iteration */

/*
 * Verifies the next slice of the oldest announced write: every block must
 * open, be sealed by the peer, and carry the announced version. When the
 * last block checks out, the application hears of the write and the
 * writer gets its acknowledgement (it completes its write only then, so it
 * never overwrites blocks we have not verified).
 */
static int verify_slice(struct srdma_conn *c)
{
	struct pending_verify *v = &c->verifies[0];
	struct srdma_region *r = find_region(c, v->region);
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	uint8_t scratch[SRDMA_BLK_PAYLOAD];
	int peer = !my_writer(c);
	uint64_t stop;

	block_keys(c, keys);
	stop = v->end - v->next > VERIFY_SLICE ? v->next + VERIFY_SLICE
					       : v->end;
	for (; r && v->next < stop; v->next++) {
		uint64_t b = v->next;
		int rc;
		if (c->protect == SRDMA_PROTECT_NONE) {
			/* Nothing to authenticate in mode none: check the
			 * header only, without copying the payload out. */
			const uint8_t *h = r->mem + b * r->stride;
			bi.version = srdma__get_be64(h);
			bi.writer = h[12];
			rc = srdma__get_be32(h + 8) <= SRDMA_BLK_PAYLOAD
				     ? 0
				     : SRDMA_EPROTO;
		} else {
			rc = srdma__block_open(keys, v->region, b,
					       r->mem + b * r->stride, false,
					       scratch, &bi);
		}
		if (rc < 0) {
			OPENSSL_cleanse(scratch, sizeof(scratch));
			return srdma__err(SRDMA_EINTEGRITY,
					  "block %llu of region %u failed "
					  "verification after the peer's write",
					  (unsigned long long)b, v->region);
		}
		ENSURE(bi.writer == peer && bi.version == v->version,
		       SRDMA_EINTEGRITY,
		       "block %llu of region %u holds version %llu, the "
		       "notice says %llu",
		       (unsigned long long)b, v->region,
		       (unsigned long long)bi.version,
		       (unsigned long long)v->version);
		r->newest[b] = v->version;
	}
	OPENSSL_cleanse(scratch, sizeof(scratch));
	if (r && v->next < v->end)
		return 0;
	/* Done (or the region was destroyed meanwhile: nothing to report). */
	if (r) {
		struct qev *e;
		GUARD(srdma__queue_event(c->ctx, SRDMA_EV_PEER_WRITE, 0, c,
					 c->user, "", &e));
		e->ev.region = v->region;
		e->ev.offset = v->off;
		e->ev.len = v->len;
	}
	ENSURE(c->nacks < c->depth, SRDMA_EPROTO,
	       "too many unacknowledged writes");
	c->acks[c->nacks].region = v->region;
	c->acks[c->nacks].version = v->version;
	c->nacks++;
	memmove(c->verifies, c->verifies + 1,
		(c->nverify - 1) * sizeof(*c->verifies));
	c->nverify--;
	return flush_acks(c);
}

bool srdma__conn_work(struct srdma_ctx *ctx)
{
	bool more = false;

	for (struct srdma_conn *c = ctx->conns; c; c = c->next) {
		if (!c->nverify || c->state != ST_ESTABLISHED)
			continue;
		if (srdma__conn_step(c, verify_slice(c), c->state) &&
		    c->nverify)
			more = true;
	}
	return more;
}

static int handle_recv(struct srdma_conn *c, uint32_t slot, uint32_t len)
{
	struct srdma__record rec;
	int rc;

	if (c->state != ST_ESTABLISHED && c->state != ST_CLOSING)
		return 0;
	rc = srdma__record_open(&c->rx, recv_slot(c, slot), len, &rec);
	if (rc < 0) {
		char d[300];
		snprintf(d, sizeof(d), "%s", srdma_error_detail());
		return srdma__err(rc,
				  "a message from %s failed verification: %s",
				  srdma__who(c), d);
	}
	c->tx_credits += rec.credits;
	ENSURE(c->tx_credits <= c->depth, SRDMA_EPROTO,
	       "the peer returned more credits than it had");
	switch (rec.type) {
	case REC_DATA: {
		struct qev *e;
		GUARD(srdma__queue_event(c->ctx, SRDMA_EV_RECV, 0, c, c->user,
					 "", &e));
		e->ev.data = rec.payload;
		e->ev.len = rec.len;
		e->recv_slot = (int)slot;
		break;
	}
	case REC_WRITE_NOTICE:
		GUARD(handle_notice(c, rec.payload, rec.len));
		GUARD(srdma__repost_slot(c, (int)slot));
		break;
	case REC_WRITE_ACK:
		GUARD(srdma__handle_ack(c, rec.payload, rec.len));
		GUARD(srdma__repost_slot(c, (int)slot));
		break;
	case REC_CREDIT:
		GUARD(srdma__repost_slot(c, (int)slot));
		break;
	default:
		return srdma__err(SRDMA_EPROTO, "unknown record type %u",
				  rec.type);
	}
	GUARD(srdma__progress_ops(c));
	return maybe_send_credit(c);
}

/* What a failed completion says about the fabric connection. */
static const char *failed_wr(uint64_t wr_id)
{
	switch (WR_KIND(wr_id)) {
	case WR_RECV:
		return "the fabric connection failed (a receive was cancelled)";
	case WR_SEND:
		return "the fabric connection failed (a send did not "
		       "complete)";
	default:
		return NULL;
	}
}

void srdma__on_tp_cqe(void *arg, const struct srdma__tp_cqe *cqe)
{
	struct srdma_conn *c = arg;
	uint32_t idx = WR_IDX(cqe->wr_id);
	int rc = 0;

	/* A backend may hand us the peer's first message before its own
	 * "connected" event (libfabric reads the CQ before the EQ): a
	 * successful completion proves the connection is up. */
	if (c->state == ST_FABRIC && cqe->status == 0)
		srdma__on_tp_established(c);
	if (WR_KIND(cqe->wr_id) == WR_SEND && idx < c->ring_depth)
		c->send_free[c->nsend_free++] = idx;
	if (cqe->status < 0 && WR_KIND(cqe->wr_id) != WR_CHUNK) {
		if (c->state == ST_ESTABLISHED && failed_wr(cqe->wr_id))
			srdma__fabric_failed(c, cqe->status,
					     failed_wr(cqe->wr_id));
		return;
	}
	switch (WR_KIND(cqe->wr_id)) {
	case WR_RECV:
		if (idx < c->ring_depth)
			rc = handle_recv(c, idx, cqe->len);
		break;
	case WR_SEND:
		rc = srdma__progress_ops(c);
		if (rc == 0)
			rc = maybe_send_credit(c);
		break;
	case WR_CHUNK:
		srdma__handle_chunk(c, idx, cqe->status);
		return;
	default:
		return;
	}
	srdma__conn_step(c, rc, c->state);
}
