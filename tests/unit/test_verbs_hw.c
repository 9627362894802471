/* SPDX-License-Identifier: MIT */
/*
 * Verbs on real hardware, as far as Soft-RoCE and a test build can show it
 * (issue 16): the whole library, server and client in this one thread over
 * rxe in the VM (SRDMA_TEST_ADDR; SRDMA_TEST_ADDR2, an address of a second
 * RDMA device, for the device checks). Hardware behaviour rxe does not have
 * is imitated by the test build (srdma__verbs_test_imitate):
 *   - a connect request without QPN (iWARP's) is refused, with a sentence;
 *   - an iWARP device: verbs refused with a sentence, auto picks ofi and
 *     the connection works over it;
 *   - a memory window bind that is late: the grant waits for it, and the
 *     client's first write and read succeed (no remote access error);
 *   - a bind that fails: the grant fails with a sentence on both sides;
 *   - no type-2 windows: regions refused unless allow_mr_keys, then served
 *     with MR keys and one warning;
 *   - a small max_qp_wr: a sentence that names queue_depth;
 *   - two devices: a wildcard listener serves each client on the device
 *     its address is on, spares are kept per device, and two listeners
 *     coexist.
 * Without an RDMA device or a test build it says SKIP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "srdma.h"
#include "session/session.h"
#include "test.h"
#include "test_pki.h"
#include "transport/verbs/verbs.h"

#ifdef SRDMA_TEST_HOOKS
static char dir[256];
static const char *addr, *addr2;

struct side {
	srdma_ctx *ctx;
	srdma_conn *conn;
	bool server, make_region;
	int accepted, connected, closed, rejected, regions, done;
	int close_status, done_status, region_rc;
	uint64_t t_created, t_seen;
	char close_detail[256], reject_detail[256], region_detail[256];
	char provider[32];
};

static struct side srv, cli;
static int warns;
static char last_warn[300];

static void log_line(void *arg, int level, const char *line)
{
	if (getenv("SRDMA_TEST_DEBUG"))
		fprintf(stderr, "%s: %s\n", (const char *)arg, line);
	if (level <= SRDMA_LOG_WARN) {
		warns++;
		snprintf(last_warn, sizeof(last_warn), "%s", line);
	}
}

static void handle(struct side *s)
{
	struct srdma_event evs[16];
	int n = srdma_ctx_poll(s->ctx, evs, 16, 0);
	srdma_region *r;

	for (int i = 0; i < n; i++) {
		switch (evs[i].type) {
		case SRDMA_EV_ACCEPTED:
			s->accepted++;
			s->conn = evs[i].conn;
			if (!s->make_region)
				break;
			s->t_created = srdma__now_ms();
			s->region_rc = srdma_region_create(
				evs[i].conn, 65536,
				SRDMA_ACCESS_REMOTE_READ |
					SRDMA_ACCESS_REMOTE_WRITE,
				&r);
			snprintf(s->region_detail, sizeof(s->region_detail),
				 "%s", srdma_error_detail());
			break;
		case SRDMA_EV_CONNECTED:
			s->connected++;
			break;
		case SRDMA_EV_REGION:
			s->regions++;
			s->t_seen = srdma__now_ms();
			break;
		case SRDMA_EV_WRITE_DONE:
		case SRDMA_EV_READ_DONE:
			s->done++;
			s->done_status = evs[i].status;
			break;
		case SRDMA_EV_REJECTED:
			s->rejected++;
			snprintf(s->reject_detail, sizeof(s->reject_detail),
				 "%s", evs[i].detail);
			break;
		case SRDMA_EV_CLOSED:
			s->closed++;
			s->close_status = evs[i].status;
			snprintf(s->close_detail, sizeof(s->close_detail), "%s",
				 evs[i].detail);
			if (s->server) {
				if (s->conn == evs[i].conn)
					s->conn = NULL;
				srdma_conn_destroy(evs[i].conn);
			}
			break;
		default:
			break;
		}
	}
}

/* Pumps both sides until *a >= want (or *b >= 1 if b), up to ms. */
static int pump(int *a, int want, int *b, int ms)
{
	struct timespec ts = {0, 200000};

	for (int t = 0; t < ms * 5; t++) {
		if (*a >= want || (b && *b))
			return 0;
		if (srv.ctx)
			handle(&srv);
		if (cli.ctx)
			handle(&cli);
		nanosleep(&ts, NULL);
	}
	return *a >= want ? 0 : -1;
}

