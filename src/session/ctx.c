/* SPDX-License-Identifier: MIT */
/*
 * Context: configuration, the event queue and the public poll. Listeners
 * are in listener.c, reload in reload.c, metrics in metrics.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "session/conn.h"
#include "session/metrics.h"
#include "session/owner.h"

/* "MAJOR.MINOR.PATCH" from srdma.h's version macros: arguments are
 * expanded before STR_ turns them into strings. */
#define STR_(x)		    #x
#define VERSION(ma, mi, pa) STR_(ma) "." STR_(mi) "." STR_(pa)

SRDMA_API const char *srdma_version(void)
{
	return VERSION(SRDMA_VERSION_MAJOR, SRDMA_VERSION_MINOR,
		       SRDMA_VERSION_PATCH);
}

/*
 * Defaults of struct srdma_config (srdma.h documents them), in one place:
 * srdma_config_init() writes them and a context takes them for fields left
 * 0. Other fields' zero is their default (transport auto, resumption on,
 * ticket lifetime and resource pool chosen where they are used).
 */
enum {
	DEFAULT_MAX_CLIENTS = 4096,
	DEFAULT_MAX_HANDSHAKES = 128,
	DEFAULT_HANDSHAKE_TIMEOUT_MS = 10000,
	DEFAULT_CLIENT_QUOTA = 64 << 20, /* bytes */
	DEFAULT_MAX_MSG = 64 << 10,
	DEFAULT_QUEUE_DEPTH = 16,
	DEFAULT_MAX_OPS = 256,
	DEFAULT_ROUTE_TIMEOUT_MS = 2000,
};

static void fill_defaults(struct srdma_config *cfg)
{
	if (!cfg->max_clients)
		cfg->max_clients = DEFAULT_MAX_CLIENTS;
	if (!cfg->max_handshakes)
		cfg->max_handshakes = DEFAULT_MAX_HANDSHAKES;
	if (!cfg->handshake_timeout_ms)
		cfg->handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
	if (!cfg->client_quota)
		cfg->client_quota = DEFAULT_CLIENT_QUOTA;
	if (!cfg->max_msg)
		cfg->max_msg = DEFAULT_MAX_MSG;
	if (!cfg->queue_depth)
		cfg->queue_depth = DEFAULT_QUEUE_DEPTH;
	if (!cfg->max_ops)
		cfg->max_ops = DEFAULT_MAX_OPS;
	if (!cfg->route_timeout_ms)
		cfg->route_timeout_ms = DEFAULT_ROUTE_TIMEOUT_MS;
}

SRDMA_API const char *srdma_transport_name(enum srdma_transport t)
{
	switch (t) {
	case SRDMA_TRANSPORT_AUTO:
		return "auto";
	case SRDMA_TRANSPORT_VERBS:
		return "verbs";
	case SRDMA_TRANSPORT_OFI:
		return "ofi";
	}
	return "?";
}

SRDMA_API const char *srdma_protect_name(enum srdma_protect p)
{
	switch (p) {
	case SRDMA_PROTECT_NONE:
		return "none";
	case SRDMA_PROTECT_INTEGRITY:
		return "integrity";
	case SRDMA_PROTECT_ENCRYPT:
		return "encrypt";
	}
	return "?";
}

SRDMA_API void srdma_config_init(struct srdma_config *cfg, enum srdma_role role)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->role = role;
	cfg->transport = SRDMA_TRANSPORT_AUTO;
	cfg->protect = SRDMA_PROTECT_ENCRYPT;
	cfg->log_level = SRDMA_LOG_WARN;
	fill_defaults(cfg);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void free_strings(struct srdma_ctx *ctx)
{
	free(ctx->s_provider);
	free(ctx->s_device);
	free(ctx->s_cert);
	free(ctx->s_key);
	free(ctx->s_ca);
	free(ctx->s_peer);
	free(ctx->s_crl);
	if (ctx->allow) {
		for (char **a = ctx->allow; *a; a++)
			free(*a);
		free(ctx->allow);
	}
}

