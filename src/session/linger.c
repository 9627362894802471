/* SPDX-License-Identifier: MIT */
/*
 * Lingering close of refused or failed control connections. A server that
 * refuses an authenticated client sends ERROR and closes; if the client's
 * next bytes (its HELLO and PARAMS follow its TLS Finished at once) arrive
 * after close(), the kernel answers with a reset and the client loses the
 * ERROR it had not read yet. So the socket is half-closed (FIN after the
 * ERROR) and kept, draining whatever still arrives, until the client closes
 * or LINGER_MS pass. Bounded: past LINGER_MAX sockets it closes at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session/session.h"

enum { LINGER_MS = 500, LINGER_MAX = 256 };

struct srdma__linger {
	struct srdma_ctx *ctx;
	int fd;
	uint64_t deadline_ms;
	struct srdma__loop_fd *reg;
	struct srdma__linger *next, *prev;
};

/* Reads what is there; true once the peer closed or the socket broke. */
static bool drain(int fd)
{
	char buf[4096];

	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			continue;
		return n == 0 || (errno != EAGAIN && errno != EINTR);
	}
	return false;
}

static void finish(struct srdma__linger *l)
{
	struct srdma_ctx *ctx = l->ctx;

	srdma__loop_del(l->reg);
	close(l->fd);
	if (l->prev)
		l->prev->next = l->next;
	else
		ctx->lingers = l->next;
	if (l->next)
		l->next->prev = l->prev;
	ctx->nlingers--;
	free(l);
}

static void on_readable(void *arg, uint32_t events)
{
	struct srdma__linger *l = arg;

	if (drain(l->fd) || (events & (EPOLLHUP | EPOLLERR)))
		finish(l);
}

void srdma__linger_start(struct srdma_ctx *ctx, int fd)
{
	struct srdma__linger *l;

	if (fd < 0)
		return;
	shutdown(fd, SHUT_WR);
	if (drain(fd) || ctx->nlingers >= LINGER_MAX ||
	    !(l = calloc(1, sizeof(*l)))) {
		close(fd);
		return;
	}
	l->ctx = ctx;
	l->fd = fd;
	l->deadline_ms = srdma__now_ms() + LINGER_MS;
	if (srdma__loop_add(ctx->loop, fd, EPOLLIN | EPOLLRDHUP, on_readable,
			    NULL, l, &l->reg) < 0) {
		close(fd);
		free(l);
		return;
	}
	l->next = ctx->lingers;
	if (ctx->lingers)
		ctx->lingers->prev = l;
	ctx->lingers = l;
	ctx->nlingers++;
}

uint64_t srdma__linger_next_deadline(const struct srdma_ctx *ctx)
{
	uint64_t best = UINT64_MAX;

	for (const struct srdma__linger *l = ctx->lingers; l; l = l->next)
		if (l->deadline_ms < best)
			best = l->deadline_ms;
	return best;
}

void srdma__linger_expire(struct srdma_ctx *ctx, uint64_t now, bool all)
{
	struct srdma__linger *l, *next;

	for (l = ctx->lingers; l; l = next) {
		next = l->next;
		if (all || now >= l->deadline_ms)
			finish(l);
	}
}
