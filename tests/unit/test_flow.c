/* SPDX-License-Identifier: MIT */
/*
 * Flow control as a user meets it, over real libfabric tcp on 127.0.0.1:
 * a program keeps W RDMA writes (then reads) outstanding for W of 1, 16,
 * 17, 32, 64 and 256 and sizes from 64 B to 1 MiB, answering SRDMA_EAGAIN
 * by polling; every operation must complete and every byte read back. Then
 * the burst that used to kill the connection: one 1 MiB write followed by
 * 700 non-overlapping 4 KiB writes, in all three modes, three runs each.
 * Only the public API is used.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srdma.h"
#include "test.h"
#include "test_pki.h"

enum { REGION = 16 << 20, MAXW = 256 };

static char dir[256];
static atomic_int stop, server_port, server_errors;
/* Messages the server received on its last connection that closed in
 * order, and their payload bytes (test_send_close). */
static atomic_int closed_msgs = -1;
static atomic_llong closed_bytes;

static void quiet(void *arg, int level, const char *line)
{
	(void)arg, (void)level, (void)line;
}

static void *server_main(void *arg)
{
	struct srdma_config cfg;
	srdma_ctx *ctx;
	srdma_listener *l;
	struct srdma_event evs[64];
	long long bytes = 0;
	int msgs = 0;

	(void)arg;
	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = SRDMA_PROTECT_NONE; /* the weakest accepted */
	cfg.client_quota = 64u << 20;
	cfg.log_fn = quiet;
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, "127.0.0.1", 0, &l) < 0) {
		fprintf(stderr, "server: %s\n", srdma_error_detail());
		server_port = -1;
		return NULL;
	}
	server_port = srdma_listener_port(l);
	while (!stop) {
		int n = srdma_ctx_poll(ctx, evs, 64, 20);
		for (int i = 0; i < n; i++) {
			srdma_region *r;
			if (evs[i].type == SRDMA_EV_ACCEPTED &&
			    srdma_region_create(
				    evs[i].conn, REGION,
				    SRDMA_ACCESS_REMOTE_READ |
					    SRDMA_ACCESS_REMOTE_WRITE,
				    &r) < 0) {
				fprintf(stderr, "region: %s\n",
					srdma_error_detail());
				server_errors++;
			} else if (evs[i].type == SRDMA_EV_ACCEPTED) {
				srdma_conn_set_user(evs[i].conn, r);
				msgs = 0;
				bytes = 0;
			}
			if (evs[i].type == SRDMA_EV_RECV) {
				msgs++;
				bytes += (long long)evs[i].len;
			}
			if (evs[i].type == SRDMA_EV_CLOSED) {
				if (!evs[i].status) {
					closed_bytes = bytes;
					closed_msgs = msgs;
				}
				if (evs[i].status) {
					fprintf(stderr, "server: closed: %s\n",
						evs[i].detail);
					server_errors++;
				}
				srdma_region_destroy(
					srdma_conn_user(evs[i].conn));
				srdma_conn_destroy(evs[i].conn);
			}
		}
	}
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx);
	return NULL;
}

static srdma_conn *connect_mode(srdma_ctx **pctx, enum srdma_protect mode,
				uint32_t *region)
{
	struct srdma_config cfg;
	srdma_conn *c = NULL;
	uint64_t len;
	int rc;

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = mode;
	cfg.log_fn = quiet;
	CHECK_RC(srdma_ctx_create(&cfg, pctx), 0);
	CHECK_RC(srdma_connect(*pctx, "127.0.0.1", (uint16_t)server_port, 10000,
			       &c),
		 0);
	if (!c)
		return NULL;
	rc = srdma_conn_wait_region(c, 0, 10000, &len);
	CHECK(rc > 0 && len == REGION);
	*region = (uint32_t)rc;
	return c;
}

static void pattern(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

struct slot {
	uint8_t *buf;
	int busy;
};

/* Polls until at least one op completes; counts errors. */
static int reap(srdma_ctx *ctx, struct slot *slots, int *errors)
{
	struct srdma_event ev[64];
	int done = 0;

	while (!done) {
		int n = srdma_ctx_poll(ctx, ev, 64, 1000);
		if (n <= 0) {
			(*errors)++;
			return -1;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].type != SRDMA_EV_WRITE_DONE &&
			    ev[i].type != SRDMA_EV_READ_DONE)
				continue;
			if (ev[i].status) {
				fprintf(stderr, "op failed: %s\n",
					ev[i].detail);
				(*errors)++;
			}
			((struct slot *)ev[i].user)->busy = 0;
			done++;
		}
	}
	(void)slots;
	return done;
}

