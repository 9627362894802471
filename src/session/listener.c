/* SPDX-License-Identifier: MIT */
/*
 * Listeners: the control port, accepting at max_handshakes (the backlog and
 * shedding idle handshakes), and the client limits checked after TLS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session/conn.h"
#include "session/metrics.h"
#include "session/owner.h"

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
void srdma__listeners_update(struct srdma_ctx *ctx, uint64_t now)
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
				srdma__listeners_update(ctx, now);
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
	USE_CTX(ctx, "srdma_listen");
	ENSURE(ctx->cfg.role == SRDMA_ROLE_SERVER, SRDMA_ESTATE,
	       "srdma_listen needs a server context");
	/* auto: verbs only if this address is on a usable RDMA device. */
	if (!ctx->listeners && !ctx->conns) {
		GUARD(srdma__tp_settle(&ctx->tp, host, true));
		srdma__log(&ctx->log, SRDMA_LOG_INFO, "transport %s: %s",
			   srdma_transport_name(ctx->tp->kind), ctx->tp->why);
	}
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
	l->next = ctx->listeners;
	ctx->listeners = l;
	srdma__log(&ctx->log, SRDMA_LOG_INFO,
		   "listening on %s:%u (control) and fabric port %u (%s)",
		   host ? host : "*", l->port, l->fabric_port,
		   srdma_transport_name(ctx->tp->kind));
	/* Spares on the device this address is on (wildcard: the default
	 * one); devices clients arrive on later get theirs then. */
	{
		int dev = ctx->tp->ops->dev_for_addr
				  ? ctx->tp->ops->dev_for_addr(
					    ctx->tp, host ? ai->ai_addr : NULL)
				  : 0;
		if (dev >= 0)
			srdma__respool_add_dev(ctx, dev);
	}
	freeaddrinfo(ai);
	srdma__respool_fit_memlock(ctx);
	srdma__pool_refill(ctx, UINT32_MAX);
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

/* Closes l (already unlinked from its context) and leaves the handle:
 * srdma_listener_destroy frees it (srdma.h, "Lifetimes"). */
void srdma__listener_release(struct srdma_listener *l)
{
	for (struct srdma_conn *c = l->ctx->conns; c; c = c->next)
		if (c->listener == l)
			c->listener = NULL;
	srdma__loop_del(l->fd_reg);
	l->fd_reg = NULL;
	close(l->fd);
	l->fd = -1;
	l->ctx->tp->ops->listener_destroy(l->tpl);
	l->tpl = NULL;
	l->ctx = NULL;
	l->next = NULL;
}

SRDMA_API void srdma_listener_destroy(srdma_listener *l)
{
	struct srdma_listener **pp;

	if (!l)
		return;
	if (l->ctx) { /* else detached: its context is gone */
		USE_CTX_VOID(l->ctx, "srdma_listener_destroy");
		for (pp = &l->ctx->listeners; *pp; pp = &(*pp)->next)
			if (*pp == l) {
				*pp = l->next;
				break;
			}
		srdma__listener_release(l);
	}
	free(l);
}
