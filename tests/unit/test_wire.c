/* SPDX-License-Identifier: MIT */
/* Wire codec: round trips, golden bytes, and every way a frame can be bad. */
#include <string.h>

#include "test.h"
#include "wire/wire.h"

enum { NSAMPLES = 9, BUF = SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY + 64 };

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + 37 * i);
}

/* One or more non-trivial instances of every message type. */
static int samples(struct srdma__msg *m)
{
	int n = 0;

	memset(m, 0, NSAMPLES * sizeof(*m));
	m[n].type = SRDMA_MSG_HELLO;
	m[n].u.hello = (struct srdma__msg_hello){
		.version = SRDMA_WIRE_VERSION,
		.caps = SRDMA_CAP_VERBS | SRDMA_CAP_OFI |
			SRDMA_CAP_PROTECT_ENCRYPT | SRDMA_CAP_PROTECT_NONE,
		.transport = SRDMA_TRANSPORT_OFI,
		.protect = SRDMA_PROTECT_INTEGRITY,
		.cipher = 2,
		.max_msg = 0x01020304,
		.queue_depth = 0xa0b0c0d0,
		.fabric_port = 0x1d2f,
	};
	n++;

	m[n].type = SRDMA_MSG_PARAMS;
	m[n].u.params.session_id = UINT64_C(0x8877665544332211);
	m[n].u.params.psn = 0xabcdef;
	m[n].u.params.qpn = 0x123456;
	fill(m[n].u.params.gid, SRDMA_WIRE_GID_LEN, 1);
	fill(m[n].u.params.token, SRDMA_WIRE_TOKEN_LEN, 2);
	m[n].u.params.token_ttl_ms = 30000;
	m[n].u.params.fabric_port = 0xfedc;
	m[n].u.params.addr_len = 16;
	fill(m[n].u.params.addr, 16, 3);
	n++;

	/* PARAMS with no address (verbs) and with the largest one. */
	m[n] = m[n - 1];
	m[n].u.params.addr_len = 0;
	memset(m[n].u.params.addr, 0, sizeof(m[n].u.params.addr));
	n++;
	m[n] = m[n - 1];
	m[n].u.params.addr_len = SRDMA_WIRE_MAX_ADDR;
	fill(m[n].u.params.addr, SRDMA_WIRE_MAX_ADDR, 4);
	n++;

	m[n].type = SRDMA_MSG_REGION;
	m[n].u.region = (struct srdma__msg_region){
		.region_id = 0x1234,
		.access = SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE,
		.len = UINT64_C(4096) * 1000,
		.addr = UINT64_C(0x7fff12345678),
		.key = UINT64_C(0xf0e1d2c3b4a59687),
		.block_size = 4096,
		.block_stride = 4096 + 32,
		.version = UINT64_C(0x0000123456789abc),
	};
	n++;

	m[n].type = SRDMA_MSG_GOODBYE;
	m[n].u.goodbye.reason = 0x11223344;
	m[n].u.goodbye.sent = 0x0102030405060708ull;
	n++;

	m[n].type = SRDMA_MSG_ERROR;
	m[n].u.error.code = SRDMA_EPOLICY;
	strcpy(m[n].u.error.text, "protection mode none is below the "
				  "server's minimum (encrypt)");
	m[n].u.error.text_len = (uint16_t)strlen(m[n].u.error.text);
	n++;

	/* ERROR with the longest text. */
	m[n].type = SRDMA_MSG_ERROR;
	m[n].u.error.code = SRDMA_ERROR_MIN;
	memset(m[n].u.error.text, 'x', SRDMA_WIRE_MAX_TEXT);
	m[n].u.error.text_len = SRDMA_WIRE_MAX_TEXT;
	n++;

	m[n].type = SRDMA_MSG_REGION_REVOKE;
	m[n].u.revoke.region_id = 0x0badf00d;
	n++;
	return n;
}

static size_t expected_len(const struct srdma__msg *m)
{
	switch (m->type) {
	case SRDMA_MSG_HELLO:
		return 8 + 20;
	case SRDMA_MSG_PARAMS:
		return 8 + 72 + m->u.params.addr_len;
	case SRDMA_MSG_REGION:
		return 8 + 48;
	case SRDMA_MSG_ERROR:
		return 8 + 6 + m->u.error.text_len;
	case SRDMA_MSG_GOODBYE:
		return 8 + 12;
	default: /* REGION_REVOKE */
		return 8 + 4;
	}
}

static bool msg_eq(const struct srdma__msg *a, const struct srdma__msg *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case SRDMA_MSG_HELLO: {
		const struct srdma__msg_hello *x = &a->u.hello,
					      *y = &b->u.hello;

		return x->version == y->version && x->caps == y->caps &&
		       x->transport == y->transport &&
		       x->protect == y->protect && x->cipher == y->cipher &&
		       x->max_msg == y->max_msg &&
		       x->queue_depth == y->queue_depth &&
		       x->fabric_port == y->fabric_port;
	}
	case SRDMA_MSG_PARAMS: {
		const struct srdma__msg_params *x = &a->u.params,
					       *y = &b->u.params;

		return x->session_id == y->session_id && x->psn == y->psn &&
		       x->qpn == y->qpn && !memcmp(x->gid, y->gid, 16) &&
		       !memcmp(x->token, y->token, 32) &&
		       x->token_ttl_ms == y->token_ttl_ms &&
		       x->fabric_port == y->fabric_port &&
		       x->addr_len == y->addr_len &&
		       !memcmp(x->addr, y->addr, x->addr_len);
	}
	case SRDMA_MSG_REGION: {
		const struct srdma__msg_region *x = &a->u.region,
					       *y = &b->u.region;

		return x->region_id == y->region_id && x->access == y->access &&
		       x->len == y->len && x->addr == y->addr &&
		       x->key == y->key && x->block_size == y->block_size &&
		       x->block_stride == y->block_stride &&
		       x->version == y->version;
	}
	case SRDMA_MSG_GOODBYE:
		return a->u.goodbye.reason == b->u.goodbye.reason &&
		       a->u.goodbye.sent == b->u.goodbye.sent;
	case SRDMA_MSG_ERROR:
		return a->u.error.code == b->u.error.code &&
		       a->u.error.text_len == b->u.error.text_len &&
		       !strcmp(a->u.error.text, b->u.error.text);
	case SRDMA_MSG_REGION_REVOKE:
		return a->u.revoke.region_id == b->u.revoke.region_id;
	}
	return false;
}

