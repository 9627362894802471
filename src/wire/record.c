/* SPDX-License-Identifier: MIT */
/*
 * Bodies of the session's data-channel records (docs/PROTOCOL.md §6):
 * NOTICE and UPDATE (lists of fixed-size entries), ACK, HOLD, and the
 * STREAM header (§6a). Exact lengths,
 * every field range-checked, canonical like the control messages: what
 * decodes re-encodes to the same bytes (tests/fuzz/fuzz_wire_record.c).
 * Whether an entry names a region that exists, or fits it, is the
 * session's business.
 */
#include "wire/wire.h"

#define MAX_VERSION ((UINT64_C(1) << SRDMA_WIRE_MAX_VERSION_BITS) - 1)

static int check_region_id(uint32_t id, const char *what, int err)
{
	ENSURE(id >= 1 && id <= SRDMA_WIRE_MAX_REGION, err,
	       "%s names region %u (valid: 1..%u)", what, id,
	       SRDMA_WIRE_MAX_REGION);
	return 0;
}

static int check_version(uint64_t v, const char *what, int err)
{
	ENSURE(v >= 1 && v <= MAX_VERSION, err,
	       "%s version %llu is outside 1..2^48-1", what,
	       (unsigned long long)v);
	return 0;
}

static int check_notice(const struct srdma__notice *n, int err)
{
	GUARD(check_region_id(n->region, "NOTICE", err));
	GUARD(check_version(n->version, "NOTICE", err));
	ENSURE(n->len > 0 && n->offset % 4096 == 0, err,
	       "NOTICE of %llu bytes at offset %llu (want a non-empty write "
	       "at a multiple of 4096)",
	       (unsigned long long)n->len, (unsigned long long)n->offset);
	ENSURE(n->len <= UINT64_MAX - n->offset, err,
	       "NOTICE range %llu+%llu overflows",
	       (unsigned long long)n->offset, (unsigned long long)n->len);
	return 0;
}

static int check_update(const struct srdma__update *u, int err)
{
	GUARD(check_region_id(u->region, "UPDATE", err));
	GUARD(check_version(u->version, "UPDATE", err));
	ENSURE(u->count > 0 && u->first <= UINT32_MAX &&
		       u->count <= (uint64_t)UINT32_MAX + 1 - u->first,
	       err,
	       "UPDATE of blocks %llu+%llu (want a non-empty range of "
	       "32-bit block indexes)",
	       (unsigned long long)u->first, (unsigned long long)u->count);
	return 0;
}

static int check_count(size_t count, const char *what, int err)
{
	ENSURE(count >= 1 && count <= SRDMA_REC_MAX_ENTRIES, err,
	       "%s with %zu entries (want 1..%d)", what, count,
	       SRDMA_REC_MAX_ENTRIES);
	return 0;
}

/* How many entries of entry_len a body of len bytes holds, if exactly. */
static int entries(size_t len, size_t entry_len, size_t max, const char *what,
		   size_t *count)
{
	ENSURE(len % entry_len == 0, SRDMA_EPROTO,
	       "%s body of %zu bytes is not a whole number of %zu-byte "
	       "entries",
	       what, len, entry_len);
	*count = len / entry_len;
	GUARD(check_count(*count, what, SRDMA_EPROTO));
	ENSURE(*count <= max, SRDMA_EPROTO, "%s with %zu entries, room for %zu",
	       what, *count, max);
	return 0;
}

int srdma__notices_encode(const struct srdma__notice *n, size_t count,
			  uint8_t *out, size_t cap)
{
	struct srdma__cursor c;

	ENSURE(n && out, SRDMA_EINVAL, "NOTICE: NULL argument");
	GUARD(check_count(count, "NOTICE", SRDMA_EINVAL));
	srdma__cursor_init(&c, out, cap);
	for (size_t i = 0; i < count; i++) {
		GUARD(check_notice(&n[i], SRDMA_EINVAL));
		GUARD(srdma__put_u32(&c, n[i].region));
		GUARD(srdma__put_u64(&c, n[i].offset));
		GUARD(srdma__put_u64(&c, n[i].len));
		GUARD(srdma__put_u64(&c, n[i].version));
	}
	return (int)c.pos;
}

