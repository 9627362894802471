/* SPDX-License-Identifier: MIT */
/*
 * The connection's byte stream (docs/PROTOCOL.md §6a): one ordered byte
 * stream each way on top of RDMA writes into the receiver's ring, with the
 * receiver's plaintext sink (verified and opened in one pass), records for
 * small segments, and ring space given back as the application consumes.
 *
 * Positions are virtual byte offsets that only grow; a position's place
 * in a ring is the position modulo the ring's length. A segment starts at
 * a block boundary and never crosses the ring's end; the next one starts
 * at the first block boundary after it. Both sides derive every place
 * from that rule, so only positions travel.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "session/conn.h"
#include "session/owner.h"

enum {
	BLK = SRDMA_BLOCK_SIZE,
	/* The largest segment one RDMA write carries: large enough that a
	 * write's notice and acknowledgement cost little, small enough that
	 * the receiver sees bytes early and the default ring holds eight
	 * (measured on loopback: 64 KiB to 256 KiB cost the same CPU per
	 * byte; larger rings and segments cost more, out of cache). */
	SEG_MAX = 128 << 10,
	/* Segments up to this size go inside a record: below it, one record
	 * costs less than a write with its notice and acknowledgement. */
	INLINE_MAX = 8 << 10,
	/* A partial segment waits for more bytes while this many writes are
	 * in flight (Nagle's rule, RFC 896): under load, segments grow. */
	NAGLE = 2,
};

/* What the receiver knows of each block of its ring: one word each. */
#define B_PENDING (UINT64_C(1) << 62) /* announced, being verified */
#define B_READY	  (UINT64_C(2) << 62) /* its bytes are in the sink */
#define B_STATE	  (UINT64_C(3) << 62)
#define B_CONT	  (UINT64_C(1) << 61) /* inside a segment, not its head */
#define B_LEN(w)  ((uint64_t)(w)&0xffffffffu)

struct srdma_stream {
	struct srdma_conn *conn;
	bool opened;	/* this side's application opened it */
	bool destroyed; /* ... and destroyed it: a tombstone */
	bool open_sent; /* our OPEN is on its way */

	/* receiving: our ring */
	struct srdma_region *ring;
	uint8_t *sink; /* sealed modes: the plaintext mirror */
	uint8_t *rx;   /* where segment bytes are: sink, or the ring (none) */
	uint64_t rx_len, nblk;
	uint64_t *blk;
	uint64_t rd;		     /* the end of what the app consumed */
	uint64_t seg_start, seg_end; /* the segment being read */
	bool in_seg;
	uint64_t consumed; /* ring space before this is free again */
	uint64_t reported; /* ... and the peer knows up to here */
	uint64_t fin;	   /* the peer's end of stream, or UINT64_MAX */

	/* sending: the peer's ring */
	bool peer_open, bound;
	uint32_t peer_region;
	uint64_t tx_len;
	uint8_t *tx; /* mirrors the peer's ring */
	struct srdma_mem *tx_mem;
	uint64_t head;	   /* where the next byte goes */
	uint64_t issued;   /* segments before this are on their way */
	uint64_t last_end; /* the exact end of the last segment */
	uint64_t room_end; /* bytes may go up to here: the peer's consumed
			      position (as it told us) + tx_len */
	uint32_t inflight; /* segment writes not acknowledged yet */
	size_t reserved;   /* srdma_stream_reserve handed out this much */
	bool reserving;
	bool shut, fin_sent;
	int tx_err; /* the peer's ring went away */
	size_t inline_max;

	bool rd_armed, wr_armed; /* a non-blocking call said EAGAIN */
	uint8_t *scratch;	 /* one record: header and inline bytes */
	struct srdma_stream_info info;
};

static void release_tx(struct srdma_stream *s);

static uint64_t round_up(uint64_t v)
{
	return (v + BLK - 1) / BLK * BLK;
}

static bool sealed(const struct srdma_conn *c)
{
	return c->protect != SRDMA_PROTECT_NONE;
}

static struct srdma_stream *get_stream(struct srdma_conn *c)
{
	if (!c->stream && (c->stream = calloc(1, sizeof(*c->stream)))) {
		c->stream->conn = c;
		c->stream->fin = UINT64_MAX;
	}
	return c->stream;
}

