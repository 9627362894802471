/* SPDX-License-Identifier: MIT */
/*
 * epoll loop. Registrations are heap objects; deleting one inside a handler
 * only marks it dead, and dead ones are freed after the dispatch round, so a
 * handler may delete any registration (its own included) safely.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"

struct srdma__loop_fd {
	struct srdma__loop *loop;
	int fd;
	uint32_t events;
	srdma__fd_handler handler;
	srdma__prepare_hook prepare;
	void *arg;
	int dead;
	struct srdma__loop_fd *next; /* all registrations */
};

struct srdma__loop {
	int epfd;
	int running; /* inside dispatch */
	struct srdma__loop_fd *regs;
};

uint64_t srdma__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t srdma__now_ms(void)
{
	return srdma__now_ns() / 1000000u;
}

int srdma__loop_create(struct srdma__loop **out)
{
	struct srdma__loop *loop = calloc(1, sizeof(*loop));

	ENSURE(loop, SRDMA_ENOMEM, "out of memory creating the event loop");
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int e = errno;
		free(loop);
		return srdma__err(SRDMA_ESYS, "epoll_create1: %s", strerror(e));
	}
	*out = loop;
	return 0;
}

static void reap(struct srdma__loop *loop)
{
	struct srdma__loop_fd **pp = &loop->regs;

	while (*pp) {
		struct srdma__loop_fd *r = *pp;
		if (r->dead) {
			*pp = r->next;
			free(r);
		} else {
			pp = &r->next;
		}
	}
}

void srdma__loop_destroy(struct srdma__loop *loop)
{
	if (!loop)
		return;
	while (loop->regs) {
		struct srdma__loop_fd *r = loop->regs;
		loop->regs = r->next;
		free(r);
	}
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop);
}

int srdma__loop_fd(const struct srdma__loop *loop)
{
	return loop->epfd;
}

int srdma__loop_add(struct srdma__loop *loop, int fd, uint32_t events,
		    srdma__fd_handler handler, srdma__prepare_hook prepare,
		    void *arg, struct srdma__loop_fd **out)
{
	struct srdma__loop_fd *r = calloc(1, sizeof(*r));
	struct epoll_event ev = {.events = events};

	ENSURE(r, SRDMA_ENOMEM, "out of memory registering fd %d", fd);
	r->loop = loop;
	r->fd = fd;
	r->events = events;
	r->handler = handler;
	r->prepare = prepare;
	r->arg = arg;
	ev.data.ptr = r;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;
		free(r);
		return srdma__err(SRDMA_ESYS, "epoll_ctl(ADD, fd %d): %s", fd,
				  strerror(e));
	}
	r->next = loop->regs;
	loop->regs = r;
	if (out)
		*out = r;
	return 0;
}

int srdma__loop_mod(struct srdma__loop_fd *r, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = r};

	if (r->events == events)
		return 0;
	if (epoll_ctl(r->loop->epfd, EPOLL_CTL_MOD, r->fd, &ev) < 0)
		return srdma__err(SRDMA_ESYS, "epoll_ctl(MOD, fd %d): %s",
				  r->fd, strerror(errno));
	r->events = events;
	return 0;
}

void srdma__loop_del(struct srdma__loop_fd *r)
{
	if (!r || r->dead)
		return;
	/* The fd may already be closed by its owner: ignore errors. */
	epoll_ctl(r->loop->epfd, EPOLL_CTL_DEL, r->fd, NULL);
	r->dead = 1;
	if (!r->loop->running)
		reap(r->loop);
}

int srdma__loop_run_once(struct srdma__loop *loop, int timeout_ms)
{
	struct epoll_event evs[64];
	struct srdma__loop_fd *r;
	int n, i, ran = 0, pending = 0;

	loop->running = 1;
	/* Prepare hooks: re-arm; a hook with work pending runs right away. */
	for (r = loop->regs; r; r = r->next) {
		if (r->dead || !r->prepare)
			continue;
		if (r->prepare(r->arg) > 0) {
			pending = 1;
			r->handler(r->arg, EPOLLIN);
			ran++;
		}
	}
	if (pending)
		timeout_ms = 0;
	do {
		n = epoll_wait(loop->epfd, evs, 64, timeout_ms);
	} while (n < 0 && errno == EINTR && timeout_ms == 0);
	if (n < 0) {
		int e = errno;
		loop->running = 0;
		reap(loop);
		if (e == EINTR)
			return ran;
		return srdma__err(SRDMA_ESYS, "epoll_wait: %s", strerror(e));
	}
	for (i = 0; i < n; i++) {
		r = evs[i].data.ptr;
		if (r->dead)
			continue;
		r->handler(r->arg, evs[i].events);
		ran++;
	}
	loop->running = 0;
	reap(loop);
	return ran;
}
