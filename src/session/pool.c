/* SPDX-License-Identifier: MIT */
/*
 * Client connection pool. Every slot owns a context and at most one
 * connection, so lending a slot lends a whole single-threaded world: the
 * borrower may drive it from its own thread. The mutex guards only slot
 * bookkeeping; connecting and health checks run outside it, on a slot that
 * is marked busy, so no other thread touches that context meanwhile.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session/session.h"

enum {
	POOL_DEFAULT_MAX = 8,
	POOL_DEFAULT_IDLE_MS = 60000,
	POOL_DEFAULT_CONNECT_MS = 10000,
	/* An idle connection unused for longer gets a progress pass before it
	 * is lent, so a peer that went away is noticed then, not mid-use. */
	POOL_CHECK_AFTER_MS = 1000,
};

struct slot {
	srdma_ctx *ctx;
	srdma_conn *conn;
	bool busy;
	uint64_t last_used_ms;
};

struct srdma_pool {
	pthread_mutex_t lock;
	pthread_cond_t returned;
	struct srdma_config cfg;
	char *host;
	uint16_t port;
	uint32_t max, idle_ms;
	int connect_ms;
	struct slot *slots;
	uint32_t nslots; /* slots in use (have a ctx) */
	struct srdma_pool_stats st;
};

static bool conn_alive(struct srdma_conn *c)
{
	return c && c->state == ST_ESTABLISHED;
}

/* Progress without consuming events, then look at the state. */
static bool check_health(struct slot *s)
{
	if (!s->conn)
		return false;
	if (srdma__ctx_run(s->ctx, 0) < 0)
		return false;
	return conn_alive(s->conn);
}

SRDMA_API int srdma_pool_create(const struct srdma_pool_config *pc,
				srdma_pool **out)
{
	struct srdma_pool *p;

	srdma__err_clear();
	ENSURE(pc && pc->cfg && pc->host && pc->port && out, SRDMA_EINVAL,
	       "srdma_pool_create: missing configuration, host or port");
	ENSURE(pc->cfg->role == SRDMA_ROLE_CLIENT, SRDMA_EINVAL,
	       "a pool needs a client configuration");
	p = calloc(1, sizeof(*p));
	ENSURE(p, SRDMA_ENOMEM, "out of memory");
	p->cfg = *pc->cfg; /* strings are copied by each srdma_ctx_create */
	p->host = strdup(pc->host);
	p->port = pc->port;
	p->max = pc->max_conns ? pc->max_conns : POOL_DEFAULT_MAX;
	p->idle_ms = pc->idle_timeout_ms ? pc->idle_timeout_ms
					 : POOL_DEFAULT_IDLE_MS;
	p->connect_ms = pc->connect_timeout_ms > 0 ? pc->connect_timeout_ms
						   : POOL_DEFAULT_CONNECT_MS;
	p->slots = calloc(p->max, sizeof(*p->slots));
	if (!p->host || !p->slots) {
		free(p->host);
		free(p->slots);
		free(p);
		return srdma__err(SRDMA_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->returned, NULL);
	*out = p;
	return 0;
}

static void close_slot(struct slot *s)
{
	srdma_conn_destroy(s->conn);
	s->conn = NULL;
}

SRDMA_API void srdma_pool_destroy(srdma_pool *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->max; i++) {
		close_slot(&p->slots[i]);
		srdma_ctx_destroy(p->slots[i].ctx);
	}
	pthread_cond_destroy(&p->returned);
	pthread_mutex_destroy(&p->lock);
	free(p->slots);
	free(p->host);
	free(p);
}

/* Closes connections idle for too long. Takes and releases the lock; the
 * orderly close (which may wait for the peer) runs outside it, on slots
 * marked busy meanwhile. */
static void reap_idle(struct srdma_pool *p)
{
	struct slot *victims[16];
	uint64_t now = srdma__now_ms();
	int n = 0;

	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < p->max && n < 16; i++) {
		struct slot *s = &p->slots[i];
		if (!s->busy && s->conn && now - s->last_used_ms > p->idle_ms) {
			s->busy = true;
			victims[n++] = s;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (!n)
		return;
	for (int i = 0; i < n; i++)
		close_slot(victims[i]);
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < n; i++) {
		victims[i]->busy = false;
		p->st.open--;
		p->st.idle_closed++;
	}
	pthread_cond_broadcast(&p->returned);
	pthread_mutex_unlock(&p->lock);
}