static void queue_event(struct srdma_stream *s)
{
	srdma__queue(s->conn, SRDMA_EV_STREAM, 0, s->conn->user, "");
}

/* ---- records ---- */

static int post_ctl(struct srdma_stream *s, uint8_t kind, uint32_t region,
		    uint64_t value)
{
	struct srdma__stream_rec m = {
		.kind = kind, .region = region, .value = value};
	uint8_t h[SRDMA_STREAM_HDR_LEN];

	GUARD(srdma__stream_rec_encode(&m, h));
	return srdma__post_record(s->conn, SRDMA_REC_STREAM, h, sizeof(h));
}

static int post_inline(struct srdma_stream *s, uint64_t pos, const uint8_t *p,
		       size_t len)
{
	struct srdma__stream_rec m = {
		.kind = SRDMA_STREAM_DATA, .value = pos, .data = p, .len = len};

	GUARD(srdma__stream_rec_encode(&m, s->scratch));
	memcpy(s->scratch + SRDMA_STREAM_HDR_LEN, p, len);
	return srdma__post_record(s->conn, SRDMA_REC_STREAM, s->scratch,
				  SRDMA_STREAM_HDR_LEN + len);
}

/* ---- receiving ---- */

/*
 * A segment of len bytes at position pos is on its way (pending) or here
 * (ready): it must lie in ring space we freed, not cross the ring's end,
 * and not touch a block of a segment not consumed yet. Checked before any
 * byte of it reaches the sink.
 */
static int claim(struct srdma_stream *s, uint64_t pos, uint64_t len,
		 uint64_t state)
{
	uint64_t o = pos % s->rx_len, b0 = o / BLK, nb = (len + BLK - 1) / BLK;

	ENSURE(pos % BLK == 0 && len > 0, SRDMA_EPROTO,
	       "stream segment %llu+%llu does not start at a block",
	       (unsigned long long)pos, (unsigned long long)len);
	ENSURE(pos >= s->consumed && pos - s->consumed <= s->rx_len &&
		       len <= s->rx_len - (pos - s->consumed),
	       SRDMA_EPROTO,
	       "stream segment %llu+%llu is outside the ring space we freed "
	       "(%llu+%llu)",
	       (unsigned long long)pos, (unsigned long long)len,
	       (unsigned long long)s->consumed, (unsigned long long)s->rx_len);
	ENSURE(o + len <= s->rx_len, SRDMA_EPROTO,
	       "stream segment %llu+%llu crosses the ring's end",
	       (unsigned long long)pos, (unsigned long long)len);
	ENSURE(pos + len <= s->fin, SRDMA_EPROTO,
	       "stream segment %llu+%llu is past the end the peer announced "
	       "(%llu)",
	       (unsigned long long)pos, (unsigned long long)len,
	       (unsigned long long)s->fin);
	for (uint64_t b = b0; b < b0 + nb; b++)
		ENSURE(!s->blk[b], SRDMA_EPROTO,
		       "stream segment %llu+%llu overlaps bytes not read yet",
		       (unsigned long long)pos, (unsigned long long)len);
	s->blk[b0] = state | len;
	for (uint64_t b = b0 + 1; b < b0 + nb; b++)
		s->blk[b] = state | B_CONT;
	return 0;
}

/*
 * The next bytes to read: 1 with *p, *n set; 0 at the end of the stream;
 * SRDMA_EAGAIN when the next segment is not here yet.
 */
static int next_bytes(struct srdma_stream *s, uint8_t **p, size_t *n)
{
	if (!s->in_seg) {
		uint64_t pos = round_up(s->rd), w;

		if (s->rd == s->fin)
			return 0;
		/* Never inside another segment: claim() let none start
		 * before the space we freed, nor overlap one not read. */
		w = s->blk[(pos % s->rx_len) / BLK];
		if ((w & B_STATE) != B_READY || (w & B_CONT))
			return SRDMA_EAGAIN;
		s->in_seg = true;
		s->seg_start = s->rd = pos;
		s->seg_end = pos + B_LEN(w);
	}
	*p = s->rx + s->seg_start % s->rx_len + (s->rd - s->seg_start);
	*n = s->seg_end - s->rd;
	return 1;
}

static bool readable(struct srdma_stream *s)
{
	uint8_t *p;
	size_t n;

	return !s->ring || s->in_seg || next_bytes(s, &p, &n) != SRDMA_EAGAIN;
}

