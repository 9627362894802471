/* SPDX-License-Identifier: MIT */
/*
 * The one-thread-at-a-time rule of srdma.h, checked: every public call that
 * touches a context's objects enters the context first. A second thread
 * that enters a context another thread is inside gets SRDMA_ESTATE and
 * changes nothing; the same thread may enter again (a call made from the
 * log callback, a public call made by another). It is a cheap diagnostic
 * (one compare-and-swap), not a lock: it turns the common misuse, two
 * threads driving one context, into an error instead of silent corruption.
 */
#ifndef SRDMA_SESSION_OWNER_H
#define SRDMA_SESSION_OWNER_H

#include "session/session.h"

/* What a public call entered; left when the variable goes out of scope. */
struct srdma__use {
	struct srdma_ctx *ctx;
};

/* Enters ctx for u (nothing to do for NULL); SRDMA_ESTATE, with a sentence
 * naming `what`, when another thread is inside it. */
int srdma__use_enter(struct srdma__use *u, struct srdma_ctx *ctx,
		     const char *what) SRDMA__WUR;
/* As srdma__use_enter, but also refuses a call nested inside another call
 * on the same context (destroying what the outer call is using). */
int srdma__use_enter_alone(struct srdma__use *u, struct srdma_ctx *ctx,
			   const char *what) SRDMA__WUR;
/* Leaves what u entered (for the cleanup attribute). */
void srdma__use_leave(struct srdma__use *u);
/* Forgets what u entered without leaving it (the context is gone). */
static inline void srdma__use_forget(struct srdma__use *u)
{
	u->ctx = NULL;
}

#define SRDMA__USING                                                           \
	struct srdma__use srdma__use_ __attribute__((cleanup(srdma__use_leave)))

/* The calling function uses ctx until it returns (int functions). */
#define USE_CTX(ctx, what)                                                     \
	SRDMA__USING = {0};                                                    \
	GUARD(srdma__use_enter(&srdma__use_, (ctx), (what)))

/* The same for functions that return nothing: a refused call does
 * nothing (srdma_error_detail() says why). */
#define USE_CTX_VOID(ctx, what)                                                \
	SRDMA__USING = {0};                                                    \
	if (srdma__use_enter(&srdma__use_, (ctx), (what)) < 0)                 \
	return

/* A connection's context; a connection whose context was destroyed
 * (detached) answers why it is closed. */
#define USE_CONN(c, what)                                                      \
	ENSURE((c), SRDMA_EINVAL, "%s: the connection is NULL", (what));       \
	if (!(c)->ctx)                                                         \
		return srdma__not_established(c);                              \
	USE_CTX((c)->ctx, (what))

#endif
