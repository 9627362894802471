/* SPDX-License-Identifier: MIT */
/*
 * Issue 18's traps, as a new user meets them, public API only, over
 * libfabric tcp: a blocking server (srdma_accept); the library's logs
 * going only where asked; a write right after connect (the grant is still
 * on its way); a write into a read-only region; zero lengths; max_msg and
 * the quota, counted sealed (srdma_region_footprint); srdma_ctx_timeout
 * for event loops.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "srdma.h"
#include "test.h"
#include "test_pki.h"
#include "test_server.h"

static char dir[256];

/* ---- a blocking server: srdma_accept, srdma_recv, srdma_send_sync ---- */

static atomic_int bs_port, bs_served, bs_rejected, bs_errors;
static atomic_int bs_ready; /* the timeouts are checked: connect now */

static void bs_fail(const char *what)
{
	fprintf(stderr, "blocking server: %s: %s\n", what,
		srdma_error_detail());
	bs_errors++;
}

/* Echoes messages until the client closes, then destroys it. */
static void bs_serve(srdma_conn *c)
{
	char buf[256];
	size_t len;
	int rc;

	while ((rc = srdma_recv(c, buf, sizeof(buf), &len, 10000)) == 0)
		if (srdma_send_sync(c, buf, len, 5000) < 0)
			bs_fail("echo");
	if (rc != SRDMA_ECLOSED)
		bs_fail("recv");
	srdma_conn_destroy(c);
	bs_served++;
}

static void *blocking_server(void *arg)
{
	struct srdma_config cfg;
	struct srdma_event evs[8];
	srdma_listener *l = NULL;
	srdma_ctx *ctx = NULL;
	srdma_conn *c = NULL;
	int n;

	(void)arg;
	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.log_fn = tsrv_quiet;
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, "127.0.0.1", 0, &l) < 0) {
		bs_fail("start");
		bs_port = -1;
		srdma_ctx_destroy(ctx);
		return NULL;
	}
	bs_port = srdma_listener_port(l);
	/* Nobody yet: a clear timeout, also at 0 ms. */
	CHECK_RC(srdma_accept(l, 0, &c), SRDMA_ETIMEDOUT);
	CHECK_RC(srdma_accept(l, 50, &c), SRDMA_ETIMEDOUT);
	CHECK(strstr(srdma_error_detail(), "no client connected") != NULL);
	CHECK(c == NULL);
	bs_ready = 1;
	/* The first client. */
	if (srdma_accept(l, 10000, &c) < 0)
		bs_fail("accept 1");
	else
		bs_serve(c);
	/* A refused client, then a good one: accept returns the good one
	 * and leaves the refusal queued for srdma_ctx_poll. */
	if (srdma_accept(l, 10000, &c) < 0)
		bs_fail("accept 2");
	else
		bs_serve(c);
	n = srdma_ctx_poll(ctx, evs, 8, 0);
	for (int i = 0; i < n; i++)
		if (evs[i].type == SRDMA_EV_REJECTED &&
		    evs[i].status == SRDMA_EPOLICY)
			bs_rejected++;
	CHECK_RC(srdma_accept(NULL, 0, &c), SRDMA_EINVAL);
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx);
	return NULL;
}

static void echo_once(srdma_ctx *ctx, int port, const char *msg)
{
	srdma_conn *c = NULL;
	char back[256];
	size_t len = 0;

	CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000, &c), 0);
	if (!c)
		return;
	CHECK_RC(srdma_send_sync(c, msg, strlen(msg), 5000), 0);
	CHECK_RC(srdma_recv(c, back, sizeof(back), &len, 5000), 0);
	CHECK(len == strlen(msg) && !memcmp(back, msg, len));
	srdma_conn_destroy(c);
}

