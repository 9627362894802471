/* SPDX-License-Identifier: MIT */
/* Byte helpers every layer may use. */
#ifndef SRDMA_BASE_BYTES_H
#define SRDMA_BASE_BYTES_H

#include <stdint.h>

/* Big-endian stores and loads for fixed layouts whose length was already
 * checked (records, sealed blocks, session signalling). Variable input is
 * parsed with the bounds-checked cursor in wire/wire.h. */
static inline void srdma__be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void srdma__be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline void srdma__be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint16_t srdma__get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t srdma__get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t srdma__get_be64(const uint8_t *p)
{
	return ((uint64_t)srdma__get_be32(p) << 32) | srdma__get_be32(p + 4);
}

#endif
