/* SPDX-License-Identifier: MIT */
/*
 * The public API end to end over real libfabric tcp on 127.0.0.1: a server
 * context polled in its own thread (the event-loop style), a client in the
 * main thread (the blocking style). Covers argument and state errors, the
 * event interface, regions, and orderly close.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srdma.h"
#include "base/err.h"
#include "ctrl/ctrl.h"
#include "test.h"
#include "test_pki.h"

static char dir[256];
static atomic_int stop;
static atomic_int server_port;
static atomic_int accepted, closed_ok, peer_writes;

static void quiet(void *arg, int level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
}

/* The server's last DEBUG line that says where a failure was raised. */
static pthread_mutex_t raised_lock = PTHREAD_MUTEX_INITIALIZER;
static char raised_line[1024];

static void keep_raised(void *arg, int level, const char *line)
{
	(void)arg;
	if (level != SRDMA_LOG_DEBUG || !strstr(line, "(raised at "))
		return;
	pthread_mutex_lock(&raised_lock);
	snprintf(raised_line, sizeof(raised_line), "%s", line);
	pthread_mutex_unlock(&raised_lock);
}

static void *server_main(void *arg)
{
	struct srdma_config cfg;
	srdma_ctx *ctx;
	srdma_listener *l;
	struct srdma_event evs[16];

	(void)arg;
	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = SRDMA_PROTECT_INTEGRITY;
	cfg.log_fn = keep_raised;
	cfg.log_level = SRDMA_LOG_DEBUG;
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, "127.0.0.1", 0, &l) < 0) {
		fprintf(stderr, "server: %s\n", srdma_error_detail());
		server_port = -1;
		return NULL;
	}
	server_port = srdma_listener_port(l);
	while (!stop) {
		int n = srdma_ctx_poll(ctx, evs, 16, 50);
		for (int i = 0; i < n; i++) {
			srdma_region *r;
			switch (evs[i].type) {
			case SRDMA_EV_ACCEPTED:
				accepted++;
				if (srdma_region_create(
					    evs[i].conn, 65536,
					    SRDMA_ACCESS_REMOTE_READ |
						    SRDMA_ACCESS_REMOTE_WRITE,
					    &r) < 0)
					fprintf(stderr, "region: %s\n",
						srdma_error_detail());
				else
					srdma_conn_set_user(evs[i].conn, r);
				break;
			case SRDMA_EV_RECV:
				if (srdma_send(evs[i].conn, evs[i].data,
					       evs[i].len) < 0)
					fprintf(stderr, "echo: %s\n",
						srdma_error_detail());
				break;
			case SRDMA_EV_PEER_WRITE:
				peer_writes++;
				break;
			case SRDMA_EV_CLOSED:
				if (evs[i].status == 0)
					closed_ok++;
				srdma_region_destroy(
					srdma_conn_user(evs[i].conn));
				srdma_conn_destroy(evs[i].conn);
				break;
			default:
				break;
			}
		}
	}
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx);
	return NULL;
}

static srdma_ctx *client_ctx(enum srdma_protect p)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = p;
	cfg.max_msg = 4096;
	cfg.log_fn = quiet;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), 0);
	return ctx;
}

static void test_config_errors(void)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = (srdma_ctx *)1;

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), SRDMA_ECONFIG);
	CHECK(ctx == NULL);
	/* Named as the API names it, not as the tool's flags. */
	CHECK(strstr(srdma_error_detail(), "certs_dir") != NULL);
	CHECK(strstr(srdma_error_detail(), "--certs") == NULL);
	cfg.certs_dir = "/nonexistent/dir";
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), SRDMA_ECONFIG);
	cfg.certs_dir = dir;
	cfg.queue_depth = 1;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), SRDMA_EINVAL);
	CHECK_RC(srdma_ctx_create(NULL, &ctx), SRDMA_EINVAL);
	CHECK(strcmp(srdma_strerror(SRDMA_ETOKEN), "Unknown error.") != 0);
	CHECK(strcmp(srdma_strerror(12345), "Unknown error.") == 0);
	for (int e = SRDMA_ERROR_MIN; e < 0; e++)
		CHECK(strcmp(srdma_strerror(e), "Unknown error.") != 0);
	srdma_ctx_destroy(NULL);
	srdma_conn_destroy(NULL);
	srdma_region_destroy(NULL);
	srdma_listener_destroy(NULL);
}

