/* SPDX-License-Identifier: MIT */
/*
 * The server's side of `srdma cp` (cp.c), called by `srdma serve`: files
 * arrive over a client's byte stream into --dir, and nowhere else.
 */
#ifndef SRDMA_TOOL_CP_H
#define SRDMA_TOOL_CP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "srdma.h"

struct cp_serve; /* one client's copy */

/* --dir DIR: where copies go (checked now). 0, or -1 after saying why.
 * Without it, requests are refused with a sentence. */
int cp_serve_init(const char *dir);
void cp_serve_fini(void);
/* A message from c: 1 if it was cp's (handled here), 0 if not. *st is the
 * client's copy state, made on its first request. */
int cp_serve_recv(struct cp_serve **st, srdma_conn *c, const void *data,
		  size_t len);
/* SRDMA_EV_STREAM on c: stores what arrived. */
void cp_serve_stream(struct cp_serve *st);
/* The client is gone: a partial copy stays for a resume. Touches no
 * library object (the connection may already be destroyed). */
void cp_serve_free(struct cp_serve *st);

/*
 * srdma bench --op stream: a copy that stores nothing. cp_sink_open opens
 * c's stream and has the server count what follows (and hash it, if
 * asked); cp_sink_close ends it, gives the count the server saw, and with
 * sha (the SHA-256 of everything sent) has it compared. 0, or 1 after
 * saying why (a different hash included).
 */
int cp_sink_open(srdma_conn *c, int timeout_ms, bool hash, srdma_stream **s);
int cp_sink_close(srdma_conn *c, srdma_stream *s, int timeout_ms,
		  const uint8_t *sha, uint64_t *received);

#endif
