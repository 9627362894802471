/* SPDX-License-Identifier: MIT */
/*
 * srdma_ctx_metrics, and the connection-level counters every event adds to
 * (session/metrics.h says who counts what).
 */
#include <string.h>

#include "session/conn.h"
#include "session/metrics.h"

SRDMA_API int srdma_ctx_metrics(const srdma_ctx *ctx, struct srdma_metrics *out)
{
	const uint64_t *m;

	ENSURE(ctx && out, SRDMA_EINVAL, "srdma_ctx_metrics: NULL argument");
	m = ctx->metrics;
	memset(out, 0, sizeof(*out));
	for (const struct srdma_conn *c = ctx->conns; c; c = c->next) {
		if (c->state < ST_ESTABLISHED)
			out->handshakes++;
		else if (c->state <= ST_CLOSING)
			out->clients++;
	}
	out->accept_paused = ctx->accept_paused;
	out->pool_spares = ctx->pool.n;
	out->accepted = m[SRDMA__M_ACCEPTED];
	out->established = m[SRDMA__M_ESTABLISHED];
	out->resumed = m[SRDMA__M_RESUMED];
	out->resume_refused = m[SRDMA__M_RESUME_REFUSED];
	for (int i = 0; i < SRDMA_REFUSAL_COUNT; i++)
		out->refused[i] = m[SRDMA__M_REFUSED + i];
	out->connect_failed = m[SRDMA__M_CONNECT_FAILED];
	out->busy_retries = m[SRDMA__M_BUSY_RETRIES];
	out->closed = m[SRDMA__M_CLOSED];
	out->closed_error = m[SRDMA__M_CLOSED_ERROR];
	out->verify_failures = m[SRDMA__M_VERIFY_FAILURES];
	memcpy(out->ops, ctx->metric_ops, sizeof(out->ops));
	memcpy(out->bytes, ctx->metric_bytes, sizeof(out->bytes));
	out->pool_hits = ctx->pool.taken;
	out->pool_misses = ctx->pool.misses;
	out->reloads = m[SRDMA__M_RELOADS];
	out->reload_failures = m[SRDMA__M_RELOAD_FAILURES];
	return 0;
}

/* Why a server refused someone, from the code it failed with. SRDMA_ELIMIT
 * (handshake shed, client limits) is counted where it is decided. */
static int refusal_of(int code)
{
	switch (code) {
	case SRDMA_ETIMEDOUT:
		return SRDMA_REFUSAL_TIMEOUT;
	case SRDMA_ENOT_TLS:
	case SRDMA_ETLS_VERSION:
		return SRDMA_REFUSAL_NOT_TLS;
	case SRDMA_ECERT_UNKNOWN_CA:
	case SRDMA_ECERT_EXPIRED:
	case SRDMA_ECERT_NOT_YET_VALID:
	case SRDMA_ECERT_NAME:
	case SRDMA_ECERT_MISSING:
		return SRDMA_REFUSAL_CERT;
	case SRDMA_ECERT_REVOKED:
		return SRDMA_REFUSAL_REVOKED;
	case SRDMA_ENOT_ALLOWED:
		return SRDMA_REFUSAL_NOT_ALLOWED;
	case SRDMA_EPOLICY:
	case SRDMA_EVERSION:
	case SRDMA_ENOTSUP:
		return SRDMA_REFUSAL_POLICY;
	case SRDMA_ETOKEN:
		return SRDMA_REFUSAL_TOKEN;
	case SRDMA_ELIMIT:
		return -1;
	default:
		return SRDMA_REFUSAL_OTHER;
	}
}

void srdma__metrics_count(struct srdma_ctx *ctx, enum srdma_event_type type,
			  int status, const struct srdma_conn *c)
{
	int r;

	switch (type) {
	case SRDMA_EV_REJECTED:
		if ((r = refusal_of(status)) >= 0)
			srdma__metric_add(ctx, SRDMA__M_REFUSED + r, 1);
		break;
	case SRDMA_EV_ACCEPTED:
	case SRDMA_EV_CONNECTED:
		srdma__metric_add(ctx, SRDMA__M_ESTABLISHED, 1);
		if (c && srdma__ctrl_resumed(c->ctrl))
			srdma__metric_add(ctx, SRDMA__M_RESUMED, 1);
		else if (c && srdma__ctrl_resumption(c->ctrl) ==
				      SRDMA__RESUME_REFUSED)
			srdma__metric_add(ctx, SRDMA__M_RESUME_REFUSED, 1);
		break;
	case SRDMA_EV_CLOSED:
		if (!c)
			break;
		if (c->deadline_ms) { /* it never was established */
			if (!c->server)
				srdma__metric_add(ctx, SRDMA__M_CONNECT_FAILED,
						  1);
			break;
		}
		srdma__metric_add(ctx, SRDMA__M_CLOSED, 1);
		if (status)
			srdma__metric_add(ctx, SRDMA__M_CLOSED_ERROR, 1);
		if (status == SRDMA_EINTEGRITY || status == SRDMA_EREPLAY)
			srdma__metric_add(ctx, SRDMA__M_VERIFY_FAILURES, 1);
		break;
	default:
		break;
	}
}