static void test_accept(void)
{
	srdma_ctx *ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
	srdma_ctx *weak = tsrv_client_ctx(dir, SRDMA_PROTECT_NONE);
	srdma_conn *c = NULL;
	pthread_t th;

	pthread_create(&th, NULL, blocking_server, NULL);
	while (!bs_port)
		usleep(1000);
	while (bs_port > 0 && !bs_ready)
		usleep(1000);
	if (bs_port > 0) {
		echo_once(ctx, bs_port, "first");
		/* The server's minimum is encrypt: refused. */
		CHECK_RC(srdma_connect(weak, "127.0.0.1", (uint16_t)bs_port,
				       10000, &c),
			 SRDMA_EPOLICY);
		echo_once(ctx, bs_port, "second");
	}
	pthread_join(th, NULL);
	CHECK(bs_errors == 0);
	CHECK(bs_served == 2);
	CHECK(bs_rejected == 1);
	srdma_ctx_destroy(weak);
	srdma_ctx_destroy(ctx);
}

/* ---- logs: through the callback only ---- */

/* What a client context writes on stderr, all levels on, while it is made,
 * fails to connect and is destroyed. */
static long stderr_bytes(srdma_log_fn fn, char *text, size_t cap)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;
	srdma_conn *c = NULL;
	char path[300];
	struct stat st;
	int saved, fd;
	long n;

	snprintf(path, sizeof(path), "%s/stderr.txt", dir);
	fflush(stderr);
	saved = dup(2);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (saved < 0 || fd < 0)
		return -1;
	dup2(fd, 2);
	close(fd);
	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.log_fn = fn;
	cfg.log_level = SRDMA_LOG_DEBUG;
	if (srdma_ctx_create(&cfg, &ctx) == 0) {
		(void)srdma_connect(ctx, "127.0.0.1", 1, 2000, &c);
		srdma_ctx_destroy(ctx);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = stat(path, &st) == 0 ? (long)st.st_size : -1;
	fd = open(path, O_RDONLY);
	text[0] = 0;
	if (fd >= 0) {
		ssize_t k = read(fd, text, cap - 1);
		text[k > 0 ? k : 0] = 0;
		close(fd);
	}
	return n;
}

static void test_logging(void)
{
	char text[4096];

	/* No callback: nothing on the program's stderr. */
	CHECK(stderr_bytes(NULL, text, sizeof(text)) == 0);
	/* Asked for: the lines are there (and the capture works). */
	CHECK(stderr_bytes(srdma_log_stderr, text, sizeof(text)) > 0);
	CHECK(strstr(text, "srdma: info: transport ofi") != NULL);
	CHECK(strstr(text, "Connection refused") != NULL);
}

/* ---- right after connect: the grant is on its way ---- */

static void test_grant_race(void)
{
	struct tsrv s = {.dir = dir,
			 .min = SRDMA_PROTECT_INTEGRITY,
			 .region_len = 65536,
			 .region_access = SRDMA_ACCESS_REMOTE_READ |
					  SRDMA_ACCESS_REMOTE_WRITE};
	srdma_ctx *ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
	uint8_t data[8192], back[8192];
	int port = tsrv_start(&s), ok = 0;

	CHECK(port > 0);
	/* A server that grants on ACCEPTED: issue 18 saw ENOENT 26 times in
	 * 40; the blocking calls now wait for the grant. */
	for (int i = 0; i < 40 && port > 0; i++) {
		srdma_conn *c = NULL;
		memset(data, i, sizeof(data));
		CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000,
				       &c),
			 0);
		if (!c)
			break;
		if (srdma_write_sync(c, 1, 0, data, sizeof(data), 5000) == 0 &&
		    srdma_read_sync(c, 1, 0, back, sizeof(back), 5000) == 0 &&
		    !memcmp(data, back, sizeof(back)))
			ok++;
		else
			fprintf(stderr, "round %d: %s\n", i,
				srdma_error_detail());
		srdma_conn_destroy(c);
	}
	CHECK(ok == 40);
	tsrv_stop(&s);
	CHECK(s.errors == 0);

	/* A server that grants 300 ms after ACCEPTED. */
	s.grant_delay_ms = 300;
	port = tsrv_start(&s);
	for (int i = 0; i < 2 && port > 0; i++) {
		srdma_conn *c = NULL;
		uint64_t len;
		CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000,
				       &c),
			 0);
		if (!c)
			break;
		if (i == 0) {
			/* The event-loop call says at once, and where to
			 * wait. */
			CHECK_RC(srdma_write(c, 1, 0, data, 10, NULL),
				 SRDMA_ENOENT);
			CHECK(strstr(srdma_error_detail(),
				     "srdma_conn_wait_region") != NULL);
			/* A blocking call waits within its timeout... */
			CHECK_RC(srdma_write_sync(c, 1, 0, data, 10, 50),
				 SRDMA_ETIMEDOUT);
			CHECK(strstr(srdma_error_detail(),
				     "granted no region 1") != NULL);
			/* ... and the connection is fine. */
			CHECK_RC(srdma_write_sync(c, 1, 0, data, sizeof(data),
						  5000),
				 0);
		} else {
			CHECK_RC(srdma_write_sync(c, 1, 0, data, sizeof(data),
						  5000),
				 0);
			CHECK(srdma_conn_wait_region(c, 1, 0, &len) == 1);
		}
		srdma_conn_destroy(c);
	}
	tsrv_stop(&s);
	CHECK(s.errors == 0);
	srdma_ctx_destroy(ctx);
}