static void consume(struct srdma_stream *s, size_t n)
{
	s->rd += n;
	s->info.received += n;
	if (s->rd < s->seg_end)
		return;
	/* The whole segment is read: its blocks go back to the peer. */
	for (uint64_t b = (s->seg_start % s->rx_len) / BLK,
		      e = b + (s->seg_end - s->seg_start + BLK - 1) / BLK;
	     b < e; b++)
		s->blk[b] = 0;
	s->in_seg = false;
	s->consumed = round_up(s->seg_end);
}

static void notify_reader(struct srdma_stream *s)
{
	if (s->rd_armed && readable(s)) {
		s->rd_armed = false;
		queue_event(s);
	}
}

static int on_inline(struct srdma_stream *s, const struct srdma__stream_rec *m)
{
	GUARD(claim(s, m->value, m->len, B_READY));
	memcpy(s->rx + m->value % s->rx_len, m->data, m->len);
	notify_reader(s);
	return 0;
}

static uint64_t tx_room(const struct srdma_stream *s)
{
	return s->bound && !s->tx_err ? s->room_end - s->head : 0;
}

static void notify_writer(struct srdma_stream *s)
{
	if (s->wr_armed && (tx_room(s) || s->tx_err)) {
		s->wr_armed = false;
		queue_event(s);
	}
}

static const char *kind_name(uint8_t kind)
{
	static const char *const names[] = {"?", "OPEN", "DATA", "CONSUMED",
					    "FIN"};
	return kind <= SRDMA_STREAM_FIN ? names[kind] : "?";
}

int srdma__stream_on_record(struct srdma_conn *c, const uint8_t *p, size_t len)
{
	struct srdma__stream_rec m;
	struct srdma_stream *s;

	GUARD(srdma__stream_rec_decode(p, len, &m));
	if (m.kind == SRDMA_STREAM_OPEN) {
		s = get_stream(c);
		ENSURE(s, SRDMA_ENOMEM, "out of memory");
		ENSURE(!s->peer_open, SRDMA_EPROTO,
		       "the peer opened its stream twice");
		s->peer_open = true;
		s->peer_region = m.region;
		s->tx_len = m.value;
		s->info.peer_open = 1;
		s->info.peer_ring = m.value;
		srdma__stream_kick(c);
		return 0;
	}
	s = c->stream;
	if (s && s->destroyed)
		return 0; /* we closed our side: what was on its way is moot */
	if (m.kind == SRDMA_STREAM_CONSUMED) {
		ENSURE(s && s->bound, SRDMA_EPROTO,
		       "stream CONSUMED before we sent anything");
		ENSURE(m.value + s->tx_len >= s->room_end &&
			       m.value <= s->issued,
		       SRDMA_EPROTO,
		       "stream CONSUMED up to %llu: we sent up to %llu and "
		       "were told %llu",
		       (unsigned long long)m.value,
		       (unsigned long long)s->issued,
		       (unsigned long long)(s->room_end - s->tx_len));
		s->room_end = m.value + s->tx_len;
		notify_writer(s);
		return 0;
	}
	/* DATA and FIN come only after our OPEN named our ring. */
	ENSURE(s && s->ring, SRDMA_EPROTO,
	       "stream %s before we opened our stream", kind_name(m.kind));
	if (m.kind == SRDMA_STREAM_DATA)
		return on_inline(s, &m);
	ENSURE(s->fin == UINT64_MAX, SRDMA_EPROTO,
	       "the peer ended its stream twice");
	ENSURE(m.value >= (s->in_seg ? s->seg_end : s->rd), SRDMA_EPROTO,
	       "the peer ended its stream at %llu, before bytes it sent",
	       (unsigned long long)m.value);
	for (uint64_t b = 0; b < s->nblk; b++) {
		uint64_t w = s->blk[b];
		uint64_t pos = s->consumed +
			       (b * BLK + s->rx_len - s->consumed % s->rx_len) %
				       s->rx_len;
		ENSURE(!w || (w & B_CONT) || pos + B_LEN(w) <= m.value,
		       SRDMA_EPROTO,
		       "the peer ended its stream at %llu, before bytes it "
		       "sent",
		       (unsigned long long)m.value);
	}
	s->fin = m.value;
	notify_reader(s);
	return 0;
}

