/* SPDX-License-Identifier: MIT */
/*
 * Failure, orderly close, teardown, timeouts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "session/conn.h"

static void teardown(struct srdma_conn *c);

void srdma__leave_handshake(struct srdma_conn *c)
{
	if (c->counted_hs) {
		c->counted_hs = false;
		c->ctx->handshakes--;
	}
}

void srdma__conn_fail(struct srdma_conn *c, int code, const char *detail)
{
	if (c->state >= ST_CLOSED)
		return;
	c->fail_code = code ? code : SRDMA_ECLOSED;
	snprintf(c->fail_detail, sizeof(c->fail_detail), "%s",
		 detail && *detail ? detail : srdma_strerror(code));
	/* Where the detail was raised, if it is this thread's last error (and
	 * before sending ERROR below can record another). */
	if (detail && *srdma__err_where() &&
	    !strcmp(detail, srdma_error_detail()))
		srdma__log(lg(c), SRDMA_LOG_DEBUG,
			   "connection %s: %s (raised at %s)", srdma__who(c),
			   c->fail_detail, srdma__err_where());
	/* Tell an authenticated peer why, unless it is the one that told us. */
	if (c->ctrl && c->tls_ok && !c->peer_failed && code != SRDMA_EPEER &&
	    code != SRDMA_ECLOSED) {
		struct srdma__msg m = {.type = SRDMA_MSG_ERROR};
		m.u.error.code = code;
		snprintf(m.u.error.text, sizeof(m.u.error.text), "%s",
			 c->fail_detail);
		m.u.error.text_len = (uint16_t)strlen(m.u.error.text);
		IGNORE_RESULT(srdma__conn_send_msg(c, &m));
	}
	srdma__log(lg(c),
		   c->state == ST_ESTABLISHED ? SRDMA_LOG_WARN : SRDMA_LOG_INFO,
		   "connection %s failed in state %s: %s", srdma__who(c),
		   srdma__state_name(c->state), c->fail_detail);
	srdma__finish_ops(c, c->fail_code);
	srdma__leave_handshake(c);
	if (c->server && c->ctx->nclients)
		c->ctx->nclients--;
	if (c->app_owned)
		srdma__queue(c, SRDMA_EV_CLOSED, c->fail_code, NULL,
			     c->fail_detail);
	else {
		char d[400];
		snprintf(d, sizeof(d), "%s: %s", srdma__who(c), c->fail_detail);
		IGNORE_RESULT(srdma__queue_event(c->ctx, SRDMA_EV_REJECTED,
						 c->fail_code, NULL, NULL, d,
						 NULL));
	}
	/* Always allowed from a state that has not ended (the table). */
	IGNORE_RESULT(srdma__conn_set_state(c, ST_FAILED));
}

static void finish_close(struct srdma_conn *c)
{
	if (c->state != ST_CLOSING)
		return;
	srdma__log(lg(c), SRDMA_LOG_INFO, "connection %s closed",
		   srdma__who(c));
	srdma__finish_ops(c, SRDMA_ECLOSED);
	srdma__leave_handshake(c);
	if (c->server && c->ctx->nclients)
		c->ctx->nclients--;
	c->fail_code = 0;
	srdma__queue(c, SRDMA_EV_CLOSED, 0, NULL, "closed by goodbye");
	IGNORE_RESULT(srdma__conn_set_state(c, ST_CLOSED));
}

/*
 * The fabric broke under an established connection. When the peer failed
 * the connection on purpose (quota, tampering, policy) its reason travels on
 * TLS and may arrive a moment after the fabric drops: prefer it, and wait up
 * to FABRIC_REASON_WAIT_MS for it before reporting the fabric error.
 */
