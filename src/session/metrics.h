/* SPDX-License-Identifier: MIT */
/*
 * The counters behind srdma_ctx_metrics(). The context's thread is the only
 * writer (as for everything in a context), so they are plain integers.
 *
 * Counted in metrics.c, from every event: refusals by reason
 * (SRDMA_EV_REJECTED), established / resumed / resume refused
 * (SRDMA_EV_ACCEPTED / CONNECTED), connections closed, client connects
 * that failed, verification failures (connections failed with
 * SRDMA_EINTEGRITY or SRDMA_EREPLAY); listener.c: accepted, shed and the
 * client limits' refusals; reload.c: reloads; api.c: busy retries. Pool hits
 * and misses come from the resource pool's own counters.
 *
 * The data path counts each payload operation once it is done (sent,
 * received and verified, acknowledged, read and verified) with
 * srdma__metric_op().
 */
#ifndef SRDMA_SESSION_METRICS_H
#define SRDMA_SESSION_METRICS_H

#include "session/session.h"

static inline void srdma__metric_add(struct srdma_ctx *ctx,
				     enum srdma__metric m, uint64_t n)
{
	ctx->metrics[m] += n;
}

/* Every queued event passes here (ctx.c): the connection-level counters. */
void srdma__metrics_count(struct srdma_ctx *ctx, enum srdma_event_type type,
			  int status, const struct srdma_conn *c);

/* One payload operation of kind op and len bytes on c, in c's mode. */
static inline void srdma__metric_op(struct srdma_conn *c,
				    enum srdma_metric_op op, uint64_t len)
{
	unsigned int mode = (unsigned int)c->protect;

	if (mode > SRDMA_PROTECT_ENCRYPT || op >= SRDMA_METRIC_OP_COUNT)
		return;
	c->ctx->metric_ops[op][mode]++;
	c->ctx->metric_bytes[op][mode] += len;
}

#endif
