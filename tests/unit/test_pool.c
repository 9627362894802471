/* SPDX-License-Identifier: MIT */
/*
 * The client connection pool against real servers (libfabric tcp on
 * 127.0.0.1, each server polled in its own thread): concurrent borrowers,
 * failover of a connection the server dropped, a full server refusing the
 * pool's extra connection while the pool keeps the ones it has, idle
 * closing, and the cost of a borrow plus return.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srdma.h"
#include "ctrl/ctrl.h"
#include "test.h"
#include "test_pki.h"

static char dir[256];

struct server {
	uint32_t max_clients;
	atomic_int stop;
	atomic_int port;
	atomic_int accepted;
	pthread_t th;
};

static void quiet(void *arg, int level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
}

/* Echo server; a message "DIE" makes it drop that client. */
static void *server_main(void *arg)
{
	struct server *sv = arg;
	struct srdma_config cfg;
	struct srdma_event evs[16];
	srdma_ctx *ctx;
	srdma_listener *l;

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.max_clients = sv->max_clients;
	cfg.log_fn = quiet;
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, "127.0.0.1", 0, &l) < 0) {
		fprintf(stderr, "server: %s\n", srdma_error_detail());
		sv->port = -1;
		return NULL;
	}
	sv->port = srdma_listener_port(l);
	while (!sv->stop) {
		srdma_conn *drop[16];
		int nd = 0, n = srdma_ctx_poll(ctx, evs, 16, 20);
		for (int i = 0; i < n; i++) {
			if (evs[i].type == SRDMA_EV_ACCEPTED)
				sv->accepted++;
			if (evs[i].type == SRDMA_EV_RECV) {
				if (evs[i].len == 3 &&
				    !memcmp(evs[i].data, "DIE", 3))
					drop[nd++] = evs[i].conn;
				else
					IGNORE_RESULT(srdma_send(evs[i].conn,
								 evs[i].data,
								 evs[i].len));
			}
			if (evs[i].type == SRDMA_EV_CLOSED)
				drop[nd++] = evs[i].conn;
		}
		for (int i = 0; i < nd; i++)
			srdma_conn_destroy(drop[i]);
	}
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx);
	return NULL;
}

static void server_start(struct server *sv, uint32_t max_clients)
{
	memset(sv, 0, sizeof(*sv));
	sv->max_clients = max_clients;
	pthread_create(&sv->th, NULL, server_main, sv);
	for (int i = 0; i < 300 && sv->port == 0; i++)
		usleep(10000);
	CHECK(sv->port > 0);
}

static void server_stop(struct server *sv)
{
	sv->stop = 1;
	pthread_join(sv->th, NULL);
}

static int echo(srdma_conn *c, int i)
{
	char out[32], in[32];
	size_t got = 0;
	int n = snprintf(out, sizeof(out), "hello %d", i);

	if (srdma_send_sync(c, out, (size_t)n, 5000) < 0 ||
	    srdma_recv(c, in, sizeof(in), &got, 5000) < 0)
		return -1;
	return got == (size_t)n && !memcmp(in, out, got) ? 0 : -1;
}