enum { FABRIC_REASON_WAIT_MS = 300 };
void srdma__fabric_failed(struct srdma_conn *c, int code, const char *detail)
{
	if (c->state >= ST_CLOSED || c->fabric_fail_code)
		return;
	if (c->state != ST_ESTABLISHED || !c->ctrl) {
		srdma__conn_fail(c, code, detail);
		return;
	}
	c->fabric_fail_code = code ? code : SRDMA_ECLOSED;
	snprintf(c->fabric_fail_detail, sizeof(c->fabric_fail_detail), "%s",
		 detail);
	c->fabric_fail_deadline_ms = srdma__now_ms() + FABRIC_REASON_WAIT_MS;
	srdma__read_ctrl(c); /* the reason may be here already */
}

/* Every record the peer sent before its goodbye has been read. */
bool srdma__goodbye_drained(const struct srdma_conn *c)
{
	return c->goodbye_rcvd && c->rx.seq >= c->peer_sent;
}

void srdma__maybe_finish_close(struct srdma_conn *c)
{
	if (c->state == ST_CLOSING && srdma__goodbye_drained(c) &&
	    c->goodbye_sent && c->fabric_closed)
		finish_close(c);
}

/*
 * After the peer's goodbye: once its last record is read (it may still be
 * on the fabric when the goodbye arrives over TLS), the fabric goes down.
 * Messages sent before a close are delivered; the close deadline bounds
 * the wait for a peer that counted records it never sent.
 */
void srdma__start_disconnect(struct srdma_conn *c)
{
	if (!srdma__goodbye_drained(c) || c->disconnecting)
		return;
	c->disconnecting = true;
	if (c->tc && !c->fabric_closed) {
		int rc = c->ctx->tp->ops->disconnect(c->tc);
		if (rc < 0)
			c->fabric_closed = true;
	}
	srdma__maybe_finish_close(c);
}

static void teardown(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;

	srdma__loop_del(c->fd_reg);
	c->fd_reg = NULL;
	if (c->ctrl) {
		int lfd = -1;

		srdma__ctrl_shutdown(c->ctrl);
		/* A failed peer still gets to read why: close with a FIN after
		 * our alert or ERROR, never an RST (linger.c). */
		if (c->state == ST_FAILED)
			lfd = dup(srdma__ctrl_fd(c->ctrl));
		srdma__ctrl_destroy(c->ctrl); /* closes fd */
		srdma__linger_start(c->ctx, lfd);
		c->ctrl = NULL;
		c->fd = -1;
	} else if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	for (struct srdma_region *r = c->regions; r; r = r->next) {
		ops->mr_dereg(r->mr);
		r->mr = NULL;
	}
	ops->mr_dereg(c->staging_mr);
	c->staging_mr = NULL;
	for (struct srdma_mem *m = c->mems; m; m = m->next) {
		ops->mr_dereg(m->mr);
		m->mr = NULL;
	}
	if (srdma__respool_give(c)) {
		c->tc = NULL;
		c->ring = NULL;
		c->ring_mr = NULL;
	}
	ops->mr_dereg(c->ring_mr);
	c->ring_mr = NULL;
	if (c->tc) {
		ops->conn_destroy(c->tc);
		c->tc = NULL;
	}
}

/*
 * Releases everything c holds and unlinks it from its context; what is left
 * is the handle (state, failure, user pointer). Regions the application
 * made on c are detached, not freed: it still holds them.
 */