static bool detail_has(const char *a, const char *b)
{
	const char *d = srdma_error_detail();

	if (strstr(d, a) && (!b || strstr(d, b)))
		return true;
	fprintf(stderr, "detail \"%s\" lacks \"%s\"/\"%s\"\n", d, a,
		b ? b : "");
	return false;
}

static void test_cursor(void)
{
	uint8_t buf[15], out[4];
	struct srdma__cursor c;
	uint64_t u64;
	uint32_t u32;
	uint16_t u16;
	uint8_t u8;
	static const uint8_t want[15] = {0xab, 0x12, 0x34, 0xde, 0xad,
					 0xbe, 0xef, 0x01, 0x02, 0x03,
					 0x04, 0x05, 0x06, 0x07, 0x08};

	srdma__cursor_init(&c, buf, sizeof(buf));
	CHECK_RC(srdma__put_u8(&c, 0xab), 0);
	CHECK_RC(srdma__put_u16(&c, 0x1234), 0);
	CHECK_RC(srdma__put_u32(&c, 0xdeadbeef), 0);
	CHECK(srdma__cursor_left(&c) == 8);
	CHECK_RC(srdma__put_u64(&c, UINT64_C(0x0102030405060708)), 0);
	CHECK(srdma__cursor_left(&c) == 0);
	CHECK(!memcmp(buf, want, sizeof(want)));
	/* Full: every put fails and moves nothing. */
	CHECK_RC(srdma__put_u8(&c, 1), SRDMA_EMSGSIZE);
	CHECK_RC(srdma__put_bytes(&c, "x", 1), SRDMA_EMSGSIZE);
	CHECK_RC(srdma__put_bytes(&c, "", 0), 0);
	CHECK(c.pos == sizeof(buf));

	srdma__cursor_init(&c, buf, 6);
	CHECK_RC(srdma__put_u32(&c, 1), 0);
	CHECK_RC(srdma__put_u32(&c, 1), SRDMA_EMSGSIZE);
	CHECK_RC(srdma__put_u64(&c, 1), SRDMA_EMSGSIZE);
	CHECK(c.pos == 4);
	CHECK_RC(srdma__put_u16(&c, 1), 0);

	memcpy(buf, want, sizeof(want));
	srdma__cursor_init(&c, buf, sizeof(buf));
	CHECK_RC(srdma__get_u8(&c, &u8), 0);
	CHECK(u8 == 0xab);
	CHECK_RC(srdma__get_u16(&c, &u16), 0);
	CHECK(u16 == 0x1234);
	CHECK_RC(srdma__get_u32(&c, &u32), 0);
	CHECK(u32 == 0xdeadbeef);
	CHECK_RC(srdma__get_u64(&c, &u64), 0);
	CHECK(u64 == UINT64_C(0x0102030405060708));
	CHECK_RC(srdma__get_u8(&c, &u8), SRDMA_EPROTO);
	CHECK(detail_has("need 1 bytes", NULL));

	srdma__cursor_init(&c, buf, 3);
	CHECK_RC(srdma__get_u32(&c, &u32), SRDMA_EPROTO);
	CHECK_RC(srdma__get_bytes(&c, out, 4), SRDMA_EPROTO);
	CHECK(c.pos == 0);
	CHECK_RC(srdma__get_bytes(&c, out, 3), 0);
	CHECK(!memcmp(out, want, 3));
	CHECK_RC(srdma__get_u16(&c, &u16), SRDMA_EPROTO);
	CHECK_RC(srdma__get_u64(&c, &u64), SRDMA_EPROTO);

	/* A NULL buffer is an empty cursor, not a crash. */
	srdma__cursor_init(&c, NULL, 100);
	CHECK(srdma__cursor_left(&c) == 0);
	CHECK_RC(srdma__get_u8(&c, &u8), SRDMA_EPROTO);
	CHECK_RC(srdma__put_u8(&c, 0), SRDMA_EMSGSIZE);
}

/* Pins the byte layout documented in PROTOCOL.md. */
static void test_golden(void)
{
	struct srdma__msg m[NSAMPLES], d;
	uint8_t buf[BUF];
	static const uint8_t hello[] = {
		0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x14, /* header */
		0x00, 0x02,					/* version */
		0x02,						/* ofi */
		0x01,						/* integrity */
		0x00, 0x00, 0x05, 0x03,				/* caps */
		0x02, 0x00, 0x1d, 0x2f, /* cipher, reserved, fabric_port */
		0x01, 0x02, 0x03, 0x04, /* max_msg */
		0xa0, 0xb0, 0xc0, 0xd0, /* queue_depth */
	};
	static const uint8_t region[] = {
		0x00, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x30, /* header */
		0x00, 0x00, 0x12, 0x34,				/* region_id */
		0x03, 0x00, 0x00, 0x00,				/* access */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x3e, 0x80, 0x00, /* len */
		0x00, 0x00, 0x7f, 0xff, 0x12, 0x34, 0x56, 0x78, /* addr */
		0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, /* key */
		0x00, 0x00, 0x10, 0x00,				/* block_size */
		0x00, 0x00, 0x10, 0x20, /* block_stride */
		0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, /* version */
	};
	static const uint8_t error[] = {
		0x00, 0x02, 0x05, 0x00, 0x00, 0x00, 0x00, 0x08, /* header */
		0xff, 0xff, 0xff, 0xf9,				/* -7 */
		0x00, 0x02, 'h',  'i',
	};

	samples(m);
	CHECK_RC(srdma__msg_encode(&m[0], buf, sizeof(buf)),
		 (int)sizeof(hello));
	CHECK(!memcmp(buf, hello, sizeof(hello)));
	CHECK_RC(srdma__msg_encode(&m[4], buf, sizeof(buf)),
		 (int)sizeof(region));
	CHECK(!memcmp(buf, region, sizeof(region)));

	CHECK_RC(srdma__msg_decode(error, sizeof(error), &d), 0);
	CHECK(d.type == SRDMA_MSG_ERROR && d.u.error.code == SRDMA_EPROTO);
	CHECK(d.u.error.text_len == 2 && !strcmp(d.u.error.text, "hi"));

	/* PARAMS: the variable address sits last, after its u16 length. */
	CHECK_RC(srdma__msg_encode(&m[1], buf, sizeof(buf)), 8 + 72 + 16);
	CHECK(buf[8 + 0] == 0x88 && buf[8 + 7] == 0x11); /* session_id */
	CHECK(buf[8 + 8] == 0x00 && buf[8 + 9] == 0xab); /* psn */
	CHECK(!memcmp(buf + 8 + 16, m[1].u.params.gid, 16));
	CHECK(!memcmp(buf + 8 + 32, m[1].u.params.token, 32));
	CHECK(buf[8 + 64] == 0 && buf[8 + 67] == 0x30);	   /* ttl 30000 */
	CHECK(buf[8 + 68] == 0xfe && buf[8 + 69] == 0xdc); /* fabric_port */
	CHECK(buf[8 + 70] == 0 && buf[8 + 71] == 16);	   /* addr_len */
	CHECK(!memcmp(buf + 8 + 72, m[1].u.params.addr, 16));
}

