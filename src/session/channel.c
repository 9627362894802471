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
#include "session/metrics.h"

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
	ENSURE(c->send_free, SRDMA_ENOMEM, "out of memory");
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

/* Posts a receive slot again; credit says whether the peer hears of it now
 * (a notice's credit waits until its writes are verified). */
static int repost(struct srdma_conn *c, uint32_t slot, bool credit)
{
	int rc;

	if (c->state != ST_ESTABLISHED && c->state != ST_CLOSING)
		return 0;
	if (!c->tc || c->fabric_closed)
		return 0;
	rc = c->ctx->tp->ops->post_recv(c->tc, c->ring_mr, recv_slot(c, slot),
					c->slot_len, WR_ID(WR_RECV, slot));
	/* Closing, the fabric may go down under us: nothing more is due. */
	if (rc < 0 && c->state == ST_CLOSING)
		return 0;
	GUARD(rc);
	if (credit)
		c->rx_credits_due++;
	return 0;
}

int srdma__repost_slot(struct srdma_conn *c, int slot)
{
	if (c->rx_held)
		c->rx_held--;
	GUARD(repost(c, (uint32_t)slot, true));
	return srdma__flush(c);
}

/* Records that may use the peer's last credit: the ones that return
 * credits (CREDIT, ACK). Everything else leaves one back for them. */
static bool may_use_last(uint8_t type)
{
	return type == SRDMA_REC_CREDIT || type == SRDMA_REC_ACK;
}

