/* SPDX-License-Identifier: MIT */
/*
 * Context: configuration, the event queue, listeners and the public poll.
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
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "session/conn.h"
#include "session/metrics.h"

SRDMA_API const char *srdma_version(void)
{
	return "0.1.0";
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
	cfg->max_clients = 4096;
	cfg->max_handshakes = 128;
	cfg->handshake_timeout_ms = 10000;
	cfg->client_quota = 64ull << 20;
	cfg->max_msg = 64 * 1024;
	cfg->queue_depth = 16;
	cfg->log_level = SRDMA_LOG_WARN;
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
	if (!ctx->cfg.max_clients)
		ctx->cfg.max_clients = 4096;
	if (!ctx->cfg.max_handshakes)
		ctx->cfg.max_handshakes = 128;
	if (!ctx->cfg.handshake_timeout_ms)
		ctx->cfg.handshake_timeout_ms = 10000;
	if (!ctx->cfg.client_quota)
		ctx->cfg.client_quota = 64ull << 20;
	if (!ctx->cfg.max_msg)
		ctx->cfg.max_msg = 64 * 1024;
	if (!ctx->cfg.queue_depth)
		ctx->cfg.queue_depth = 16;
	ENSURE(ctx->cfg.max_msg <= (16u << 20), SRDMA_EINVAL,
	       "max_msg %u is above the 16 MiB limit", ctx->cfg.max_msg);
	ENSURE(ctx->cfg.queue_depth >= 4 && ctx->cfg.queue_depth <= 4096,
	       SRDMA_EINVAL, "queue depth %u is outside 4..4096",
	       ctx->cfg.queue_depth);
	ENSURE(cfg->protect <= SRDMA_PROTECT_ENCRYPT, SRDMA_EINVAL,
	       "unknown protection mode %d", (int)cfg->protect);
	srdma__respool_init(ctx);

	if (!cfg->cert_file || !cfg->key_file || !cfg->ca_file) {
		const char *name = cfg->identity;
		ENSURE(cfg->certs_dir, SRDMA_ECONFIG,
		       "no certificates configured: give --certs DIR (made "
		       "by `srdma certs DIR`) or --cert/--key/--ca");
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
	rc = srdma__tp_open(cfg->transport, ctx->s_provider, ctx->s_device,
			    ctx->loop, &ctx->log, &ctx->tp, &ctx->tp_why);
	if (rc < 0)
		goto out_loop;
	srdma__log(&ctx->log, SRDMA_LOG_INFO, "transport %s: %s",
		   srdma_transport_name(ctx->tp->kind), ctx->tp_why);
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

SRDMA_API void srdma_ctx_destroy(srdma_ctx *ctx)
{
	struct qev *e;

	if (!ctx)
		return;
	while (ctx->conns) {
		struct srdma_conn *c = ctx->conns;
		if (c->state < ST_CLOSED)
			srdma__conn_fail(c, SRDMA_ECLOSED,
					 "the local context was destroyed");
		srdma__conn_free(c);
	}
	while (ctx->listeners)
		srdma_listener_destroy(ctx->listeners);
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
	free(ctx);
}

SRDMA_API int srdma_ctx_fd(const srdma_ctx *ctx)
{
	return ctx ? srdma__loop_fd(ctx->loop) : -1;
}

SRDMA_API enum srdma_transport srdma_ctx_transport(const srdma_ctx *ctx,
						   const char **why)
{
	if (why)
		*why = ctx->tp_why;
	return ctx->tp->kind;
}

/* ---- reload ---- */

static char **dup_list(const char *const *l, bool *ok)
{
	size_t n = 0;
	char **d;

	*ok = true;
	if (!l)
		return NULL;
	while (l[n])
		n++;
	d = calloc(n + 1, sizeof(*d));
	for (size_t i = 0; d && i < n; i++)
		if (!(d[i] = strdup(l[i]))) {
			while (i--)
				free(d[i]);
			free(d);
			d = NULL;
		}
	*ok = d != NULL;
	return d;
}

