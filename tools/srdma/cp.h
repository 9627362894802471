/* SPDX-License-Identifier: MIT */
/*
 * The server's side of `srdma cp` (cp.c), called by `srdma serve`: files
 * arrive over a client's byte stream into --dir, and nowhere else.
 */
#ifndef SRDMA_TOOL_CP_H
#define SRDMA_TOOL_CP_H

#include <stddef.h>

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

#endif