/* The documented defaults (srdma.h) and the version from its macros. */
static void test_defaults(void)
{
	struct srdma_config cfg;
	char v[32];

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	CHECK(cfg.role == SRDMA_ROLE_SERVER);
	CHECK(cfg.transport == SRDMA_TRANSPORT_AUTO);
	CHECK(cfg.protect == SRDMA_PROTECT_ENCRYPT);
	CHECK(cfg.max_clients == 4096);
	CHECK(cfg.max_handshakes == 128);
	CHECK(cfg.handshake_timeout_ms == 10000);
	CHECK(cfg.client_quota == 64ull << 20);
	CHECK(cfg.max_msg == 64 * 1024);
	CHECK(cfg.queue_depth == 16);
	CHECK(cfg.log_level == SRDMA_LOG_WARN);
	snprintf(v, sizeof(v), "%d.%d.%d", SRDMA_VERSION_MAJOR,
		 SRDMA_VERSION_MINOR, SRDMA_VERSION_PATCH);
	CHECK(strcmp(srdma_version(), v) == 0);
}

/*
 * Each context keeps the reason for its transport: a second context made
 * on the same thread, with another transport, leaves the first one's alone.
 */
static void test_transport_why(void)
{
	struct srdma_config cfg;
	srdma_ctx *a = client_ctx(SRDMA_PROTECT_ENCRYPT), *b = NULL;
	const char *why_a = NULL, *why_a2 = NULL, *why_b = NULL;
	char kept[256];

	if (!a)
		return;
	CHECK(srdma_ctx_transport(a, &why_a) == SRDMA_TRANSPORT_OFI);
	CHECK(why_a && strstr(why_a, "ofi (libfabric tcp) asked for"));
	snprintf(kept, sizeof(kept), "%s", why_a ? why_a : "");

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_AUTO;
	cfg.log_fn = quiet;
	CHECK_RC(srdma_ctx_create(&cfg, &b), 0);
	if (b) {
		srdma_ctx_transport(b, &why_b);
		CHECK(why_b && strstr(why_b, "auto chose"));
		printf("context a: %s; context b: %s\n", kept,
		       why_b ? why_b : "?");
	}
	srdma_ctx_transport(a, &why_a2);
	CHECK(why_a2 && !strcmp(why_a2, kept));
	CHECK(why_a && !strcmp(why_a, kept));
	srdma_ctx_destroy(b);
	srdma_ctx_destroy(a);
}

/* An error keeps where it was raised, without the build's directories. */
static void test_err_where(void)
{
	char want[64];
	int line;

	srdma__err_clear();
	CHECK(strcmp(srdma__err_where(), "") == 0);
	line = __LINE__ + 1;
	CHECK_RC(srdma__err(SRDMA_EINVAL, "test %d", 1), SRDMA_EINVAL);
	snprintf(want, sizeof(want), "test_session.c:%d", line);
	CHECK(strcmp(srdma__err_where(), want) == 0);
	CHECK(strcmp(srdma_error_detail(), "test 1") == 0);

	/* Inside the library: the path from src/ on, and a line. */
	CHECK_RC(srdma_listen(NULL, NULL, 0, NULL), SRDMA_EINVAL);
	CHECK(strncmp(srdma__err_where(), "src/session/", 12) == 0);
	CHECK(strstr(srdma__err_where(), ".c:") != NULL);
	srdma__err_clear();
	CHECK(strcmp(srdma__err_where(), "") == 0);
}