/*
 * W writes outstanding, size bytes each, into `span` distinct slots
 * (offsets cycle), then all slots read back with W reads outstanding.
 */
static void window_case(srdma_ctx *ctx, srdma_conn *c, uint32_t region, int w,
			size_t size)
{
	size_t stride = (size + 4095) / 4096 * 4096;
	int span = (int)(REGION / stride), total = 2 * w < 32 ? 32 : 2 * w;
	static struct slot slots[MAXW];
	uint8_t *want = malloc(size), *got;
	int issued = 0, errors = 0, again = 0, cur = 0;
	int *last = calloc((size_t)span, sizeof(int));

	if (span > total)
		span = total;
	for (int i = 0; i < w; i++) {
		slots[i].buf = malloc(size);
		slots[i].busy = 0;
	}
	/* Writes: op k writes pattern k into slot k % span. */
	while (issued < total && !errors) {
		struct slot *s = NULL;
		for (int i = 0; i < w && !s; i++, cur = (cur + 1) % w)
			if (!slots[cur].busy)
				s = &slots[cur];
		if (!s) {
			reap(ctx, slots, &errors);
			continue;
		}
		pattern(s->buf, size, (uint32_t)issued);
		int rc = srdma_write(c, region,
				     (uint64_t)(issued % span) * stride, s->buf,
				     size, s);
		if (rc == SRDMA_EAGAIN) {
			again++;
			reap(ctx, slots, &errors);
			continue;
		}
		if (rc < 0) {
			fprintf(stderr, "write: %s\n", srdma_error_detail());
			errors++;
			break;
		}
		s->busy = 1;
		last[issued % span] = issued;
		issued++;
	}
	for (int i = 0; i < w; i++)
		while (slots[i].busy && !errors)
			reap(ctx, slots, &errors);
	CHECK(errors == 0 && issued == total);
	/* Reads: W outstanding, each slot compared with its last write. */
	int next = 0, checked = 0, wrong = 0;
	int *which = malloc((size_t)w * sizeof(int));
	for (int i = 0; i < w; i++)
		which[i] = -1;
	while (checked < span && !errors) {
		for (int i = 0; i < w && next < span; i++) {
			if (slots[i].busy || which[i] >= 0)
				continue;
			int rc = srdma_read(c, region, (uint64_t)next * stride,
					    slots[i].buf, size, &slots[i]);
			if (rc == SRDMA_EAGAIN) {
				again++;
				break;
			}
			if (rc < 0) {
				fprintf(stderr, "read: %s\n",
					srdma_error_detail());
				errors++;
				break;
			}
			slots[i].busy = 1;
			which[i] = next++;
		}
		if (errors || reap(ctx, slots, &errors) < 0)
			break;
		for (int i = 0; i < w; i++)
			if (!slots[i].busy && which[i] >= 0) {
				got = slots[i].buf;
				pattern(want, size, (uint32_t)last[which[i]]);
				wrong += memcmp(got, want, size) != 0;
				which[i] = -1;
				checked++;
			}
	}
	CHECK(errors == 0 && checked == span && wrong == 0);
	if (errors || wrong || checked != span)
		fprintf(stderr,
			"window %d size %zu: %d errors, %d/%d checked, "
			"%d wrong\n",
			w, size, errors, checked, span, wrong);
	for (int i = 0; i < w; i++)
		free(slots[i].buf);
	free(which);
	free(last);
	free(want);
}