/* ---- access and lengths ---- */

static void test_access_and_lengths(void)
{
	struct tsrv s = {.dir = dir,
			 .min = SRDMA_PROTECT_INTEGRITY,
			 .region_len = 65536,
			 .region_access = SRDMA_ACCESS_REMOTE_READ};
	srdma_ctx *ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
	srdma_conn *c = NULL;
	srdma_region *r = NULL;
	uint8_t buf[4096] = {0};
	uint64_t len;
	int port = tsrv_start(&s);

	CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)port, 10000, &c), 0);
	if (c && srdma_conn_wait_region(c, 1, 5000, &len) == 1) {
		/* Read-only: a write is an access error, not EINVAL. */
		CHECK_RC(srdma_write(c, 1, 0, buf, sizeof(buf), NULL),
			 SRDMA_EREMOTE_ACCESS);
		CHECK(strstr(srdma_error_detail(),
			     "does not allow remote writes") != NULL);
		CHECK_RC(srdma_write_sync(c, 1, 0, buf, sizeof(buf), 1000),
			 SRDMA_EREMOTE_ACCESS);
		CHECK_RC(srdma_read_sync(c, 1, 0, buf, sizeof(buf), 5000), 0);
		/* Zero lengths: a sentence, not "bad argument". */
		CHECK_RC(srdma_write(c, 1, 0, buf, 0, NULL), SRDMA_EINVAL);
		CHECK(strstr(srdma_error_detail(), "a length of 0") != NULL);
		CHECK_RC(srdma_read_sync(c, 1, 0, buf, 0, 1000), SRDMA_EINVAL);
		CHECK(strstr(srdma_error_detail(), "a length of 0") != NULL);
		CHECK_RC(
			srdma_region_create(c, 0, SRDMA_ACCESS_REMOTE_READ, &r),
			SRDMA_EINVAL);
		CHECK(strstr(srdma_error_detail(), "a region of 0 bytes") !=
		      NULL);
		/* The connection is unharmed by all that. */
		CHECK_RC(srdma_read_sync(c, 1, 0, buf, sizeof(buf), 5000), 0);
	} else {
		CHECK(!"no read-only region");
	}
	srdma_conn_destroy(c);
	tsrv_stop(&s);
	CHECK(s.errors == 0);
	srdma_ctx_destroy(ctx);
}

/* ---- limits: max_msg, and the quota counted sealed ---- */

