/* SPDX-License-Identifier: MIT */
/*
 * Wire codec. Every byte goes through the cursor; every length is checked
 * exactly (WireGuard's validate_header_len, s2n-tls's stuffer). The layouts
 * are documented in docs/PROTOCOL.md; keep the two in step.
 *
 * Decoding is canonical: a frame that decodes re-encodes to the same bytes
 * (reserved fields must be zero, no trailing bytes, no slack in lengths).
 * The fuzz targets check exactly that.
 */
#include <string.h>

#include "wire/wire.h"

/* Body sizes. PARAMS and ERROR have a fixed part plus a variable field. */
enum {
	HELLO_LEN = 20,
	PARAMS_FIXED_LEN = 72,
	REGION_LEN = 48,
	GOODBYE_LEN = 12,
	ERROR_FIXED_LEN = 6,
	REVOKE_LEN = 4,
	PDATA_TYPE_CONNECT = 1,
	/* Values that fit a verbs PSN / QPN (IBTA: 24 bits). */
	MAX_24BIT = 0xffffff,
	/* enum srdma__cipher (protect.h): NONE, AES-256-GCM, CHACHA20. */
	CIPHER_MAX = 2,
	CAPS_KNOWN = SRDMA_CAP_VERBS | SRDMA_CAP_OFI | SRDMA_CAP_PROTECT_NONE |
		     SRDMA_CAP_PROTECT_INTEGRITY | SRDMA_CAP_PROTECT_ENCRYPT,
	ACCESS_KNOWN = SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE |
		       SRDMA_WIRE_ACCESS_STREAM,
};

/* ---- cursor ---- */

void srdma__cursor_init(struct srdma__cursor *c, void *buf, size_t len)
{
	c->buf = buf;
	c->len = buf ? len : 0;
	c->pos = 0;
}

size_t srdma__cursor_left(const struct srdma__cursor *c)
{
	return c->pos <= c->len ? c->len - c->pos : 0;
}

static int room(struct srdma__cursor *c, size_t n)
{
	ENSURE(n <= srdma__cursor_left(c), SRDMA_EMSGSIZE,
	       "cannot write %zu bytes at offset %zu of a %zu-byte buffer", n,
	       c->pos, c->len);
	return 0;
}

static int avail(struct srdma__cursor *c, size_t n)
{
	ENSURE(n <= srdma__cursor_left(c), SRDMA_EPROTO,
	       "need %zu bytes at offset %zu but the input has %zu", n, c->pos,
	       c->len);
	return 0;
}

int srdma__put_bytes(struct srdma__cursor *c, const void *p, size_t n)
{
	GUARD(room(c, n));
	if (n) {
		memcpy(c->buf + c->pos, p, n);
		c->pos += n;
	}
	return 0;
}

