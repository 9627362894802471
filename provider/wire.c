/* SPDX-License-Identifier: MIT */
/* Encoding and parsing of the provider's records (layout in wire.h). */
#include <string.h>

#include "wire.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Fields after the common part, and the flags each type may carry. */
static const struct {
	uint8_t fields;
	uint8_t flags;
	uint8_t payload; /* 1: may carry a payload */
} layout[] = {
	[SP_REC_CONNREQ] = {0, 0, 1},
	[SP_REC_ACCEPT] = {0, 0, 1},
	[SP_REC_REJECT] = {0, 0, 1},
	[SP_REC_MSG] = {2, SP_F_FIRST | SP_F_LAST | SP_F_DATA, 1},
	[SP_REC_WRITE] = {3, SP_F_LAST | SP_F_DATA, 1},
	[SP_REC_READ_REQ] = {4, 0, 0},
	[SP_REC_READ_RESP] = {2, SP_F_LAST, 1},
	[SP_REC_ERROR] = {1, 0, 1},
	[SP_REC_BYE] = {0, 0, 0},
};

static int known(unsigned type)
{
	return type >= SP_REC_CONNREQ && type <= SP_REC_BYE;
}

size_t sp_rec_hdr_len(enum sp_rec_type type)
{
	if (!known(type))
		return 0;
	return SP_REC_COMMON + 8u * layout[type].fields;
}

size_t sp_rec_encode(uint8_t *buf, const struct sp_rec *r)
{
	const uint64_t f[4] = {r->a, r->b, r->c, r->d};
	size_t n = sp_rec_hdr_len(r->type);
	int cm = r->type <= SP_REC_REJECT;

	memset(buf, 0, SP_REC_COMMON);
	buf[0] = (uint8_t)r->type;
	buf[1] = r->flags;
	put16(buf + 2, cm ? (uint16_t)r->len : 0);
	for (unsigned i = 0; known(r->type) && i < layout[r->type].fields; i++)
		put64(buf + SP_REC_COMMON + 8 * i, f[i]);
	return n;
}

int sp_rec_parse(const uint8_t *buf, size_t len, struct sp_rec *r)
{
	uint64_t f[4] = {0, 0, 0, 0};
	unsigned type, cm_len;
	size_t n;

	if (len < SP_REC_COMMON)
		return -1;
	type = buf[0];
	if (!known(type))
		return -1;
	n = sp_rec_hdr_len((enum sp_rec_type)type);
	if (len < n || (buf[1] & ~layout[type].flags))
		return -1;
	if (buf[4] | buf[5] | buf[6] | buf[7])
		return -1;
	cm_len = get16(buf + 2);
	if (type <= SP_REC_REJECT) {
		if (cm_len > SP_CM_DATA_MAX || len != n + cm_len)
			return -1;
	} else if (cm_len || (!layout[type].payload && len != n)) {
		return -1;
	}
	for (unsigned i = 0; i < layout[type].fields; i++)
		f[i] = get64(buf + SP_REC_COMMON + 8 * i);
	r->type = (enum sp_rec_type)type;
	r->flags = buf[1];
	r->a = f[0];
	r->b = f[1];
	r->c = f[2];
	r->d = f[3];
	r->payload = buf + n;
	r->len = len - n;
	return 0;
}
