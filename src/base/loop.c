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

#include "base/loop.h"

struct srdma__loop_fd {
	struct srdma__loop *loop;
	int fd;
	uint32_t events;
	srdma__fd_handler handler;
	srdma__prepare_hook prepare;
	void *arg;
	int dead;
	/* Prepare hooks: a registration is queued on the prep list when it
	 * was added, fired or touched; off the list it is armed (its hook
	 * said "safe to sleep" and nothing happened since), so a loop with
	 * many idle connections does not re-arm every one on every pass. */
	int queued;
	struct srdma__loop_fd *next;	  /* all registrations */
	struct srdma__loop_fd *prep_next; /* prep list */
};

struct srdma__loop {
	int epfd;
	int running; /* inside dispatch */
	int ndead;   /* registrations waiting to be freed */
	struct srdma__loop_fd *regs;
	struct srdma__loop_fd *prep; /* unarmed registrations with a hook */
};

/* Queue r's prepare hook for the next pass. */
static void unarm(struct srdma__loop_fd *r)
{
	if (r->queued || !r->prepare || r->dead)
		return;
	r->queued = 1;
	r->prep_next = r->loop->prep;
	r->loop->prep = r;
}

void srdma__loop_touch(struct srdma__loop_fd *r)
{
	if (r)
		unarm(r);
}

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
	struct srdma__loop_fd **pp;

	if (!loop->ndead)
		return;
	/* Dead ones leave the prep list first (it is only walked here and
	 * in run_once, never while a registration is being freed). */
	for (pp = &loop->prep; *pp;) {
		if ((*pp)->dead) {
			(*pp)->queued = 0;
			*pp = (*pp)->prep_next;
		} else {
			pp = &(*pp)->prep_next;
		}
	}
	loop->ndead = 0;
	pp = &loop->regs;
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
	unarm(r);
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
	r->loop->ndead++;
	if (!r->loop->running)
		reap(r->loop);
}

int srdma__loop_run_once(struct srdma__loop *loop, int timeout_ms)
{
	struct epoll_event evs[64];
	struct srdma__loop_fd *r;
	int n, i, ran = 0, pending = 0;

	loop->running = 1;
	/*
	 * Prepare hooks of the unarmed registrations: re-arm; a hook with
	 * work pending runs its handler right away (and stays queued). The
	 * list is taken first: handlers may queue registrations again.
	 */
	{
		struct srdma__loop_fd *list = loop->prep, *nx;

		loop->prep = NULL;
		for (r = list; r; r = nx) {
			nx = r->prep_next;
			r->queued = 0;
			if (r->dead)
				continue;
			if (r->prepare(r->arg) > 0) {
				pending = 1;
				r->handler(r->arg, EPOLLIN);
				unarm(r);
				ran++;
			}
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
		unarm(r);
		r->handler(r->arg, evs[i].events);
		ran++;
	}
	loop->running = 0;
	reap(loop);
	return ran;
}
