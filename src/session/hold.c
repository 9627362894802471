/* SPDX-License-Identifier: MIT */
/*
 * Holds (docs/PROTOCOL.md §6, "Holds"): a read that keeps racing the
 * owner's puts asks the owner to hold puts into its range, so a reader is
 * never starved by an owner that rewrites the range faster than it can be
 * read whole.
 *
 * Reader: after READ_HOLD_AFTER re-reads, one read at a time sends ASK
 * (region, blocks) and waits (other reads that want one wait their turn,
 * oldest first, without reading meanwhile); the owner answers HELD after the
 * UPDATEs of every put before it, so the read that follows knows every version
 * it can meet and nothing changes under it. When the read ends (however), the
 * reader sends RELEASE.
 *
 * Owner: one hold per connection, on a range of a region the peer may
 * read; srdma_region_put into that range answers SRDMA_EAGAIN until the
 * RELEASE, or for SRDMA_HOLD_MAX_MS at most: a reader can make the owner's
 * puts wait only in regions granted to it, and only that long per hold; a
 * second ASK before the RELEASE, a RELEASE of nothing, or a HELD that was
 * not asked for fails the connection (SRDMA_EPROTO).
 */
#include "base/loop.h"
#include "session/conn.h"

static bool same_range(const struct srdma__hold *a, const struct srdma__hold *b)
{
	return a->region == b->region && a->first == b->first &&
	       a->count == b->count;
}

static int post_hold(struct srdma_conn *c, const struct srdma__hold *h,
		     uint8_t kind)
{
	struct srdma__hold x = *h;
	uint8_t p[SRDMA_HOLD_LEN];

	x.kind = kind;
	GUARD(srdma__hold_encode(&x, p));
	return srdma__post_record(c, SRDMA_REC_HOLD, p, sizeof(p));
}

static void next_hold(struct srdma_conn *c);

/* Sends what is due: the owner's HELD (only once every UPDATE before it is
 * out), the reader's ASK or RELEASE. What finds no credit waits for the
 * next flush. */
int srdma__flush_holds(struct srdma_conn *c)
{
	if (c->state != ST_ESTABLISHED)
		return 0;
	if (c->held_due && !c->nupd && srdma__can_post(c, SRDMA_REC_HOLD)) {
		GUARD(post_hold(c, &c->held, SRDMA_HOLD_HELD));
		c->held_due = false;
		c->held_until_ms = srdma__now_ms() + SRDMA_HOLD_MAX_MS;
	}
	if (c->hold_state == HOLD_RELEASE_DUE &&
	    srdma__can_post(c, SRDMA_REC_HOLD)) {
		GUARD(post_hold(c, &c->hold, SRDMA_HOLD_RELEASE));
		c->hold_state = HOLD_NONE;
		next_hold(c);
	}
	if (c->hold_state == HOLD_ASK_DUE &&
	    srdma__can_post(c, SRDMA_REC_HOLD)) {
		GUARD(post_hold(c, &c->hold, SRDMA_HOLD_ASK));
		c->hold_state = HOLD_ASKED;
	}
	return 0;
}

/* ---- the reader ---- */

static void start_hold(struct srdma_conn *c, struct op *op)
{
	c->hold = (struct srdma__hold){.kind = SRDMA_HOLD_ASK,
				       .region = op->region,
				       .first = op->first_block,
				       .count = op->nblocks};
	c->hold_state = HOLD_ASK_DUE;
	c->hold_op = op;
	op->hold_queued = false;
	op->hold_wait = true;
	c->read_holds++;
}

/* The hold is free again: the oldest read waiting for one takes it. */
static void next_hold(struct srdma_conn *c)
{
	for (struct op *op = c->ops_head; op; op = op->next)
		if (op->hold_queued) {
			start_hold(c, op);
			return;
		}
}

void srdma__hold_ask(struct srdma_conn *c, struct op *op)
{
	if (op->held_once)
		return;
	op->held_once = true;
	if (c->hold_state == HOLD_NONE) {
		start_hold(c, op);
		return;
	}
	/* Another read holds: re-reading meanwhile would race again. */
	op->hold_queued = true;
	op->hold_wait = true;
}