static void test_roundtrip(void)
{
	struct srdma__msg m[NSAMPLES], d;
	uint8_t buf[BUF], buf2[BUF];
	int n = samples(m);

	for (int i = 0; i < n; i++) {
		int len = srdma__msg_encode(&m[i], buf, sizeof(buf));

		CHECK(len > 0 && (size_t)len == expected_len(&m[i]));
		if (len <= 0)
			continue;
		CHECK(len <= SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY);
		CHECK_RC(srdma__msg_frame_len(buf, SRDMA_WIRE_HDR_LEN), len);
		CHECK_RC(srdma__msg_frame_len(buf, (size_t)len), len);
		memset(&d, 0xa5, sizeof(d));
		CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), 0);
		CHECK(msg_eq(&m[i], &d));
		/* Canonical: decoding then encoding gives the same bytes. */
		CHECK_RC(srdma__msg_encode(&d, buf2, sizeof(buf2)), len);
		CHECK(!memcmp(buf, buf2, (size_t)len));
		/* Exactly enough room works; one byte less does not. */
		CHECK_RC(srdma__msg_encode(&m[i], buf2, (size_t)len), len);
		for (int cap = 0; cap < len; cap++)
			CHECK_RC(srdma__msg_encode(&m[i], buf2, (size_t)cap),
				 SRDMA_EMSGSIZE);
	}
	/* Decoded ERROR text is always NUL-terminated. */
	CHECK_RC(srdma__msg_encode(&m[7], buf, sizeof(buf)), 8 + 6 + 200);
	memset(&d, 'z', sizeof(d));
	CHECK_RC(srdma__msg_decode(buf, 8 + 6 + 200, &d), 0);
	CHECK(d.u.error.text[SRDMA_WIRE_MAX_TEXT] == '\0');
	CHECK(strlen(d.u.error.text) == SRDMA_WIRE_MAX_TEXT);

	for (uint8_t t = 1; t <= 6; t++)
		CHECK(strcmp(srdma__msg_type_name(t), "unknown") != 0);
	CHECK(!strcmp(srdma__msg_type_name(SRDMA_MSG_REGION_REVOKE),
		      "REGION_REVOKE"));
	CHECK(!strcmp(srdma__msg_type_name(0), "unknown"));
	CHECK(!strcmp(srdma__msg_type_name(7), "unknown"));
}

static void test_truncated_and_trailing(void)
{
	struct srdma__msg m[NSAMPLES], d;
	uint8_t buf[BUF];
	int n = samples(m);

	for (int i = 0; i < n; i++) {
		int len = srdma__msg_encode(&m[i], buf, sizeof(buf) - 1);
		int bad = 0;

		CHECK(len > 0);
		if (len <= 0)
			continue;
		for (int k = 0; k < len; k++) {
			memset(&d, 0, sizeof(d));
			if (srdma__msg_decode(buf, (size_t)k, &d) !=
			    SRDMA_EPROTO)
				bad++;
			/* Nothing half-parsed escapes a failed decode. */
			if (d.type != 0)
				bad++;
			if (k < SRDMA_WIRE_HDR_LEN &&
			    srdma__msg_frame_len(buf, (size_t)k) !=
				    SRDMA_EPROTO)
				bad++;
		}
		CHECK(bad == 0);

		/* One trailing byte, with the header unchanged... */
		buf[len] = 0;
		CHECK_RC(srdma__msg_decode(buf, (size_t)len + 1, &d),
			 SRDMA_EPROTO);
		/* ...or with the header's length covering it. */
		buf[7]++;
		CHECK_RC(srdma__msg_decode(buf, (size_t)len + 1, &d),
			 SRDMA_EPROTO);
		CHECK(detail_has(srdma__msg_type_name(m[i].type), NULL));
		/* ...or a body one short of what the header says. */
		buf[7] -= 2;
		CHECK_RC(srdma__msg_decode(buf, (size_t)len - 1, &d),
			 SRDMA_EPROTO);
	}
	CHECK_RC(srdma__msg_decode(NULL, 0, &d), SRDMA_EPROTO);
	CHECK_RC(srdma__msg_frame_len(NULL, 8), SRDMA_EPROTO);
}

/* Encodes sample i, lets edit() corrupt it, and expects decode to fail. */
static int enc(const struct srdma__msg *m, uint8_t *buf)
{
	int len = srdma__msg_encode(m, buf, BUF);

	CHECK(len > 0);
	return len > 0 ? len : 0;
}