int srdma__notices_decode(const uint8_t *in, size_t len,
			  struct srdma__notice *out, size_t max, size_t *count)
{
	struct srdma__cursor c;
	size_t k;

	ENSURE(in && out && count, SRDMA_EPROTO, "NOTICE: NULL argument");
	GUARD(entries(len, SRDMA_NOTICE_LEN, max, "NOTICE", &k));
	srdma__cursor_init(&c, (uint8_t *)in, len);
	for (size_t i = 0; i < k; i++) {
		struct srdma__notice n;
		GUARD(srdma__get_u32(&c, &n.region));
		GUARD(srdma__get_u64(&c, &n.offset));
		GUARD(srdma__get_u64(&c, &n.len));
		GUARD(srdma__get_u64(&c, &n.version));
		GUARD(check_notice(&n, SRDMA_EPROTO));
		out[i] = n;
	}
	*count = k;
	return 0;
}

int srdma__updates_encode(const struct srdma__update *u, size_t count,
			  uint8_t *out, size_t cap)
{
	struct srdma__cursor c;

	ENSURE(u && out, SRDMA_EINVAL, "UPDATE: NULL argument");
	GUARD(check_count(count, "UPDATE", SRDMA_EINVAL));
	srdma__cursor_init(&c, out, cap);
	for (size_t i = 0; i < count; i++) {
		GUARD(check_update(&u[i], SRDMA_EINVAL));
		GUARD(srdma__put_u32(&c, u[i].region));
		GUARD(srdma__put_u64(&c, u[i].first));
		GUARD(srdma__put_u64(&c, u[i].count));
		GUARD(srdma__put_u64(&c, u[i].version));
	}
	return (int)c.pos;
}

int srdma__updates_decode(const uint8_t *in, size_t len,
			  struct srdma__update *out, size_t max, size_t *count)
{
	struct srdma__cursor c;
	size_t k;

	ENSURE(in && out && count, SRDMA_EPROTO, "UPDATE: NULL argument");
	GUARD(entries(len, SRDMA_UPDATE_LEN, max, "UPDATE", &k));
	srdma__cursor_init(&c, (uint8_t *)in, len);
	for (size_t i = 0; i < k; i++) {
		struct srdma__update u;
		GUARD(srdma__get_u32(&c, &u.region));
		GUARD(srdma__get_u64(&c, &u.first));
		GUARD(srdma__get_u64(&c, &u.count));
		GUARD(srdma__get_u64(&c, &u.version));
		GUARD(check_update(&u, SRDMA_EPROTO));
		out[i] = u;
	}
	*count = k;
	return 0;
}

static int check_ack(const struct srdma__ack *a, int err)
{
	ENSURE(a->count >= 1, err, "ACK of 0 notices");
	GUARD(check_region_id(a->region, "ACK", err));
	return check_version(a->version, "ACK", err);
}

int srdma__ack_encode(const struct srdma__ack *a,
		      uint8_t out[static SRDMA_ACK_LEN])
{
	struct srdma__cursor c;

	ENSURE(a, SRDMA_EINVAL, "ACK: NULL argument");
	GUARD(check_ack(a, SRDMA_EINVAL));
	srdma__cursor_init(&c, out, SRDMA_ACK_LEN);
	GUARD(srdma__put_u32(&c, a->count));
	GUARD(srdma__put_u32(&c, a->region));
	GUARD(srdma__put_u64(&c, a->version));
	return (int)c.pos;
}

