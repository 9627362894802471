/* SPDX-License-Identifier: MIT */
/*
 * One thread at a time per context (srdma.h, "Threading"), checked: a call
 * from a second thread while another is inside the context fails with
 * SRDMA_ESTATE and changes nothing, destroys included; the same thread may
 * call in again from the log callback; two threads hammering two
 * connections of one context get SRDMA_ESTATE, never a corrupted
 * connection (issue 18: "EVP cipher final failed", "the peer returned more
 * credits than it had"). Public API only, over libfabric tcp.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "srdma.h"
#include "test.h"
#include "test_pki.h"
#include "test_server.h"

static char dir[256];
static int port;

/* An echo and a verified write and read back: the connection is sound. */
static void check_sound(srdma_conn *c, const char *who)
{
	char msg[64], back[64];
	uint8_t data[8192], got[8192];
	size_t len = 0;
	uint64_t rlen;
	int region;

	snprintf(msg, sizeof(msg), "sound %s", who);
	CHECK_RC(srdma_send_sync(c, msg, strlen(msg), 5000), 0);
	CHECK_RC(srdma_recv(c, back, sizeof(back), &len, 5000), 0);
	CHECK(len == strlen(msg) && !memcmp(msg, back, len));
	region = srdma_conn_wait_region(c, 0, 5000, &rlen);
	CHECK(region > 0);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + (size_t)who[0]);
	CHECK_RC(srdma_write_sync(c, (uint32_t)region, 0, data, sizeof(data),
				  5000),
		 0);
	CHECK_RC(
		srdma_read_sync(c, (uint32_t)region, 0, got, sizeof(got), 5000),
		0);
	CHECK(!memcmp(data, got, sizeof(data)));
}

/* ---- a second thread while one is inside ---- */

struct inside {
	srdma_conn *c;
	int rc;
	atomic_int entered;
};

static void *recv_main(void *arg)
{
	struct inside *in = arg;
	char buf[64];
	size_t len;

	in->entered = 1;
	/* Nothing comes: inside the context for the whole timeout. */
	in->rc = srdma_recv(in->c, buf, sizeof(buf), &len, 800);
	return NULL;
}

static void test_refused(void)
{
	srdma_ctx *ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
	srdma_conn *c1 = NULL, *c2 = NULL, *c3 = NULL;
	srdma_region *r = NULL;
	struct inside in = {0};
	struct srdma_event ev[4];
	pthread_t th;
	uint64_t len;

	CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000, &c1),
		 0);
	CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000, &c2),
		 0);
	if (!c1 || !c2)
		return;
	CHECK(srdma_conn_wait_region(c2, 0, 5000, &len) > 0);
	in.c = c1;
	pthread_create(&th, NULL, recv_main, &in);
	while (!in.entered)
		sched_yield();
	usleep(200000); /* it is inside srdma_recv now */

	/* Every call on the context from here is refused, on either
	 * connection, and says why. */
	CHECK_RC(srdma_send(c2, "x", 1), SRDMA_ESTATE);
	CHECK(strstr(srdma_error_detail(), "another thread") != NULL);
	CHECK(strstr(srdma_error_detail(), "srdma_send") != NULL);
	CHECK_RC(srdma_send(c1, "x", 1), SRDMA_ESTATE);
	CHECK_RC(srdma_write_sync(c2, 1, 0, "x", 1, 100), SRDMA_ESTATE);
	CHECK_RC(srdma_ctx_poll(ctx, ev, 4, 0), SRDMA_ESTATE);
	CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 100, &c3),
		 SRDMA_ESTATE);
	CHECK(c3 == NULL);
	CHECK_RC(srdma_region_create(c2, 4096, SRDMA_ACCESS_REMOTE_READ, &r),
		 SRDMA_ESTATE);
	CHECK_RC(srdma_conn_close(c2), SRDMA_ESTATE);
	/* Destroys do nothing, and say so. */
	srdma_conn_destroy(c2);
	CHECK(strstr(srdma_error_detail(), "srdma_conn_destroy") != NULL);
	srdma_ctx_destroy(ctx);
	CHECK(strstr(srdma_error_detail(), "srdma_ctx_destroy") != NULL);
	/* The getters of fixed attributes answer from any thread. */
	CHECK(srdma_ctx_fd(ctx) >= 0);

	pthread_join(th, NULL);
	CHECK_RC(in.rc, SRDMA_ETIMEDOUT);
	/* Handed over between calls: this thread may use it now, and
	 * nothing was harmed. */
	check_sound(c1, "c1");
	check_sound(c2, "c2");
	srdma_conn_destroy(c1);
	srdma_conn_destroy(c2);
	srdma_ctx_destroy(ctx);
}

/* ---- the same thread, from the log callback ---- */

static srdma_ctx *nest_ctx;
static srdma_conn *nest_conn;
static atomic_int nest_armed;
static int nest_info_rc, nest_calls;
static char nest_destroy_detail[512], nest_ctx_detail[512];