static void test_bad_header(void)
{
	struct srdma__msg m[NSAMPLES], d;
	uint8_t buf[BUF];
	int len;

	samples(m);
	len = enc(&m[5], buf); /* GOODBYE */

	buf[1] = 3; /* version 3 */
	CHECK_RC(srdma__msg_frame_len(buf, (size_t)len), SRDMA_EVERSION);
	CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), SRDMA_EVERSION);
	buf[1] = 0;
	CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), SRDMA_EVERSION);
	buf[0] = 1, buf[1] = 2; /* 258 */
	CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), SRDMA_EVERSION);
	buf[0] = 0;

	for (int t = 0; t < 256; t++) {
		if (t >= SRDMA_MSG_HELLO && t <= SRDMA_MSG_REGION_REVOKE)
			continue;
		buf[2] = (uint8_t)t;
		CHECK_RC(srdma__msg_frame_len(buf, (size_t)len), SRDMA_EPROTO);
		CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), SRDMA_EPROTO);
	}
	CHECK(detail_has("unknown message type 255", NULL));
	buf[2] = SRDMA_MSG_GOODBYE;

	for (int bit = 0; bit < 8; bit++) {
		buf[3] = (uint8_t)(1u << bit);
		CHECK_RC(srdma__msg_frame_len(buf, (size_t)len), SRDMA_EPROTO);
		CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), SRDMA_EPROTO);
	}
	CHECK(detail_has("GOODBYE", "flags"));
	buf[3] = 0;
	CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), 0);

	/* Body larger than any message may be: rejected from the header. */
	buf[2] = SRDMA_MSG_ERROR;
	buf[4] = 0, buf[5] = 0, buf[6] = 0x04, buf[7] = 0x01; /* 1025 */
	CHECK_RC(srdma__msg_frame_len(buf, 8), SRDMA_EPROTO);
	CHECK(detail_has("ERROR", "maximum"));
	buf[4] = 0xff; /* ~4 GiB */
	CHECK_RC(srdma__msg_frame_len(buf, 8), SRDMA_EPROTO);
	/* Within the maximum but above what the type can hold. */
	buf[4] = 0, buf[6] = 0, buf[7] = 6 + SRDMA_WIRE_MAX_TEXT + 1;
	CHECK_RC(srdma__msg_frame_len(buf, 8), SRDMA_EPROTO);
	buf[2] = SRDMA_MSG_PARAMS, buf[7] = 72 + SRDMA_WIRE_MAX_ADDR + 1;
	CHECK_RC(srdma__msg_frame_len(buf, 8), SRDMA_EPROTO);
	buf[7] = 71;
	CHECK_RC(srdma__msg_frame_len(buf, 8), SRDMA_EPROTO);
	buf[7] = 72;
	CHECK_RC(srdma__msg_frame_len(buf, 8), 80);
	buf[2] = SRDMA_MSG_HELLO, buf[7] = 21;
	CHECK_RC(srdma__msg_frame_len(buf, 8), SRDMA_EPROTO);
	buf[7] = 19;
	CHECK_RC(srdma__msg_frame_len(buf, 8), SRDMA_EPROTO);
	buf[7] = 20;
	CHECK_RC(srdma__msg_frame_len(buf, 8), 28);
}

/* Changes one byte at off in sample i's frame; decode must say want. */
static void bad_byte(const struct srdma__msg *m, size_t off, uint8_t v,
		     int want, const char *msg, const char *field)
{
	uint8_t buf[BUF];
	struct srdma__msg d;
	int len = enc(m, buf);

	CHECK(off < (size_t)len);
	buf[off] = v;
	CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), want);
	CHECK(detail_has(msg, field));
}

static void test_bad_fields(void)
{
	struct srdma__msg m[NSAMPLES], d;
	uint8_t buf[BUF];
	int len;

	samples(m);
	/* HELLO: body offsets + 8 for the header. */
	bad_byte(&m[0], 9, 1, SRDMA_EVERSION, "HELLO", "version");
	bad_byte(&m[0], 9, 3, SRDMA_EVERSION, "HELLO", "version");
	bad_byte(&m[0], 8, 1, SRDMA_EVERSION, "HELLO", "version");
	bad_byte(&m[0], 9, 0, SRDMA_EVERSION, "HELLO", "version");
	bad_byte(&m[0], 10, 0, SRDMA_EPROTO, "HELLO", "transport"); /* AUTO */
	bad_byte(&m[0], 10, 3, SRDMA_EPROTO, "HELLO", "transport");
	bad_byte(&m[0], 10, 0xff, SRDMA_EPROTO, "HELLO", "transport");
	bad_byte(&m[0], 11, 3, SRDMA_EPROTO, "HELLO", "protect");
	bad_byte(&m[0], 11, 0x80, SRDMA_EPROTO, "HELLO", "protect");
	bad_byte(&m[0], 12, 0x80, SRDMA_EPROTO, "HELLO", "caps");
	bad_byte(&m[0], 15, 0x07, SRDMA_EPROTO, "HELLO", "caps");
	bad_byte(&m[0], 16, 3, SRDMA_EPROTO, "HELLO", "cipher");
	bad_byte(&m[0], 17, 1, SRDMA_EPROTO, "HELLO", "reserved");
	bad_byte(&m[0], 17, 0x80, SRDMA_EPROTO, "HELLO", "reserved");

	/* PARAMS: 24-bit psn/qpn, addr_len bound and exact length. */
	bad_byte(&m[1], 8 + 8, 0x01, SRDMA_EPROTO, "PARAMS", "psn");
	bad_byte(&m[1], 8 + 12, 0x80, SRDMA_EPROTO, "PARAMS", "qpn");
	bad_byte(&m[1], 8 + 71, 15, SRDMA_EPROTO, "PARAMS", "addr_len");
	bad_byte(&m[1], 8 + 71, 17, SRDMA_EPROTO, "PARAMS", "addr_len");
	bad_byte(&m[1], 8 + 70, 1, SRDMA_EPROTO, "PARAMS", "addr_len");
	/* A 201-byte body claiming addr_len 129: too big for PARAMS. */
	memset(buf, 0, sizeof(buf));
	len = enc(&m[3], buf);
	buf[7]++, buf[8 + 71]++;
	CHECK_RC(srdma__msg_decode(buf, (size_t)len + 1, &d), SRDMA_EPROTO);

	/* REGION: access bits, reserved, block geometry. */
	bad_byte(&m[4], 12, 0, SRDMA_EPROTO, "REGION", "access");
	bad_byte(&m[4], 12, 4, SRDMA_EPROTO, "REGION", "access");
	bad_byte(&m[4], 12, 0x83, SRDMA_EPROTO, "REGION", "access");
	/* A stream ring (4) is write-only: only 6 carries the bit. */
	bad_byte(&m[4], 12, 5, SRDMA_EPROTO, "REGION", "stream ring");
	bad_byte(&m[4], 12, 7, SRDMA_EPROTO, "REGION", "stream ring");
	for (size_t off = 13; off < 16; off++)
		bad_byte(&m[4], off, 1, SRDMA_EPROTO, "REGION", "reserved");
	bad_byte(&m[4], 8 + 32 + 2, 0, SRDMA_EPROTO, "REGION", "block_size");
	bad_byte(&m[4], 8 + 32 + 3, 1, SRDMA_EPROTO, "REGION", "len");
	bad_byte(&m[4], 8 + 36 + 2, 0x0f, SRDMA_EPROTO, "REGION",
		 "block_stride");
	/* Region ids are 1..0x7fff; versions fit 48 bits. */
	bad_byte(&m[4], 8 + 2, 0x80, SRDMA_EPROTO, "REGION", "id");
	bad_byte(&m[4], 8 + 0, 0x01, SRDMA_EPROTO, "REGION", "id");
	len = enc(&m[4], buf);
	memset(buf + 8, 0, 4);
	CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), SRDMA_EPROTO);
	CHECK(detail_has("REGION", "id 0"));
	bad_byte(&m[4], 8 + 41, 0x01, SRDMA_EPROTO, "REGION", "version");

	/* ERROR: code range, NUL in the text, text_len exactness. */
	bad_byte(&m[6], 8, 0, SRDMA_EPROTO, "ERROR", "code");	  /* positive */
	bad_byte(&m[6], 11, 0xc0, SRDMA_EPROTO, "ERROR", "code"); /* -64 */
	bad_byte(&m[6], 14 + 3, 0, SRDMA_EPROTO, "ERROR", "NUL");
	bad_byte(&m[6], 13, 4, SRDMA_EPROTO, "ERROR", "text_len");
	bad_byte(&m[6], 12, 1, SRDMA_EPROTO, "ERROR", "text_len");
	len = enc(&m[6], buf);
	buf[8] = buf[9] = buf[10] = buf[11] = 0; /* code 0 */
	CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), SRDMA_EPROTO);

	/* GOODBYE takes any reason and count (the session judges the
	 * count), REGION_REVOKE any u32. */
	len = enc(&m[5], buf);
	CHECK(len == 8 + 12);
	memset(buf + 8, 0xff, 12);
	CHECK_RC(srdma__msg_decode(buf, (size_t)len, &d), 0);
	CHECK(d.u.goodbye.reason == UINT32_MAX);
	CHECK(d.u.goodbye.sent == UINT64_MAX);
}