int srdma__stream_on_notice(struct srdma_conn *c, struct srdma_region *r,
			    uint64_t off, uint64_t len)
{
	struct srdma_stream *s = r->stream;
	uint64_t base = s->consumed % s->rx_len;

	(void)c;
	/* The segment's position: the first one at that place in the ring
	 * after the space we freed. */
	return claim(s,
		     s->consumed + (off >= base ? off - base
						: off + s->rx_len - base),
		     len, B_PENDING);
}

int srdma__stream_on_write(struct srdma_conn *c, struct srdma_region *r,
			   uint64_t off, uint64_t len)
{
	struct srdma_stream *s = r->stream;
	uint64_t *w = &s->blk[off / BLK];

	(void)c;
	ENSURE((*w & B_STATE) == B_PENDING && !(*w & B_CONT) &&
		       B_LEN(*w) == len,
	       SRDMA_EPROTO, "stream write at %llu was not announced",
	       (unsigned long long)off);
	*w = B_READY | len;
	notify_reader(s);
	return 0;
}

/* ---- sending ---- */

/* The peer's ring, once its OPEN and its grant are both here. */
static int stream_bind(struct srdma_stream *s)
{
	struct srdma_conn *c = s->conn;
	struct remote_region *rr;

	if (s->bound || !s->peer_open)
		return 0;
	rr = find_remote(c, s->peer_region);
	if (!rr)
		return 0; /* the grant travels over TLS: on its way */
	ENSURE(rr->len == s->tx_len && (rr->access & SRDMA_WIRE_ACCESS_STREAM),
	       SRDMA_EPROTO,
	       "the peer's stream ring (region %u) is not the one its OPEN "
	       "named",
	       s->peer_region);
	s->tx = srdma__map_buf(s->tx_len);
	ENSURE(s->tx, SRDMA_ENOMEM, "out of memory for a %llu-byte stream",
	       (unsigned long long)s->tx_len);
	/* Mode none: writes go straight from it (no staging). */
	if (!sealed(c))
		GUARD(srdma_mem_register(c, s->tx, s->tx_len, &s->tx_mem));
	s->room_end = s->tx_len;
	s->bound = true;
	notify_writer(s);
	return 0;
}

/*
 * Sends the segments that are due: whole ones (SEG_MAX, or up to the
 * ring's end) at once, the last partial one when few writes are in flight
 * or the stream is ending; small ones inside a record, the rest by RDMA
 * write. Stops when the operation pool or the credits run out: a
 * completion kicks it again.
 */
static int pump_tx(struct srdma_stream *s)
{
	struct srdma_conn *c = s->conn;

	/* The peer destroyed its stream (revoked its ring): nothing more
	 * goes, and the connection lives on. */
	if (s->bound && !s->tx_err && !find_remote(c, s->peer_region)) {
		s->tx_err = SRDMA_ECLOSED;
		notify_writer(s);
		return 0;
	}

	while (s->bound && !s->tx_err && s->issued < s->head) {
		uint64_t ring_end = (s->issued / s->tx_len + 1) * s->tx_len;
		uint64_t end = s->issued + SEG_MAX, len;
		uint8_t *p = s->tx + s->issued % s->tx_len;
		bool whole;
		int rc;

		if (end > ring_end)
			end = ring_end;
		whole = end <= s->head;
		if (!whole)
			end = s->head;
		len = end - s->issued;
		if (!whole &&
		    (s->reserving || (!s->shut && s->inflight >= NAGLE)))
			break;
		if (len <= s->inline_max) {
			if (!srdma__can_post(c, SRDMA_REC_STREAM))
				break;
			GUARD(post_inline(s, s->issued, p, len));
			s->info.segments_inline++;
		} else {
			rc = srdma__start_stream_write(c, s->peer_region,
						       s->issued % s->tx_len, p,
						       len);
			if (rc == SRDMA_EAGAIN)
				break;
			GUARD(rc);
			s->inflight++;
			s->info.segments_written++;
		}
		s->last_end = end;
		s->issued = round_up(end);
		if (s->head < s->issued)
			s->head = s->issued;
	}
	if (s->shut && !s->fin_sent && s->bound && s->issued >= s->head &&
	    srdma__can_post(c, SRDMA_REC_STREAM)) {
		GUARD(post_ctl(s, SRDMA_STREAM_FIN, 0, s->last_end));
		s->fin_sent = true;
	}
	return 0;
}