/* Big-endian: most significant byte first (network order, RFC 1700). */
static int put_be(struct srdma__cursor *c, uint64_t v, size_t n)
{
	GUARD(room(c, n));
	for (size_t i = 0; i < n; i++)
		c->buf[c->pos + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	c->pos += n;
	return 0;
}

static int get_be(struct srdma__cursor *c, uint64_t *v, size_t n)
{
	uint64_t x = 0;

	GUARD(avail(c, n));
	for (size_t i = 0; i < n; i++)
		x = (x << 8) | c->buf[c->pos + i];
	c->pos += n;
	*v = x;
	return 0;
}

int srdma__put_u8(struct srdma__cursor *c, uint8_t v)
{
	return put_be(c, v, 1);
}

int srdma__put_u16(struct srdma__cursor *c, uint16_t v)
{
	return put_be(c, v, 2);
}

int srdma__put_u32(struct srdma__cursor *c, uint32_t v)
{
	return put_be(c, v, 4);
}

int srdma__put_u64(struct srdma__cursor *c, uint64_t v)
{
	return put_be(c, v, 8);
}

int srdma__get_bytes(struct srdma__cursor *c, void *p, size_t n)
{
	GUARD(avail(c, n));
	if (n) {
		memcpy(p, c->buf + c->pos, n);
		c->pos += n;
	}
	return 0;
}

int srdma__get_u8(struct srdma__cursor *c, uint8_t *v)
{
	uint64_t x;

	GUARD(get_be(c, &x, 1));
	*v = (uint8_t)x;
	return 0;
}

int srdma__get_u16(struct srdma__cursor *c, uint16_t *v)
{
	uint64_t x;

	GUARD(get_be(c, &x, 2));
	*v = (uint16_t)x;
	return 0;
}

int srdma__get_u32(struct srdma__cursor *c, uint32_t *v)
{
	uint64_t x;

	GUARD(get_be(c, &x, 4));
	*v = (uint32_t)x;
	return 0;
}

int srdma__get_u64(struct srdma__cursor *c, uint64_t *v)
{
	return get_be(c, v, 8);
}

/* ---- messages ---- */

const char *srdma__msg_type_name(uint8_t type)
{
	switch (type) {
	case SRDMA_MSG_HELLO:
		return "HELLO";
	case SRDMA_MSG_PARAMS:
		return "PARAMS";
	case SRDMA_MSG_REGION:
		return "REGION";
	case SRDMA_MSG_GOODBYE:
		return "GOODBYE";
	case SRDMA_MSG_ERROR:
		return "ERROR";
	case SRDMA_MSG_REGION_REVOKE:
		return "REGION_REVOKE";
	default:
		return "unknown";
	}
}

/* Smallest and largest body a type may have; false for an unknown type. */
static bool body_bounds(uint8_t type, uint32_t *min, uint32_t *max)
{
	switch (type) {
	case SRDMA_MSG_HELLO:
		*min = *max = HELLO_LEN;
		return true;
	case SRDMA_MSG_PARAMS:
		*min = PARAMS_FIXED_LEN;
		*max = PARAMS_FIXED_LEN + SRDMA_WIRE_MAX_ADDR;
		return true;
	case SRDMA_MSG_REGION:
		*min = *max = REGION_LEN;
		return true;
	case SRDMA_MSG_GOODBYE:
		*min = *max = GOODBYE_LEN;
		return true;
	case SRDMA_MSG_ERROR:
		*min = ERROR_FIXED_LEN;
		*max = ERROR_FIXED_LEN + SRDMA_WIRE_MAX_TEXT;
		return true;
	case SRDMA_MSG_REGION_REVOKE:
		*min = *max = REVOKE_LEN;
		return true;
	default:
		return false;
	}
}

/*
 * Field checks shared by encode (err = SRDMA_EINVAL: our own bug) and
 * decode (err = SRDMA_EPROTO: the peer's). Only ranges here; lengths are
 * the callers' business.
 */
static int check_hello(const struct srdma__msg_hello *h, int err)
{
	if (h->version != SRDMA_WIRE_VERSION)
		return srdma__err(err == SRDMA_EPROTO ? SRDMA_EVERSION : err,
				  "HELLO version is %u; this side speaks only "
				  "version %u",
				  h->version, SRDMA_WIRE_VERSION);
	ENSURE(!(h->caps & ~(uint32_t)CAPS_KNOWN), err,
	       "HELLO caps 0x%08x has unknown bits 0x%08x", h->caps,
	       h->caps & ~(uint32_t)CAPS_KNOWN);
	ENSURE(h->transport == SRDMA_TRANSPORT_VERBS ||
		       h->transport == SRDMA_TRANSPORT_OFI,
	       err, "HELLO transport %u is not verbs (1) or ofi (2)",
	       h->transport);
	ENSURE(h->protect <= SRDMA_PROTECT_ENCRYPT, err,
	       "HELLO protect %u is out of range 0..2", h->protect);
	ENSURE(h->cipher <= CIPHER_MAX, err,
	       "HELLO cipher %u is out of range 0..2", h->cipher);
	return 0;
}

static int check_params(const struct srdma__msg_params *p, int err)
{
	ENSURE(p->psn <= MAX_24BIT, err,
	       "PARAMS psn 0x%x does not fit in 24 bits", p->psn);
	ENSURE(p->qpn <= MAX_24BIT, err,
	       "PARAMS qpn 0x%x does not fit in 24 bits", p->qpn);
	ENSURE(p->addr_len <= SRDMA_WIRE_MAX_ADDR, err,
	       "PARAMS addr_len %u exceeds the maximum of %u", p->addr_len,
	       SRDMA_WIRE_MAX_ADDR);
	return 0;
}

static int check_region(const struct srdma__msg_region *r, int err)
{
	ENSURE(r->region_id >= 1 && r->region_id <= SRDMA_WIRE_MAX_REGION, err,
	       "REGION id %u is outside 1..%u", r->region_id,
	       SRDMA_WIRE_MAX_REGION);
	ENSURE(r->version < (UINT64_C(1) << SRDMA_WIRE_MAX_VERSION_BITS), err,
	       "REGION version %llu does not fit 48 bits",
	       (unsigned long long)r->version);
	ENSURE(r->access != 0 && !(r->access & ~ACCESS_KNOWN), err,
	       "REGION access 0x%x is not a non-empty set of read (1), write "
	       "(2) and stream ring (4)",
	       r->access);
	/* A stream ring is written by the peer's stream only. */
	ENSURE(!(r->access & SRDMA_WIRE_ACCESS_STREAM) ||
		       r->access == (SRDMA_WIRE_ACCESS_STREAM |
				     SRDMA_ACCESS_REMOTE_WRITE),
	       err, "REGION access 0x%x: a stream ring (4) is write-only (6)",
	       r->access);
	ENSURE(r->block_size != 0, err, "REGION block_size is 0");
	ENSURE(r->len % r->block_size == 0, err,
	       "REGION len %llu is not a whole number of %u-byte blocks",
	       (unsigned long long)r->len, r->block_size);
	ENSURE(r->block_stride >= r->block_size, err,
	       "REGION block_stride %u is smaller than block_size %u",
	       r->block_stride, r->block_size);
	return 0;
}

static int check_error(const struct srdma__msg_error *e, int err)
{
	ENSURE(e->code < 0 && e->code >= SRDMA_ERROR_MIN, err,
	       "ERROR code %d is not an error code (%d..-1)", (int)e->code,
	       SRDMA_ERROR_MIN);
	ENSURE(e->text_len <= SRDMA_WIRE_MAX_TEXT, err,
	       "ERROR text_len %u exceeds the maximum of %u", e->text_len,
	       SRDMA_WIRE_MAX_TEXT);
	ENSURE(!memchr(e->text, '\0', e->text_len), err,
	       "ERROR text contains a NUL byte");
	return 0;
}

/* What the encoder refuses to put on the wire (SRDMA_EINVAL). */
static int check_msg(const struct srdma__msg *m)
{
	const struct srdma__msg_error *e = &m->u.error;

	switch (m->type) {
	case SRDMA_MSG_HELLO:
		return check_hello(&m->u.hello, SRDMA_EINVAL);
	case SRDMA_MSG_PARAMS:
		return check_params(&m->u.params, SRDMA_EINVAL);
	case SRDMA_MSG_REGION:
		return check_region(&m->u.region, SRDMA_EINVAL);
	case SRDMA_MSG_ERROR:
		GUARD(check_error(e, SRDMA_EINVAL));
		/*
		 * text_len is authoritative; a text that goes on past it is
		 * a caller who forgot to set text_len: refuse, do not truncate.
		 */
		ENSURE(e->text[e->text_len] == '\0', SRDMA_EINVAL,
		       "ERROR text is longer than text_len %u", e->text_len);
		return 0;
	case SRDMA_MSG_GOODBYE:
	case SRDMA_MSG_REGION_REVOKE:
		return 0;
	default:
		return srdma__err(SRDMA_EINVAL, "cannot encode message type %u",
				  m->type);
	}
}

static int encode_body(const struct srdma__msg *m, struct srdma__cursor *c)
{
	switch (m->type) {
	case SRDMA_MSG_HELLO: {
		const struct srdma__msg_hello *h = &m->u.hello;

		GUARD(srdma__put_u16(c, h->version));
		GUARD(srdma__put_u8(c, h->transport));
		GUARD(srdma__put_u8(c, h->protect));
		GUARD(srdma__put_u32(c, h->caps));
		GUARD(srdma__put_u8(c, h->cipher));
		GUARD(srdma__put_u8(c, 0)); /* reserved */
		GUARD(srdma__put_u16(c, h->fabric_port));
		GUARD(srdma__put_u32(c, h->max_msg));
		GUARD(srdma__put_u32(c, h->queue_depth));
		return 0;
	}
	case SRDMA_MSG_PARAMS: {
		const struct srdma__msg_params *p = &m->u.params;

		GUARD(srdma__put_u64(c, p->session_id));
		GUARD(srdma__put_u32(c, p->psn));
		GUARD(srdma__put_u32(c, p->qpn));
		GUARD(srdma__put_bytes(c, p->gid, sizeof(p->gid)));
		GUARD(srdma__put_bytes(c, p->token, sizeof(p->token)));
		GUARD(srdma__put_u32(c, p->token_ttl_ms));
		GUARD(srdma__put_u16(c, p->fabric_port));
		GUARD(srdma__put_u16(c, p->addr_len));
		GUARD(srdma__put_bytes(c, p->addr, p->addr_len));
		return 0;
	}
	case SRDMA_MSG_REGION: {
		const struct srdma__msg_region *r = &m->u.region;

		GUARD(srdma__put_u32(c, r->region_id));
		GUARD(srdma__put_u8(c, r->access));
		GUARD(put_be(c, 0, 3)); /* reserved */
		GUARD(srdma__put_u64(c, r->len));
		GUARD(srdma__put_u64(c, r->addr));
		GUARD(srdma__put_u64(c, r->key));
		GUARD(srdma__put_u32(c, r->block_size));
		GUARD(srdma__put_u32(c, r->block_stride));
		return srdma__put_u64(c, r->version);
	}
	case SRDMA_MSG_GOODBYE:
		GUARD(srdma__put_u32(c, m->u.goodbye.reason));
		return srdma__put_u64(c, m->u.goodbye.sent);
	case SRDMA_MSG_ERROR: {
		const struct srdma__msg_error *e = &m->u.error;

		GUARD(srdma__put_u32(c, (uint32_t)e->code));
		GUARD(srdma__put_u16(c, e->text_len));
		GUARD(srdma__put_bytes(c, e->text, e->text_len));
		return 0;
	}
	case SRDMA_MSG_REGION_REVOKE:
		return srdma__put_u32(c, m->u.revoke.region_id);
	default:
		return srdma__err(SRDMA_EINVAL, "cannot encode message type %u",
				  m->type);
	}
}

static uint32_t body_len_of(const struct srdma__msg *m)
{
	switch (m->type) {
	case SRDMA_MSG_PARAMS:
		return PARAMS_FIXED_LEN + m->u.params.addr_len;
	case SRDMA_MSG_ERROR:
		return ERROR_FIXED_LEN + m->u.error.text_len;
	default: {
		uint32_t min = 0, max = 0;

		(void)body_bounds(m->type, &min, &max);
		return min;
	}
	}
}

int srdma__msg_encode(const struct srdma__msg *msg, uint8_t *out, size_t cap)
{
	struct srdma__cursor c;
	uint32_t min, max, body;

	ENSURE(msg && out, SRDMA_EINVAL,
	       "msg_encode needs a message and buffer");
	/* Field checks first, so a bad field is EINVAL whatever cap is. */
	GUARD(check_msg(msg));
	ENSURE(body_bounds(msg->type, &min, &max), SRDMA_EINVAL,
	       "cannot encode message type %u", msg->type);
	body = body_len_of(msg);
	ENSURE(body >= min && body <= max, SRDMA_EINVAL,
	       "%s body would be %u bytes, outside %u..%u",
	       srdma__msg_type_name(msg->type), body, min, max);
	ENSURE(cap >= SRDMA_WIRE_HDR_LEN + (size_t)body, SRDMA_EMSGSIZE,
	       "%s needs %u bytes, the buffer has %zu",
	       srdma__msg_type_name(msg->type), SRDMA_WIRE_HDR_LEN + body, cap);

	srdma__cursor_init(&c, out, SRDMA_WIRE_HDR_LEN + (size_t)body);
	GUARD(srdma__put_u16(&c, SRDMA_WIRE_VERSION));
	GUARD(srdma__put_u8(&c, msg->type));
	GUARD(srdma__put_u8(&c, 0)); /* flags */
	GUARD(srdma__put_u32(&c, body));
	GUARD(encode_body(msg, &c));
	/* The size table and the encoder must agree to the byte. */
	ENSURE(srdma__cursor_left(&c) == 0, SRDMA_EINVAL,
	       "%s encoder wrote %zu bytes, expected %u",
	       srdma__msg_type_name(msg->type), c.pos - SRDMA_WIRE_HDR_LEN,
	       body);
	return (int)c.pos;
}

struct hdr {
	uint16_t version;
	uint8_t type;
	uint8_t flags;
	uint32_t body_len;
};

static int parse_hdr(const uint8_t *in, size_t len, struct hdr *h)
{
	struct srdma__cursor c;
	uint32_t min, max;

	ENSURE(in && len >= SRDMA_WIRE_HDR_LEN, SRDMA_EPROTO,
	       "frame header needs %u bytes, got %zu", SRDMA_WIRE_HDR_LEN,
	       in ? len : 0);
	srdma__cursor_init(&c, (void *)in, SRDMA_WIRE_HDR_LEN);
	GUARD(srdma__get_u16(&c, &h->version));
	GUARD(srdma__get_u8(&c, &h->type));
	GUARD(srdma__get_u8(&c, &h->flags));
	GUARD(srdma__get_u32(&c, &h->body_len));

	ENSURE(h->version == SRDMA_WIRE_VERSION, SRDMA_EVERSION,
	       "frame version is %u; this side speaks only version %u",
	       h->version, SRDMA_WIRE_VERSION);
	ENSURE(body_bounds(h->type, &min, &max), SRDMA_EPROTO,
	       "frame has unknown message type %u", h->type);
	ENSURE(h->flags == 0, SRDMA_EPROTO, "%s frame flags are 0x%02x, not 0",
	       srdma__msg_type_name(h->type), h->flags);
	ENSURE(h->body_len <= SRDMA_WIRE_MAX_BODY, SRDMA_EPROTO,
	       "%s body length %u exceeds the maximum of %u",
	       srdma__msg_type_name(h->type), h->body_len, SRDMA_WIRE_MAX_BODY);
	/* Reject an impossible length now, before the reader waits for it. */
	ENSURE(h->body_len >= min && h->body_len <= max, SRDMA_EPROTO,
	       "%s body length %u is outside %u..%u",
	       srdma__msg_type_name(h->type), h->body_len, min, max);
	return 0;
}

int srdma__msg_frame_len(const uint8_t *hdr, size_t len)
{
	struct hdr h;

	GUARD(parse_hdr(hdr, len, &h));
	return SRDMA_WIRE_HDR_LEN + (int)h.body_len;
}

static int get_reserved(struct srdma__cursor *c, size_t n, const char *msg)
{
	uint64_t v;

	GUARD(get_be(c, &v, n));
	ENSURE(v == 0, SRDMA_EPROTO, "%s reserved bytes are 0x%llx, not 0", msg,
	       (unsigned long long)v);
	return 0;
}

static int decode_body(struct srdma__cursor *c, uint8_t type,
		       struct srdma__msg *m)
{
	uint32_t u32;

	switch (type) {
	case SRDMA_MSG_HELLO: {
		struct srdma__msg_hello *h = &m->u.hello;

		GUARD(srdma__get_u16(c, &h->version));
		GUARD(srdma__get_u8(c, &h->transport));
		GUARD(srdma__get_u8(c, &h->protect));
		GUARD(srdma__get_u32(c, &h->caps));
		GUARD(srdma__get_u8(c, &h->cipher));
		GUARD(get_reserved(c, 1, "HELLO"));
		GUARD(srdma__get_u16(c, &h->fabric_port));
		GUARD(srdma__get_u32(c, &h->max_msg));
		GUARD(srdma__get_u32(c, &h->queue_depth));
		return check_hello(h, SRDMA_EPROTO);
	}
	case SRDMA_MSG_PARAMS: {
		struct srdma__msg_params *p = &m->u.params;

		GUARD(srdma__get_u64(c, &p->session_id));
		GUARD(srdma__get_u32(c, &p->psn));
		GUARD(srdma__get_u32(c, &p->qpn));
		GUARD(srdma__get_bytes(c, p->gid, sizeof(p->gid)));
		GUARD(srdma__get_bytes(c, p->token, sizeof(p->token)));
		GUARD(srdma__get_u32(c, &p->token_ttl_ms));
		GUARD(srdma__get_u16(c, &p->fabric_port));
		GUARD(srdma__get_u16(c, &p->addr_len));
		GUARD(check_params(p, SRDMA_EPROTO));
		ENSURE(srdma__cursor_left(c) == p->addr_len, SRDMA_EPROTO,
		       "PARAMS addr_len %u needs a %u-byte body, got %zu",
		       p->addr_len, PARAMS_FIXED_LEN + p->addr_len, c->len);
		return srdma__get_bytes(c, p->addr, p->addr_len);
	}
	case SRDMA_MSG_REGION: {
		struct srdma__msg_region *r = &m->u.region;

		GUARD(srdma__get_u32(c, &r->region_id));
		GUARD(srdma__get_u8(c, &r->access));
		GUARD(get_reserved(c, 3, "REGION"));
		GUARD(srdma__get_u64(c, &r->len));
		GUARD(srdma__get_u64(c, &r->addr));
		GUARD(srdma__get_u64(c, &r->key));
		GUARD(srdma__get_u32(c, &r->block_size));
		GUARD(srdma__get_u32(c, &r->block_stride));
		GUARD(srdma__get_u64(c, &r->version));
		return check_region(r, SRDMA_EPROTO);
	}
	case SRDMA_MSG_GOODBYE:
		GUARD(srdma__get_u32(c, &m->u.goodbye.reason));
		return srdma__get_u64(c, &m->u.goodbye.sent);
	case SRDMA_MSG_ERROR: {
		struct srdma__msg_error *e = &m->u.error;

		GUARD(srdma__get_u32(c, &u32));
		e->code = (int32_t)u32;
		GUARD(srdma__get_u16(c, &e->text_len));
		ENSURE(e->text_len <= SRDMA_WIRE_MAX_TEXT, SRDMA_EPROTO,
		       "ERROR text_len %u exceeds the maximum of %u",
		       e->text_len, SRDMA_WIRE_MAX_TEXT);
		ENSURE(srdma__cursor_left(c) == e->text_len, SRDMA_EPROTO,
		       "ERROR text_len %u needs a %u-byte body, got %zu",
		       e->text_len, ERROR_FIXED_LEN + e->text_len, c->len);
		GUARD(srdma__get_bytes(c, e->text, e->text_len));
		e->text[e->text_len] = '\0';
		return check_error(e, SRDMA_EPROTO);
	}
	case SRDMA_MSG_REGION_REVOKE:
		return srdma__get_u32(c, &m->u.revoke.region_id);
	default:
		return srdma__err(SRDMA_EPROTO, "frame has unknown type %u",
				  type);
	}
}

int srdma__msg_decode(const uint8_t *in, size_t len, struct srdma__msg *msg)
{
	struct srdma__msg m;
	struct srdma__cursor c;
	struct hdr h;

	ENSURE(msg, SRDMA_EINVAL, "msg_decode needs a message to fill");
	GUARD(parse_hdr(in, len, &h));
	ENSURE(len == SRDMA_WIRE_HDR_LEN + (size_t)h.body_len, SRDMA_EPROTO,
	       "%s frame is %zu bytes but its header says %u",
	       srdma__msg_type_name(h.type), len,
	       SRDMA_WIRE_HDR_LEN + h.body_len);

	/* Decode into a local copy: nothing half-parsed reaches the caller. */
	memset(&m, 0, sizeof(m));
	m.type = h.type;
	srdma__cursor_init(&c, (void *)(in + SRDMA_WIRE_HDR_LEN), h.body_len);
	GUARD(decode_body(&c, h.type, &m));
	ENSURE(srdma__cursor_left(&c) == 0, SRDMA_EPROTO,
	       "%s body has %zu trailing bytes", srdma__msg_type_name(h.type),
	       srdma__cursor_left(&c));
	*msg = m;
	return 0;
}

/* ---- fabric connect private data ---- */

int srdma__pdata_encode(const struct srdma__connect_pdata *pd,
			uint8_t out[static SRDMA_WIRE_CONNECT_PDATA_LEN])
{
	struct srdma__cursor c;

	ENSURE(pd && out, SRDMA_EINVAL,
	       "pdata_encode needs private data and a buffer");
	ENSURE(pd->version == SRDMA_WIRE_VERSION, SRDMA_EINVAL,
	       "connect private data version is %u, not %u", pd->version,
	       SRDMA_WIRE_VERSION);
	srdma__cursor_init(&c, out, SRDMA_WIRE_CONNECT_PDATA_LEN);
	GUARD(srdma__put_u32(&c, SRDMA_WIRE_CONNECT_MAGIC));
	GUARD(srdma__put_u8(&c, pd->version));
	GUARD(srdma__put_u8(&c, PDATA_TYPE_CONNECT));
	GUARD(srdma__put_u16(&c, SRDMA_WIRE_CONNECT_PDATA_LEN));
	GUARD(srdma__put_u64(&c, pd->session_id));
	GUARD(srdma__put_u32(&c, pd->initiator_id));
	GUARD(srdma__put_u32(&c, 0)); /* reserved */
	GUARD(srdma__put_bytes(&c, pd->mac, sizeof(pd->mac)));
	ENSURE(srdma__cursor_left(&c) == 0, SRDMA_EINVAL,
	       "connect private data encoder wrote %zu bytes, expected %u",
	       c.pos, SRDMA_WIRE_CONNECT_PDATA_LEN);
	return 0;
}

int srdma__pdata_decode(const uint8_t *in, size_t len,
			struct srdma__connect_pdata *pd)
{
	struct srdma__connect_pdata p;
	struct srdma__cursor c;
	uint32_t magic, reserved;
	uint16_t plen;
	uint8_t type;

	ENSURE(pd, SRDMA_EINVAL, "pdata_decode needs a struct to fill");
	ENSURE(in && len >= SRDMA_WIRE_CONNECT_PDATA_LEN, SRDMA_EPROTO,
	       "connect private data is %zu bytes, needs %u", in ? len : 0,
	       SRDMA_WIRE_CONNECT_PDATA_LEN);
	/* rdma_cm hands over its whole buffer: read only our 56 bytes. */
	memset(&p, 0, sizeof(p));
	srdma__cursor_init(&c, (void *)in, SRDMA_WIRE_CONNECT_PDATA_LEN);
	GUARD(srdma__get_u32(&c, &magic));
	ENSURE(magic == SRDMA_WIRE_CONNECT_MAGIC, SRDMA_EPROTO,
	       "connect private data magic is 0x%08x, not 0x%08x", magic,
	       SRDMA_WIRE_CONNECT_MAGIC);
	GUARD(srdma__get_u8(&c, &p.version));
	ENSURE(p.version == SRDMA_WIRE_VERSION, SRDMA_EVERSION,
	       "connect private data version is %u; this side speaks only "
	       "version %u",
	       p.version, SRDMA_WIRE_VERSION);
	GUARD(srdma__get_u8(&c, &type));
	ENSURE(type == PDATA_TYPE_CONNECT, SRDMA_EPROTO,
	       "connect private data type is %u, not %u (connect)", type,
	       PDATA_TYPE_CONNECT);
	GUARD(srdma__get_u16(&c, &plen));
	ENSURE(plen == SRDMA_WIRE_CONNECT_PDATA_LEN, SRDMA_EPROTO,
	       "connect private data length field is %u, not %u", plen,
	       SRDMA_WIRE_CONNECT_PDATA_LEN);
	GUARD(srdma__get_u64(&c, &p.session_id));
	GUARD(srdma__get_u32(&c, &p.initiator_id));
	GUARD(srdma__get_u32(&c, &reserved));
	ENSURE(reserved == 0, SRDMA_EPROTO,
	       "connect private data reserved field is 0x%08x, not 0",
	       reserved);
	GUARD(srdma__get_bytes(&c, p.mac, sizeof(p.mac)));
	*pd = p;
	return 0;
}