static void free_list(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

/* The material a reload reads: owned copies, swapped in on success. */
struct material {
	char *cert, *key, *ca, *crl;
	char **allow;
};

static void material_free(struct material *m)
{
	free(m->cert);
	free(m->key);
	free(m->ca);
	free(m->crl);
	free_list(m->allow);
}

static int material_of(const struct srdma_ctx *ctx,
		       const struct srdma_config *cfg, struct material *m)
{
	char cert[4096], key[4096], ca[4096];
	const char *c = ctx->s_cert, *k = ctx->s_key, *a = ctx->s_ca;
	const char *crl = ctx->s_crl;
	const char *const *allow = ctx->cfg.allow;
	bool ok;

	if (cfg) {
		c = cfg->cert_file;
		k = cfg->key_file;
		a = cfg->ca_file;
		crl = cfg->crl_file;
		allow = cfg->allow;
	}
	if (!c || !k || !a) {
		const char *name = cfg ? cfg->identity : NULL;

		ENSURE(cfg && cfg->certs_dir, SRDMA_ECONFIG,
		       "no certificates to reload: give certs_dir or "
		       "cert_file, key_file and ca_file");
		if (!name)
			name = ctx->cfg.role == SRDMA_ROLE_SERVER ? "server"
								  : "client";
		GUARD(srdma__certs_paths(cfg->certs_dir, name, cert,
					 sizeof(cert), key, sizeof(key), ca,
					 sizeof(ca)));
		c = c ? c : cert;
		k = k ? k : key;
		a = a ? a : ca;
	}
	m->cert = strdup(c);
	m->key = strdup(k);
	m->ca = strdup(a);
	m->crl = dup_or_null(crl);
	m->allow = dup_list(allow, &ok);
	ENSURE(m->cert && m->key && m->ca && (m->crl || !crl) && ok,
	       SRDMA_ENOMEM, "out of memory reloading");
	return 0;
}

SRDMA_API int srdma_ctx_reload(srdma_ctx *ctx, const struct srdma_config *cfg)
{
	struct srdma__tls_config tc = {0};
	struct srdma__tls_ctx *t = NULL, *old;
	struct material m = {0};
	int rc;

	srdma__err_clear();
	ENSURE(ctx, SRDMA_EINVAL, "srdma_ctx_reload: NULL context");
	rc = material_of(ctx, cfg, &m);
	if (rc == 0) {
		tc.server = ctx->cfg.role == SRDMA_ROLE_SERVER;
		tc.cert_file = m.cert;
		tc.key_file = m.key;
		tc.ca_file = m.ca;
		tc.crl_file = m.crl;
		tc.allow = (const char *const *)m.allow;
		tc.no_resumption = ctx->cfg.no_resumption;
		tc.defer_tickets = true;
		tc.ticket_rotate_s = ctx->cfg.ticket_rotate_s;
		rc = srdma__tls_ctx_reload(ctx->tls, &tc, &t);
	}
	if (rc < 0) {
		char d[512];

		srdma__err_copy(d, sizeof(d));
		material_free(&m);
		srdma__metric_add(ctx, SRDMA__M_RELOAD_FAILURES, 1);
		srdma__log(&ctx->log, SRDMA_LOG_WARN,
			   "reload failed, keeping the old certificates: %s",
			   d);
		return srdma__err(rc, "%s", d);
	}
	/* New handshakes use t; connections made so far keep the old
	 * context (their reference) until they are destroyed. */
	old = ctx->tls;
	ctx->tls = t;
	srdma__tls_ctx_destroy(old);
	free(ctx->s_cert);
	free(ctx->s_key);
	free(ctx->s_ca);
	free(ctx->s_crl);
	free_list(ctx->allow);
	ctx->cfg.cert_file = ctx->s_cert = m.cert;
	ctx->cfg.key_file = ctx->s_key = m.key;
	ctx->cfg.ca_file = ctx->s_ca = m.ca;
	ctx->cfg.crl_file = ctx->s_crl = m.crl;
	ctx->allow = m.allow;
	ctx->cfg.allow = (const char *const *)ctx->allow;
	srdma__metric_add(ctx, SRDMA__M_RELOADS, 1);
	srdma__log(&ctx->log, SRDMA_LOG_INFO,
		   "reloaded certificate %s, CA %s%s%s", ctx->s_cert, ctx->s_ca,
		   ctx->s_crl ? ", CRL " : "", ctx->s_crl ? ctx->s_crl : "");
	return 0;
}

/* ---- metrics ---- */

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

/* Every event passes here: the connection-level counters. */
static void count_event(struct srdma_ctx *ctx, enum srdma_event_type type,
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
	count_event(ctx, type, status, c);
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
static void pool_refill(struct srdma_ctx *ctx, uint32_t max_new)
{
	struct srdma__respool *p = &ctx->pool;

	if (srdma__respool_fill(ctx, max_new) == 0)
		return;
	srdma__log(&ctx->log, SRDMA_LOG_WARN,
		   "resource pool: keeping %u of %u spare connections: %s",
		   p->n, p->target, srdma_error_detail());
	p->target = p->n;
}

static void listeners_update(struct srdma_ctx *ctx, uint64_t now);

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
		pool_refill(ctx, 1);
	now = srdma__now_ms();
	srdma__conn_check_timeouts(ctx, now);
	if (ctx->listeners)
		listeners_update(ctx, now);
	return rc;
}

SRDMA_API int srdma_ctx_poll(srdma_ctx *ctx, struct srdma_event *evs, int max,
			     int timeout_ms)
{
	uint64_t deadline;
	int n = 0;

	ENSURE(ctx && evs && max > 0, SRDMA_EINVAL, "srdma_ctx_poll: bad args");
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
		e->next = ctx->delivered;
		ctx->delivered = e;
	}
	return n;
}

