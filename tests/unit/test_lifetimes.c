/* SPDX-License-Identifier: MIT */
/*
 * Lifetimes (srdma.h, "Lifetimes"), public API only, over libfabric tcp:
 * contexts, listeners, connections and regions destroyed in every order.
 * A parent's destroy detaches the children the application holds; calls on
 * them answer SRDMA_ECLOSED and their own destroy frees the handle. Run
 * under ASan (make asan) a use after free or a leak fails the test; issue
 * 18's two reports are the first cases: srdma_conn_destroy then
 * srdma_region_destroy, and srdma_ctx_destroy then srdma_conn_destroy.
 */
#include <stdlib.h>
#include <string.h>

#include "srdma.h"
#include "test.h"
#include "test_pki.h"
#include "test_server.h"

static char dir[256];

enum obj { O_REGION, O_CONN, O_CTX };

/* A client connection to the server and a region it grants the server. */
struct world {
	srdma_ctx *ctx;
	srdma_conn *conn;
	srdma_region *region;
};

static int make_world(struct world *w, int port)
{
	int cookie = 7;

	memset(w, 0, sizeof(*w));
	w->ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
	if (!w->ctx)
		return -1;
	CHECK_RC(srdma_connect(w->ctx, "127.0.0.1", (uint16_t)port, 10000,
			       &w->conn),
		 0);
	if (!w->conn)
		return -1;
	srdma_conn_set_user(w->conn, &cookie);
	CHECK_RC(srdma_region_create(w->conn, 8192,
				     SRDMA_ACCESS_REMOTE_READ |
					     SRDMA_ACCESS_REMOTE_WRITE,
				     &w->region),
		 0);
	return w->region ? 0 : -1;
}

/* Every call on a region whose connection is gone: refused, harmless. */
static void check_detached_region(srdma_region *r, uint32_t id)
{
	char buf[64] = {0};

	CHECK(srdma_region_id(r) == id);
	CHECK(srdma_region_len(r) == 8192);
	CHECK_RC(srdma_region_get(r, 0, buf, sizeof(buf)), SRDMA_ECLOSED);
	CHECK(strstr(srdma_error_detail(), "srdma_region_get") != NULL);
	CHECK_RC(srdma_region_put(r, 0, buf, sizeof(buf)), SRDMA_ECLOSED);
	CHECK_RC(srdma_region_grant(r), SRDMA_ECLOSED);
}

/* Every call on a connection whose context is gone: refused, harmless. */
static void check_detached_conn(srdma_conn *c)
{
	struct srdma_conn_info ci;
	char buf[64] = {0};
	size_t got;
	uint64_t len;
	srdma_region *r = NULL;

	CHECK(srdma_conn_user(c) != NULL);
	CHECK_RC(srdma_send(c, "x", 1), SRDMA_ECLOSED);
	CHECK(strstr(srdma_error_detail(), "context was destroyed") != NULL);
	CHECK_RC(srdma_send_sync(c, "x", 1, 100), SRDMA_ECLOSED);
	CHECK_RC(srdma_recv(c, buf, sizeof(buf), &got, 100), SRDMA_ECLOSED);
	CHECK_RC(srdma_write(c, 1, 0, buf, 1, NULL), SRDMA_ECLOSED);
	CHECK_RC(srdma_read(c, 1, 0, buf, 1, NULL), SRDMA_ECLOSED);
	CHECK_RC(srdma_write_sync(c, 1, 0, buf, 1, 100), SRDMA_ECLOSED);
	CHECK_RC(srdma_read_sync(c, 1, 0, buf, 1, 100), SRDMA_ECLOSED);
	CHECK_RC(srdma_conn_info(c, &ci), SRDMA_ECLOSED);
	CHECK_RC(srdma_conn_remote_region(c, 1, &len), SRDMA_ECLOSED);
	CHECK_RC(srdma_conn_wait_region(c, 0, 100, &len), SRDMA_ECLOSED);
	CHECK_RC(srdma_region_create(c, 4096, SRDMA_ACCESS_REMOTE_READ, &r),
		 SRDMA_ECLOSED);
	CHECK(r == NULL);
	CHECK_RC(srdma_conn_close(c), 0);
	CHECK_RC(srdma_conn_abort(c, SRDMA_ELIMIT, "test"), 0);
	srdma_conn_set_user(c, c);
	CHECK(srdma_conn_user(c) == c);
}

static void destroy(struct world *w, enum obj o)
{
	switch (o) {
	case O_REGION:
		srdma_region_destroy(w->region);
		w->region = NULL;
		break;
	case O_CONN:
		srdma_conn_destroy(w->conn);
		w->conn = NULL;
		break;
	case O_CTX:
		srdma_ctx_destroy(w->ctx);
		w->ctx = NULL;
		break;
	}
}