static void test_refusals(uint16_t port)
{
	srdma_ctx *ctx = client_ctx(SRDMA_PROTECT_NONE);
	srdma_conn *c = (srdma_conn *)1;

	/* The server's minimum is integrity. */
	CHECK_RC(srdma_connect(ctx, "127.0.0.1", port, 10000, &c),
		 SRDMA_EPOLICY);
	CHECK(c == NULL);
	CHECK(strstr(srdma_error_detail(), "requires at least") != NULL);
	/* The server logged (before it told us) where it raised that. */
	pthread_mutex_lock(&raised_lock);
	CHECK(strstr(raised_line, "requires at least") != NULL);
	CHECK(strstr(raised_line, "(raised at src/session/") != NULL);
	printf("server's debug line: %s\n", raised_line);
	pthread_mutex_unlock(&raised_lock);
	srdma_ctx_destroy(ctx);

	ctx = client_ctx(SRDMA_PROTECT_ENCRYPT);
	/* Nothing listens on port 1. */
	CHECK_RC(srdma_connect(ctx, "127.0.0.1", 1, 10000, &c),
		 SRDMA_ECONNREFUSED);
	CHECK(strstr(srdma_error_detail(), "refused") != NULL);
	CHECK_RC(srdma_connect(ctx, "no-such-host.invalid", port, 10000, &c),
		 SRDMA_EUNREACHABLE);
	CHECK_RC(srdma_listen(ctx, NULL, 0, NULL), SRDMA_EINVAL);
	srdma_ctx_destroy(ctx);
}