/* ---- listener ---- */

/*
 * Bursts are queued, not refused (issue 17). Below max_handshakes the
 * listening socket is watched and every connection accepted at once. At
 * the limit it is not watched: new connections wait in the kernel's listen
 * backlog (LISTEN_BACKLOG, capped by net.core.somaxconn) and are accepted
 * as handshake slots free up, in the order they came.
 *
 * So that idle connections cannot hold every slot until their timeout,
 * while connections wait the server closes a handshake that made no
 * progress (ctrl: no whole handshake message arrived) and accepts a
 * waiting one in its place. How long "no progress" must last depends on
 * what the peer did:
 *   - sent part of a record and stopped (a TLS client writes its
 *     ClientHello whole): SHED_PARTIAL_MS;
 *   - sent nothing: SHED_SILENT_MS. Longer, because a legitimate client
 *     in a busy process can be slow to write its ClientHello (a process
 *     starting hundreds of connections prepares each one's fabric endpoint
 *     before it gets to the next ClientHello);
 *   - sent its ClientHello and then stalled: SHED_STALLED_MS.
 * Among those due: that order, then the source address holding the most
 * slots (a per-source share: one host cannot crowd out the others), then
 * the longest idle. A handshake with bytes unread in its socket is not
 * idle, only not served yet. A legitimate client that was shed all the
 * same sees its handshake closed without an alert, the client's "busy"
 * signal, and connects again after a jittered backoff (api.c).
 */
enum {
	LISTEN_BACKLOG = 4096,
	SHED_PARTIAL_MS = 250,
	SHED_SILENT_MS = 1000,
	SHED_STALLED_MS = 3000,
	ACCEPT_HOLD_MS = 50, /* none could be shed after all: look again */
};

static bool in_tls(const struct srdma_conn *c)
{
	return c->server && c->state == ST_TLS && c->ctrl;
}

/* 0: a partial record; 1: silent; 2: stalled after its ClientHello. */
static int shed_tier(const struct srdma_conn *c)
{
	if (srdma__ctrl_progressed(c->ctrl))
		return 2;
	return srdma__ctrl_got_data(c->ctrl) ? 0 : 1;
}

/* When the handshake on c becomes sheddable. */
static uint64_t shed_after(const struct srdma_conn *c)
{
	static const uint64_t wait[3] = {SHED_PARTIAL_MS, SHED_SILENT_MS,
					 SHED_STALLED_MS};

	return srdma__ctrl_progress_ms(c->ctrl) + wait[shed_tier(c)];
}