int srdma__ack_decode(const uint8_t *in, size_t len, struct srdma__ack *a)
{
	struct srdma__cursor c;
	struct srdma__ack x;

	ENSURE(in && a, SRDMA_EPROTO, "ACK: NULL argument");
	ENSURE(len == SRDMA_ACK_LEN, SRDMA_EPROTO,
	       "ACK body of %zu bytes (want %d)", len, SRDMA_ACK_LEN);
	srdma__cursor_init(&c, (uint8_t *)in, len);
	GUARD(srdma__get_u32(&c, &x.count));
	GUARD(srdma__get_u32(&c, &x.region));
	GUARD(srdma__get_u64(&c, &x.version));
	GUARD(check_ack(&x, SRDMA_EPROTO));
	*a = x;
	return 0;
}

/* ---- HOLD ---- */

static int check_hold(const struct srdma__hold *h, int err)
{
	ENSURE(h->kind >= SRDMA_HOLD_ASK && h->kind <= SRDMA_HOLD_RELEASE, err,
	       "HOLD kind %u is not ASK (1), HELD (2) or RELEASE (3)", h->kind);
	GUARD(check_region_id(h->region, "HOLD", err));
	ENSURE(h->count > 0 && h->first <= UINT32_MAX &&
		       h->count <= (uint64_t)UINT32_MAX + 1 - h->first,
	       err,
	       "HOLD of blocks %llu+%llu (want a non-empty range of 32-bit "
	       "block indexes)",
	       (unsigned long long)h->first, (unsigned long long)h->count);
	return 0;
}

int srdma__hold_encode(const struct srdma__hold *h,
		       uint8_t out[static SRDMA_HOLD_LEN])
{
	struct srdma__cursor c;

	ENSURE(h && out, SRDMA_EINVAL, "HOLD: NULL argument");
	GUARD(check_hold(h, SRDMA_EINVAL));
	srdma__cursor_init(&c, out, SRDMA_HOLD_LEN);
	GUARD(srdma__put_u8(&c, h->kind));
	GUARD(srdma__put_bytes(&c, "\0\0\0", 3));
	GUARD(srdma__put_u32(&c, h->region));
	GUARD(srdma__put_u64(&c, h->first));
	GUARD(srdma__put_u64(&c, h->count));
	return (int)c.pos;
}

int srdma__hold_decode(const uint8_t *in, size_t len, struct srdma__hold *h)
{
	struct srdma__cursor c;
	struct srdma__hold x;
	uint8_t zero[3];

	ENSURE(in && h, SRDMA_EPROTO, "HOLD: NULL argument");
	ENSURE(len == SRDMA_HOLD_LEN, SRDMA_EPROTO,
	       "HOLD body of %zu bytes (want %d)", len, SRDMA_HOLD_LEN);
	srdma__cursor_init(&c, (uint8_t *)in, len);
	GUARD(srdma__get_u8(&c, &x.kind));
	GUARD(srdma__get_bytes(&c, zero, sizeof(zero)));
	ENSURE(!zero[0] && !zero[1] && !zero[2], SRDMA_EPROTO,
	       "HOLD reserved bytes are not zero");
	GUARD(srdma__get_u32(&c, &x.region));
	GUARD(srdma__get_u64(&c, &x.first));
	GUARD(srdma__get_u64(&c, &x.count));
	GUARD(check_hold(&x, SRDMA_EPROTO));
	*h = x;
	return 0;
}

/* ---- STREAM (docs/PROTOCOL.md §6a) ---- */

