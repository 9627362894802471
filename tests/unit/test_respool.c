/* SPDX-License-Identifier: MIT */
/*
 * The server resource pool over a real fabric (libfabric tcp on 127.0.0.1;
 * in the Soft-RoCE VM: SRDMA_TEST_TRANSPORT=verbs SRDMA_TEST_ADDR=ip).
 * Server and clients live in this one thread, pumped by hand, so the test
 * can look inside the server between steps:
 *   - spares exist before any client, a client gets one, its end puts it
 *     back (reset), and the pool does not grow past its size;
 *   - a recycled kit's ring is all zero although the previous client's
 *     messages landed in it;
 *   - on a recycled kit, the previous client's region key is dead: a raw
 *     RDMA write with it fails with SRDMA_EREMOTE_ACCESS, while the same
 *     write with the new client's key succeeds (the control);
 *   - a kit still holding a remotely accessible registration refuses reset;
 *   - verbs: server QP numbers come from the pool in random order, not in
 *     the order rxe allocated them;
 *   - with the pool off, everything still works and nothing is pooled.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "srdma.h"
#include "session/session.h"
#include "ctrl/ctrl.h"
#include "test.h"
#include "test_pki.h"

static char dir[256];
static const char *addr = "127.0.0.1";
static enum srdma_transport transport = SRDMA_TRANSPORT_OFI;

static void quiet(void *arg, int level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
}

/* ---- both sides in one thread ---- */

struct side {
	srdma_ctx *ctx;
	srdma_conn *conn; /* server: the newest accepted; client: ours */
	int accepted, connected, closed, regions, writes_done, write_status;
	int recvs;
};

static struct side srv, cli;

static void handle(struct side *s, bool server)
{
	struct srdma_event evs[16];
	int n = srdma_ctx_poll(s->ctx, evs, 16, 0);
	srdma_region *r;

	for (int i = 0; i < n; i++) {
		switch (evs[i].type) {
		case SRDMA_EV_ACCEPTED:
			s->accepted++;
			s->conn = evs[i].conn;
			CHECK_RC(srdma_region_create(
					 evs[i].conn, 65536,
					 SRDMA_ACCESS_REMOTE_READ |
						 SRDMA_ACCESS_REMOTE_WRITE,
					 &r),
				 0);
			srdma_conn_set_user(evs[i].conn, r);
			break;
		case SRDMA_EV_CONNECTED:
			s->connected++;
			break;
		case SRDMA_EV_REGION:
			s->regions++;
			break;
		case SRDMA_EV_RECV:
			s->recvs++;
			if (server)
				IGNORE_RESULT(srdma_send(
					evs[i].conn, evs[i].data, evs[i].len));
			break;
		case SRDMA_EV_WRITE_DONE:
			s->writes_done++;
			s->write_status = evs[i].status;
			break;
		case SRDMA_EV_CLOSED:
			s->closed++;
			if (server) {
				if (s->conn == evs[i].conn)
					s->conn = NULL;
				srdma_region_destroy(
					srdma_conn_user(evs[i].conn));
				srdma_conn_destroy(evs[i].conn);
			}
			break;
		default:
			break;
		}
	}
}

static int pump_until(int *counter, int want, int ms)
{
	struct timespec ts = {0, 200000};

	for (int t = 0; t < ms * 5; t++) {
		if (*counter >= want)
			return 0;
		handle(&srv, true);
		handle(&cli, false);
		nanosleep(&ts, NULL);
	}
	return *counter >= want ? 0 : -1;
}

static srdma_ctx *make_ctx(enum srdma_role role, uint32_t pool, bool off)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;

	srdma_config_init(&cfg, role);
	cfg.certs_dir = dir;
	cfg.transport = transport;
	cfg.max_msg = 4096;
	cfg.protect = SRDMA_PROTECT_ENCRYPT;
	cfg.resource_pool = pool;
	cfg.no_resource_pool = off;
	cfg.log_fn = quiet;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), 0);
	return ctx;
}

/* Fresh server (pool of `pool` kits, or none) and client contexts. */
static bool sides_new(uint32_t pool, bool off)
{
	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	srv.ctx = make_ctx(SRDMA_ROLE_SERVER, pool, off);
	cli.ctx = make_ctx(SRDMA_ROLE_CLIENT, 0, false);
	return srv.ctx && cli.ctx;
}

