/* SPDX-License-Identifier: MIT */
/*
 * The fabric side of set-up: transport callbacks, early preparation during
 * TLS, route caching, and the server's check of connect requests.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "session/conn.h"

static void on_tp_prepared(void *arg, int status);
static void on_tp_closed(void *arg, int status, const char *detail);

void srdma__conn_tp_cb(struct srdma_conn *c, struct srdma__tp_conn_cb *cb)
{
	*cb = (struct srdma__tp_conn_cb){
		.arg = c,
		.on_prepared = on_tp_prepared,
		.on_established = srdma__on_tp_established,
		.on_closed = on_tp_closed,
		.on_cqe = srdma__on_tp_cqe,
		.on_mr_ready = srdma__on_tp_mr_ready,
	};
}

int srdma__create_tp_conn(struct srdma_conn *c)
{
	struct srdma__tp_conn_attr attr = srdma__conn_attr(c->server, c->depth);
	struct srdma__tp_conn_cb cb;

	attr.dev = c->dev;
	srdma__conn_tp_cb(c, &cb);
	return c->ctx->tp->ops->conn_create(c->ctx->tp, &attr, &cb, &c->tc);
}

/*
 * Client, while TLS waits for the server's first flight, where resolution is
 * synchronous and does not bind the port (ofi): make the endpoint (with the
 * control port; the server's PARAMS name the fabric port before we connect),
 * register the rings and post the receives, so PARAMS can follow HELLO at
 * once when TLS is done, one round trip early. The rings are sized by our
 * own limits, which the server's HELLO can only lower. Nothing goes out on
 * the fabric before the server is authenticated.
 */
int srdma__prepare_early(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	int rc;

	if (c->server || c->tc || !ops->set_port)
		return 0;
	srdma__phase(c, "ClientHello sent");
	GUARD(srdma__create_tp_conn(c));
	rc = ops->resolve(c->tc, c->host, c->port,
			  (int)c->ctx->cfg.handshake_timeout_ms);
	ENSURE(rc != SRDMA_EAGAIN, SRDMA_EFABRIC,
	       "early resolution went asynchronous");
	GUARD(rc);
	GUARD(srdma__setup_rings(c));
	GUARD(srdma__post_all_recvs(c));
	c->params_early = true;
	srdma__phase(c, "fabric prepared during TLS");
	return 0;
}

static struct fport_cache *fport_find(struct srdma_ctx *ctx, const char *host,
				      uint16_t port)
{
	for (size_t i = 0; i < sizeof(ctx->fports) / sizeof(ctx->fports[0]);
	     i++) {
		struct fport_cache *f = &ctx->fports[i];
		if (f->port == port && !strcmp(f->host, host))
			return f;
	}
	return NULL;
}

void srdma__fport_remember(struct srdma_conn *c)
{
	struct srdma_ctx *ctx = c->ctx;
	struct fport_cache *f = fport_find(ctx, c->host, c->port);

	if (strlen(c->host) >= sizeof(f->host))
		return;
	if (!f) {
		size_t n = sizeof(ctx->fports) / sizeof(ctx->fports[0]);
		f = &ctx->fports[ctx->fports_next++ % n];
		snprintf(f->host, sizeof(f->host), "%s", c->host);
		f->port = c->port;
	}
	f->fabric_port = c->fabric_port;
}

/*
 * Client, while TLS runs, where resolution binds the port (verbs): if this
 * context met the server before, resolve the route to the fabric port it
 * named then, so the QP exists (and PARAMS can go) as soon as the server's
 * HELLO confirms the port. A different port, or a failed resolution, means
 * starting over the usual way. Nothing reaches the server's fabric before
 * TLS is done.
 */
int srdma__resolve_early(struct srdma_conn *c)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct fport_cache *f;
	int rc;

	if (c->server || c->tc || ops->set_port)
		return 0;
	f = fport_find(c->ctx, c->host, c->port);
	if (!f || !f->fabric_port)
		return 0;
	GUARD(srdma__create_tp_conn(c));
	c->early_resolve = true;
	c->early_port = f->fabric_port;
	rc = ops->resolve(c->tc, c->host, c->early_port,
			  (int)c->ctx->cfg.handshake_timeout_ms);
	if (rc == 0)
		c->early_ready = true;
	else if (rc != SRDMA_EAGAIN)
		c->early_failed = true;
	srdma__phase(c, "route resolution started during TLS");
	return 0;
}