static void test_session(uint16_t port)
{
	srdma_ctx *ctx = client_ctx(SRDMA_PROTECT_ENCRYPT);
	struct srdma_conn_info ci;
	struct srdma_event ev[8];
	unsigned char out[8192], in[8192], big[65536], back[65536];
	srdma_conn *c = NULL;
	uint64_t rlen = 0;
	size_t got = 0;
	int region, n, cookie, fd;
	struct pollfd pfd;

	fd = srdma_ctx_fd(ctx);
	CHECK(fd >= 0);
	CHECK_RC(srdma_connect(ctx, "127.0.0.1", port, 10000, &c), 0);
	if (!c) {
		srdma_ctx_destroy(ctx);
		return;
	}
	CHECK_RC(srdma_conn_info(c, &ci), 0);
	CHECK(ci.transport == SRDMA_TRANSPORT_OFI);
	CHECK(ci.protect == SRDMA_PROTECT_ENCRYPT);
	CHECK(strcmp(ci.peer_identity, "server") == 0);
	CHECK(strstr(ci.tls_version, "TLSv1.3") != NULL);
	CHECK(ci.cipher[0] != 0);
	CHECK(ci.session_id != 0);
	CHECK(ci.max_msg == 4096);

	/* Messages: limits, echo, a too-small buffer. */
	CHECK_RC(srdma_send(c, NULL, 10), SRDMA_EINVAL);
	CHECK_RC(srdma_send(c, out, ci.max_msg + 1), SRDMA_EMSGSIZE);
	CHECK_RC(srdma_recv(c, in, sizeof(in), &got, 50), SRDMA_ETIMEDOUT);
	for (int i = 0; i < 50; i++) {
		memset(out, i, 100 + i);
		CHECK_RC(srdma_send_sync(c, out, 100 + i, 5000), 0);
		CHECK_RC(srdma_recv(c, in, sizeof(in), &got, 5000), 0);
		CHECK(got == (size_t)(100 + i) && !memcmp(in, out, got));
	}
	CHECK_RC(srdma_send_sync(c, out, 300, 5000), 0);
	CHECK_RC(srdma_recv(c, in, 10, &got, 5000), SRDMA_EMSGSIZE);
	CHECK(got == 300);
	CHECK_RC(srdma_recv(c, in, sizeof(in), &got, 5000), 0);
	CHECK(got == 300);
	CHECK_RC(srdma_send_sync(c, out, 0, 5000), 0); /* empty message */
	CHECK_RC(srdma_recv(c, in, sizeof(in), &got, 5000), 0);
	CHECK(got == 0);

	/* Regions: argument and range errors, then verified transfers. */
	region = srdma_conn_wait_region(c, 0, 5000, &rlen);
	CHECK(region > 0 && rlen == 65536);
	/* The blocking calls wait for a grant that has not come (within
	 * their timeout); the event-loop call says at once. */
	CHECK_RC(srdma_write_sync(c, 99, 0, out, 10, 300), SRDMA_ETIMEDOUT);
	CHECK(strstr(srdma_error_detail(), "no region 99") != NULL);
	CHECK_RC(srdma_write(c, 99, 0, out, 10, NULL), SRDMA_ENOENT);
	CHECK(strstr(srdma_error_detail(), "srdma_conn_wait_region") != NULL);
	CHECK_RC(srdma_write_sync(c, region, 100, out, 10, 1000), SRDMA_EINVAL);
	CHECK_RC(srdma_write_sync(c, region, 61440, big, 8192, 1000),
		 SRDMA_ERANGE);
	CHECK_RC(srdma_read_sync(c, region, 65536, in, 1, 1000), SRDMA_ERANGE);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7 + 3);
	CHECK_RC(srdma_write_sync(c, region, 0, big, sizeof(big), 5000), 0);
	CHECK_RC(srdma_read_sync(c, region, 0, back, sizeof(back), 5000), 0);
	CHECK(!memcmp(big, back, sizeof(big)));
	/* A partial last block and an offset. */
	CHECK_RC(srdma_write_sync(c, region, 8192, out, 5000, 5000), 0);
	CHECK_RC(srdma_read_sync(c, region, 8192, in, 5000, 5000), 0);
	CHECK(!memcmp(in, out, 5000));
	/* Bytes after a partial block read back as zero. */
	CHECK_RC(srdma_read_sync(c, region, 8192, in, 8192, 5000), 0);
	CHECK(in[5000] == 0 && in[8191] == 0);

	/* Event style: async write, wait on the fd, collect WRITE_DONE. */
	CHECK_RC(srdma_write(c, region, 16384, big, 20000, &cookie), 0);
	n = 0;
	for (int tries = 0; tries < 200 && n == 0; tries++) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		poll(&pfd, 1, 50);
		n = srdma_ctx_poll(ctx, ev, 8, 0);
		for (int i = 0; i < n; i++)
			if (ev[i].type != SRDMA_EV_WRITE_DONE)
				n--; /* REGION or other bookkeeping events */
	}
	CHECK(n == 1);
	CHECK_RC(srdma_read_sync(c, region, 16384, back, 20000, 5000), 0);
	CHECK(!memcmp(big, back, 20000));
	CHECK(peer_writes >= 3);

	/* Orderly close through the event interface. */
	CHECK_RC(srdma_conn_close(c), 0);
	CHECK_RC(srdma_send(c, out, 1), SRDMA_ECLOSED);
	n = 0;
	for (int tries = 0; tries < 100; tries++) {
		int k = srdma_ctx_poll(ctx, ev, 8, 50);
		for (int i = 0; i < k; i++)
			if (ev[i].type == SRDMA_EV_CLOSED && ev[i].conn == c) {
				CHECK(ev[i].status == 0);
				n = 1;
			}
		if (n)
			break;
	}
	CHECK(n == 1);
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
}

int main(void)
{
	pthread_t th;

	if (test_pki_make(dir, sizeof(dir), "test_session", NULL) < 0)
		return 1;
	test_config_errors();
	test_defaults();
	test_err_where();
	test_transport_why();
	pthread_create(&th, NULL, server_main, NULL);
	for (int i = 0; i < 200 && server_port == 0; i++)
		usleep(10000);
	CHECK(server_port > 0);
	if (server_port > 0) {
		test_refusals((uint16_t)server_port);
		test_session((uint16_t)server_port);
		for (int i = 0; i < 100 && closed_ok < 1; i++)
			usleep(10000);
		CHECK(accepted == 1);
		CHECK(closed_ok == 1);
	}
	stop = 1;
	pthread_join(th, NULL);
	test_pki_remove(dir);
	TEST_DONE();
}
