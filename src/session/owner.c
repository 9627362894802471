/* SPDX-License-Identifier: MIT */
/*
 * Which thread is inside a context (owner.h). The owner is the address of
 * a thread-local byte: unique among live threads, and cleared before a
 * thread could end while inside.
 */
#include <stdatomic.h>

#include "session/owner.h"

static _Thread_local char self_marker;

static uintptr_t self(void)
{
	return (uintptr_t)&self_marker;
}

static int enter(struct srdma__use *u, struct srdma_ctx *ctx, const char *what,
		 bool alone)
{
	uintptr_t none = 0;

	u->ctx = NULL;
	if (!ctx)
		return 0;
	/* Acquire pairs with the release in srdma__use_leave: a context
	 * handed from one thread to another is seen whole. */
	if (atomic_compare_exchange_strong_explicit(&ctx->owner, &none, self(),
						    memory_order_acquire,
						    memory_order_relaxed)) {
		ctx->owner_depth = 1;
		u->ctx = ctx;
		return 0;
	}
	ENSURE(none == self(), SRDMA_ESTATE,
	       "%s: another thread is using this context right now (a "
	       "context and its listeners, connections and regions belong to "
	       "one thread at a time; give each thread its own context)",
	       what);
	ENSURE(!alone, SRDMA_ESTATE,
	       "%s: called from inside another call on the same context (a "
	       "log callback); call it after that call returns",
	       what);
	ctx->owner_depth++;
	u->ctx = ctx;
	return 0;
}

int srdma__use_enter(struct srdma__use *u, struct srdma_ctx *ctx,
		     const char *what)
{
	return enter(u, ctx, what, false);
}

int srdma__use_enter_alone(struct srdma__use *u, struct srdma_ctx *ctx,
			   const char *what)
{
	return enter(u, ctx, what, true);
}

void srdma__use_leave(struct srdma__use *u)
{
	struct srdma_ctx *ctx = u->ctx;

	if (!ctx)
		return;
	u->ctx = NULL;
	if (--ctx->owner_depth == 0)
		atomic_store_explicit(&ctx->owner, 0, memory_order_release);
}