static srdma_ctx *make_ctx(enum srdma_role role, enum srdma_transport t,
			   bool allow_mr_keys, const char *tag)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;

	srdma_config_init(&cfg, role);
	cfg.certs_dir = dir;
	cfg.transport = t;
	cfg.max_msg = 4096;
	cfg.resource_pool = 2;
	cfg.allow_mr_keys = allow_mr_keys;
	cfg.peer_name = role == SRDMA_ROLE_CLIENT ? addr : NULL;
	cfg.log_fn = log_line;
	cfg.log_arg = (void *)tag;
	cfg.log_level = SRDMA_LOG_INFO;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), 0);
	return ctx;
}

/* Both contexts made under imitation im (read when devices open). */
static bool sides_new(const struct srdma__verbs_imitate *im,
		      enum srdma_transport t, bool allow_mr_keys)
{
	srdma__verbs_test_imitate(im);
	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	srv.server = true;
	srv.make_region = true;
	srv.ctx = make_ctx(SRDMA_ROLE_SERVER, t, allow_mr_keys, "server");
	cli.ctx = make_ctx(SRDMA_ROLE_CLIENT, t, false, "client");
	warns = 0;
	return srv.ctx && cli.ctx;
}

static void sides_free(srdma_listener *l)
{
	srdma_conn_destroy(cli.conn);
	cli.conn = NULL;
	srdma_listener_destroy(l);
	srdma_ctx_destroy(cli.ctx);
	srdma_ctx_destroy(srv.ctx);
	srv.ctx = cli.ctx = NULL;
	srdma__verbs_test_imitate(NULL);
}

static uint16_t serve(const char *host, srdma_listener **l)
{
	*l = NULL;
	CHECK_RC(srdma_listen(srv.ctx, host, 0, l), 0);
	return *l ? srdma_listener_port(*l) : 0;
}

/* Connects to host:port; returns 0 when connected, else the status. */
static int connect_to(const char *host, uint16_t port)
{
	int rc;

	cli.conn = NULL;
	rc = srdma_connect_start(cli.ctx, host, port, NULL, &cli.conn);
	if (rc < 0)
		return rc;
	if (pump(&cli.connected, cli.connected + 1, &cli.closed, 20000) < 0)
		return SRDMA_ETIMEDOUT;
	return cli.closed ? (cli.close_status ? cli.close_status : -1) : 0;
}

/* One verified write and read into the first region granted. */
static int write_read(void)
{
	static uint8_t out[8192], back[8192];
	int want;

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 13 + 5);
	want = cli.done + 1;
	GUARD(srdma_write(cli.conn, 1, 0, out, sizeof(out), NULL));
	if (pump(&cli.done, want, NULL, 10000) < 0)
		return SRDMA_ETIMEDOUT;
	GUARD(cli.done_status);
	want = cli.done + 1;
	GUARD(srdma_read(cli.conn, 1, 0, back, sizeof(back), NULL));
	if (pump(&cli.done, want, NULL, 10000) < 0)
		return SRDMA_ETIMEDOUT;
	GUARD(cli.done_status);
	return memcmp(out, back, sizeof(out)) ? SRDMA_EINTEGRITY : 0;
}

/* ---- the checks ---- */

static void test_no_qpn(void)
{
	struct srdma__verbs_imitate im = {.flags = SRDMA_VI_NO_QPN};
	srdma_listener *l;
	uint16_t port;
	int rc;

	if (!sides_new(&im, SRDMA_TRANSPORT_VERBS, false))
		return;
	port = serve(addr, &l);
	rc = connect_to(addr, port);
	CHECK(rc < 0);
	pump(&srv.rejected, 1, NULL, 2000);
	printf("connect request without QPN: server: %s\n", srv.reject_detail);
	printf("connect request without QPN: client: %s\n", cli.close_detail);
	CHECK(strstr(srv.reject_detail, "no QP number") != NULL);
	CHECK(srv.accepted == 0 && cli.connected == 0);
	sides_free(l);
}