static int pump(struct srdma_stream *s)
{
	struct srdma_conn *c = s->conn;

	if (!s->opened || s->destroyed || c->state != ST_ESTABLISHED)
		return 0;
	if (!s->open_sent) {
		if (!srdma__can_post(c, SRDMA_REC_STREAM))
			return 0;
		GUARD(post_ctl(s, SRDMA_STREAM_OPEN, s->ring->id, s->rx_len));
		s->open_sent = true;
	}
	GUARD(stream_bind(s));
	GUARD(pump_tx(s));
	/* Ring space back to the peer a quarter ring at a time. */
	if (s->consumed - s->reported >= s->rx_len / 4 &&
	    srdma__can_post(c, SRDMA_REC_STREAM)) {
		GUARD(post_ctl(s, SRDMA_STREAM_CONSUMED, 0, s->consumed));
		s->reported = s->consumed;
	}
	notify_writer(s);
	notify_reader(s);
	return 0;
}

void srdma__stream_op_done(struct srdma_conn *c, int status)
{
	struct srdma_stream *s = c->stream;

	if (!s)
		return;
	if (s->inflight)
		s->inflight--;
	/* The peer revoked its ring (destroyed its stream): nothing more
	 * can go. A closing connection says so itself. */
	if (status < 0 && status != SRDMA_ECLOSED && !s->tx_err)
		s->tx_err = status;
	if (s->destroyed)
		release_tx(s);
	srdma__stream_kick(c);
}

void srdma__stream_kick(struct srdma_conn *c)
{
	if (c->stream && c->stream->opened && !c->stream->destroyed)
		c->ctx->work_pending = true;
}

int srdma__stream_work(struct srdma_conn *c)
{
	return c->stream ? pump(c->stream) : 0;
}

/* ---- the API ---- */

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX
			      : srdma__now_ms() + (uint64_t)timeout_ms;
}

static int remaining(uint64_t deadline)
{
	uint64_t now = srdma__now_ms();

	if (deadline == UINT64_MAX)
		return -1;
	return now >= deadline ? 0 : (int)(deadline - now);
}

static int check_open(const struct srdma_stream *s, const char *what)
{
	ENSURE(s, SRDMA_EINVAL, "%s: NULL stream", what);
	ENSURE(s->conn, SRDMA_ECLOSED,
	       "%s: the stream's connection was destroyed", what);
	ENSURE(s->opened && !s->destroyed, SRDMA_ESTATE,
	       "%s: the stream was destroyed", what);
	return 0;
}

/* A public call on s: an open stream of a live connection, entered on its
 * context (one thread at a time, srdma.h). */
#define USE_STREAM(s, what)                                                    \
	GUARD(check_open((s), (what)));                                        \
	USE_CTX((s)->conn->ctx, (what))

/* Whether bytes may be sent now, and why not. */
static int check_send(struct srdma_stream *s, const char *what)
{
	GUARD(check_open(s, what));
	if (s->conn->state != ST_ESTABLISHED)
		return srdma__not_established(s->conn);
	ENSURE(!s->shut, SRDMA_ESTATE, "%s after srdma_stream_shutdown", what);
	ENSURE(!s->tx_err, SRDMA_ECLOSED,
	       "the peer closed its stream: nothing more can be sent");
	return 0;
}