static bool unread_bytes(int fd)
{
	int n = 0;

	return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* Length of the address part of "host:port". */
static size_t host_len(const char *peer)
{
	const char *colon = strrchr(peer, ':');

	return colon ? (size_t)(colon - peer) : strlen(peer);
}

static bool same_host(const struct srdma_conn *a, const struct srdma_conn *b)
{
	size_t n = host_len(a->peer_addr);

	return n == host_len(b->peer_addr) &&
	       !memcmp(a->peer_addr, b->peer_addr, n);
}

/* The handshake to close for a waiting connection, or NULL. */
static struct srdma_conn *pick_victim(struct srdma_ctx *ctx, uint64_t now)
{
	struct srdma_conn **hs, *best = NULL;
	uint32_t n = 0, best_share = 0;
	int best_tier = 0;

	hs = malloc(sizeof(*hs) * (ctx->handshakes + 1));
	if (!hs)
		return NULL;
	for (struct srdma_conn *c = ctx->conns; c && n <= ctx->handshakes;
	     c = c->next)
		if (in_tls(c))
			hs[n++] = c;
	for (uint32_t i = 0; i < n; i++) {
		struct srdma_conn *c = hs[i];
		int tier = shed_tier(c);
		uint32_t share = 0;
		bool better;

		if (now < shed_after(c) || unread_bytes(c->fd))
			continue;
		for (uint32_t k = 0; k < n; k++)
			share += same_host(c, hs[k]);
		better = !best || tier < best_tier ||
			 (tier == best_tier &&
			  (share > best_share ||
			   (share == best_share &&
			    srdma__ctrl_progress_ms(c->ctrl) <
				    srdma__ctrl_progress_ms(best->ctrl))));
		if (better) {
			best = c;
			best_share = share;
			best_tier = tier;
		}
	}
	free(hs);
	return best;
}

static void shed(struct srdma_ctx *ctx, struct srdma_conn *c, uint64_t now)
{
	char d[240];

	snprintf(d, sizeof(d),
		 "closed to make room: its TLS handshake made no progress for "
		 "%llu ms while connections waited (max_handshakes %u)",
		 (unsigned long long)(now - srdma__ctrl_progress_ms(c->ctrl)),
		 ctx->cfg.max_handshakes);
	srdma__metric_add(ctx, SRDMA__M_REFUSED + SRDMA_REFUSAL_SHED, 1);
	srdma__conn_fail(c, SRDMA_ELIMIT, d);
}

static bool backlog_waiting(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/*
 * Watch the listeners while a handshake slot is free, or one could be
 * freed by shedding; otherwise say when that may change (ctx->shed_at).
 */
static void listeners_update(struct srdma_ctx *ctx, uint64_t now)
{
	bool full = ctx->handshakes >= ctx->cfg.max_handshakes;
	bool want = !full;

	ctx->shed_at = 0;
	if (full && now < ctx->hold_until) {
		ctx->shed_at = ctx->hold_until;
	} else if (full) {
		uint64_t next = UINT64_MAX;

		for (struct srdma_conn *c = ctx->conns; c && !want;
		     c = c->next) {
			uint64_t t;

			if (!in_tls(c))
				continue;
			t = shed_after(c);
			if (t <= now)
				want = true;
			else if (t < next)
				next = t;
		}
		if (!want && next != UINT64_MAX)
			ctx->shed_at = next;
	}
	ctx->accept_paused = full;
	for (struct srdma_listener *l = ctx->listeners; l; l = l->next)
		if (l->armed != want &&
		    srdma__loop_mod(l->fd_reg, want ? EPOLLIN : 0) == 0)
			l->armed = want;
}

static void on_listen_fd(void *arg, uint32_t events)
{
	struct srdma_listener *l = arg;
	struct srdma_ctx *ctx = l->ctx;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char host[INET6_ADDRSTRLEN] = "?", peer[64];
		int fd;

		if (ctx->handshakes >= ctx->cfg.max_handshakes) {
			uint64_t now = srdma__now_ms();
			struct srdma_conn *v;

			if (!backlog_waiting(l->fd))
				return;
			v = pick_victim(ctx, now);
			if (!v) {
				ctx->hold_until = now + ACCEPT_HOLD_MS;
				listeners_update(ctx, now);
				return;
			}
			shed(ctx, v, now);
		}
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				srdma__log(&ctx->log, SRDMA_LOG_WARN,
					   "accept: %s", strerror(errno));
			return;
		}
		srdma__metric_add(ctx, SRDMA__M_ACCEPTED, 1);
		srdma__tune_ctrl_socket(fd);
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host),
			    NULL, 0, NI_NUMERICHOST);
		snprintf(peer, sizeof(peer), "%s:%u", host,
			 ntohs(((struct sockaddr_in *)&ss)->sin_port));
		if (srdma__conn_new_server(l, fd, peer) < 0) {
			char d[300];
			snprintf(d, sizeof(d), "refused %s: %s", peer,
				 srdma_error_detail());
			IGNORE_RESULT(srdma__queue_event(ctx, SRDMA_EV_REJECTED,
							 SRDMA_ENOMEM, NULL,
							 NULL, d, NULL));
		}
	}
}

/*
 * Server, once TLS is done: the client limits. The client is told why (the
 * caller fails the connection with this error).
 */
