/* SPDX-License-Identifier: MIT */
/* Options shared by serve, client, bench and demo. */
#ifndef SRDMA_TOOL_COMMON_H
#define SRDMA_TOOL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "srdma.h"

enum { DEFAULT_PORT = 7471, MAX_ALLOW = 64 };

struct common_opts {
	struct srdma_config cfg;
	char host[256];
	uint16_t port;
	const char *allow[MAX_ALLOW + 1];
	int nallow;
	int verbose;
};

/* Fills defaults. */
void common_init(struct common_opts *o, enum srdma_role role);
/*
 * Consumes a common option at argv[*i] (advancing *i past its value).
 * Returns 1 if consumed, 0 if not a common option, -1 on a bad value
 * (message printed).
 */
int common_parse(struct common_opts *o, const char *cmd, int argc, char **argv,
		 int *i);
const char *common_help(void);
/* "HOST", "HOST:PORT", "[v6]:PORT", ":PORT". */
int parse_hostport(const char *s, char *host, size_t hlen, uint16_t *port);
/* "4096", "4K", "64k", "1M", "1G". Returns -1 on error. */
int parse_size(const char *s, uint64_t *out);
/* Deterministic content of the server's read-only region. */
static inline uint8_t pattern_byte(uint64_t off)
{
	return (uint8_t)((off >> 12) * 31u + off * 7u + 1u);
}
double now_s(void);
/* qsort comparator for doubles (medians and percentiles). */
int cmp_double(const void *a, const void *b);
void tool_log(void *arg, int level, const char *line);
/*
 * The library names its API (certs_dir, max_handshakes, ...); the tool's
 * user knows its flags (--certs, --max-handshakes, ...). tool_text returns
 * s with the one put for the other, in a buffer of the calling thread that
 * the next few calls reuse; tool_error does it to srdma_error_detail().
 */
const char *tool_text(const char *s);
const char *tool_error(void);
int fill_random(void *buf, size_t len);

#endif