static int copy_config(struct srdma_ctx *ctx, const struct srdma_config *cfg)
{
	char cert[4096], key[4096], ca[4096];

	ctx->cfg = *cfg;
	fill_defaults(&ctx->cfg);
	ENSURE(ctx->cfg.max_ops <= 65536, SRDMA_EINVAL,
	       "max_ops %u is above the limit of 65536", ctx->cfg.max_ops);
	ENSURE(ctx->cfg.max_msg <= (16u << 20), SRDMA_EINVAL,
	       "max_msg %u is above the 16 MiB limit", ctx->cfg.max_msg);
	/* A peer refuses a HELLO below it (docs/PROTOCOL.md): say so now. */
	ENSURE(ctx->cfg.max_msg >= 64, SRDMA_EINVAL,
	       "max_msg %u is below the 64-byte minimum", ctx->cfg.max_msg);
	ENSURE(ctx->cfg.queue_depth >= 4 && ctx->cfg.queue_depth <= 4096,
	       SRDMA_EINVAL, "queue depth %u is outside 4..4096",
	       ctx->cfg.queue_depth);
	ENSURE(cfg->protect <= SRDMA_PROTECT_ENCRYPT, SRDMA_EINVAL,
	       "unknown protection mode %d", (int)cfg->protect);
	srdma__respool_init(ctx);

	if (!cfg->cert_file || !cfg->key_file || !cfg->ca_file) {
		const char *name = cfg->identity;
		ENSURE(cfg->certs_dir, SRDMA_ECONFIG,
		       "no certificates configured: give certs_dir (a "
		       "directory made by `srdma certs DIR`) or cert_file, "
		       "key_file and ca_file");
		if (!name)
			name = cfg->role == SRDMA_ROLE_SERVER ? "server"
							      : "client";
		GUARD(srdma__certs_paths(cfg->certs_dir, name, cert,
					 sizeof(cert), key, sizeof(key), ca,
					 sizeof(ca)));
	}
	ctx->s_cert = strdup(cfg->cert_file ? cfg->cert_file : cert);
	ctx->s_key = strdup(cfg->key_file ? cfg->key_file : key);
	ctx->s_ca = strdup(cfg->ca_file ? cfg->ca_file : ca);
	ctx->s_provider = dup_or_null(cfg->provider);
	ctx->s_device = dup_or_null(cfg->device);
	ctx->s_peer = dup_or_null(cfg->peer_name);
	ctx->s_crl = dup_or_null(cfg->crl_file);
	ENSURE(ctx->s_cert && ctx->s_key && ctx->s_ca &&
		       (ctx->s_crl || !cfg->crl_file),
	       SRDMA_ENOMEM, "out of memory copying the configuration");
	if (cfg->allow) {
		size_t n = 0;
		while (cfg->allow[n])
			n++;
		ctx->allow = calloc(n + 1, sizeof(char *));
		ENSURE(ctx->allow, SRDMA_ENOMEM, "out of memory");
		for (size_t i = 0; i < n; i++) {
			ctx->allow[i] = strdup(cfg->allow[i]);
			ENSURE(ctx->allow[i], SRDMA_ENOMEM, "out of memory");
		}
	}
	ctx->cfg.provider = ctx->s_provider;
	ctx->cfg.device = ctx->s_device;
	ctx->cfg.cert_file = ctx->s_cert;
	ctx->cfg.key_file = ctx->s_key;
	ctx->cfg.ca_file = ctx->s_ca;
	ctx->cfg.peer_name = ctx->s_peer;
	ctx->cfg.crl_file = ctx->s_crl;
	ctx->cfg.allow = (const char *const *)ctx->allow;
	ctx->cfg.certs_dir = NULL;
	ctx->cfg.identity = NULL;
	return 0;
}

SRDMA_API int srdma_ctx_create(const struct srdma_config *cfg, srdma_ctx **out)
{
	struct srdma__tls_config tc = {0};
	struct srdma_ctx *ctx;
	int rc;

	srdma__err_clear();
	ENSURE(cfg && out, SRDMA_EINVAL, "srdma_ctx_create: NULL argument");
	*out = NULL;
	ctx = calloc(1, sizeof(*ctx));
	ENSURE(ctx, SRDMA_ENOMEM, "out of memory creating a context");
	rc = copy_config(ctx, cfg);
	if (rc < 0)
		goto out_free;
	ctx->log.fn = cfg->log_fn;
	ctx->log.arg = cfg->log_arg;
	ctx->log.level = cfg->log_level;
	ctx->cipher = srdma__cipher_default();

	tc.server = cfg->role == SRDMA_ROLE_SERVER;
	tc.cert_file = ctx->s_cert;
	tc.key_file = ctx->s_key;
	tc.ca_file = ctx->s_ca;
	tc.crl_file = ctx->s_crl;
	tc.allow = ctx->cfg.allow;
	tc.no_resumption = cfg->no_resumption;
	tc.defer_tickets = true; /* sent once a client is set up (conn.c) */
	tc.ticket_rotate_s = cfg->ticket_rotate_s;
	rc = srdma__tls_ctx_create(&tc, &ctx->tls);
	if (rc < 0)
		goto out_free;
	rc = srdma__loop_create(&ctx->loop);
	if (rc < 0)
		goto out_tls;
	rc = srdma__tp_open(
		cfg->transport,
		&(struct srdma__tp_opts){
			.provider = ctx->s_provider,
			.device = ctx->s_device,
			.tos = ctx->cfg.tos,
			.route_timeout_ms = ctx->cfg.route_timeout_ms,
			.allow_mr_keys = ctx->cfg.allow_mr_keys,
		},
		ctx->loop, &ctx->log, &ctx->tp);
	if (rc < 0)
		goto out_loop;
	srdma__log(&ctx->log, SRDMA_LOG_INFO, "transport %s: %s",
		   srdma_transport_name(ctx->tp->kind), ctx->tp->why);
	*out = ctx;
	return 0;

out_loop:
	srdma__loop_destroy(ctx->loop);
out_tls:
	srdma__tls_ctx_destroy(ctx->tls);
out_free:
	free_strings(ctx);
	free(ctx);
	return rc;
}