SRDMA_API int srdma_stream_open(srdma_conn *c, size_t ring, srdma_stream **out)
{
	struct srdma_stream *s;
	struct srdma_region *r = NULL;
	int rc;

	ENSURE(out, SRDMA_EINVAL, "srdma_stream_open: out is NULL");
	USE_CONN(c, "srdma_stream_open");
	if (c->state != ST_ESTABLISHED)
		return srdma__not_established(c);
	ENSURE(ring <= SRDMA_STREAM_RING_MAX, SRDMA_EINVAL,
	       "srdma_stream_open: a ring of %zu bytes is above %d", ring,
	       SRDMA_STREAM_RING_MAX);
	ring = ring ? round_up(ring) : SRDMA_STREAM_RING_DEFAULT;
	if (ring < SRDMA_STREAM_RING_MIN)
		ring = SRDMA_STREAM_RING_MIN;
	s = get_stream(c);
	ENSURE(s, SRDMA_ENOMEM, "out of memory");
	ENSURE(!s->opened, SRDMA_ESTATE,
	       "this connection already opened its stream (one per "
	       "connection)");
	GUARD(srdma_region_create(
		c, ring, SRDMA_ACCESS_REMOTE_WRITE | SRDMA_REGION_DEFER_GRANT,
		&r));
	s->rx_len = ring;
	s->nblk = ring / BLK;
	s->inline_max = c->max_msg > SRDMA_STREAM_HDR_LEN
				? c->max_msg - SRDMA_STREAM_HDR_LEN
				: 0;
	if (s->inline_max > INLINE_MAX)
		s->inline_max = INLINE_MAX;
	s->blk = calloc(s->nblk, sizeof(*s->blk));
	s->scratch = malloc(SRDMA_STREAM_HDR_LEN + s->inline_max);
	if (sealed(c))
		s->sink = srdma__map_buf(ring);
	if (!s->blk || !s->scratch || (sealed(c) && !s->sink)) {
		rc = srdma__err(SRDMA_ENOMEM, "out of memory for a stream");
		goto out_free;
	}
	r->access |= SRDMA_WIRE_ACCESS_STREAM;
	r->stream = s;
	r->sink = s->sink;
	rc = srdma_region_grant(r);
	if (rc < 0)
		goto out_free;
	s->ring = r;
	s->rx = sealed(c) ? s->sink : r->mem;
	s->info.ring = ring;
	s->opened = true;
	rc = pump(s);
	if (rc < 0) {
		/* The connection failed: nobody holds this stream. */
		srdma_stream_destroy(s);
		return rc;
	}
	*out = s;
	return 0;

out_free:
	srdma_region_destroy(r);
	srdma__unmap_buf(s->sink, ring);
	free(s->blk);
	free(s->scratch);
	s->sink = NULL, s->blk = NULL, s->scratch = NULL;
	return rc;
}

/* Contiguous room at the head: 0 when none. */
static size_t room_at(struct srdma_stream *s, uint8_t **p)
{
	uint64_t room = tx_room(s), off;

	if (!room)
		return 0;
	off = s->head % s->tx_len;
	if (room > s->tx_len - off)
		room = s->tx_len - off;
	*p = s->tx + off;
	return (size_t)room;
}

static int send_some(struct srdma_stream *s, const void *buf, size_t len,
		     bool arm)
{
	const uint8_t *in = buf;
	size_t done = 0;

	GUARD(check_send(s, "srdma_stream_send"));
	ENSURE(buf || !len, SRDMA_EINVAL, "srdma_stream_send: NULL buffer");
	ENSURE(!s->reserving, SRDMA_ESTATE,
	       "srdma_stream_send between reserve and commit");
	if (!len)
		return 0;
	GUARD(pump(s));
	while (done < len && done < INT_MAX) {
		uint8_t *p;
		size_t n = room_at(s, &p);
		if (!n)
			break;
		if (n > len - done)
			n = len - done;
		if (n > INT_MAX - done)
			n = INT_MAX - done;
		memcpy(p, in + done, n);
		s->head += n;
		s->info.sent += n;
		done += n;
	}
	if (!done) {
		s->info.send_blocked++;
		s->wr_armed |= arm;
		return srdma__err(SRDMA_EAGAIN,
				  s->bound ? "the stream's send ring is full: "
					     "the peer has not consumed "
					     "enough yet"
					   : "the peer has not opened its "
					     "stream yet");
	}
	GUARD(pump(s));
	return (int)done;
}

SRDMA_API int srdma_stream_send(srdma_stream *s, const void *buf, size_t len)
{
	USE_STREAM(s, "srdma_stream_send");
	return send_some(s, buf, len, true);
}

SRDMA_API int srdma_stream_send_sync(srdma_stream *s, const void *buf,
				     size_t len, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	const uint8_t *in = buf;
	size_t done = 0;

	USE_STREAM(s, "srdma_stream_send_sync");
	while (done < len) {
		int n = send_some(s, in + done, len - done, false);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n != SRDMA_EAGAIN)
			return n;
		ENSURE(remaining(dl) != 0, SRDMA_ETIMEDOUT,
		       "the stream had no room for %d ms (%zu of %zu bytes "
		       "sent)",
		       timeout_ms, done, len);
		GUARD(srdma__ctx_run(s->conn->ctx, remaining(dl)));
	}
	return 0;
}