static void test_encode_rejects(void)
{
	struct srdma__msg m[NSAMPLES], x;
	uint8_t buf[BUF];

	samples(m);
	x = m[0];
	x.u.hello.transport = SRDMA_TRANSPORT_AUTO;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	CHECK(detail_has("HELLO", "transport"));
	x = m[0];
	x.u.hello.protect = 3;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[0];
	x.u.hello.cipher = 3;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[0];
	x.u.hello.version = 0;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[0];
	x.u.hello.caps |= 1u << 31;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);

	x = m[1];
	x.u.params.addr_len = SRDMA_WIRE_MAX_ADDR + 1;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	CHECK(detail_has("PARAMS", "addr_len"));
	/* A bad field is EINVAL even when the buffer is also too small. */
	CHECK_RC(srdma__msg_encode(&x, buf, 4), SRDMA_EINVAL);
	x = m[1];
	x.u.params.psn = 0x1000000;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[1];
	x.u.params.qpn = UINT32_MAX;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);

	x = m[4];
	x.u.region.access = 0;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x.u.region.access = 4;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x.u.region.access = 7;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x.u.region.access = 6; /* a stream ring */
	{
		struct srdma__msg d;
		int n = srdma__msg_encode(&x, buf, sizeof(buf));
		CHECK(n > 0);
		CHECK_RC(srdma__msg_decode(buf, (size_t)n, &d), 0);
		CHECK(d.u.region.access == 6);
	}
	x = m[4];
	x.u.region.block_size = 0;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[4];
	x.u.region.len += 1;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[4];
	x.u.region.block_stride = 4095;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);

	x = m[6];
	x.u.error.text_len = SRDMA_WIRE_MAX_TEXT + 1;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[6];
	x.u.error.text[2] = '\0';
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	CHECK(detail_has("ERROR", "NUL"));
	x = m[6];
	x.u.error.text_len = 3; /* text goes on past text_len */
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[6];
	x.u.error.code = 0;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[6];
	x.u.error.code = SRDMA_ERROR_MIN - 1;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x = m[6];
	x.u.error.text_len = 0;
	x.u.error.text[0] = '\0';
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), 8 + 6);

	memset(&x, 0, sizeof(x));
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	x.type = 7;
	CHECK_RC(srdma__msg_encode(&x, buf, sizeof(buf)), SRDMA_EINVAL);
	CHECK_RC(srdma__msg_encode(NULL, buf, sizeof(buf)), SRDMA_EINVAL);
	CHECK_RC(srdma__msg_encode(&m[0], NULL, sizeof(buf)), SRDMA_EINVAL);
}

/* No message can exceed the frame limit, whatever its variable fields. */
static void test_sizes(void)
{
	struct srdma__msg m[NSAMPLES];
	uint8_t buf[BUF];
	int n = samples(m), len;

	for (int i = 0; i < n; i++) {
		len = srdma__msg_encode(&m[i], buf, sizeof(buf));
		CHECK(len > 0 &&
		      len <= SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY);
	}
	/* m[3] and m[7] are PARAMS and ERROR at their largest. */
	CHECK(m[3].u.params.addr_len == SRDMA_WIRE_MAX_ADDR);
	CHECK(m[7].u.error.text_len == SRDMA_WIRE_MAX_TEXT);
	CHECK(72 + SRDMA_WIRE_MAX_ADDR <= SRDMA_WIRE_MAX_BODY);
	CHECK(6 + SRDMA_WIRE_MAX_TEXT <= SRDMA_WIRE_MAX_BODY);
	CHECK(SRDMA_WIRE_HDR_LEN == 8);
	CHECK(SRDMA_WIRE_CONNECT_PDATA_LEN == 56);
}

static void pdata_sample(struct srdma__connect_pdata *pd)
{
	memset(pd, 0, sizeof(*pd));
	pd->version = SRDMA_WIRE_VERSION;
	pd->session_id = UINT64_C(0x0123456789abcdef);
	pd->initiator_id = 0x00c0ffee;
	fill(pd->mac, SRDMA_WIRE_MAC_LEN, 9);
}