static void test_limits(void)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;
	uint64_t sealed = srdma_region_footprint(65536, SRDMA_PROTECT_ENCRYPT);

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.max_msg = (16u << 20) + 1;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), SRDMA_EINVAL);
	CHECK(strstr(srdma_error_detail(), "max_msg") != NULL);
	CHECK(strstr(srdma_error_detail(), "16 MiB") != NULL);
	cfg.max_msg = 16u << 20;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), 0);
	srdma_ctx_destroy(ctx);
	/* Below what a peer accepts: refused here, not at the handshake. */
	cfg.max_msg = 63;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), SRDMA_EINVAL);
	CHECK(strstr(srdma_error_detail(), "64-byte minimum") != NULL);
	cfg.max_msg = 64;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), 0);
	srdma_ctx_destroy(ctx);

	CHECK(sealed == 16 * 4128);
	CHECK(srdma_region_footprint(65536, SRDMA_PROTECT_INTEGRITY) == sealed);
	CHECK(srdma_region_footprint(65536, SRDMA_PROTECT_NONE) == 65536);
	CHECK(srdma_region_footprint(1, SRDMA_PROTECT_ENCRYPT) == 4128);
	CHECK(srdma_region_footprint(0, SRDMA_PROTECT_ENCRYPT) == 0);
	CHECK(srdma_region_footprint(UINT64_MAX, SRDMA_PROTECT_ENCRYPT) ==
	      UINT64_MAX);

	/* A quota of the footprint holds the region; a quota of its payload
	 * does not, and the client hears why. */
	for (int fits = 1; fits >= 0; fits--) {
		struct tsrv s = {.dir = dir,
				 .min = SRDMA_PROTECT_INTEGRITY,
				 .region_len = 65536,
				 .region_access = SRDMA_ACCESS_REMOTE_READ |
						  SRDMA_ACCESS_REMOTE_WRITE,
				 .quota = fits ? sealed : 65536,
				 .abort_refused = true};
		srdma_ctx *cctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
		srdma_conn *c = NULL;
		uint64_t len;
		int port = tsrv_start(&s), rc;

		/* The refusal may come during srdma_connect or after. */
		rc = srdma_connect(cctx, "127.0.0.1", (uint16_t)port, 10000,
				   &c);
		if (rc == 0)
			rc = srdma_conn_wait_region(c, 1, 5000, &len);
		if (fits) {
			CHECK(rc == 1);
		} else {
			CHECK_RC(rc, SRDMA_EQUOTA);
			CHECK(strstr(srdma_error_detail(),
				     "a region of 65536 bytes takes 66048 "
				     "sealed") != NULL);
			CHECK(strstr(srdma_error_detail(), "client_quota") !=
			      NULL);
		}
		CHECK(s.refused == !fits);
		srdma_conn_destroy(c);
		tsrv_stop(&s);
		CHECK(s.errors == 0);
		srdma_ctx_destroy(cctx);
	}
}

/* ---- srdma_ctx_timeout: the library's timers, for poll(2) ---- */

static void test_ctx_timeout(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	srdma_ctx *ctx = tsrv_client_ctx(dir, SRDMA_PROTECT_ENCRYPT);
	struct srdma_event ev[4];
	srdma_conn *c = NULL;
	int fd = socket(AF_INET, SOCK_STREAM, 0), t, n = 0;

	/* A TCP listener that never speaks TLS: the set-up waits for its
	 * handshake deadline (10 s by default). */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	      listen(fd, 4) == 0 &&
	      getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	CHECK(srdma_ctx_timeout(NULL) == -1);
	CHECK(srdma_ctx_timeout(ctx) == -1); /* nothing to time */
	CHECK_RC(srdma_connect_start(ctx, "127.0.0.1", ntohs(sa.sin_port), NULL,
				     &c),
		 0);
	t = srdma_ctx_timeout(ctx);
	CHECK(t > 9000 && t <= 10000);
	/* An event waiting: poll now. */
	CHECK_RC(srdma_conn_abort(c, SRDMA_ECLOSED, "test"), 0);
	CHECK(srdma_ctx_timeout(ctx) == 0);
	n = srdma_ctx_poll(ctx, ev, 4, 0);
	CHECK(n == 1 && ev[0].type == SRDMA_EV_CLOSED);
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
	close(fd);
}

int main(void)
{
	if (test_pki_make(dir, sizeof(dir), "test_usage", NULL) < 0)
		return 1;
	test_accept();
	test_logging();
	test_grant_race();
	test_access_and_lengths();
	test_limits();
	test_ctx_timeout();
	test_pki_remove(dir);
	TEST_DONE();
}