static void test_windows(void)
{
	static const int windows[] = {1, 16, 17, 32, 64, 256};
	static const size_t sizes[] = {64, 4096, 65536 + 100, 1 << 20};
	uint32_t region;
	srdma_ctx *ctx;
	srdma_conn *c = connect_mode(&ctx, SRDMA_PROTECT_ENCRYPT, &region);
	struct srdma_conn_info info;

	if (!c)
		return;
	CHECK_RC(srdma_conn_info(c, &info), 0);
	CHECK(info.max_ops == 256);
	for (size_t wi = 0; wi < sizeof(windows) / sizeof(windows[0]); wi++)
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]);
		     si++) {
			/* 256 x 1 MiB cycles through the 16 slots. */
			window_case(ctx, c, region, windows[wi], sizes[si]);
		}
	CHECK_RC(srdma_send(c, "x", 1), 0); /* still alive */
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
}

/* One 1 MiB write, then 700 4 KiB writes that overlap nothing. */
static void test_burst(enum srdma_protect mode)
{
	enum { SMALL = 700 };
	uint32_t region;
	srdma_ctx *ctx;
	srdma_conn *c = connect_mode(&ctx, mode, &region);
	static uint8_t big[1 << 20], small[SMALL][4096], back[4096];
	struct slot done_marker;
	int completed = 0, errors = 0, again = 0, issued = 0;

	if (!c)
		return;
	pattern(big, sizeof(big), 7 + mode);
	CHECK_RC(srdma_write(c, region, 0, big, sizeof(big), &done_marker), 0);
	issued++;
	for (int i = 0; i < SMALL; i++) {
		pattern(small[i], 4096, 1000 + (uint32_t)i + mode);
		for (;;) {
			int rc = srdma_write(c, region,
					     (1u << 20) + (uint64_t)i * 4096,
					     small[i], 4096, &done_marker);
			if (rc == 0)
				break;
			if (rc != SRDMA_EAGAIN) {
				fprintf(stderr, "burst write %d: %s\n", i,
					srdma_error_detail());
				errors++;
				break;
			}
			again++;
			struct srdma_event ev[64];
			int n = srdma_ctx_poll(ctx, ev, 64, 1000);
			for (int k = 0; k < n; k++)
				if (ev[k].type == SRDMA_EV_WRITE_DONE) {
					completed++;
					errors += ev[k].status != 0;
				}
		}
		issued++;
	}
	while (completed < issued && !errors) {
		struct srdma_event ev[64];
		int n = srdma_ctx_poll(ctx, ev, 64, 2000);
		if (n <= 0)
			break;
		for (int k = 0; k < n; k++)
			if (ev[k].type == SRDMA_EV_WRITE_DONE) {
				completed++;
				errors += ev[k].status != 0;
			}
	}
	CHECK(errors == 0 && completed == SMALL + 1);
	CHECK(again > 0); /* 701 > max_ops: the caller was told to wait */
	/* Read back a sample of every kind. */
	CHECK_RC(srdma_read_sync(c, region, 0, back, sizeof(back), 5000), 0);
	CHECK(!memcmp(back, big, sizeof(back)));
	for (int i = 0; i < SMALL; i += 37) {
		CHECK_RC(srdma_read_sync(c, region,
					 (1u << 20) + (uint64_t)i * 4096, back,
					 4096, 5000),
			 0);
		CHECK(!memcmp(back, small[i], 4096));
	}
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
}

/* Registered memory: in mode none writes and reads move straight between
 * it and the peer (no staging); the bytes are the same either way. A
 * deregistration while operations use it waits for them. */
