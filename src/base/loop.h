/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one epoll instance per context. Modules register file
 * descriptors with a handler; transports that must be re-armed before the
 * loop sleeps (libfabric's fi_trywait, verbs' ibv_req_notify_cq) register a
 * prepare hook. Only the thread that runs the loop calls handlers.
 */
#ifndef SRDMA_BASE_LOOP_H
#define SRDMA_BASE_LOOP_H

#include <stdint.h>

#include "base/err.h"

struct srdma__loop;

/* events: EPOLLIN/EPOLLOUT bits as received from epoll. */
typedef void (*srdma__fd_handler)(void *arg, uint32_t events);
/*
 * Called before the loop sleeps. Return 0 if it is safe to sleep, 1 if work
 * is already pending (the loop then polls its fds without sleeping and calls
 * the hook's companion handler). Pair with the handler given at add time.
 */
typedef int (*srdma__prepare_hook)(void *arg);

struct srdma__loop_fd; /* a registration */

int srdma__loop_create(struct srdma__loop **out) SRDMA__WUR;
void srdma__loop_destroy(struct srdma__loop *loop);
int srdma__loop_fd(const struct srdma__loop *loop);

/*
 * Registers fd for events (EPOLLIN|EPOLLOUT...). prepare may be NULL. When
 * prepare returns 1 the loop calls handler(arg, EPOLLIN) without sleeping.
 */
int srdma__loop_add(struct srdma__loop *loop, int fd, uint32_t events,
		    srdma__fd_handler handler, srdma__prepare_hook prepare,
		    void *arg, struct srdma__loop_fd **out) SRDMA__WUR;
int srdma__loop_mod(struct srdma__loop_fd *reg, uint32_t events) SRDMA__WUR;
/* Safe to call from inside any handler, including reg's own. NULL ok. */
void srdma__loop_del(struct srdma__loop_fd *reg);
/*
 * The owner did something to reg's object outside its handler (posted work,
 * started a close): its prepare hook runs again before the loop next sleeps.
 * Hooks run only for registrations that were added, fired or touched since
 * their hook last said "safe to sleep". NULL ok.
 */
void srdma__loop_touch(struct srdma__loop_fd *reg);

/*
 * Runs prepare hooks, waits up to timeout_ms (-1 forever, 0 none), calls
 * handlers for ready fds. Returns the number of handlers run, or <0.
 */
int srdma__loop_run_once(struct srdma__loop *loop, int timeout_ms) SRDMA__WUR;

/* Monotonic milliseconds. */
uint64_t srdma__now_ms(void);
uint64_t srdma__now_ns(void);

#endif