/* The three objects destroyed in the order a, b, c, with checks on what
 * is left after each step. */
static void test_order(int port, enum obj a, enum obj b, enum obj c)
{
	static const char *const names[] = {"region", "conn", "ctx"};
	enum obj order[3] = {a, b, c};
	struct world w;
	uint32_t id;

	printf("order: %s, %s, %s\n", names[a], names[b], names[c]);
	if (make_world(&w, port) < 0) {
		CHECK(!"no world");
		return;
	}
	id = srdma_region_id(w.region);
	for (int i = 0; i < 3; i++) {
		destroy(&w, order[i]);
		if (w.region && !w.conn)
			check_detached_region(w.region, id);
		if (w.region && !w.ctx)
			check_detached_region(w.region, id);
		if (w.conn && !w.ctx)
			check_detached_conn(w.conn);
	}
}

/* An operation in flight when its connection or context goes: its buffer
 * is not touched afterwards and nothing is reported for it. */
static void test_inflight(int port, bool whole_ctx)
{
	struct srdma_event ev[8];
	uint64_t len;
	uint8_t *buf = malloc(65536);
	struct world w;
	int region;

	if (!buf || make_world(&w, port) < 0) {
		CHECK(!"no world");
		free(buf);
		return;
	}
	region = srdma_conn_wait_region(w.conn, 0, 5000, &len);
	CHECK(region > 0);
	memset(buf, 0x5a, 65536);
	CHECK_RC(srdma_write(w.conn, (uint32_t)region, 0, buf, 65536, buf), 0);
	if (whole_ctx) {
		srdma_ctx_destroy(w.ctx);
		check_detached_conn(w.conn);
		srdma_conn_destroy(w.conn);
	} else {
		srdma_conn_destroy(w.conn);
		/* Nothing about the destroyed connection comes out. */
		CHECK(srdma_ctx_poll(w.ctx, ev, 8, 50) == 0);
		srdma_ctx_destroy(w.ctx);
	}
	srdma_region_destroy(w.region);
	free(buf);
}

/* A stream and a registration outlive their connection (or context): the
 * calls on them are refused, and their own destroy frees the handle (a
 * leak or a use after free shows under ASan and valgrind). */
static void test_stream_mem(int port, bool whole_ctx)
{
	static uint8_t buf[8192];
	srdma_stream *st = NULL;
	srdma_mem *m = NULL;
	struct world w;
	char in[16];

	if (make_world(&w, port) < 0) {
		CHECK(!"no world");
		return;
	}
	CHECK_RC(srdma_stream_open(w.conn, 0, &st), 0);
	CHECK_RC(srdma_mem_register(w.conn, buf, sizeof(buf), &m), 0);
	if (!st || !m) {
		srdma_ctx_destroy(w.ctx);
		return;
	}
	/* The server opens no stream of its own: nothing can go yet. */
	CHECK_RC(srdma_stream_send(st, "x", 1), SRDMA_EAGAIN);
	if (whole_ctx)
		srdma_ctx_destroy(w.ctx);
	srdma_conn_destroy(w.conn);
	CHECK_RC(srdma_stream_send(st, "y", 1), SRDMA_ECLOSED);
	CHECK(strstr(srdma_error_detail(), "connection was destroyed") != NULL);
	CHECK_RC(srdma_stream_recv(st, in, sizeof(in), 0), SRDMA_ECLOSED);
	CHECK_RC(srdma_stream_flush(st, 0), SRDMA_ECLOSED);
	srdma_stream_destroy(st);
	srdma_mem_deregister(m);
	srdma_region_destroy(w.region);
	if (!whole_ctx)
		srdma_ctx_destroy(w.ctx);
}

/* The server side: its context destroyed with clients on, then their
 * regions and connections (and the reverse), then the listener. */
static void test_server_orders(void)
{
	for (int o = TSRV_CHILDREN_FIRST; o <= TSRV_CTX_CONN_REGION; o++) {
		struct tsrv s = {.dir = dir,
				 .min = SRDMA_PROTECT_INTEGRITY,
				 .region_len = 65536,
				 .region_access = SRDMA_ACCESS_REMOTE_READ |
						  SRDMA_ACCESS_REMOTE_WRITE,
				 .order = (enum tsrv_order)o};
		srdma_ctx *ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
		srdma_conn *c = NULL;
		uint64_t len;
		int port = tsrv_start(&s);

		CHECK(port > 0);
		CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000,
				       &c),
			 0);
		CHECK(c && srdma_conn_wait_region(c, 0, 5000, &len) > 0);
		for (int i = 0; i < 100 && s.accepted < 1; i++)
			usleep(10000);
		/* The server goes with this client still on. */
		tsrv_stop(&s);
		CHECK(s.errors == 0);
		CHECK_RC(srdma_write_sync(c, 1, 0, "x", 1, 5000) < 0, 1);
		srdma_conn_destroy(c);
		srdma_ctx_destroy(ctx);
	}
}