static void abs_deadline(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Connects slot s (marked busy by the caller; lock not held). */
static int fill_slot(struct srdma_pool *p, struct slot *s)
{
	if (!s->ctx)
		GUARD(srdma_ctx_create(&p->cfg, &s->ctx));
	return srdma_connect(s->ctx, p->host, p->port, p->connect_ms, &s->conn);
}

SRDMA_API int srdma_pool_borrow(srdma_pool *p, int timeout_ms, srdma_conn **out)
{
	struct timespec dl;
	uint64_t now;
	int rc;

	ENSURE(p && out, SRDMA_EINVAL, "srdma_pool_borrow: NULL argument");
	*out = NULL;
	if (timeout_ms >= 0)
		abs_deadline(&dl, timeout_ms);
	reap_idle(p);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct slot *idle = NULL, *empty = NULL;

		now = srdma__now_ms();
		for (uint32_t i = 0; i < p->max; i++) {
			struct slot *s = &p->slots[i];
			if (s->busy)
				continue;
			if (s->conn && !idle)
				idle = s;
			else if (!s->conn && !empty)
				empty = s;
		}
		if (idle) {
			idle->busy = true;
			p->st.borrowed++;
			if (now - idle->last_used_ms <= POOL_CHECK_AFTER_MS &&
			    conn_alive(idle->conn)) {
				pthread_mutex_unlock(&p->lock);
				*out = idle->conn;
				return 0;
			}
			/* Check (and if needed replace) outside the lock. */
			pthread_mutex_unlock(&p->lock);
			if (check_health(idle)) {
				*out = idle->conn;
				return 0;
			}
			close_slot(idle);
			rc = fill_slot(p, idle);
			pthread_mutex_lock(&p->lock);
			p->st.replaced++;
			if (rc == 0) {
				p->st.connects++;
				pthread_mutex_unlock(&p->lock);
				*out = idle->conn;
				return 0;
			}
			idle->busy = false;
			p->st.borrowed--;
			p->st.open--;
			pthread_cond_signal(&p->returned);
			pthread_mutex_unlock(&p->lock);
			return rc;
		}
		if (empty) {
			char detail[512];
			empty->busy = true;
			p->st.borrowed++;
			p->st.open++;
			pthread_mutex_unlock(&p->lock);
			rc = fill_slot(p, empty);
			srdma__err_copy(detail, sizeof(detail));
			pthread_mutex_lock(&p->lock);
			if (rc == 0) {
				p->st.connects++;
				pthread_mutex_unlock(&p->lock);
				*out = empty->conn;
				return 0;
			}
			empty->busy = false;
			p->st.borrowed--;
			p->st.open--;
			pthread_cond_signal(&p->returned);
			pthread_mutex_unlock(&p->lock);
			return srdma__err(rc, "%s", detail);
		}
		/* All lent out: wait for a return. */
		if (timeout_ms < 0) {
			pthread_cond_wait(&p->returned, &p->lock);
		} else if (pthread_cond_timedwait(&p->returned, &p->lock,
						  &dl) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->lock);
			return srdma__err(SRDMA_ETIMEDOUT,
					  "all %u pooled connections stayed "
					  "borrowed for %d ms",
					  p->max, timeout_ms);
		}
	}
}

SRDMA_API void srdma_pool_return(srdma_pool *p, srdma_conn *c)
{
	if (!p || !c)
		return;
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < p->max; i++) {
		struct slot *s = &p->slots[i];
		if (s->conn != c || !s->busy)
			continue;
		/* A failed connection stays in its slot: the next borrower
		 * finds it dead and reconnects (outside this lock). */
		s->busy = false;
		s->last_used_ms = srdma__now_ms();
		p->st.borrowed--;
		pthread_cond_signal(&p->returned);
		break;
	}
	pthread_mutex_unlock(&p->lock);
}

SRDMA_API void srdma_pool_stats(srdma_pool *p, struct srdma_pool_stats *out)
{
	if (!p || !out)
		return;
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	pthread_mutex_unlock(&p->lock);
}