static int check_stream(const struct srdma__stream_rec *s, int err)
{
	ENSURE(s->kind >= SRDMA_STREAM_OPEN && s->kind <= SRDMA_STREAM_FIN, err,
	       "STREAM kind %u is not OPEN (1), DATA (2), CONSUMED (3) "
	       "or FIN (4)",
	       s->kind);
	if (s->kind == SRDMA_STREAM_OPEN) {
		GUARD(check_region_id(s->region, "STREAM OPEN", err));
		ENSURE(s->value % 4096 == 0 &&
			       s->value >= SRDMA_STREAM_RING_MIN &&
			       s->value <= SRDMA_STREAM_RING_MAX,
		       err,
		       "STREAM OPEN ring of %llu bytes (want a multiple of "
		       "4096 in %d..%d)",
		       (unsigned long long)s->value, SRDMA_STREAM_RING_MIN,
		       SRDMA_STREAM_RING_MAX);
		return 0;
	}
	ENSURE(s->region == 0, err, "STREAM kind %u names region %u (want 0)",
	       s->kind, s->region);
	ENSURE(s->value < SRDMA_STREAM_POS_MAX, err,
	       "STREAM position %llu is not below 2^62",
	       (unsigned long long)s->value);
	/* Segments start, and space is freed, at block boundaries. */
	ENSURE(s->kind == SRDMA_STREAM_FIN || s->value % 4096 == 0, err,
	       "STREAM kind %u at position %llu (want a multiple of 4096)",
	       s->kind, (unsigned long long)s->value);
	return 0;
}

int srdma__stream_rec_encode(const struct srdma__stream_rec *s,
			     uint8_t out[static SRDMA_STREAM_HDR_LEN])
{
	struct srdma__cursor c;

	ENSURE(s && out, SRDMA_EINVAL, "STREAM: NULL argument");
	GUARD(check_stream(s, SRDMA_EINVAL));
	ENSURE((s->kind == SRDMA_STREAM_DATA) == (s->len > 0), SRDMA_EINVAL,
	       "STREAM kind %u with %zu payload bytes", s->kind, s->len);
	srdma__cursor_init(&c, out, SRDMA_STREAM_HDR_LEN);
	GUARD(srdma__put_u8(&c, s->kind));
	GUARD(srdma__put_bytes(&c, "\0\0\0", 3));
	GUARD(srdma__put_u32(&c, s->region));
	GUARD(srdma__put_u64(&c, s->value));
	return (int)c.pos;
}

int srdma__stream_rec_decode(const uint8_t *in, size_t len,
			     struct srdma__stream_rec *s)
{
	struct srdma__cursor c;
	struct srdma__stream_rec x = {0};
	uint8_t zero[3];

	ENSURE(in && s, SRDMA_EPROTO, "STREAM: NULL argument");
	ENSURE(len >= SRDMA_STREAM_HDR_LEN, SRDMA_EPROTO,
	       "STREAM body of %zu bytes (want at least %d)", len,
	       SRDMA_STREAM_HDR_LEN);
	srdma__cursor_init(&c, (uint8_t *)in, len);
	GUARD(srdma__get_u8(&c, &x.kind));
	GUARD(srdma__get_bytes(&c, zero, sizeof(zero)));
	ENSURE(!zero[0] && !zero[1] && !zero[2], SRDMA_EPROTO,
	       "STREAM reserved bytes are not zero");
	GUARD(srdma__get_u32(&c, &x.region));
	GUARD(srdma__get_u64(&c, &x.value));
	GUARD(check_stream(&x, SRDMA_EPROTO));
	x.len = len - SRDMA_STREAM_HDR_LEN;
	x.data = x.len ? in + SRDMA_STREAM_HDR_LEN : NULL;
	/* Exact lengths: only DATA carries bytes, and at least one. */
	ENSURE((x.kind == SRDMA_STREAM_DATA) == (x.len > 0), SRDMA_EPROTO,
	       "STREAM kind %u body of %zu bytes (want %s)", x.kind, len,
	       x.kind == SRDMA_STREAM_DATA ? "more than 16" : "exactly 16");
	ENSURE(x.len <= SRDMA_STREAM_POS_MAX - x.value, SRDMA_EPROTO,
	       "STREAM segment %llu+%zu overflows", (unsigned long long)x.value,
	       x.len);
	*s = x;
	return 0;
}