/* A listener outlives its context, and a context its listener. */
static void test_listener(void)
{
	struct srdma_config cfg;
	srdma_listener *l = NULL;
	srdma_ctx *ctx = NULL;
	uint16_t port;

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.log_fn = tsrv_quiet;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), 0);
	CHECK_RC(srdma_listen(ctx, "127.0.0.1", 0, &l), 0);
	port = srdma_listener_port(l);
	srdma_ctx_destroy(ctx);
	CHECK(srdma_listener_port(l) == port);
	{
		srdma_conn *c = (srdma_conn *)1;
		CHECK_RC(srdma_accept(l, 10, &c), SRDMA_ECLOSED);
		CHECK(c == NULL);
	}
	srdma_listener_destroy(l);

	CHECK_RC(srdma_ctx_create(&cfg, &ctx), 0);
	CHECK_RC(srdma_listen(ctx, "127.0.0.1", 0, &l), 0);
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx);
}

struct connect_args {
	srdma_ctx *ctx;
	uint16_t port;
	srdma_conn *c;
	int rc;
};

static void *connect_main(void *arg)
{
	struct connect_args *a = arg;

	a->rc = srdma_connect(a->ctx, "127.0.0.1", a->port, 10000, &a->c);
	return NULL;
}

/*
 * A client the server application never saw (its SRDMA_EV_ACCEPTED still
 * queued) belongs to the context: srdma_ctx_destroy frees it (a leak under
 * ASan otherwise).
 */
static void test_unseen(void)
{
	struct srdma_config cfg;
	struct connect_args a = {0};
	srdma_listener *l = NULL, *other = NULL;
	srdma_ctx *sctx = NULL;
	srdma_conn *none = NULL;
	pthread_t th;

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.log_fn = tsrv_quiet;
	CHECK_RC(srdma_ctx_create(&cfg, &sctx), 0);
	CHECK_RC(srdma_listen(sctx, "127.0.0.1", 0, &l), 0);
	CHECK_RC(srdma_listen(sctx, "127.0.0.1", 0, &other), 0);
	if (!l || !other)
		return;
	a.ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
	a.port = srdma_listener_port(l);
	/* The client connects from its own thread while the server runs its
	 * loop through srdma_accept on the other listener, which leaves l's
	 * client queued. */
	pthread_create(&th, NULL, connect_main, &a);
	CHECK_RC(srdma_accept(other, 2000, &none), SRDMA_ETIMEDOUT);
	pthread_join(th, NULL);
	CHECK_RC(a.rc, 0);
	CHECK_RC(srdma_accept(other, 200, &none), SRDMA_ETIMEDOUT);
	CHECK(none == NULL);
	srdma_listener_destroy(other);
	srdma_ctx_destroy(sctx);
	srdma_listener_destroy(l);
	srdma_conn_destroy(a.c);
	srdma_ctx_destroy(a.ctx);
}

int main(void)
{
	struct tsrv s = {.region_len = 65536,
			 .region_access = SRDMA_ACCESS_REMOTE_READ |
					  SRDMA_ACCESS_REMOTE_WRITE};
	static const enum obj perms[6][3] = {
		{O_REGION, O_CONN, O_CTX}, {O_CONN, O_REGION, O_CTX},
		{O_CTX, O_CONN, O_REGION}, {O_CTX, O_REGION, O_CONN},
		{O_CONN, O_CTX, O_REGION}, {O_REGION, O_CTX, O_CONN},
	};
	int port;

	if (test_pki_make(dir, sizeof(dir), "test_lifetimes", NULL) < 0)
		return 1;
	s.dir = dir;
	s.min = SRDMA_PROTECT_INTEGRITY;
	port = tsrv_start(&s);
	CHECK(port > 0);
	if (port > 0) {
		for (int i = 0; i < 6; i++)
			test_order(port, perms[i][0], perms[i][1], perms[i][2]);
		test_inflight(port, false);
		test_inflight(port, true);
		test_stream_mem(port, false);
		test_stream_mem(port, true);
	}
	tsrv_stop(&s);
	CHECK(s.errors == 0);
	test_server_orders();
	test_listener();
	test_unseen();
	srdma_ctx_destroy(NULL);
	srdma_conn_destroy(NULL);
	srdma_region_destroy(NULL);
	srdma_listener_destroy(NULL);
	test_pki_remove(dir);
	TEST_DONE();
}