/* The server listens on port (0: any); returns its control port. */
static uint16_t serve_on(uint16_t port, srdma_listener **l)
{
	*l = NULL;
	CHECK_RC(srdma_listen(srv.ctx, addr, port, l), 0);
	return *l ? srdma_listener_port(*l) : 0;
}

static void sides_free(srdma_listener *l)
{
	srdma_listener_destroy(l);
	srdma_ctx_destroy(cli.ctx);
	srdma_ctx_destroy(srv.ctx);
	/* A client still on was detached with the context (srdma.h,
	 * "Lifetimes"): its handles are ours to free. */
	if (srv.conn) {
		srdma_region_destroy(srdma_conn_user(srv.conn));
		srdma_conn_destroy(srv.conn);
		srv.conn = NULL;
	}
}

/* One client: connect, wait for the region, one echo; left connected. */
static int client_up(uint16_t port)
{
	const char msg[] = "secret of the previous owner";
	int want_acc = srv.accepted + 1, want_reg = cli.regions + 1;
	int want_recv = cli.recvs + 1;

	cli.conn = NULL;
	if (srdma_connect_start(cli.ctx, addr, port, NULL, &cli.conn) < 0 ||
	    pump_until(&srv.accepted, want_acc, 10000) < 0 ||
	    pump_until(&cli.regions, want_reg, 10000) < 0 ||
	    srdma_send(cli.conn, msg, sizeof(msg)) < 0 ||
	    pump_until(&cli.recvs, want_recv, 10000) < 0) {
		fprintf(stderr, "client_up: %s\n", srdma_error_detail());
		return -1;
	}
	return 0;
}