static void bad_pdata(size_t off, uint8_t v, int want, const char *field)
{
	struct srdma__connect_pdata pd, d;
	uint8_t buf[SRDMA_WIRE_CONNECT_PDATA_LEN];

	pdata_sample(&pd);
	CHECK_RC(srdma__pdata_encode(&pd, buf), 0);
	buf[off] ^= v;
	CHECK_RC(srdma__pdata_decode(buf, sizeof(buf), &d), want);
	CHECK(detail_has("private data", field));
}

static void test_pdata(void)
{
	struct srdma__connect_pdata pd, d;
	uint8_t buf[SRDMA_WIRE_CONNECT_PDATA_LEN], big[256];
	static const uint8_t head[24] = {
		0x53, 0x52, 0x44, 0x4d, /* "SRDM" */
		0x02, 0x01, 0x00, 0x38, /* v2, connect, 56 */
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, /* session */
		0x00, 0xc0, 0xff, 0xee,				/* initiator */
		0x00, 0x00, 0x00, 0x00,				/* reserved */
	};
	int bad = 0;

	pdata_sample(&pd);
	memset(buf, 0xee, sizeof(buf));
	CHECK_RC(srdma__pdata_encode(&pd, buf), 0);
	CHECK(!memcmp(buf, head, sizeof(head)));
	CHECK(!memcmp(buf + 24, pd.mac, SRDMA_WIRE_MAC_LEN));

	memset(&d, 0, sizeof(d));
	CHECK_RC(srdma__pdata_decode(buf, sizeof(buf), &d), 0);
	CHECK(d.version == pd.version && d.session_id == pd.session_id &&
	      d.initiator_id == pd.initiator_id &&
	      !memcmp(d.mac, pd.mac, SRDMA_WIRE_MAC_LEN));

	for (size_t k = 0; k < sizeof(buf); k++) {
		memset(&d, 0, sizeof(d));
		if (srdma__pdata_decode(buf, k, &d) != SRDMA_EPROTO ||
		    d.session_id != 0)
			bad++;
	}
	CHECK(bad == 0);
	CHECK_RC(srdma__pdata_decode(NULL, 56, &d), SRDMA_EPROTO);

	/* rdma_cm pads to its own size: whatever follows is ignored. */
	memset(big, 0x5a, sizeof(big));
	memcpy(big, buf, sizeof(buf));
	memset(&d, 0, sizeof(d));
	CHECK_RC(srdma__pdata_decode(big, sizeof(big), &d), 0);
	CHECK(d.session_id == pd.session_id &&
	      !memcmp(d.mac, pd.mac, SRDMA_WIRE_MAC_LEN));
	CHECK_RC(srdma__pdata_decode(big, 57, &d), 0);
	CHECK_RC(srdma__pdata_decode(big, 196, &d), 0);

	bad_pdata(0, 0x01, SRDMA_EPROTO, "magic");
	bad_pdata(3, 0x80, SRDMA_EPROTO, "magic");
	bad_pdata(4, 0x03, SRDMA_EVERSION, "version"); /* 1 */
	bad_pdata(4, 0x01, SRDMA_EVERSION, "version"); /* 3 */
	bad_pdata(4, 0x02, SRDMA_EVERSION, "version"); /* 0 */
	bad_pdata(5, 0x02, SRDMA_EPROTO, "type");
	bad_pdata(5, 0x01, SRDMA_EPROTO, "type"); /* 0 */
	bad_pdata(7, 0x01, SRDMA_EPROTO, "length");
	bad_pdata(6, 0x01, SRDMA_EPROTO, "length");
	for (size_t off = 20; off < 24; off++)
		bad_pdata(off, 0x10, SRDMA_EPROTO, "reserved");
	/* The MAC and ids are opaque here: any bits decode. */
	CHECK_RC(srdma__pdata_encode(&pd, buf), 0);
	buf[55] ^= 1, buf[8] ^= 0xff;
	CHECK_RC(srdma__pdata_decode(buf, sizeof(buf), &d), 0);
	CHECK(d.mac[31] == (pd.mac[31] ^ 1));

	pd.version = 0;
	CHECK_RC(srdma__pdata_encode(&pd, buf), SRDMA_EINVAL);
	pd.version = 1;
	CHECK_RC(srdma__pdata_encode(&pd, buf), SRDMA_EINVAL);
	pd.version = 3;
	CHECK_RC(srdma__pdata_encode(&pd, buf), SRDMA_EINVAL);
	CHECK_RC(srdma__pdata_encode(NULL, buf), SRDMA_EINVAL);
}

/* ---- data-channel record bodies ---- */