SRDMA_API int srdma_stream_reserve(srdma_stream *s, void **buf, size_t *len)
{
	uint8_t *p;
	size_t n;

	USE_STREAM(s, "srdma_stream_reserve");
	GUARD(check_send(s, "srdma_stream_reserve"));
	ENSURE(buf && len, SRDMA_EINVAL, "srdma_stream_reserve: NULL argument");
	GUARD(pump(s));
	n = room_at(s, &p);
	if (!n) {
		s->info.send_blocked++;
		s->wr_armed = true;
		return srdma__err(SRDMA_EAGAIN,
				  "the stream's send ring is full (or the peer "
				  "has not opened its stream yet)");
	}
	s->reserving = true;
	s->reserved = n;
	*buf = p;
	*len = n;
	return 0;
}

SRDMA_API int srdma_stream_commit(srdma_stream *s, size_t n)
{
	USE_STREAM(s, "srdma_stream_commit");
	ENSURE(s->reserving && n <= s->reserved, SRDMA_EINVAL,
	       "srdma_stream_commit of %zu bytes: %zu were reserved", n,
	       s->reserving ? s->reserved : 0);
	s->reserving = false;
	s->head += n;
	s->info.sent += n;
	if (s->conn->state != ST_ESTABLISHED)
		return srdma__not_established(s->conn);
	return pump(s);
}

SRDMA_API int srdma_stream_shutdown(srdma_stream *s)
{
	USE_STREAM(s, "srdma_stream_shutdown");
	GUARD(check_send(s, "srdma_stream_shutdown"));
	ENSURE(!s->reserving, SRDMA_ESTATE,
	       "srdma_stream_shutdown between reserve and commit");
	s->shut = true;
	return pump(s);
}

SRDMA_API int srdma_stream_flush(srdma_stream *s, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);

	USE_STREAM(s, "srdma_stream_flush");
	for (;;) {
		bool sent = s->issued >= s->head && !s->inflight;
		if (s->tx_err)
			return srdma__err(SRDMA_ECLOSED,
					  "the peer closed its stream before "
					  "every byte was sent");
		if (s->conn->state != ST_ESTABLISHED)
			return srdma__not_established(s->conn);
		if (sent && (!s->shut || s->fin_sent))
			return 0;
		ENSURE(remaining(dl) != 0, SRDMA_ETIMEDOUT,
		       "the stream's bytes were not all sent within %d ms",
		       timeout_ms);
		GUARD(pump(s));
		GUARD(srdma__ctx_run(s->conn->ctx, remaining(dl)));
	}
}

/* Why nothing can be read: the end of the connection, if it ended. */
static int nothing(struct srdma_stream *s)
{
	struct srdma_conn *c = s->conn;

	if (c->state == ST_ESTABLISHED)
		return SRDMA_EAGAIN;
	if (c->state >= ST_CLOSING && !c->fail_code)
		return srdma__err(SRDMA_ECLOSED,
				  "the connection closed before the peer "
				  "ended its stream");
	return srdma__not_established(c);
}

SRDMA_API int srdma_stream_peek(srdma_stream *s, const void **data, size_t *len)
{
	uint8_t *p;
	size_t n;
	int rc;

	USE_STREAM(s, "srdma_stream_peek");
	ENSURE(data && len, SRDMA_EINVAL, "srdma_stream_peek: NULL argument");
	rc = next_bytes(s, &p, &n);
	if (rc == 1) {
		*data = p;
		*len = n;
		return 0;
	}
	if (rc == 0) {
		*data = NULL;
		*len = 0;
		s->info.eof = 1;
		return 0;
	}
	if (rc != SRDMA_EAGAIN)
		return rc;
	rc = nothing(s);
	if (rc == SRDMA_EAGAIN) {
		s->rd_armed = true;
		return srdma__err(SRDMA_EAGAIN, "no stream bytes yet");
	}
	return rc;
}