/*
 * Connections and listeners the application holds are detached, not freed
 * (srdma.h, "Lifetimes"): their resources go now, their handles stay valid
 * until the application destroys them.
 */
SRDMA_API void srdma_ctx_destroy(srdma_ctx *ctx)
{
	struct srdma__use use;
	struct qev *e;

	if (!ctx || srdma__use_enter_alone(&use, ctx, "srdma_ctx_destroy") < 0)
		return;
	while (ctx->conns) {
		struct srdma_conn *c = ctx->conns;
		if (c->state < ST_CLOSED)
			srdma__conn_fail(c, SRDMA_ECLOSED,
					 "the local context was destroyed");
		if (c->handed)
			srdma__conn_detach(c);
		else
			srdma__conn_free(c);
	}
	while (ctx->listeners) {
		struct srdma_listener *l = ctx->listeners;
		ctx->listeners = l->next;
		srdma__listener_release(l);
	}
	srdma__respool_destroy(ctx);
	srdma__linger_expire(ctx, 0, true);
	srdma__release_delivered(ctx);
	while ((e = ctx->q_head)) {
		ctx->q_head = e->next;
		free(e);
	}
	while ((e = ctx->q_free)) {
		ctx->q_free = e->next;
		free(e);
	}
	srdma__tp_close(ctx->tp);
	srdma__loop_destroy(ctx->loop);
	srdma__tls_ctx_destroy(ctx->tls);
	free_strings(ctx);
	srdma__use_forget(&use);
	free(ctx);
}

SRDMA_API int srdma_ctx_fd(const srdma_ctx *ctx)
{
	return ctx ? srdma__loop_fd(ctx->loop) : -1;
}

SRDMA_API int srdma_ctx_timeout(const srdma_ctx *ctx)
{
	struct srdma_ctx *c = (struct srdma_ctx *)ctx;

	if (!c)
		return -1;
	if (c->q_head || c->work_pending || srdma__respool_wants(c))
		return 0;
	return srdma__conn_next_deadline(c, srdma__now_ms());
}

SRDMA_API enum srdma_transport srdma_ctx_transport(const srdma_ctx *ctx,
						   const char **why)
{
	if (why)
		*why = ctx->tp->why;
	return ctx->tp->kind;
}

/* ---- event queue ---- */

int srdma__queue_event(struct srdma_ctx *ctx, enum srdma_event_type type,
		       int status, struct srdma_conn *c, void *user,
		       const char *detail, struct qev **out)
{
	struct qev *e = ctx->q_free;

	if (e)
		ctx->q_free = e->next;
	else
		e = malloc(sizeof(*e));
	ENSURE(e, SRDMA_ENOMEM, "out of memory queueing an event");
	srdma__metrics_count(ctx, type, status, c);
	memset(&e->ev, 0, sizeof(e->ev));
	e->ev.type = type;
	e->ev.status = status;
	e->ev.conn = c;
	e->ev.user = user;
	e->recv_slot = -1;
	e->next = NULL;
	snprintf(e->detail, sizeof(e->detail), "%s", detail ? detail : "");
	e->ev.detail = e->detail;
	if (ctx->q_tail)
		ctx->q_tail->next = e;
	else
		ctx->q_head = e;
	ctx->q_tail = e;
	if (out)
		*out = e;
	return 0;
}

