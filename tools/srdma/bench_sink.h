/* SPDX-License-Identifier: MIT */
/*
 * The bench "sink" protocol between `srdma bench --op send --mode bw` and
 * `srdma serve` (which otherwise echoes every message).
 *
 *   client -> server  "SRDMA-BENCH-SINK" [be32 ack_every] [be32 flags]
 *                     the server stops echoing on this connection and
 *                     answers with an ack (count 0) at once
 *   client -> server  data messages: counted (and hashed if
 *                     SINK_F_HASH); an ack every ack_every messages
 *   client -> server  "SRDMA-BENCH-DONE": a final ack, back to echoing
 *   server -> client  ack: "SRDMA-BENCH-ACK", a kind byte (SINK_ACK_*),
 *                     be64 count, be64 hash
 */
#ifndef SRDMA_TOOL_BENCH_SINK_H
#define SRDMA_TOOL_BENCH_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SINK_MAGIC "SRDMA-BENCH-SINK"
#define SINK_DONE  "SRDMA-BENCH-DONE"
#define SINK_ACK   "SRDMA-BENCH-ACK"

enum {
	SINK_MAGIC_LEN = 16,
	SINK_HELLO_LEN = 24, /* magic, ack_every, flags */
	SINK_ACK_LEN = 32,
	SINK_F_HASH = 1,
	SINK_DEFAULT_EVERY = 64,
	/* ack kinds (byte 15) */
	SINK_ACK_MORE = 0,
	SINK_ACK_START = 'S',
	SINK_ACK_DONE = 'D',
};

static inline void sink_put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t sink_get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Order-sensitive hash of a message stream, 8 bytes per step. */
static inline uint64_t sink_hash(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t w;
	size_t i;

	h = (h ^ len) * 0x100000001b3ull;
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	for (; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#define SINK_HASH_SEED 0xcbf29ce484222325ull

#endif