SRDMA_API int srdma_stream_consume(srdma_stream *s, size_t n)
{
	USE_STREAM(s, "srdma_stream_consume");
	ENSURE(s->in_seg ? n <= s->seg_end - s->rd : n == 0, SRDMA_EINVAL,
	       "srdma_stream_consume of %zu bytes: srdma_stream_peek gave "
	       "%llu",
	       n, (unsigned long long)(s->in_seg ? s->seg_end - s->rd : 0));
	if (!n)
		return 0;
	consume(s, n);
	return pump(s);
}

SRDMA_API int srdma_stream_recv(srdma_stream *s, void *buf, size_t cap,
				int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	uint8_t *out = buf;
	size_t done = 0;

	USE_STREAM(s, "srdma_stream_recv");
	ENSURE(buf && cap, SRDMA_EINVAL,
	       "srdma_stream_recv: no buffer (0 is the end of the stream)");
	if (cap > INT_MAX)
		cap = INT_MAX;
	for (;;) {
		uint8_t *p;
		size_t n;
		int rc = next_bytes(s, &p, &n);

		if (rc == 1) {
			/* Whole segments while they are here and fit. */
			if (n > cap - done)
				n = cap - done;
			memcpy(out + done, p, n);
			consume(s, n);
			done += n;
			if (done < cap)
				continue;
		}
		if (done || rc == 1) {
			GUARD(pump(s));
			return (int)done;
		}
		if (rc == 0) {
			s->info.eof = 1;
			return 0;
		}
		if (rc != SRDMA_EAGAIN)
			return rc;
		rc = nothing(s);
		if (rc != SRDMA_EAGAIN)
			return rc;
		if (timeout_ms == 0) {
			s->rd_armed = true;
			return srdma__err(SRDMA_EAGAIN, "no stream bytes yet");
		}
		ENSURE(remaining(dl) != 0, SRDMA_ETIMEDOUT,
		       "no stream bytes within %d ms", timeout_ms);
		GUARD(pump(s));
		GUARD(srdma__ctx_run(s->conn->ctx, remaining(dl)));
	}
}

SRDMA_API int srdma_stream_info(const srdma_stream *s,
				struct srdma_stream_info *out)
{
	ENSURE(s && out, SRDMA_EINVAL, "srdma_stream_info: NULL argument");
	*out = s->info;
	return 0;
}

/* The send ring, once no write reads from it. */
static void release_tx(struct srdma_stream *s)
{
	if (s->inflight)
		return;
	srdma_mem_deregister(s->tx_mem);
	s->tx_mem = NULL;
	srdma__unmap_buf(s->tx, s->tx_len);
	s->tx = NULL;
}

static void release_rx(struct srdma_stream *s)
{
	srdma__unmap_buf(s->sink, s->rx_len);
	s->sink = NULL;
	s->rx = NULL;
	free(s->blk);
	s->blk = NULL;
	free(s->scratch);
	s->scratch = NULL;
}

SRDMA_API void srdma_stream_destroy(srdma_stream *s)
{
	if (!s)
		return;
	if (!s->conn) { /* detached: its connection is gone */
		srdma_region_destroy(s->ring);
		free(s);
		return;
	}
	if (!s->opened || s->destroyed)
		return;
	USE_CTX_VOID(s->conn->ctx, "srdma_stream_destroy");
	s->destroyed = true;
	if (s->ring) {
		s->ring->stream = NULL;
		s->ring->sink = NULL;
		srdma_region_destroy(s->ring);
		s->ring = NULL;
	}
	release_rx(s);
	/* Writes still in flight read the send ring: it goes with the
	 * last of them (srdma__stream_op_done) or with the connection. */
	release_tx(s);
}

/*
 * The connection goes. A stream the application opened and still holds is
 * detached (srdma.h, "Lifetimes"): its memory goes now, the handle stays
 * for srdma_stream_destroy, and calls on it answer SRDMA_ECLOSED. One it
 * destroyed already, or that only the peer opened, goes whole.
 */
void srdma__stream_free(struct srdma_conn *c)
{
	struct srdma_stream *s = c->stream;

	if (!s)
		return;
	/* The ring region is detached with the connection's regions. */
	if (s->ring)
		s->ring->stream = NULL;
	release_rx(s);
	s->inflight = 0; /* every operation has ended */
	release_tx(s);
	c->stream = NULL;
	if (s->opened && !s->destroyed) {
		s->conn = NULL;
		return;
	}
	free(s);
}