static void test_iwarp_auto(void)
{
	struct srdma__verbs_imitate im = {.flags = SRDMA_VI_IWARP};
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;
	srdma_listener *l;
	const char *why = "";
	uint16_t port;
	int rc;

	/* verbs asked for on an iWARP device: refused, with a sentence. */
	srdma__verbs_test_imitate(&im);
	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_VERBS;
	cfg.log_fn = log_line;
	cfg.log_arg = "server";
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), SRDMA_ENODEV);
	printf("iWARP, verbs asked for: %s\n", srdma_error_detail());
	CHECK(strstr(srdma_error_detail(), "iWARP") != NULL);
	srdma_ctx_destroy(ctx);

	/* auto: ofi on both sides, and it works. */
	if (!sides_new(&im, SRDMA_TRANSPORT_AUTO, false))
		return;
	port = serve(addr, &l);
	CHECK(srdma_ctx_transport(srv.ctx, &why) == SRDMA_TRANSPORT_OFI);
	printf("iWARP, server auto: %s\n", why);
	CHECK(strstr(why, "iWARP") != NULL);
	rc = connect_to(addr, port);
	CHECK_RC(rc, 0);
	CHECK(srdma_ctx_transport(cli.ctx, &why) == SRDMA_TRANSPORT_OFI);
	printf("iWARP, client auto: %s\n", why);
	CHECK(strstr(why, "iWARP") != NULL);
	if (rc == 0) {
		CHECK_RC(pump(&cli.regions, 1, NULL, 10000), 0);
		CHECK_RC(write_read(), 0);
	}
	sides_free(l);
}

static void test_bind_delay(void)
{
	struct srdma__verbs_imitate im = {.bind_delay_ms = 400};
	srdma_listener *l;
	uint16_t port;

	if (!sides_new(&im, SRDMA_TRANSPORT_VERBS, false))
		return;
	port = serve(addr, &l);
	CHECK_RC(connect_to(addr, port), 0);
	CHECK_RC(pump(&cli.regions, 1, &cli.closed, 10000), 0);
	CHECK_RC(srv.region_rc, 0);
	printf("bind delayed 400 ms: the grant reached the client %llu ms "
	       "after srdma_region_create\n",
	       (unsigned long long)(cli.t_seen - srv.t_created));
	CHECK(cli.regions == 1 && cli.t_seen - srv.t_created >= 350);
	/* At once: no remote access error, the data verified. */
	if (cli.regions == 1)
		CHECK_RC(write_read(), 0);
	CHECK(!cli.closed && !srv.closed);
	sides_free(l);
}

static void test_bind_fail(void)
{
	struct srdma__verbs_imitate im = {.flags = SRDMA_VI_BIND_FAIL};
	srdma_listener *l;
	uint16_t port;

	if (!sides_new(&im, SRDMA_TRANSPORT_VERBS, false))
		return;
	port = serve(addr, &l);
	CHECK_RC(connect_to(addr, port), 0);
	CHECK_RC(pump(&cli.closed, 1, NULL, 10000), 0);
	pump(&srv.closed, 1, NULL, 5000);
	CHECK_RC(srv.region_rc, 0); /* created; its grant waited */
	CHECK(cli.regions == 0);
	printf("failed bind: server: %s\n", srv.close_detail);
	printf("failed bind: client: %s\n", cli.close_detail);
	CHECK(strstr(srv.close_detail, "cannot be granted") != NULL);
	CHECK(strstr(cli.close_detail, "bind") != NULL);
	sides_free(l);
}

static void test_no_mw(void)
{
	struct srdma__verbs_imitate im = {.flags = SRDMA_VI_NO_MW};
	srdma_listener *l;
	uint16_t port;

	if (!sides_new(&im, SRDMA_TRANSPORT_VERBS, false))
		return;
	port = serve(addr, &l);
	CHECK_RC(connect_to(addr, port), 0);
	pump(&srv.accepted, 1, NULL, 5000);
	CHECK(srv.region_rc == SRDMA_ENOTSUP);
	printf("no type-2 windows: %s\n", srv.region_detail);
	CHECK(strstr(srv.region_detail, "allow_mr_keys") != NULL);
	sides_free(l);

	if (!sides_new(&im, SRDMA_TRANSPORT_VERBS, true))
		return;
	port = serve(addr, &l);
	CHECK_RC(connect_to(addr, port), 0);
	CHECK_RC(pump(&cli.regions, 1, &cli.closed, 10000), 0);
	CHECK_RC(write_read(), 0);
	printf("no type-2 windows, allow_mr_keys: %d warning(s): %s\n", warns,
	       last_warn);
	CHECK(warns == 1 && strstr(last_warn, "allow_mr_keys"));
	sides_free(l);
}

static void test_small_qp(void)
{
	struct srdma__verbs_imitate im = {.max_qp_wr = 32};
	srdma_listener *l;
	uint16_t port;
	int rc;

	if (!sides_new(&im, SRDMA_TRANSPORT_VERBS, false))
		return;
	port = serve(addr, &l);
	rc = connect_to(addr, port);
	CHECK(rc < 0);
	printf("max_qp_wr 32: %s\n", cli.close_detail);
	CHECK(strstr(cli.close_detail, "queue_depth") != NULL);
	sides_free(l);
}