static void test_records(void)
{
	struct srdma__notice n[SRDMA_REC_MAX_ENTRIES + 1],
		nd[SRDMA_REC_MAX_ENTRIES];
	struct srdma__update u[2], ud[2];
	struct srdma__ack a = {.count = 3, .region = 0x7fff, .version = 9}, ad;
	uint8_t buf[(SRDMA_REC_MAX_ENTRIES + 1) * SRDMA_NOTICE_LEN];
	static const uint8_t golden[] = {
		0x00, 0x00, 0x00, 0x05,				/* region */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, /* offset */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x64, /* len */
		0x00, 0x00, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, /* version */
	};
	size_t k;
	int len, bad = 0;

	for (int i = 0; i <= SRDMA_REC_MAX_ENTRIES; i++)
		n[i] = (struct srdma__notice){
			.region = 5,
			.offset = 8192,
			.len = 4196,
			.version = UINT64_C(0xabcdef012345) + (uint64_t)i};
	CHECK_RC(srdma__notices_encode(n, 1, buf, sizeof(buf)), 28);
	CHECK(!memcmp(buf, golden, sizeof(golden)));
	len = srdma__notices_encode(n, SRDMA_REC_MAX_ENTRIES, buf, sizeof(buf));
	CHECK(len == SRDMA_REC_MAX_ENTRIES * 28);
	CHECK_RC(srdma__notices_decode(buf, (size_t)len, nd,
				       SRDMA_REC_MAX_ENTRIES, &k),
		 0);
	CHECK(k == SRDMA_REC_MAX_ENTRIES && nd[31].version == n[31].version &&
	      nd[0].len == 4196);
	/* Every length that is not a whole number of entries, or holds
	 * more than the caller has room for, is refused. */
	for (size_t l = 0; l <= (size_t)len; l++) {
		int want = l && l % 28 == 0 ? 0 : SRDMA_EPROTO;
		if (srdma__notices_decode(buf, l, nd, SRDMA_REC_MAX_ENTRIES,
					  &k) != want)
			bad++;
	}
	CHECK(bad == 0);
	CHECK_RC(srdma__notices_decode(buf, 3 * 28, nd, 2, &k), SRDMA_EPROTO);
	CHECK_RC(srdma__notices_encode(n, SRDMA_REC_MAX_ENTRIES + 1, buf,
				       sizeof(buf)),
		 SRDMA_EINVAL);
	CHECK_RC(srdma__notices_encode(n, 0, buf, sizeof(buf)), SRDMA_EINVAL);
	/* Field rules: region 1..0x7fff, version 1..2^48-1, a non-empty
	 * write at a block boundary. */
	CHECK_RC(srdma__notices_encode(n, 1, buf, sizeof(buf)), 28);
	buf[3] = 0;
	CHECK_RC(srdma__notices_decode(buf, 28, nd, 1, &k), SRDMA_EPROTO);
	buf[3] = 5, buf[2] = 0x80;
	CHECK_RC(srdma__notices_decode(buf, 28, nd, 1, &k), SRDMA_EPROTO);
	buf[2] = 0, buf[21] = 1; /* version bit 48 */
	CHECK_RC(srdma__notices_decode(buf, 28, nd, 1, &k), SRDMA_EPROTO);
	buf[21] = 0, buf[11] = 1; /* offset 8193 */
	CHECK_RC(srdma__notices_decode(buf, 28, nd, 1, &k), SRDMA_EPROTO);
	buf[11] = 0, memset(buf + 12, 0, 8); /* len 0 */
	CHECK_RC(srdma__notices_decode(buf, 28, nd, 1, &k), SRDMA_EPROTO);
	memset(buf + 20, 0, 8); /* version 0 */
	buf[19] = 1;
	CHECK_RC(srdma__notices_decode(buf, 28, nd, 1, &k), SRDMA_EPROTO);

	u[0] = (struct srdma__update){
		.region = 1, .first = 0, .count = 1, .version = 1};
	u[1] = (struct srdma__update){.region = 0x7fff,
				      .first = UINT32_MAX,
				      .count = 1,
				      .version = UINT64_C(0xffffffffffff)};
	len = srdma__updates_encode(u, 2, buf, sizeof(buf));
	CHECK(len == 56);
	CHECK_RC(srdma__updates_decode(buf, 56, ud, 2, &k), 0);
	CHECK(k == 2 && ud[1].first == UINT32_MAX &&
	      ud[1].version == u[1].version);
	u[1].count = 2; /* past the 32-bit block indexes */
	CHECK_RC(srdma__updates_encode(u, 2, buf, sizeof(buf)), SRDMA_EINVAL);
	u[1].count = 0;
	CHECK_RC(srdma__updates_encode(u, 2, buf, sizeof(buf)), SRDMA_EINVAL);

	CHECK_RC(srdma__ack_encode(&a, buf), SRDMA_ACK_LEN);
	CHECK(buf[3] == 3 && buf[6] == 0x7f && buf[15] == 9);
	CHECK_RC(srdma__ack_decode(buf, SRDMA_ACK_LEN, &ad), 0);
	CHECK(ad.count == 3 && ad.region == 0x7fff && ad.version == 9);
	CHECK_RC(srdma__ack_decode(buf, SRDMA_ACK_LEN - 1, &ad), SRDMA_EPROTO);
	CHECK_RC(srdma__ack_decode(buf, SRDMA_ACK_LEN + 1, &ad), SRDMA_EPROTO);
	buf[3] = 0; /* count 0 */
	CHECK_RC(srdma__ack_decode(buf, SRDMA_ACK_LEN, &ad), SRDMA_EPROTO);
	CHECK(detail_has("ACK", "0 notices"));
}

/* ---- HOLD records (§6, "Holds") ---- */

static void test_hold(void)
{
	static const uint8_t golden[SRDMA_HOLD_LEN] = {
		2, 0, 0,    0,		      /* kind HELD, reserved */
		0, 0, 0x7f, 0xff,	      /* region 0x7fff */
		0, 0, 0,    0,	  0, 0, 1, 0, /* first 256 */
		0, 0, 0,    0,	  0, 0, 0, 8, /* count 8 */
	};
	struct srdma__hold h = {.kind = SRDMA_HOLD_HELD,
				.region = 0x7fff,
				.first = 256,
				.count = 8},
			   d;
	uint8_t buf[SRDMA_HOLD_LEN + 1];

	CHECK_RC(srdma__hold_encode(&h, buf), SRDMA_HOLD_LEN);
	CHECK(!memcmp(buf, golden, sizeof(golden)));
	CHECK_RC(srdma__hold_decode(golden, sizeof(golden), &d), 0);
	CHECK(d.kind == SRDMA_HOLD_HELD && d.region == 0x7fff &&
	      d.first == 256 && d.count == 8);
	CHECK_RC(srdma__hold_decode(golden, sizeof(golden) - 1, &d),
		 SRDMA_EPROTO);
	memcpy(buf, golden, sizeof(golden));
	buf[SRDMA_HOLD_LEN] = 0;
	CHECK_RC(srdma__hold_decode(buf, sizeof(golden) + 1, &d), SRDMA_EPROTO);
	/* Each field's rule: kind 1..3, reserved zero, region 1..0x7fff, a
	 * non-empty range of 32-bit block indexes. */
	buf[0] = 4;
	CHECK_RC(srdma__hold_decode(buf, SRDMA_HOLD_LEN, &d), SRDMA_EPROTO);
	CHECK(detail_has("HOLD", "kind 4"));
	buf[0] = 0;
	CHECK_RC(srdma__hold_decode(buf, SRDMA_HOLD_LEN, &d), SRDMA_EPROTO);
	buf[0] = 1, buf[2] = 1;
	CHECK_RC(srdma__hold_decode(buf, SRDMA_HOLD_LEN, &d), SRDMA_EPROTO);
	CHECK(detail_has("HOLD", "reserved"));
	buf[2] = 0, buf[6] = 0x80;
	CHECK_RC(srdma__hold_decode(buf, SRDMA_HOLD_LEN, &d), SRDMA_EPROTO);
	buf[6] = 0x7f, buf[23] = 0; /* count 0 */
	CHECK_RC(srdma__hold_decode(buf, SRDMA_HOLD_LEN, &d), SRDMA_EPROTO);
	buf[23] = 8, buf[11] = 1; /* first past 2^32 */
	CHECK_RC(srdma__hold_decode(buf, SRDMA_HOLD_LEN, &d), SRDMA_EPROTO);
	h.first = UINT32_MAX, h.count = 2;
	CHECK_RC(srdma__hold_encode(&h, buf), SRDMA_EINVAL);
	h.count = 1;
	CHECK_RC(srdma__hold_encode(&h, buf), SRDMA_HOLD_LEN);
}

