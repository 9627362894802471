/* SPDX-License-Identifier: MIT */
/*
 * A small event-loop server for public-API tests, in its own thread over
 * libfabric tcp on 127.0.0.1 (include after test.h): it echoes messages,
 * may grant every client a region on ACCEPTED (or a moment later), and
 * destroys what it made in a chosen order, so tests of lifetimes run under
 * ASan on both sides.
 */
#ifndef SRDMA_TEST_SERVER_H
#define SRDMA_TEST_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "srdma.h"

enum { TSRV_MAX = 64 };

/* What the server destroys first when it stops, with clients still on. */
enum tsrv_order {
	TSRV_CHILDREN_FIRST,  /* regions, connections, listener, context */
	TSRV_CTX_FIRST,	      /* context, then regions, connections, listener */
	TSRV_CTX_CONN_REGION, /* context, connections, regions, listener */
};

struct tsrv {
	/* set before tsrv_start */
	const char *dir;
	enum srdma_protect min;
	uint64_t region_len; /* 0: grant nothing */
	int region_access;
	int grant_delay_ms; /* grant this long after ACCEPTED */
	uint64_t quota;	    /* 0: the default */
	bool abort_refused; /* a region it cannot make: abort the client with
			       the reason (as srdma serve does), no error */
	enum tsrv_order order;
	/* results */
	atomic_int port, accepted, closed, errors, refused, stop;
	pthread_t th;
	struct {
		srdma_conn *conn;
		srdma_region *region;
		struct timespec at; /* accepted at */
		bool granted;	    /* tried */
	} cl[TSRV_MAX];
};

static inline void tsrv_quiet(void *arg, int level, const char *line)
{
	(void)arg, (void)level, (void)line;
}

static inline long tsrv_ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 +
	       (now.tv_nsec - t->tv_nsec) / 1000000;
}

static inline void tsrv_grant(struct tsrv *s, int i)
{
	if (!s->region_len || s->cl[i].region || s->cl[i].granted)
		return;
	s->cl[i].granted = true;
	int rc = srdma_region_create(s->cl[i].conn, s->region_len,
				     s->region_access, &s->cl[i].region);

	if (rc < 0 && s->abort_refused) {
		s->refused++;
		srdma_conn_abort(s->cl[i].conn, rc, srdma_error_detail());
		return;
	}
	/* A client that left at once is no error of the server's. */
	if (rc < 0 && rc != SRDMA_ECLOSED && rc != SRDMA_ESTATE) {
		fprintf(stderr, "test server: region: %s\n",
			srdma_error_detail());
		s->errors++;
	}
}

static inline void tsrv_drop(struct tsrv *s, srdma_conn *c)
{
	for (int i = 0; i < TSRV_MAX; i++)
		if (s->cl[i].conn == c) {
			srdma_region_destroy(s->cl[i].region);
			srdma_conn_destroy(c);
			s->cl[i].conn = NULL;
			s->cl[i].region = NULL;
			s->cl[i].granted = false;
			return;
		}
	srdma_conn_destroy(c);
}

static inline void *tsrv_main(void *arg)
{
	struct tsrv *s = arg;
	struct srdma_config cfg;
	struct srdma_event evs[32];
	srdma_listener *l = NULL;
	srdma_ctx *ctx = NULL;

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = s->dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = s->min;
	cfg.client_quota = s->quota;
	cfg.log_fn = tsrv_quiet;
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, "127.0.0.1", 0, &l) < 0) {
		fprintf(stderr, "test server: %s\n", srdma_error_detail());
		srdma_ctx_destroy(ctx);
		s->port = -1;
		return NULL;
	}
	s->port = srdma_listener_port(l);
	while (!s->stop) {
		int n = srdma_ctx_poll(ctx, evs, 32, 10);
		srdma_conn *dead[32];
		int ndead = 0;

		if (n < 0) {
			fprintf(stderr, "test server: poll: %s\n",
				srdma_error_detail());
			s->errors++;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct srdma_event *e = &evs[i];
			int k;
			switch (e->type) {
			case SRDMA_EV_ACCEPTED:
				s->accepted++;
				for (k = 0; k < TSRV_MAX && s->cl[k].conn; k++)
					;
				if (k == TSRV_MAX) {
					dead[ndead++] = e->conn;
					break;
				}
				s->cl[k].conn = e->conn;
				s->cl[k].granted = false;
				clock_gettime(CLOCK_MONOTONIC, &s->cl[k].at);
				if (!s->grant_delay_ms)
					tsrv_grant(s, k);
				break;
			case SRDMA_EV_RECV:
				if (srdma_send(e->conn, e->data, e->len) < 0)
					s->errors++;
				break;
			case SRDMA_EV_CLOSED:
				s->closed++;
				dead[ndead++] = e->conn;
				break;
			default:
				break;
			}
		}
		/* After the batch: later events in it may name them. */
		for (int k = 0; k < ndead; k++)
			tsrv_drop(s, dead[k]);
		for (int k = 0; k < TSRV_MAX; k++)
			if (s->cl[k].conn && s->grant_delay_ms &&
			    tsrv_ms_since(&s->cl[k].at) >= s->grant_delay_ms)
				tsrv_grant(s, k);
	}
	if (s->order != TSRV_CHILDREN_FIRST)
		srdma_ctx_destroy(ctx);
	for (int k = 0; k < TSRV_MAX; k++) {
		if (s->order == TSRV_CTX_CONN_REGION)
			srdma_conn_destroy(s->cl[k].conn);
		srdma_region_destroy(s->cl[k].region);
		if (s->order != TSRV_CTX_CONN_REGION)
			srdma_conn_destroy(s->cl[k].conn);
		s->cl[k].conn = NULL;
		s->cl[k].region = NULL;
	}
	srdma_listener_destroy(l);
	if (s->order == TSRV_CHILDREN_FIRST)
		srdma_ctx_destroy(ctx);
	return NULL;
}

/* Starts s in its thread; returns its control port, or 0. */
static inline int tsrv_start(struct tsrv *s)
{
	s->port = 0;
	s->stop = 0;
	if (pthread_create(&s->th, NULL, tsrv_main, s) != 0)
		return 0;
	for (int i = 0; i < 1000 && s->port == 0; i++)
		usleep(10000);
	return s->port > 0 ? s->port : 0;
}

static inline void tsrv_stop(struct tsrv *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
}

/* A client context of this test's PKI, quiet, over libfabric tcp. */
static inline srdma_ctx *tsrv_client_ctx(const char *dir, enum srdma_protect p)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = p;
	cfg.log_fn = tsrv_quiet;
	if (srdma_ctx_create(&cfg, &ctx) < 0)
		fprintf(stderr, "client context: %s\n", srdma_error_detail());
	return ctx;
}

#endif
