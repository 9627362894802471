/* SPDX-License-Identifier: MIT */
/*
 * `srdma serve --metrics HOST:PORT`: srdma_ctx_metrics() in the Prometheus
 * text format (version 0.0.4) on a small HTTP/1.x listener that lives in
 * the server's own poll loop: non-blocking, a handful of connections at a
 * time, each closed after one answer or after a few seconds. GET (or HEAD)
 * /metrics is answered; any other path is 404, any other method 405, a
 * request that is not HTTP or too long 400, all with "Connection: close".
 */
#ifndef SRDMA_TOOL_METRICS_H
#define SRDMA_TOOL_METRICS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "srdma.h"

enum { METRICS_MAX_FDS = 1 + 16 }; /* the listener and its connections */

struct metrics_http;

/* Binds HOST:PORT (PORT 0: any; see metrics_http_port). 0 or -1 with err. */
int metrics_http_open(const char *host, uint16_t port,
		      struct metrics_http **out, char *err, size_t errlen);
void metrics_http_close(struct metrics_http *m);
uint16_t metrics_http_port(const struct metrics_http *m);
/* The fds to poll now (at most METRICS_MAX_FDS), with their events. */
int metrics_http_fds(struct metrics_http *m, struct pollfd *p);
/* Serves what p (as filled by metrics_http_fds, with revents) says. */
void metrics_http_handle(struct metrics_http *m, const struct pollfd *p, int n,
			 srdma_ctx *ctx);
/* The exposition itself, into buf; returns its length (truncated at len). */
size_t metrics_render(srdma_ctx *ctx, char *buf, size_t len);

#endif