/* Drops an early resolution that cannot be used (port changed, failed). */
void srdma__drop_early(struct srdma_conn *c)
{
	c->ctx->tp->ops->conn_destroy(c->tc);
	c->tc = NULL;
	c->early_resolve = c->early_ready = c->early_failed = false;
}

static void on_tp_prepared(void *arg, int status)
{
	struct srdma_conn *c = arg;

	if (c->early_resolve && c->state < ST_PREPARE) {
		/* Resolved during TLS: srdma__client_on_hello takes it from
		 * here. */
		c->early_ready = status == 0;
		c->early_failed = status < 0;
		srdma__phase(c, status == 0
					? "route resolved during TLS"
					: "route resolution during TLS failed");
		return;
	}
	if (c->state != ST_PREPARE)
		return;
	if (status < 0) {
		char d[300];
		snprintf(d, sizeof(d), "%s", srdma_error_detail());
		status = srdma__err(status,
				    "preparing the fabric connection to %s "
				    "failed: %s",
				    c->host, d);
	} else {
		status = srdma__client_prepared(c);
	}
	srdma__conn_step(c, status, ST_PARAMS);
}

/* verbs: show that the QP carries the PSNs agreed over TLS (as the backend
 * read them back when the QP reached RTS, before any traffic). */
static void log_psn_check(struct srdma_conn *c)
{
	struct srdma__tp_info ti = {0};

	if (c->ctx->tp->kind != SRDMA_TRANSPORT_VERBS || !c->tc ||
	    c->ctx->tp->ops->conn_info(c->tc, &ti) < 0)
		return;
	srdma__log(lg(c), SRDMA_LOG_INFO,
		   "psn check %s: agreed sq 0x%06x rq 0x%06x, on QP %u sq "
		   "0x%06x rq 0x%06x; %s, traffic class 0x%02x",
		   srdma__who(c), c->local_psn, c->remote_psn, ti.local_qpn,
		   ti.sq_psn, ti.rq_psn, ti.provider,
		   ti.traffic_class < 0 ? 0 : ti.traffic_class);
}

void srdma__on_tp_established(void *arg)
{
	struct srdma_conn *c = arg;

	if (c->state != ST_FABRIC || !srdma__conn_step(c, 0, ST_ESTABLISHED))
		return;
	c->deadline_ms = 0;
	srdma__leave_handshake(c);
	c->app_owned = true;
	srdma__phase(c, "established");
	srdma__log(
		lg(c), SRDMA_LOG_INFO, "connection %s established: %s, %s%s%s",
		srdma__who(c), srdma_transport_name(c->ctx->tp->kind),
		srdma_protect_name(c->protect),
		c->protect != SRDMA_PROTECT_NONE ? " with " : "",
		c->protect != SRDMA_PROTECT_NONE ? srdma__cipher_name(c->cipher)
						 : "");
	if (!c->server)
		log_psn_check(c);
	/* The client's resumption ticket, now that set-up no longer waits
	 * for it; a ticket that cannot be sent costs resumption only. */
	if (c->server && srdma__ctrl_issue_ticket(c->ctrl) < 0)
		srdma__log(lg(c), SRDMA_LOG_INFO,
			   "no session ticket for %s: %s", srdma__who(c),
			   srdma_error_detail());
	if (c->server)
		srdma__update_interest(c);
	srdma__queue(c, c->server ? SRDMA_EV_ACCEPTED : SRDMA_EV_CONNECTED, 0,
		     c->user, "");
	for (uint32_t i = 0; i < c->nearly; i++)
		if (!srdma__conn_step(
			    c, srdma__on_region_msg(c, &c->early_grants[i]),
			    c->state))
			break;
	c->nearly = 0;
}