static void release(struct srdma_ctx *ctx, struct qev *e)
{
	if (e->recv_slot >= 0 && e->ev.conn)
		srdma__conn_step(e->ev.conn,
				 srdma__repost_slot(e->ev.conn, e->recv_slot),
				 e->ev.conn->state);
	e->next = ctx->q_free;
	ctx->q_free = e;
}

void srdma__release_delivered(struct srdma_ctx *ctx)
{
	struct qev *e;

	while ((e = ctx->delivered)) {
		ctx->delivered = e->next;
		release(ctx, e);
	}
}

void srdma__drop_events(struct srdma_ctx *ctx, struct srdma_conn *c)
{
	struct qev **pp = &ctx->q_head, *e;

	ctx->q_tail = NULL;
	while ((e = *pp)) {
		if (e->ev.conn == c) {
			*pp = e->next;
			e->recv_slot = -1;
			e->next = ctx->q_free;
			ctx->q_free = e;
		} else {
			ctx->q_tail = e;
			pp = &e->next;
		}
	}
	for (e = ctx->delivered; e; e = e->next)
		if (e->ev.conn == c) {
			e->recv_slot = -1;
			e->ev.conn = NULL;
		}
}

/*
 * Tops the server resource pool up. A kit that cannot be made (out of fds,
 * memory, device resources) shrinks the pool to what it holds, with one
 * warning, instead of retrying on every loop iteration.
 */
void srdma__pool_refill(struct srdma_ctx *ctx, uint32_t max_new)
{
	struct srdma__respool *p = &ctx->pool;

	if (srdma__respool_fill(ctx, max_new) == 0)
		return;
	srdma__log(&ctx->log, SRDMA_LOG_WARN,
		   "resource pool: keeping the %u spare connections made: %s",
		   p->n, srdma_error_detail());
}

/* One loop iteration bounded by timeout_ms and the nearest deadline. */
int srdma__ctx_run(struct srdma_ctx *ctx, int timeout_ms)
{
	uint64_t now = srdma__now_ms();
	int d = srdma__conn_next_deadline(ctx, now);
	uint64_t t = srdma__client_retries_due(ctx, now);
	int rc;

	/* a client's reconnect after a busy server; a handshake that may be
	 * shed for a connection waiting at max_handshakes */
	if (ctx->shed_at && ctx->shed_at < t)
		t = ctx->shed_at;
	if (t != UINT64_MAX) {
		int w = t <= now ? 0 : (int)(t - now);

		if (d < 0 || w < d)
			d = w;
	}
	if (d >= 0 && (timeout_ms < 0 || d < timeout_ms))
		timeout_ms = d;
	if (ctx->work_pending || srdma__respool_wants(ctx))
		timeout_ms = 0; /* verification slices or spares are waiting */
	rc = srdma__loop_run_once(ctx->loop, timeout_ms);
	if (ctx->work_pending)
		ctx->work_pending = srdma__conn_work(ctx);
	/* One spare per pass, and only while no client is setting up. */
	if (srdma__respool_wants(ctx))
		srdma__pool_refill(ctx, 1);
	now = srdma__now_ms();
	srdma__conn_check_timeouts(ctx, now);
	if (ctx->listeners)
		srdma__listeners_update(ctx, now);
	return rc;
}

SRDMA_API int srdma_ctx_poll(srdma_ctx *ctx, struct srdma_event *evs, int max,
			     int timeout_ms)
{
	uint64_t deadline;
	int n = 0;

	ENSURE(ctx && evs && max > 0, SRDMA_EINVAL, "srdma_ctx_poll: bad args");
	USE_CTX(ctx, "srdma_ctx_poll");
	srdma__release_delivered(ctx);
	deadline = timeout_ms < 0 ? UINT64_MAX : srdma__now_ms() + timeout_ms;
	for (;;) {
		uint64_t now;
		int wait;

		if (ctx->q_head)
			break;
		now = srdma__now_ms();
		if (now >= deadline && timeout_ms >= 0) {
			/* One non-blocking pass even at timeout 0. */
			GUARD(srdma__ctx_run(ctx, 0));
			break;
		}
		wait = deadline == UINT64_MAX ? -1 : (int)(deadline - now);
		GUARD(srdma__ctx_run(ctx, wait));
	}
	while (ctx->q_head && n < max) {
		struct qev *e = ctx->q_head;
		ctx->q_head = e->next;
		if (!ctx->q_head)
			ctx->q_tail = NULL;
		evs[n++] = e->ev;
		if (e->ev.conn) /* the application holds it now */
			e->ev.conn->handed = true;
		e->next = ctx->delivered;
		ctx->delivered = e;
	}
	return n;
}