static void nest_log(void *arg, int level, const char *line)
{
	struct srdma_conn_info ci;

	(void)arg, (void)level, (void)line;
	if (!nest_armed)
		return;
	nest_armed = 0;
	nest_calls++;
	nest_info_rc = srdma_conn_info(nest_conn, &ci);
	srdma_conn_destroy(nest_conn);
	snprintf(nest_destroy_detail, sizeof(nest_destroy_detail), "%s",
		 srdma_error_detail());
	srdma_ctx_destroy(nest_ctx);
	snprintf(nest_ctx_detail, sizeof(nest_ctx_detail), "%s",
		 srdma_error_detail());
}

static void test_nested(void)
{
	struct srdma_config cfg;
	struct srdma_conn_info ci;
	struct srdma_event ev[8];
	int closed = 0;

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.log_fn = nest_log;
	cfg.log_level = SRDMA_LOG_DEBUG;
	CHECK_RC(srdma_ctx_create(&cfg, &nest_ctx), 0);
	CHECK_RC(srdma_connect(nest_ctx, "127.0.0.1", (uint16_t)port, 10000,
			       &nest_conn),
		 0);
	if (!nest_conn)
		return;
	nest_armed = 1;
	CHECK_RC(srdma_conn_close(nest_conn), 0);
	for (int i = 0; i < 100 && !closed; i++) {
		int n = srdma_ctx_poll(nest_ctx, ev, 8, 50);
		for (int k = 0; k < n; k++)
			closed |= ev[k].type == SRDMA_EV_CLOSED;
	}
	CHECK(closed);
	CHECK(nest_calls == 1);
	/* A nested call works; a nested destroy is refused. */
	CHECK_RC(nest_info_rc, 0);
	CHECK(strstr(nest_destroy_detail, "from inside another call") != NULL);
	CHECK(strstr(nest_ctx_detail, "from inside another call") != NULL);
	CHECK_RC(srdma_conn_info(nest_conn, &ci), 0);
	srdma_conn_destroy(nest_conn);
	srdma_ctx_destroy(nest_ctx);
}

/* ---- two threads hammering one context ---- */

enum { ROUNDS = 400, MORE_MS = 10000 };

struct hammer {
	srdma_conn *c;
	char name;
	int estate, errors, done;
};

static pthread_barrier_t start_line;
static atomic_int refusals; /* both threads' SRDMA_ESTATE so far */

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	char msg[32], back[64];
	struct timespec t0;
	size_t len;
	int rc;

	pthread_barrier_wait(&start_line);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* ROUNDS each, and on until the threads have met (a refusal), for
	 * at most MORE_MS: they start together, so they meet at once. */
	for (int i = 0; h->errors == 0 &&
			(i < ROUNDS || (!refusals && ms_since(&t0) < MORE_MS));
	     i++) {
		snprintf(msg, sizeof(msg), "%c %d", h->name, i);
		while ((rc = srdma_send_sync(h->c, msg, strlen(msg), 5000)) ==
		       SRDMA_ESTATE) {
			h->estate++;
			refusals++;
			sched_yield();
		}
		if (rc < 0) {
			fprintf(stderr, "%c send: %s\n", h->name,
				srdma_error_detail());
			h->errors++;
			break;
		}
		while ((rc = srdma_recv(h->c, back, sizeof(back), &len,
					5000)) == SRDMA_ESTATE) {
			h->estate++;
			refusals++;
			sched_yield();
		}
		if (rc < 0 || len != strlen(msg) || memcmp(msg, back, len)) {
			fprintf(stderr, "%c recv: %d %s\n", h->name, rc,
				rc < 0 ? srdma_error_detail() : "wrong echo");
			h->errors++;
			break;
		}
		h->done++;
	}
	return NULL;
}

static void test_hammer(void)
{
	srdma_ctx *ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
	struct hammer a = {.name = 'a'}, b = {.name = 'b'};
	pthread_t ta, tb;

	CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000, &a.c),
		 0);
	CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000, &b.c),
		 0);
	if (!a.c || !b.c)
		return;
	pthread_barrier_init(&start_line, NULL, 2);
	pthread_create(&ta, NULL, hammer_main, &a);
	pthread_create(&tb, NULL, hammer_main, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_barrier_destroy(&start_line);
	printf("hammer: a %d rounds (%d refused), b %d rounds (%d refused)\n",
	       a.done, a.estate, b.done, b.estate);
	CHECK(a.errors == 0 && b.errors == 0);
	CHECK(a.done >= ROUNDS && b.done >= ROUNDS);
	CHECK(a.estate + b.estate > 0);
	check_sound(a.c, "a");
	check_sound(b.c, "b");
	srdma_conn_destroy(a.c);
	srdma_conn_destroy(b.c);
	srdma_ctx_destroy(ctx);
}

int main(void)
{
	struct tsrv s = {.region_len = 65536,
			 .region_access = SRDMA_ACCESS_REMOTE_READ |
					  SRDMA_ACCESS_REMOTE_WRITE};

	if (test_pki_make(dir, sizeof(dir), "test_threads", NULL) < 0)
		return 1;
	s.dir = dir;
	s.min = SRDMA_PROTECT_INTEGRITY;
	port = tsrv_start(&s);
	CHECK(port > 0);
	if (port > 0) {
		test_refused();
		test_nested();
		test_hammer();
	}
	tsrv_stop(&s);
	CHECK(s.errors == 0);
	test_pki_remove(dir);
	TEST_DONE();
}
