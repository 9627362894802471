/* SPDX-License-Identifier: MIT */
/*
 * multi_client: one process that holds K connections to `srdma serve`
 * (ofi) at once, for the scale tests. It connects all K, writes READY_FILE
 * (if given) and waits until GO_FILE exists (if given), so a test can
 * measure the server with every client connected and idle; then it
 * verifies on every connection one echo, one write + read-back on region 1
 * and one read of region 2's known pattern, and closes them all.
 *
 *   multi_client HOST PORT CERTS_DIR K [--ready FILE] [--go FILE]
 *                [--size BYTES] [--burst] [--start FILE]
 *
 * --burst starts all K connects at once (srdma_connect_start) instead of
 * one after the other, waiting first for FILE (--start) to exist so that
 * several processes can start together. Prints "held K verified V" (and,
 * with --burst, "burst: K connects in S s, B busy retries") and exits 0
 * when V == K.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "srdma.h"

enum { TMO = 60000 };

/* The server's read-only pattern (tools/srdma/common.h pattern_byte). */
static uint8_t pattern_byte(uint64_t off)
{
	return (uint8_t)((off >> 12) * 31u + off * 7u + 1u);
}

static int verify(srdma_conn *c, size_t size, unsigned seed)
{
	unsigned char *out = malloc(size), *in = malloc(size);
	uint64_t len;
	size_t got;
	int rc = -1;

	if (!out || !in)
		goto out;
	for (size_t i = 0; i < size; i++)
		out[i] = (unsigned char)(seed * 131 + i);
	if (srdma_send_sync(c, out, size, TMO) < 0 ||
	    srdma_recv(c, in, size, &got, TMO) < 0 || got != size ||
	    memcmp(in, out, size))
		goto out;
	if (srdma_conn_wait_region(c, 1, TMO, &len) < 0 || len < size ||
	    srdma_write_sync(c, 1, 0, out, size, TMO) < 0 ||
	    srdma_read_sync(c, 1, 0, in, size, TMO) < 0 ||
	    memcmp(in, out, size))
		goto out;
	if (srdma_conn_wait_region(c, 2, TMO, &len) < 0 || len < size ||
	    srdma_read_sync(c, 2, 0, in, size, TMO) < 0)
		goto out;
	for (size_t i = 0; i < size; i++)
		if (in[i] != pattern_byte(i))
			goto out;
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "multi_client: verify: %s\n",
			srdma_error_detail());
	free(out);
	free(in);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* All k connects at once; returns how many connected (c[i] NULL if not). */
static int burst(srdma_ctx *ctx, const char *host, uint16_t port, int k,
		 srdma_conn **c)
{
	int pending = 0, held = 0;
	double t0 = now_s(), end = t0 + TMO / 1000.0;
	struct srdma_metrics m;

	for (int i = 0; i < k; i++) {
		if (srdma_connect_start(ctx, host, port,
					(void *)(intptr_t)(i + 1), &c[i]) < 0) {
			fprintf(stderr, "multi_client: connect #%d: %s\n", i,
				srdma_error_detail());
			c[i] = NULL;
			continue;
		}
		pending++;
	}
	while (pending > 0 && now_s() < end) {
		struct srdma_event ev[64];
		int n = srdma_ctx_poll(ctx, ev, 64, 100);

		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			intptr_t who =
				ev[i].conn
					? (intptr_t)srdma_conn_user(ev[i].conn)
					: 0;

			if (who <= 0 || who > k || c[who - 1] != ev[i].conn)
				continue;
			if (ev[i].type == SRDMA_EV_CONNECTED) {
				srdma_conn_set_user(ev[i].conn, NULL);
				pending--;
				held++;
			} else if (ev[i].type == SRDMA_EV_CLOSED) {
				fprintf(stderr, "multi_client: connect: %s\n",
					ev[i].detail);
				srdma_conn_destroy(c[who - 1]);
				c[who - 1] = NULL;
				pending--;
			}
		}
	}
	srdma_ctx_metrics(ctx, &m);
	printf("burst: %d connects in %.2f s, %llu busy retries\n", held,
	       now_s() - t0, (unsigned long long)m.busy_retries);
	return held;
}

int main(int argc, char **argv)
{
	struct srdma_config cfg;
	const char *ready = NULL, *go = NULL, *start = NULL;
	bool bursty = false;
	srdma_ctx *ctx = NULL;
	srdma_conn **c;
	size_t size = 4096;
	int k, held = 0, ok = 0;

	if (argc < 5 || (k = atoi(argv[4])) <= 0) {
		fprintf(stderr, "usage: multi_client HOST PORT CERTS_DIR K "
				"[--ready F] [--go F] [--size B]\n");
		return 2;
	}
	for (int i = 5; i < argc; i += 2) {
		if (!strcmp(argv[i], "--burst")) {
			bursty = true;
			i--;
		} else if (i + 1 >= argc) {
			break;
		} else if (!strcmp(argv[i], "--start"))
			start = argv[i + 1];
		else if (!strcmp(argv[i], "--ready"))
			ready = argv[i + 1];
		else if (!strcmp(argv[i], "--go"))
			go = argv[i + 1];
		else if (!strcmp(argv[i], "--size"))
			size = (size_t)atol(argv[i + 1]);
	}
	c = calloc((size_t)k, sizeof(*c));
	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.certs_dir = argv[3];
	cfg.handshake_timeout_ms = TMO;
	if (!c || srdma_ctx_create(&cfg, &ctx) < 0) {
		fprintf(stderr, "multi_client: %s\n", srdma_error_detail());
		return 1;
	}
	while (start && access(start, F_OK) != 0)
		usleep(1000);
	if (bursty) {
		held = burst(ctx, argv[1], (uint16_t)atoi(argv[2]), k, c);
		/* the ones that connected first */
		for (int i = 0, j = 0; i < k; i++)
			if (c[i])
				c[j++] = c[i];
	}
	for (int i = 0; !bursty && i < k; i++) {
		if (srdma_connect(ctx, argv[1], (uint16_t)atoi(argv[2]), TMO,
				  &c[i]) < 0) {
			fprintf(stderr, "multi_client: connect #%d: %s\n", i,
				srdma_error_detail());
			break;
		}
		held++;
	}
	if (ready) {
		FILE *f = fopen(ready, "w");
		if (f) {
			fprintf(f, "%d\n", held);
			fclose(f);
		}
	}
	while (go && access(go, F_OK) != 0) {
		struct srdma_event ev[16];
		/* Keep the connections serviced while idle. */
		if (srdma_ctx_poll(ctx, ev, 16, 100) < 0)
			break;
	}
	for (int i = 0; i < held; i++)
		if (verify(c[i], size, (unsigned)i) == 0)
			ok++;
	for (int i = 0; i < held; i++)
		srdma_conn_destroy(c[i]);
	srdma_ctx_destroy(ctx);
	free(c);
	printf("held %d verified %d\n", held, ok);
	return held == k && ok == k ? 0 : 1;
}