static void client_down(void)
{
	int want = srv.closed + 1;

	CHECK_RC(srdma_conn_close(cli.conn), 0);
	CHECK_RC(pump_until(&srv.closed, want, 10000), 0);
	srdma_conn_destroy(cli.conn);
	cli.conn = NULL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static struct srdma__kit *find_kit(struct srdma__tp_conn *tc)
{
	struct srdma__respool *p = &srv.ctx->pool;

	for (uint32_t i = 0; i < p->n; i++)
		if (p->kits[i].tc == tc)
			return &p->kits[i];
	return NULL;
}

/* ---- a raw write from the client's own fabric connection ---- */

static int raw_status, raw_done;

static void raw_cqe(void *arg, const struct srdma__tp_cqe *e)
{
	(void)arg;
	if (e->wr_id == 0xfeed) {
		raw_status = e->status;
		raw_done++;
	}
}
static void raw_closed(void *arg, int status, const char *detail)
{
	(void)arg;
	(void)status;
	(void)detail;
}
static void raw_est(void *arg)
{
	(void)arg;
}
static void raw_prep(void *arg, int status)
{
	(void)arg;
	(void)status;
}

/*
 * Takes the client connection's fabric connection over (the session hears
 * nothing more of it) and RDMA-writes 64 bytes to (raddr, rkey).
 */
static int raw_write(struct srdma__tp_mr *mr, uint64_t raddr, uint64_t rkey)
{
	const struct srdma__tp_ops *ops = cli.ctx->tp->ops;
	struct srdma__tp_conn_cb cb = {.on_prepared = raw_prep,
				       .on_established = raw_est,
				       .on_closed = raw_closed,
				       .on_cqe = raw_cqe};
	int want = raw_done + 1, rc;

	ops->conn_set_cb(cli.conn->tc, &cb);
	rc = ops->post_write(cli.conn->tc, mr, mr->buf, 64, raddr, rkey, 0xfeed,
			     SRDMA_TP_F_DELIVERED);
	if (rc < 0)
		return rc;
	if (pump_until(&raw_done, want, 10000) < 0)
		return SRDMA_ETIMEDOUT;
	return raw_status;
}

static void test_pool(void)
{
	struct srdma__respool *p;
	struct srdma__tp_conn *tc_a;
	struct srdma_conn *sc;
	struct srdma__kit *k;
	struct remote_region *ra, *rb;
	uint64_t old_addr, old_key;
	srdma_listener *l;
	uint16_t port;
	int tries;

	if (!sides_new(2, false))
		return;
	p = &srv.ctx->pool;
	CHECK(p->n == 0 && p->target == 2);
	port = serve_on(0, &l);
	/* Spares are there before any client. */
	CHECK(p->n == 2 && p->made == 2);

	/* Client A takes one; its message lands in the kit's ring. */
	if (client_up(port) < 0) {
		CHECK(!"client A connects");
		return;
	}
	sc = srv.conn;
	CHECK(sc != NULL && p->taken == 1 && p->n == 1);
	if (!sc)
		return;
	tc_a = sc->tc;
	CHECK(!all_zero(sc->ring, sc->ring_len));
	ra = cli.conn->remote;
	CHECK(ra != NULL);
	if (!ra)
		return;
	old_addr = ra->addr;
	old_key = ra->key;

	/* A leaves: its kit comes back, reset and zeroed. */
	client_down();
	CHECK(p->reused == 1 && p->n == 2 && p->made == 2);
	k = find_kit(tc_a);
	CHECK(k != NULL);
	if (k)
		CHECK(all_zero(k->ring, k->ring_len));
	for (uint32_t i = 0; i < p->n; i++)
		CHECK(all_zero(p->kits[i].ring, p->kits[i].ring_len));

	/* verbs: A's kit serves nobody before the CM's TIMEWAIT_EXIT. */
	if (srv.ctx->tp->ops->conn_usable) {
		int never = 0, w;
		for (w = 0; w < 100 && srv.ctx->tp->ops->conn_usable(tc_a) == 0;
		     w++)
			(void)pump_until(&never, 1, 100);
		printf("A's kit usable again after about %d ms (TIMEWAIT)\n",
		       w * 100);
	}
	/* Clients until one lands on A's old kit (each pick is 1 in 2). */
	for (tries = 0; tries < 24; tries++) {
		if (client_up(port) < 0) {
			CHECK(!"client B connects");
			return;
		}
		if (srv.conn && srv.conn->tc == tc_a)
			break;
		client_down();
	}
	CHECK(tries < 24);
	if (tries >= 24 || !srv.conn)
		return;
	printf("client B got A's recycled kit after %d other clients\n", tries);
	rb = cli.conn->remote;
	CHECK(rb != NULL);
	if (!rb)
		return;
	CHECK(rb->key != old_key);
	printf("A's region at 0x%llx key %016llx; B's at 0x%llx key %016llx "
	       "(%s address)\n",
	       (unsigned long long)old_addr, (unsigned long long)old_key,
	       (unsigned long long)rb->addr, (unsigned long long)rb->key,
	       rb->addr == old_addr ? "same" : "another");
	{
		const struct srdma__tp_ops *ops = cli.ctx->tp->ops;
		static uint8_t buf[4096];
		struct srdma__tp_mr *mr = NULL;
		int rc;

		memset(buf, 0xa5, sizeof(buf));
		CHECK_RC(ops->mr_reg(cli.conn->tc, buf, sizeof(buf),
				     SRDMA_TP_LOCAL, &mr),
			 0);
		if (!mr)
			return;
		/* The control: B's own key works for a raw write. */
		CHECK_RC(raw_write(mr, rb->addr, rb->key), 0);
		/* A's key on A's recycled kit: dead. */
		rc = raw_write(mr, old_addr, old_key);
		CHECK_RC(rc, SRDMA_EREMOTE_ACCESS);
		printf("raw write with the new client's key: ok; with the "
		       "previous client's key: %s\n",
		       srdma_strerror(rc));
		ops->mr_dereg(mr);
	}
	srdma_conn_destroy(cli.conn);
	cli.conn = NULL;
	pump_until(&srv.closed, srv.closed + 1, 5000);

	/* A kit holding a remotely accessible registration refuses reset. */
	if (p->n) {
		const struct srdma__tp_ops *ops = srv.ctx->tp->ops;
		struct srdma__tp_mr *mr = NULL;
		static uint8_t mem[4096];
		struct srdma__kit *x = &p->kits[0];

		CHECK_RC(ops->mr_reg(x->tc, mem, sizeof(mem),
				     SRDMA_TP_REMOTE_WRITE, &mr),
			 0);
		CHECK_RC(ops->conn_reset(x->tc), SRDMA_ESTATE);
		ops->mr_dereg(mr);
		CHECK_RC(ops->conn_reset(x->tc), 0);
	}
	sides_free(l);
}

/* verbs: the QPN each client's server side gets is drawn from the pool. */
static void test_qpns(void)
{
	enum { POOL = 8, CLIENTS = 8 };
	uint32_t kit_qpn[POOL], seen[CLIENTS];
	int ascending = 1, from_pool = 0;
	srdma_listener *l;
	uint16_t port;

	if (!sides_new(POOL, false))
		return;
	port = serve_on(0, &l);
	CHECK(srv.ctx->pool.n == POOL);
	for (int i = 0; i < POOL && i < (int)srv.ctx->pool.n; i++)
		kit_qpn[i] =
			srv.ctx->tp->ops->local_qpn(srv.ctx->pool.kits[i].tc);
	printf("server QPNs in the pool:");
	for (int i = 0; i < POOL; i++)
		printf(" %u", kit_qpn[i]);
	printf("\nserver QPNs handed to %d clients in turn:", CLIENTS);
	for (int c = 0; c < CLIENTS; c++) {
		struct srdma_conn_info ci;
		if (client_up(port) < 0 || !srv.conn) {
			CHECK(!"client connects");
			break;
		}
		CHECK_RC(srdma_conn_info(srv.conn, &ci), 0);
		seen[c] = ci.local_qpn;
		printf(" %u", seen[c]);
		for (int i = 0; i < POOL; i++)
			if (kit_qpn[i] == seen[c]) {
				from_pool++;
				break;
			}
		if (c && seen[c] != seen[c - 1] + 1)
			ascending = 0;
		client_down();
	}
	printf("\n");
	CHECK(from_pool == CLIENTS);
	/* In allocation order by chance: (1/8)^7. */
	CHECK(!ascending);
	sides_free(l);
}

/*
 * A server restarted on the same control port gets another fabric port:
 * a client context that remembers the old one (verbs resolves its route
 * early with it) must notice at HELLO and connect the usual way.
 */
static void test_restarted_server(void)
{
	srdma_listener *l;
	uint16_t port, fport1, fport2;

	if (!sides_new(2, false))
		return;
	port = serve_on(0, &l);
	fport1 = srdma_listener_fabric_port(l);
	CHECK_RC(client_up(port), 0);
	client_down();
	srdma_listener_destroy(l);
	srdma_ctx_destroy(srv.ctx);

	/* A second server with the same control port (the fabric listener
	 * of the first is gone, so its port is not the new one's). */
	memset(&srv, 0, sizeof(srv));
	srv.ctx = make_ctx(SRDMA_ROLE_SERVER, 2, false);
	CHECK(serve_on(port, &l) == port);
	fport2 = srdma_listener_fabric_port(l);
	printf("fabric port %u, after the restart %u\n", fport1, fport2);
	CHECK(fport1 != fport2);
	for (int i = 0; i < 2; i++) {
		CHECK_RC(client_up(port), 0);
		client_down();
	}
	sides_free(l);
}

static void test_pool_off(void)
{
	srdma_listener *l;
	uint16_t port;

	if (!sides_new(0, true))
		return;
	port = serve_on(0, &l);
	for (int i = 0; i < 3; i++) {
		CHECK_RC(client_up(port), 0);
		client_down();
	}
	CHECK(srv.ctx->pool.made == 0 && srv.ctx->pool.n == 0 &&
	      srv.ctx->pool.reused == 0);
	sides_free(l);
}

int main(void)
{
	const char *t = getenv("SRDMA_TEST_TRANSPORT");

	if (getenv("SRDMA_TEST_ADDR") && *getenv("SRDMA_TEST_ADDR"))
		addr = getenv("SRDMA_TEST_ADDR");
	if (t && !strcmp(t, "verbs"))
		transport = SRDMA_TRANSPORT_VERBS;
	if (test_pki_make(dir, sizeof(dir), "test_respool", addr) < 0)
		return 1;
	printf("transport %s at %s\n", srdma_transport_name(transport), addr);
	test_pool();
	if (transport == SRDMA_TRANSPORT_VERBS)
		test_qpns();
	test_restarted_server();
	test_pool_off();
	test_pki_remove(dir);
	TEST_DONE();
}