int srdma__ctx_admit(struct srdma_conn *c)
{
	struct srdma_ctx *ctx = c->ctx;
	const char *id;
	uint32_t same = 0;

	if (!c->server)
		return 0;
	if (ctx->nclients > ctx->cfg.max_clients) {
		srdma__metric_add(
			ctx, SRDMA__M_REFUSED + SRDMA_REFUSAL_MAX_CLIENTS, 1);
		return srdma__err(SRDMA_ELIMIT,
				  "the server is at its limit of %u clients; "
				  "try again later",
				  ctx->cfg.max_clients);
	}
	if (!ctx->cfg.max_per_identity)
		return 0;
	id = srdma__ctrl_peer_identity(c->ctrl);
	for (const struct srdma_conn *o = ctx->conns; o; o = o->next)
		if (o != c && o->server && o->tls_ok && o->state < ST_CLOSED &&
		    o->ctrl && !strcmp(srdma__ctrl_peer_identity(o->ctrl), id))
			same++;
	if (same < ctx->cfg.max_per_identity)
		return 0;
	srdma__metric_add(ctx, SRDMA__M_REFUSED + SRDMA_REFUSAL_PER_IDENTITY,
			  1);
	return srdma__err(SRDMA_ELIMIT,
			  "the server's limit of %u connection%s per identity "
			  "is reached for '%s' (max_per_identity): close one, "
			  "or try again later",
			  ctx->cfg.max_per_identity,
			  ctx->cfg.max_per_identity == 1 ? "" : "s", id);
}

SRDMA_API int srdma_listen(srdma_ctx *ctx, const char *host, uint16_t port,
			   srdma_listener **out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct srdma_listener *l;
	struct srdma__tp_listener_cb cb;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char portstr[8];
	int rc, one = 1;

	srdma__err_clear();
	ENSURE(ctx && out, SRDMA_EINVAL, "srdma_listen: NULL argument");
	ENSURE(ctx->cfg.role == SRDMA_ROLE_SERVER, SRDMA_ESTATE,
	       "srdma_listen needs a server context");
	l = calloc(1, sizeof(*l));
	ENSURE(l, SRDMA_ENOMEM, "out of memory");
	l->ctx = ctx;
	l->fd = -1;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc) {
		rc = srdma__err(SRDMA_ECONFIG, "cannot listen on %s:%u: %s",
				host ? host : "*", port, gai_strerror(rc));
		goto out_free;
	}
	l->fd = socket(ai->ai_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		rc = srdma__err(SRDMA_ESYS, "socket: %s", strerror(errno));
		goto out_free;
	}
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(l->fd, LISTEN_BACKLOG) < 0) {
		rc = srdma__err(errno == EADDRINUSE ? SRDMA_ECONFIG
						    : SRDMA_ESYS,
				"cannot listen on %s:%u: %s", host ? host : "*",
				port, strerror(errno));
		goto out_free;
	}
	getsockname(l->fd, (struct sockaddr *)&ss, &sl);
	l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

	cb.arg = l;
	cb.on_connreq = srdma__on_connreq;
	rc = ctx->tp->ops->listen(ctx->tp, host, 0, &cb, &l->tpl);
	if (rc < 0)
		goto out_free;
	l->fabric_port = ctx->tp->ops->listener_port(l->tpl);
	rc = srdma__loop_add(ctx->loop, l->fd, EPOLLIN, on_listen_fd, NULL, l,
			     &l->fd_reg);
	if (rc < 0)
		goto out_tpl;
	l->armed = true;
	freeaddrinfo(ai);
	l->next = ctx->listeners;
	ctx->listeners = l;
	srdma__log(&ctx->log, SRDMA_LOG_INFO,
		   "listening on %s:%u (control) and fabric port %u (%s)",
		   host ? host : "*", l->port, l->fabric_port,
		   srdma_transport_name(ctx->tp->kind));
	pool_refill(ctx, UINT32_MAX);
	*out = l;
	return 0;

out_tpl:
	ctx->tp->ops->listener_destroy(l->tpl);
out_free:
	if (ai)
		freeaddrinfo(ai);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
	return rc;
}

SRDMA_API uint16_t srdma_listener_port(const srdma_listener *l)
{
	return l ? l->port : 0;
}

SRDMA_API uint16_t srdma_listener_fabric_port(const srdma_listener *l)
{
	return l ? l->fabric_port : 0;
}

SRDMA_API void srdma_listener_destroy(srdma_listener *l)
{
	struct srdma_listener **pp;

	if (!l)
		return;
	for (pp = &l->ctx->listeners; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	for (struct srdma_conn *c = l->ctx->conns; c; c = c->next)
		if (c->listener == l)
			c->listener = NULL;
	srdma__loop_del(l->fd_reg);
	close(l->fd);
	l->ctx->tp->ops->listener_destroy(l->tpl);
	free(l);
}