static void on_tp_closed(void *arg, int status, const char *detail)
{
	struct srdma_conn *c = arg;
	char d[400];

	if (c->state >= ST_CLOSED)
		return;
	c->fabric_closed = true;
	/* The transport's own reason (a port that went down, a QP error)
	 * beats what its flushed completions made us guess before. */
	if (status < 0 && c->fabric_fail_code && detail && *detail) {
		c->fabric_fail_code = status;
		snprintf(c->fabric_fail_detail, sizeof(c->fabric_fail_detail),
			 "fabric connection to %s lost: %s", srdma__who(c),
			 detail);
	}
	if (c->state == ST_CLOSING) {
		srdma__maybe_finish_close(c);
		return;
	}
	if (c->state == ST_ESTABLISHED && status == 0) {
		/* The peer's goodbye may still be in flight on TLS: wait. */
		if (srdma__conn_step(c, 0, ST_CLOSING)) {
			c->close_deadline_ms = srdma__now_ms() + CLOSE_GRACE_MS;
			srdma__finish_ops(c, SRDMA_ECLOSED);
		}
		return;
	}
	if (c->state == ST_FABRIC && status == SRDMA_ECONNREFUSED) {
		snprintf(d, sizeof(d),
			 "the server refused the fabric "
			 "connection to %s port %u: %s",
			 c->host, c->fabric_port, detail ? detail : "");
	} else {
		snprintf(d, sizeof(d), "fabric connection to %s lost: %s",
			 srdma__who(c),
			 detail && *detail ? detail : srdma_strerror(status));
	}
	srdma__fabric_failed(c, status ? status : SRDMA_ECLOSED, d);
}

void srdma__on_connreq(void *arg, struct srdma__tp_connreq *req)
{
	struct srdma_listener *l = arg;
	struct srdma_ctx *ctx = l->ctx;
	const struct srdma__tp_ops *ops = ctx->tp->ops;
	struct srdma__connect_pdata pd;
	struct srdma_conn *c = NULL;
	char d[300];
	int rc;

	rc = srdma__pdata_decode(req->pdata, req->pdata_len, &pd);
	if (rc == 0) {
		for (c = ctx->conns; c; c = c->next)
			if (c->server && c->state == ST_FABRIC &&
			    c->session_id == pd.session_id && !c->token.used)
				break;
		if (!c)
			rc = srdma__err(SRDMA_ETOKEN,
					"unknown or used session");
	}
	if (rc == 0)
		rc = srdma__token_check(&c->token, pd.session_id,
					pd.initiator_id, pd.mac,
					srdma__now_ms());
	/* No QPN in the request (as iWARP's): nothing binds the fabric
	 * connection to the QP agreed over TLS, so it is refused. */
	if (rc == 0 && ctx->tp->kind == SRDMA_TRANSPORT_VERBS &&
	    req->initiator_qpn == 0)
		rc = srdma__err(SRDMA_ETOKEN,
				"the connect request carries no QP number to "
				"check against the one agreed over TLS (an "
				"iWARP device?); verbs needs InfiniBand or "
				"RoCE");
	if (rc == 0 && ctx->tp->kind == SRDMA_TRANSPORT_VERBS &&
	    (pd.initiator_id != c->remote_qpn ||
	     req->initiator_qpn != c->remote_qpn))
		rc = srdma__err(SRDMA_ETOKEN,
				"the connecting QPN does not match the one "
				"agreed over TLS");
	if (rc < 0) {
		snprintf(d, sizeof(d), "fabric connect from %s rejected: %s",
			 req->peer, srdma_error_detail());
		IGNORE_RESULT(ops->reject(l->tpl, req, NULL, 0));
		srdma__log(&ctx->log, SRDMA_LOG_INFO, "%s", d);
		if (c)
			srdma__conn_fail(c, SRDMA_ETOKEN, d);
		else
			IGNORE_RESULT(srdma__queue_event(ctx, SRDMA_EV_REJECTED,
							 SRDMA_ETOKEN, NULL,
							 NULL, d, NULL));
		return;
	}
	/* Receives first where the backend takes them before accept: the
	 * client may send the moment it hears the accept (DESIGN.md §6). */
	rc = ops->recv_before_accept ? srdma__post_all_recvs(c) : 0;
	if (rc == 0)
		rc = ops->accept(c->tc, req, NULL, 0);
	if (rc == 0) {
		log_psn_check(c);
		if (!ops->recv_before_accept)
			rc = srdma__post_all_recvs(c);
	}
	if (rc < 0)
		srdma__conn_fail(c, rc, srdma_error_detail());
}