bool srdma__can_post(const struct srdma_conn *c, uint8_t type)
{
	return c->nsend_free > 0 &&
	       c->tx_credits > (may_use_last(type) ? 0u : 1u);
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

	ENSURE(srdma__can_post(c, type), SRDMA_EAGAIN, "send window full");
	slot = c->send_free[--c->nsend_free];
	p = send_slot(c, slot);
	n = srdma__record_seal(&c->tx, type, credits, buf, len, p, c->slot_len);
	if (n < 0) {
		c->nsend_free++;
		return n;
	}
	if (type == SRDMA_REC_DATA && srdma__tamper("send"))
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

/* Entries of NOTICE or UPDATE that fit one record of this connection. */
uint32_t srdma__rec_entries(const struct srdma_conn *c)
{
	uint32_t n = c->max_msg / SRDMA_NOTICE_LEN;

	return n < SRDMA_REC_MAX_ENTRIES ? n : SRDMA_REC_MAX_ENTRIES;
}

/* The owner's acknowledgement of what it verified, coalesced. */
static int flush_ack(struct srdma_conn *c)
{
	uint8_t p[SRDMA_ACK_LEN];

	if (!c->ack_due.count || !srdma__can_post(c, SRDMA_REC_ACK))
		return 0;
	GUARD(srdma__ack_encode(&c->ack_due, p));
	GUARD(srdma__post_record(c, SRDMA_REC_ACK, p, sizeof(p)));
	c->ack_due.count = 0;
	return 0;
}

/* The owner's UPDATEs for puts the reader has not heard of. */
static int flush_updates(struct srdma_conn *c)
{
	uint8_t p[SRDMA_REC_MAX_ENTRIES * SRDMA_UPDATE_LEN];
	int n;

	if (!c->nupd || !srdma__can_post(c, SRDMA_REC_UPDATE))
		return 0;
	n = srdma__updates_encode(c->upd, c->nupd, p, sizeof(p));
	GUARD(n);
	GUARD(srdma__post_record(c, SRDMA_REC_UPDATE, p, (size_t)n));
	c->nupd = 0;
	return 0;
}

/*
 * Sends what waits for credits, and returns credits: at once when half the
 * window is due, or when the peer is down to its last credit (what it may
 * still send is bounded by slots we hold: reported, withheld for notices
 * under verification, or held by the application).
 */
int srdma__flush(struct srdma_conn *c)
{
	uint32_t want = c->depth / 2 ? c->depth / 2 : 1;
	uint32_t held = c->rx_credits_due + c->withheld + c->rx_held;

	if (c->state != ST_ESTABLISHED && c->state != ST_CLOSING)
		return 0;
	GUARD(flush_ack(c));
	GUARD(flush_updates(c));
	GUARD(srdma__flush_holds(c));
	if (!c->rx_credits_due || !srdma__can_post(c, SRDMA_REC_CREDIT))
		return 0;
	if (c->rx_credits_due < want && held + 2 <= c->depth)
		return 0;
	return srdma__post_record(c, SRDMA_REC_CREDIT, NULL, 0);
}

/* ---- the owner's side of a peer write ---- */

/*
 * The peer wrote blocks into our regions (one record, several writes).
 * Notices must name a region we granted for writing, fit it, and carry a
 * version newer than every earlier one for that region: a replayed, older
 * or repeated notice fails the connection. The record's credit comes back
 * only once all its writes are verified, so a writer can never have more
 * unverified writes in flight than the window.
 */
static int handle_notice(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	struct srdma__notice n[SRDMA_REC_MAX_ENTRIES];
	size_t k;

	GUARD(srdma__notices_decode(p, len, n, srdma__rec_entries(c), &k));
	if (!c->verifies) {
		c->verify_cap = c->depth * srdma__rec_entries(c);
		c->verifies = calloc(c->verify_cap, sizeof(*c->verifies));
		ENSURE(c->verifies, SRDMA_ENOMEM, "out of memory");
	}
	/* Credits bound the writer's notices in flight to our window. */
	ENSURE(c->nverify + k <= c->verify_cap, SRDMA_EPROTO,
	       "the peer has more unacknowledged writes than its window");
	for (size_t i = 0; i < k; i++) {
		struct srdma_region *r = find_region(c, n[i].region);
		struct pending_verify *v = &c->verifies[c->nverify + i];

		*v = (struct pending_verify){.region = n[i].region,
					     .off = n[i].offset,
					     .len = n[i].len,
					     .version = n[i].version,
					     .credit = i == k - 1};
		if (!r) {
			/* Destroyed (revoked) while the write was on its
			 * way: acknowledge it, verify nothing. */
			ENSURE(n[i].region <= c->next_region_id, SRDMA_EPROTO,
			       "write notice for region %u, which we never "
			       "granted",
			       n[i].region);
			v->skip = true;
			continue;
		}
		ENSURE(r->granted && (r->access & SRDMA_ACCESS_REMOTE_WRITE),
		       SRDMA_EPROTO, "write notice for read-only region %u",
		       n[i].region);
		ENSURE(n[i].offset <= r->len &&
			       n[i].len <= r->len - n[i].offset,
		       SRDMA_EPROTO,
		       "write notice for %llu bytes at %llu, outside region "
		       "%u (%llu bytes)",
		       (unsigned long long)n[i].len,
		       (unsigned long long)n[i].offset, n[i].region,
		       (unsigned long long)r->len);
		ENSURE(n[i].version > r->peer_last, SRDMA_EREPLAY,
		       "write notice for region %u with version %llu after "
		       "%llu: replayed or out of order",
		       n[i].region, (unsigned long long)n[i].version,
		       (unsigned long long)r->peer_last);
		r->peer_last = n[i].version;
		if (r->stream)
			GUARD(srdma__stream_on_notice(c, r, n[i].offset,
						      n[i].len));
		v->next = n[i].offset / SRDMA_BLK_PAYLOAD;
		v->end = v->next +
			 (n[i].len + SRDMA_BLK_PAYLOAD - 1) / SRDMA_BLK_PAYLOAD;
	}
	c->nverify += (uint32_t)k;
	c->withheld++;
	c->ctx->work_pending = true;
	return 0;
}

enum { VERIFY_SLICE = 32 }; /* blocks per connection per loop iteration */

/*
 * One block of an announced write: it must open, be sealed by the peer with
 * the announced version (then it becomes the block's authoritative state),
 * or still be exactly what we put there ourselves (our put came after the
 * peer's write landed: returns 1 when the reader must hear of it again).
 * Anything else is a forgery or a rollback.
 */
static int verify_block(struct srdma_conn *c, struct srdma_region *r,
			const struct pending_verify *v, uint64_t b,
			uint8_t *scratch)
{
	struct srdma__aead *keys[2];
	struct srdma__block_info bi;
	/* With a sink the plaintext goes straight to the application. */
	uint8_t *out = r->sink ? r->sink + b * SRDMA_BLK_PAYLOAD : scratch;
	int peer = !my_writer(c), rc;

	block_keys(c, keys);
	rc = srdma__block_open(keys, (uint8_t)my_writer(c), v->region, b,
			       r->mem + b * r->stride, false, out, &bi);
	if (rc < 0)
		return srdma__err(SRDMA_EINTEGRITY,
				  "block %llu of region %u failed verification "
				  "after the peer's write",
				  (unsigned long long)b, v->region);
	if (bi.writer == peer && bi.version == v->version) {
		r->cur[b] = srdma__bv(peer, bi.version);
		return 0;
	}
	/* Our own put came after the write landed: it stays, and a reader
	 * must hear of it again after our acknowledgement of the write. */
	if (bi.writer == my_writer(c) &&
	    srdma__bv(bi.writer, bi.version) == r->cur[b])
		return srdma__region_announced(r) ? 1 : 0;
	return srdma__err(SRDMA_EINTEGRITY,
			  "block %llu of region %u holds version %llu by the "
			  "%s, the notice says %llu by the %s",
			  (unsigned long long)b, v->region,
			  (unsigned long long)bi.version,
			  bi.writer == WRITER_SERVER ? "server" : "client",
			  (unsigned long long)v->version,
			  peer == WRITER_SERVER ? "server" : "client");
}

/* Verifies blocks of v while the budget lasts (opened into scratch, or the
 * region's sink). */
static int verify_blocks(struct srdma_conn *c, struct srdma_region *r,
			 struct pending_verify *v, uint32_t *budget,
			 uint8_t *scratch)
{
	for (; v->next < v->end && *budget; v->next++, (*budget)--) {
		int rc;
		if (c->nupd == srdma__rec_entries(c)) {
			GUARD(srdma__flush(c));
			if (c->nupd == srdma__rec_entries(c)) {
				*budget = 0; /* no room to re-announce: later */
				return 0;
			}
		}
		rc = verify_block(c, r, v, v->next, scratch);
		GUARD(rc);
		if (rc == 1)
			c->upd[c->nupd++] = (struct srdma__update){
				.region = v->region,
				.first = v->next,
				.count = 1,
				.version = r->cur[v->next] & SRDMA_BV_VERSION};
	}
	return 0;
}

/*
 * Verifies up to *budget blocks of the oldest announced write. When its
 * last block checks out, the application hears of the write, the writer's
 * acknowledgement is due (it completes its write only then, so it never
 * overwrites blocks we have not verified), and the notice's credit goes
 * back if it was its record's last.
 */
static int verify_slice(struct srdma_conn *c, uint32_t *budget)
{
	struct pending_verify *v = &c->verifies[0];
	struct srdma_region *r = v->skip ? NULL : find_region(c, v->region);

	/* Mode none has nothing to verify: the write is taken as it is
	 * (copied to the sink, if there is one). */
	if (r && r->sink && c->protect == SRDMA_PROTECT_NONE && !v->skip)
		memcpy(r->sink + v->off, r->mem + v->off, v->len);
	if (r && c->protect != SRDMA_PROTECT_NONE) {
		uint8_t scratch[SRDMA_BLK_PAYLOAD];
		int rc = verify_blocks(c, r, v, budget, scratch);
		/* The scratch held the plaintext of the blocks just verified:
		 * wiped once a slice, not once a block (a wipe per 4 KiB block
		 * was a tenth of an owner's CPU at 1 MiB writes, perf). A
		 * sink's bytes are the application's. */
		if (!r->sink)
			OPENSSL_cleanse(scratch, sizeof(scratch));
		GUARD(rc);
	}
	if (r && c->protect != SRDMA_PROTECT_NONE && v->next < v->end)
		return 0;
	/* Done (or the region was destroyed meanwhile: nothing to report). */
	if (r && r->stream) {
		GUARD(srdma__stream_on_write(c, r, v->off, v->len));
	} else if (r) {
		struct qev *e;
		GUARD(srdma__queue_event(c->ctx, SRDMA_EV_PEER_WRITE, 0, c,
					 c->user, "", &e));
		e->ev.region = v->region;
		e->ev.offset = v->off;
		e->ev.len = v->len;
		srdma__metric_op(c, SRDMA_METRIC_PEER_WRITE, v->len);
	}
	c->ack_due.count++;
	c->ack_due.region = v->region;
	c->ack_due.version = v->version;
	if (v->credit) {
		c->withheld--;
		c->rx_credits_due++;
	}
	memmove(c->verifies, c->verifies + 1,
		(c->nverify - 1) * sizeof(*c->verifies));
	c->nverify--;
	return 0;
}

/* One pass of verification for every connection that has some (between
 * loop iterations); each pass's acknowledgements go in one record. */
bool srdma__conn_work(struct srdma_ctx *ctx)
{
	bool more = false;

	for (struct srdma_conn *c = ctx->conns; c; c = c->next) {
		uint32_t budget = VERIFY_SLICE;
		int rc = 0;

		if (c->stream && c->state == ST_ESTABLISHED)
			srdma__conn_step(c, srdma__stream_work(c), c->state);
		if (!c->nverify || c->state != ST_ESTABLISHED)
			continue;
		while (rc == 0 && c->nverify && budget)
			rc = verify_slice(c, &budget);
		if (rc == 0)
			rc = srdma__flush(c);
		if (srdma__conn_step(c, rc, c->state) && c->nverify)
			more = true;
	}
	return more;
}

/* ---- records in ---- */

static int handle_recv(struct srdma_conn *c, uint32_t slot, uint32_t len)
{
	struct srdma__record rec;
	bool credit = true;
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
	case SRDMA_REC_DATA: {
		struct qev *e;
		GUARD(srdma__queue_event(c->ctx, SRDMA_EV_RECV, 0, c, c->user,
					 "", &e));
		e->ev.data = rec.payload;
		e->ev.len = rec.len;
		srdma__metric_op(c, SRDMA_METRIC_RECV, rec.len);
		e->recv_slot = (int)slot;
		c->rx_held++;
		/* The slot goes back when the application is done with it. */
		GUARD(srdma__progress_ops(c));
		return srdma__flush(c);
	}
	case SRDMA_REC_NOTICE:
		GUARD(handle_notice(c, rec.payload, rec.len));
		credit = false;
		break;
	case SRDMA_REC_ACK:
		GUARD(srdma__handle_ack(c, rec.payload, rec.len));
		break;
	case SRDMA_REC_UPDATE:
		GUARD(srdma__handle_update(c, rec.payload, rec.len));
		break;
	case SRDMA_REC_STREAM:
		GUARD(srdma__stream_on_record(c, rec.payload, rec.len));
		break;
	case SRDMA_REC_HOLD:
		GUARD(srdma__handle_hold(c, rec.payload, rec.len));
		break;
	case SRDMA_REC_CREDIT:
		ENSURE(rec.len == 0, SRDMA_EPROTO,
		       "CREDIT record with %u bytes", rec.len);
		break;
	default:
		return srdma__err(SRDMA_EPROTO, "unknown record type %u",
				  rec.type);
	}
	GUARD(repost(c, slot, credit));
	GUARD(srdma__progress_ops(c));
	return srdma__flush(c);
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
	if (WR_KIND(cqe->wr_id) == WR_TEST) {
		srdma__test_cqe(c, cqe);
		return;
	}
	if (WR_KIND(cqe->wr_id) == WR_SEND && idx < c->ring_depth &&
	    c->nsend_free < c->ring_depth)
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
		/* Closing: the peer's last record read, the fabric can go. */
		if (rc == 0 && c->state == ST_CLOSING)
			srdma__start_disconnect(c);
		break;
	case WR_SEND:
		rc = srdma__progress_ops(c);
		if (rc == 0)
			rc = srdma__flush(c);
		break;
	case WR_CHUNK:
		srdma__handle_chunk(c, idx, cqe->status);
		break;
	default:
		return;
	}
	if (WR_KIND(cqe->wr_id) != WR_CHUNK)
		srdma__conn_step(c, rc, c->state);
	/* Credits, slots, acknowledgements or ring space may have come. */
	if (c->stream)
		srdma__stream_kick(c);
}