void srdma__hold_op_done(struct srdma_conn *c, struct op *op)
{
	if (c->hold_op != op)
		return;
	c->hold_op = NULL;
	if (c->hold_state == HOLD_ASK_DUE) {
		c->hold_state = HOLD_NONE; /* never asked */
		next_hold(c);
	} else if (c->hold_state == HOLD_HELD) {
		c->hold_state = HOLD_RELEASE_DUE;
	}
	/* HOLD_ASKED: released once the HELD comes */
}

/* ---- both ---- */

static int on_ask(struct srdma_conn *c, const struct srdma__hold *h)
{
	struct srdma_region *r = find_region(c, h->region);

	ENSURE(!c->held.kind, SRDMA_EPROTO,
	       "the peer asked to hold puts into region %u while its hold on "
	       "region %u was not released",
	       h->region, c->held.region);
	if (r) {
		ENSURE(srdma__region_announced(r), SRDMA_EPROTO,
		       "the peer asked to hold puts into region %u, which it "
		       "may not read",
		       h->region);
		ENSURE(h->first < r->nblocks &&
			       h->count <= r->nblocks - h->first,
		       SRDMA_EPROTO,
		       "the peer asked to hold blocks %llu+%llu of region %u "
		       "(%llu blocks)",
		       (unsigned long long)h->first,
		       (unsigned long long)h->count, h->region,
		       (unsigned long long)r->nblocks);
	} else {
		/* Destroyed since (the peer had not heard of the revoke):
		 * nothing to hold, but the reader waits for its answer. */
		ENSURE(h->region <= c->next_region_id, SRDMA_EPROTO,
		       "the peer asked to hold puts into region %u, which we "
		       "never granted",
		       h->region);
	}
	c->held = *h;
	c->held_due = true;
	c->held_until_ms = srdma__now_ms() + SRDMA_HOLD_MAX_MS;
	return 0;
}

int srdma__handle_hold(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	struct srdma__hold h;

	GUARD(srdma__hold_decode(p, len, &h));
	switch (h.kind) {
	case SRDMA_HOLD_ASK:
		return on_ask(c, &h);
	case SRDMA_HOLD_HELD:
		ENSURE(c->hold_state == HOLD_ASKED && same_range(&h, &c->hold),
		       SRDMA_EPROTO,
		       "the peer held puts into blocks %llu+%llu of region %u, "
		       "which we did not ask for",
		       (unsigned long long)h.first, (unsigned long long)h.count,
		       h.region);
		if (c->hold_op) {
			c->hold_state = HOLD_HELD;
			c->hold_op->hold_wait = false;
			return 0;
		}
		/* The read ended meanwhile: the RELEASE goes with the flush
		 * that follows every record. */
		c->hold_state = HOLD_RELEASE_DUE;
		return 0;
	default: /* RELEASE */
		ENSURE(c->held.kind && !c->held_due && same_range(&h, &c->held),
		       SRDMA_EPROTO,
		       "the peer released a hold on blocks %llu+%llu of region "
		       "%u that it did not have",
		       (unsigned long long)h.first, (unsigned long long)h.count,
		       h.region);
		c->held.kind = 0;
		return 0;
	}
}

/* ---- the owner's puts ---- */

int srdma__hold_check_put(struct srdma_conn *c, const struct srdma_region *r,
			  uint64_t first, uint64_t n)
{
	const struct srdma__hold *h = &c->held;

	if (!h->kind || h->region != r->id || first >= h->first + h->count ||
	    h->first >= first + n)
		return 0;
	if (srdma__now_ms() >= c->held_until_ms)
		return 0; /* the reader kept it too long: puts go on */
	return srdma__err(SRDMA_EAGAIN,
			  "the peer is reading blocks %llu..%llu of region %u "
			  "and holds puts there until its read is whole (at "
			  "most %d ms): poll and put again",
			  (unsigned long long)h->first,
			  (unsigned long long)(h->first + h->count - 1), r->id,
			  SRDMA_HOLD_MAX_MS);
}