static void test_registered(enum srdma_protect mode)
{
	enum { N = 16, SZ = 256 * 1024 };
	uint32_t region;
	srdma_ctx *ctx;
	srdma_conn *c = connect_mode(&ctx, mode, &region);
	uint8_t *mem = malloc((size_t)N * SZ * 2), *back = mem + (size_t)N * SZ;
	srdma_mem *m = NULL;
	int done = 0, errors = 0;

	if (!c || !mem)
		return;
	CHECK_RC(srdma_mem_register(c, mem, (size_t)N * SZ * 2, &m), 0);
	CHECK_RC(srdma_mem_register(c, mem, 0, &m), SRDMA_EINVAL);
	for (int i = 0; i < N; i++) {
		pattern(mem + (size_t)i * SZ, SZ, 500 + (uint32_t)i + mode);
		CHECK_RC(srdma_write(c, region, (uint64_t)i * SZ,
				     mem + (size_t)i * SZ, SZ, NULL),
			 0);
	}
	/* Deregistered with all N in flight: released after them. */
	srdma_mem_deregister(m);
	while (done < N && !errors) {
		struct srdma_event ev[16];
		int n = srdma_ctx_poll(ctx, ev, 16, 2000);
		if (n <= 0)
			errors++;
		for (int k = 0; k < n; k++)
			if (ev[k].type == SRDMA_EV_WRITE_DONE) {
				done++;
				errors += ev[k].status != 0;
			}
	}
	CHECK(done == N && errors == 0);
	CHECK_RC(srdma_mem_register(c, back, (size_t)N * SZ, &m), 0);
	for (int i = 0; i < N; i++)
		CHECK_RC(srdma_read_sync(c, region, (uint64_t)i * SZ,
					 back + (size_t)i * SZ, SZ, 5000),
			 0);
	CHECK(!memcmp(back, mem, (size_t)N * SZ));
	srdma_mem_deregister(m);

	/* One op larger than a fabric op from registered memory (256
	 * blocks): cut in two, from an odd address, with a partial last
	 * block, read back whole. */
	{
		const size_t big = (size_t)257 * 4096 + 12345;
		CHECK_RC(srdma_mem_register(c, mem, (size_t)N * SZ * 2, &m), 0);
		pattern(mem + 7, big, 900 + mode);
		memset(back, 0, big);
		CHECK_RC(srdma_write_sync(c, region, 4096, mem + 7, big, 5000),
			 0);
		CHECK_RC(srdma_read_sync(c, region, 4096, back + 3, big, 5000),
			 0);
		CHECK(!memcmp(back + 3, mem + 7, big));
		srdma_mem_deregister(m);
	}
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
	free(mem);
}

/*
 * Messages sent right before an orderly close all arrive: the goodbye
 * travels on TLS and can overtake the last records on the fabric, so it
 * counts them and the peer reads that many before it ends (PROTOCOL.md,
 * GOODBYE). The server counts what it got before SRDMA_EV_CLOSED.
 */
static void test_send_close(enum srdma_protect mode)
{
	enum { N = 300, LEN = 60000 };
	struct srdma_event ev;
	uint8_t buf[LEN];
	srdma_ctx *ctx = NULL;
	srdma_conn *c;
	uint32_t region;
	int sent = 0, n;

	closed_msgs = -1;
	c = connect_mode(&ctx, mode, &region);
	if (!c) {
		srdma_ctx_destroy(ctx);
		return;
	}
	memset(buf, 0x42, sizeof(buf));
	for (int i = 0; i < N; i++)
		sent += srdma_send_sync(c, buf, sizeof(buf), 10000) == 0;
	CHECK(sent == N);
	CHECK_RC(srdma_conn_close(c), 0);
	do
		n = srdma_ctx_poll(ctx, &ev, 1, 10000);
	while (n == 1 && ev.type != SRDMA_EV_CLOSED);
	CHECK(n == 1 && ev.type == SRDMA_EV_CLOSED && ev.status == 0);
	for (int i = 0; i < 500 && closed_msgs < 0; i++)
		usleep(10000);
	printf("send then close (%s): %d sent, the server read %d (%lld "
	       "bytes) before the close\n",
	       srdma_protect_name(mode), N, (int)closed_msgs,
	       (long long)closed_bytes);
	CHECK(closed_msgs == N);
	CHECK(closed_bytes == (long long)N * LEN);
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
}

int main(void)
{
	pthread_t th;

	if (test_pki_make(dir, sizeof(dir), "test_flow", NULL) < 0)
		return 1;
	pthread_create(&th, NULL, server_main, NULL);
	while (!server_port)
		;
	if (server_port < 0)
		return 1;
	for (int m = 0; m <= SRDMA_PROTECT_ENCRYPT; m++)
		test_send_close((enum srdma_protect)m);
	test_windows();
	test_registered(SRDMA_PROTECT_NONE);
	test_registered(SRDMA_PROTECT_ENCRYPT);
	for (int run = 0; run < 3; run++)
		for (int m = 0; m <= SRDMA_PROTECT_ENCRYPT; m++)
			test_burst((enum srdma_protect)m);
	stop = 1;
	pthread_join(th, NULL);
	CHECK(server_errors == 0);
	test_pki_remove(dir);
	TEST_DONE();
}