static void release(struct srdma_conn *c)
{
	struct srdma_ctx *ctx = c->ctx;

	teardown(c);
	srdma__drop_events(ctx, c);
	srdma__finish_ops(c, SRDMA_ECLOSED);
	srdma__drop_events(ctx, c);
	srdma__stream_free(c);
	while (c->regions) {
		struct srdma_region *r = c->regions;
		c->regions = r->next;
		srdma__region_detach(r);
	}
	srdma__free_remotes(c);
	srdma__mem_free_all(c);
	srdma__unmap_buf(c->ring, c->ring_len);
	c->ring = NULL;
	srdma__unmap_buf(c->staging, c->staging_len);
	c->staging = NULL;
	free(c->send_free);
	c->send_free = NULL;
	free(c->verifies);
	c->verifies = NULL;
	free(c->early_upd);
	c->early_upd = NULL;
	free(c->op_pool);
	c->op_pool = c->op_free = NULL;
	c->ops_head = c->ops_tail = NULL;
	srdma__aead_wipe(&c->tx);
	srdma__aead_wipe(&c->rx);
	srdma__aead_wipe(&c->blk_tx);
	srdma__aead_wipe(&c->blk_own);
	srdma__aead_wipe(&c->blk_rx);
	srdma__keys_wipe(&c->keys);
	srdma__token_wipe(&c->token);
	srdma__leave_handshake(c);
	if (c->state < ST_CLOSED && c->server && ctx->nclients)
		ctx->nclients--;
	if (c->prev)
		c->prev->next = c->next;
	else if (ctx->conns == c)
		ctx->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

void srdma__conn_detach(struct srdma_conn *c)
{
	release(c);
	c->ctx = NULL;
	c->listener = NULL;
}

void srdma__conn_free(struct srdma_conn *c)
{
	if (!c)
		return;
	if (c->ctx)
		release(c);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

void srdma__conn_check_timeouts(struct srdma_ctx *ctx, uint64_t now)
{
	struct srdma_conn *c, *next;

	srdma__linger_expire(ctx, now, false);
	for (c = ctx->conns; c; c = next) {
		next = c->next;
		if (c->state < ST_ESTABLISHED && c->deadline_ms &&
		    now >= c->deadline_ms) {
			char d[200];
			snprintf(d, sizeof(d),
				 "set-up with %s did not finish within %u ms "
				 "(stuck in %s)",
				 c->peer_addr, ctx->cfg.handshake_timeout_ms,
				 srdma__state_name(c->state));
			srdma__conn_fail(c, SRDMA_ETIMEDOUT, d);
		} else if (c->fabric_fail_code && c->state < ST_CLOSED &&
			   now >= c->fabric_fail_deadline_ms) {
			srdma__conn_fail(c, c->fabric_fail_code,
					 c->fabric_fail_detail);
		} else if (c->state == ST_ESTABLISHED && c->read_retry_at_ms &&
			   now >= c->read_retry_at_ms) {
			srdma__retry_reads(c);
		} else if (c->state == ST_CLOSING &&
			   now >= c->close_deadline_ms) {
			if (c->goodbye_rcvd)
				finish_close(c);
			else
				srdma__conn_fail(
					c, SRDMA_ECLOSED,
					"the peer disconnected without "
					"a goodbye");
		}
		if (c->state >= ST_CLOSED) {
			if (!c->app_owned)
				srdma__conn_free(c);
			else if (c->tc || c->ctrl)
				teardown(c);
		}
	}
}

int srdma__conn_next_deadline(struct srdma_ctx *ctx, uint64_t now)
{
	uint64_t best = UINT64_MAX;

	for (struct srdma_conn *c = ctx->conns; c; c = c->next) {
		uint64_t d = 0;
		if (c->state < ST_ESTABLISHED && c->deadline_ms)
			d = c->deadline_ms;
		else if (c->fabric_fail_code && c->state < ST_CLOSED)
			d = c->fabric_fail_deadline_ms;
		else if (c->state == ST_ESTABLISHED && c->read_retry_at_ms)
			d = c->read_retry_at_ms;
		else if (c->state == ST_CLOSING)
			d = c->close_deadline_ms;
		else if (c->state >= ST_CLOSED &&
			 (c->tc || c->ctrl || !c->app_owned))
			return 0;
		if (d && d < best)
			best = d;
	}
	if (srdma__linger_next_deadline(ctx) < best)
		best = srdma__linger_next_deadline(ctx);
	if (best == UINT64_MAX)
		return -1;
	return best <= now ? 0 : (int)(best - now);
}