struct worker {
	srdma_pool *pool;
	int ok, failed;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 40; i++) {
		srdma_conn *c;
		if (srdma_pool_borrow(w->pool, 10000, &c) < 0) {
			w->failed++;
			continue;
		}
		if (echo(c, i) == 0)
			w->ok++;
		else
			w->failed++;
		srdma_pool_return(w->pool, c);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_pool(uint16_t port)
{
	struct srdma_config cfg;
	struct srdma_pool_config pc = {0};
	struct srdma_pool_stats st;
	struct worker w[4];
	pthread_t th[4];
	srdma_pool *pool;
	srdma_conn *c, *c2;
	enum { N = 2000 };
	static uint64_t lat[N];

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.log_fn = quiet;
	pc.cfg = &cfg;
	pc.host = "127.0.0.1";
	pc.port = port;
	pc.max_conns = 3;
	CHECK_RC(srdma_pool_create(&pc, &pool), 0);

	/* Four threads share three connections. */
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.pool = pool};
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].ok == 40 && w[i].failed == 0);
	}
	srdma_pool_stats(pool, &st);
	CHECK(st.open <= 3 && st.open >= 1);
	CHECK(st.borrowed == 0);
	CHECK(st.connects <= 3);

	/* A borrow plus return on a warm pool. */
	for (int i = 0; i < N; i++) {
		uint64_t t = now_ns();
		if (srdma_pool_borrow(pool, 1000, &c) < 0)
			break;
		srdma_pool_return(pool, c);
		lat[i] = now_ns() - t;
	}
	qsort(lat, N, sizeof(lat[0]), cmp_u64);
	printf("pool: borrow+return median %.3f us, p99 %.3f us\n",
	       lat[N / 2] / 1000.0, lat[N * 99 / 100] / 1000.0);

	/* Failover: the server drops a borrowed connection; the borrower
	 * gets the error, the next borrower a working replacement. */
	CHECK_RC(srdma_pool_borrow(pool, 1000, &c), 0);
	CHECK_RC(srdma_send_sync(c, "DIE", 3, 1000), 0);
	{
		char b[8];
		size_t got;
		int rc = srdma_recv(c, b, sizeof(b), &got, 5000);
		CHECK(rc == SRDMA_ECLOSED || rc == SRDMA_EPEER);
	}
	srdma_pool_return(pool, c);
	for (int i = 0; i < 3; i++) {
		srdma_conn *all[3];
		int k = 0;
		for (; k < 3; k++)
			if (srdma_pool_borrow(pool, 5000, &all[k]) < 0)
				break;
		CHECK(k == 3);
		for (int j = 0; j < k; j++) {
			CHECK(echo(all[j], j) == 0);
			srdma_pool_return(pool, all[j]);
		}
	}
	srdma_pool_stats(pool, &st);
	CHECK(st.replaced >= 1);

	/* All lent out: a fourth borrower times out. */
	{
		srdma_conn *all[3];
		for (int k = 0; k < 3; k++)
			CHECK_RC(srdma_pool_borrow(pool, 5000, &all[k]), 0);
		CHECK_RC(srdma_pool_borrow(pool, 100, &c2), SRDMA_ETIMEDOUT);
		for (int k = 0; k < 3; k++)
			srdma_pool_return(pool, all[k]);
	}
	srdma_pool_destroy(pool);

	/* Idle connections are closed after the timeout. */
	pc.idle_timeout_ms = 100;
	CHECK_RC(srdma_pool_create(&pc, &pool), 0);
	CHECK_RC(srdma_pool_borrow(pool, 5000, &c), 0);
	srdma_pool_return(pool, c);
	usleep(300000);
	CHECK_RC(srdma_pool_borrow(pool, 5000, &c), 0);
	CHECK(echo(c, 1) == 0);
	srdma_pool_return(pool, c);
	srdma_pool_stats(pool, &st);
	CHECK(st.idle_closed == 1 && st.connects == 2);
	srdma_pool_destroy(pool);
}

/* A server that takes 2 clients: the pool's third connect is refused with
 * a clear error and the pool keeps the two it has. */
static void test_full_server(uint16_t port)
{
	struct srdma_config cfg;
	struct srdma_pool_config pc = {0};
	struct srdma_pool_stats st;
	srdma_pool *pool;
	srdma_conn *c[3];

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.log_fn = quiet;
	pc.cfg = &cfg;
	pc.host = "127.0.0.1";
	pc.port = port;
	pc.max_conns = 3;
	CHECK_RC(srdma_pool_create(&pc, &pool), 0);
	CHECK_RC(srdma_pool_borrow(pool, 5000, &c[0]), 0);
	CHECK_RC(srdma_pool_borrow(pool, 5000, &c[1]), 0);
	CHECK_RC(srdma_pool_borrow(pool, 5000, &c[2]), SRDMA_ELIMIT);
	CHECK(strstr(srdma_error_detail(), "limit") != NULL);
	CHECK(echo(c[0], 0) == 0 && echo(c[1], 1) == 0);
	srdma_pool_stats(pool, &st);
	CHECK(st.open == 2 && st.borrowed == 2);
	srdma_pool_return(pool, c[0]);
	srdma_pool_return(pool, c[1]);
	srdma_pool_destroy(pool);
}

int main(void)
{
	struct server a, b;

	if (test_pki_make(dir, sizeof(dir), "test_pool", NULL) < 0)
		return 1;
	server_start(&a, 0);
	server_start(&b, 2);
	if (a.port > 0 && b.port > 0) {
		test_pool((uint16_t)a.port);
		test_full_server((uint16_t)b.port);
	}
	server_stop(&a);
	server_stop(&b);
	test_pki_remove(dir);
	TEST_DONE();
}