/* ---- STREAM records (§6a) ---- */

static void test_stream(void)
{
	static const uint8_t golden_open[] = {
		0x01, 0x00, 0x00, 0x00,				/* OPEN */
		0x00, 0x00, 0x00, 0x05,				/* region */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, /* ring */
	};
	static const uint8_t golden_data[] = {
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* DATA */
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x30, 0x00, /* pos */
		'h',  'i',					/* bytes */
	};
	struct srdma__stream_rec m = {.kind = SRDMA_STREAM_OPEN,
				      .region = 5,
				      .value = 8 << 20},
				 d;
	uint8_t buf[64];
	int bad = 0;

	CHECK_RC(srdma__stream_rec_encode(&m, buf), SRDMA_STREAM_HDR_LEN);
	CHECK(!memcmp(buf, golden_open, sizeof(golden_open)));
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), 0);
	CHECK(d.kind == SRDMA_STREAM_OPEN && d.region == 5 &&
	      d.value == 8 << 20 && d.len == 0 && !d.data);
	CHECK_RC(srdma__stream_rec_decode(golden_data, sizeof(golden_data), &d),
		 0);
	CHECK(d.kind == SRDMA_STREAM_DATA && d.value == 0x100003000ull &&
	      d.len == 2 && d.data == golden_data + 16);
	m = (struct srdma__stream_rec){.kind = SRDMA_STREAM_DATA,
				       .value = 0x100003000ull,
				       .data = (const uint8_t *)"hi",
				       .len = 2};
	CHECK_RC(srdma__stream_rec_encode(&m, buf), SRDMA_STREAM_HDR_LEN);
	CHECK(!memcmp(buf, golden_data, 16));
	/* Exact lengths: every prefix of a header, and control kinds with
	 * bytes after it, are refused; DATA needs at least one byte. */
	for (size_t l = 0; l < sizeof(golden_data); l++)
		if (srdma__stream_rec_decode(golden_data, l, &d) !=
		    (l > 16 ? 0 : SRDMA_EPROTO))
			bad++;
	CHECK(bad == 0);
	memcpy(buf, golden_open, 16);
	buf[16] = 0;
	CHECK_RC(srdma__stream_rec_decode(buf, 17, &d), SRDMA_EPROTO);
	CHECK(detail_has("STREAM", "exactly 16"));
	for (uint8_t k = SRDMA_STREAM_CONSUMED; k <= SRDMA_STREAM_FIN; k++) {
		memset(buf, 0, sizeof(buf));
		buf[0] = k;
		CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), 0);
		CHECK_RC(srdma__stream_rec_decode(buf, 17, &d), SRDMA_EPROTO);
	}
	/* Field rules. */
	memcpy(buf, golden_open, 16);
	buf[0] = 0; /* kind */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	CHECK(detail_has("STREAM kind 0", NULL));
	buf[0] = 5;
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	for (int off = 1; off < 4; off++) { /* reserved */
		memcpy(buf, golden_open, 16);
		buf[off] = 0x40;
		CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	}
	memcpy(buf, golden_open, 16);
	buf[7] = 0; /* OPEN of region 0 */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	buf[7] = 5, buf[6] = 0x80; /* region 0x8005 */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	buf[6] = 0, buf[15] = 1; /* ring not whole blocks */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	buf[15] = 0, buf[13] = 0, buf[14] = 0xf0; /* ring below 64 KiB */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	buf[14] = 0, buf[12] = 0x40; /* ring of 1 GiB: the largest */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), 0);
	buf[13] = 0x10; /* above it */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	memcpy(buf, golden_data, sizeof(golden_data));
	buf[7] = 1; /* DATA names a region */
	CHECK_RC(srdma__stream_rec_decode(buf, sizeof(golden_data), &d),
		 SRDMA_EPROTO);
	buf[7] = 0, buf[15] = 1; /* DATA off a block boundary */
	CHECK_RC(srdma__stream_rec_decode(buf, sizeof(golden_data), &d),
		 SRDMA_EPROTO);
	buf[15] = 0, buf[8] = 0x40; /* position 2^62 */
	CHECK_RC(srdma__stream_rec_decode(buf, sizeof(golden_data), &d),
		 SRDMA_EPROTO);
	memset(buf, 0, 16);
	buf[0] = SRDMA_STREAM_FIN, buf[15] = 1; /* FIN: any position */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), 0);
	buf[0] = SRDMA_STREAM_CONSUMED; /* CONSUMED: blocks only */
	CHECK_RC(srdma__stream_rec_decode(buf, 16, &d), SRDMA_EPROTO);
	/* The encoder holds the same rules. */
	m = (struct srdma__stream_rec){.kind = SRDMA_STREAM_DATA, .value = 0};
	CHECK_RC(srdma__stream_rec_encode(&m, buf), SRDMA_EINVAL); /* 0 B */
	m = (struct srdma__stream_rec){.kind = SRDMA_STREAM_FIN, .len = 1};
	CHECK_RC(srdma__stream_rec_encode(&m, buf), SRDMA_EINVAL);
	m = (struct srdma__stream_rec){
		.kind = SRDMA_STREAM_OPEN, .region = 1, .value = 4096};
	CHECK_RC(srdma__stream_rec_encode(&m, buf), SRDMA_EINVAL);
	m = (struct srdma__stream_rec){.kind = SRDMA_STREAM_FIN, .region = 1};
	CHECK_RC(srdma__stream_rec_encode(&m, buf), SRDMA_EINVAL);
}

int main(void)
{
	test_cursor();
	test_golden();
	test_roundtrip();
	test_truncated_and_trailing();
	test_bad_header();
	test_bad_fields();
	test_encode_rejects();
	test_sizes();
	test_pdata();
	test_records();
	test_hold();
	test_stream();
	TEST_DONE();
}