/* The device each server connection is on, by its provider name. */
static void served_on(char *out, size_t len)
{
	struct srdma_conn_info ci;

	out[0] = '\0';
	if (srv.conn && srdma_conn_info(srv.conn, &ci) == 0)
		snprintf(out, len, "%s", ci.provider);
}

static void one_client(const char *host, uint16_t port, char *dev, size_t len)
{
	int want = srv.accepted + 1;

	CHECK_RC(connect_to(host, port), 0);
	CHECK_RC(pump(&srv.accepted, want, NULL, 5000), 0);
	CHECK_RC(pump(&cli.regions, cli.regions + 1, &cli.closed, 5000), 0);
	CHECK_RC(write_read(), 0);
	served_on(dev, len);
	srdma_conn_destroy(cli.conn);
	cli.conn = NULL;
	pump(&srv.closed, srv.closed + 1, NULL, 5000);
}

static uint32_t kits_on(int dev)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < srv.ctx->pool.n; i++)
		n += srv.ctx->pool.kits[i].dev == dev;
	return n;
}

static void test_two_devices(void)
{
	srdma_listener *l, *l2 = NULL;
	char d1[32], d2[32];
	uint16_t port;

	if (!addr2) {
		printf("SKIP: two devices (no SRDMA_TEST_ADDR2)\n");
		return;
	}
	/* Everything on one wildcard listener. */
	if (!sides_new(NULL, SRDMA_TRANSPORT_VERBS, false))
		return;
	port = serve(NULL, &l);
	one_client(addr, port, d1, sizeof(d1));
	one_client(addr2, port, d2, sizeof(d2));
	printf("wildcard listener: a client to %s served on %s, one to %s on "
	       "%s\n",
	       addr, d1, addr2, d2);
	CHECK(d1[0] && d2[0] && strcmp(d1, d2) != 0);
	/* Spares on both devices once both had a client. */
	for (int i = 0; i < 50 && srv.ctx->pool.ndevs == 2 &&
			(kits_on(srv.ctx->pool.devs[0]) < 2 ||
			 kits_on(srv.ctx->pool.devs[1]) < 2);
	     i++)
		pump(&srv.done, 1, NULL, 20);
	CHECK(srv.ctx->pool.ndevs == 2);
	if (srv.ctx->pool.ndevs == 2)
		printf("spares: %u on device %d, %u on device %d\n",
		       kits_on(srv.ctx->pool.devs[0]), srv.ctx->pool.devs[0],
		       kits_on(srv.ctx->pool.devs[1]), srv.ctx->pool.devs[1]);
	sides_free(l);

	/* Two listeners, one per address, in one context. */
	if (!sides_new(NULL, SRDMA_TRANSPORT_VERBS, false))
		return;
	port = serve(addr, &l);
	CHECK_RC(srdma_listen(srv.ctx, addr2, 0, &l2), 0);
	one_client(addr, port, d1, sizeof(d1));
	if (l2)
		one_client(addr2, srdma_listener_port(l2), d2, sizeof(d2));
	printf("two listeners: %s on %s, %s on %s\n", addr, d1, addr2, d2);
	CHECK(d1[0] && d2[0] && strcmp(d1, d2) != 0);
	srdma_listener_destroy(l2);
	sides_free(l);
}
#endif

int main(void)
{
#ifdef SRDMA_TEST_HOOKS
	char why[200];

	setvbuf(stdout, NULL, _IONBF, 0);
	if (!srdma__verbs_available(why, sizeof(why))) {
		printf("SKIP: no RDMA device (runs in the Soft-RoCE VM): %s\n",
		       why);
		return 0;
	}
	addr = getenv("SRDMA_TEST_ADDR");
	addr2 = getenv("SRDMA_TEST_ADDR2");
	if (!addr || !*addr) {
		printf("SKIP: set SRDMA_TEST_ADDR to an address of an RDMA "
		       "device\n");
		return 0;
	}
	if (addr2 && !*addr2)
		addr2 = NULL;
	if (test_pki_make(dir, sizeof(dir), "test_verbs_hw", addr) < 0)
		return 1;
	test_no_qpn();
	test_iwarp_auto();
	test_bind_delay();
	test_bind_fail();
	test_no_mw();
	test_small_qp();
	test_two_devices();
	test_pki_remove(dir);
	TEST_DONE();
#else
	printf("SKIP: needs a test build (-DSRDMA_TEST_HOOKS=ON) to imitate "
	       "hardware\n");
	return 0;
#endif
}
