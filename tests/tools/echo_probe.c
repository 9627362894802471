/* SPDX-License-Identifier: MIT */
/*
 * echo_probe: a client of `srdma serve` (ofi) built on the public API, for
 * the fault and load tests.
 *
 *   echo_probe HOST PORT CERTS_DIR --lat N [--size S] [--gap-ms G]
 *     N echo round trips of S bytes (default 4096), G ms apart (default 0);
 *     prints "echo N x S B: p50 X us p99 Y us max Z us" and exits 0 when
 *     every echo came back intact.
 *   echo_probe HOST PORT CERTS_DIR --flood SECONDS [--size S]
 *     a client that stops reading: sends S-byte messages (default 64K) for
 *     SECONDS with srdma_send_sync and never receives, so the echoes pile
 *     up towards it; prints "flood: sent N messages (B bytes)". Exits 0 if
 *     it could send for the whole time, 3 if the server cut it off (the
 *     detail is printed), 1 on other errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "srdma.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int lat(srdma_conn *c, long n, size_t size, long gap_ms)
{
	unsigned char *out = malloc(size), *in = malloc(size);
	double *t = calloc((size_t)n, sizeof(double));
	size_t got;

	if (!out || !in || !t)
		return 1;
	for (long i = 0; i < n; i++) {
		double t0;
		int rc;

		for (size_t j = 0; j < size; j++)
			out[j] = (unsigned char)(i * 31 + (long)j);
		t0 = now_us();
		rc = srdma_send_sync(c, out, size, 10000);
		if (rc == 0)
			rc = srdma_recv(c, in, size, &got, 10000);
		if (rc < 0) {
			fprintf(stderr, "echo_probe: echo #%ld: %s %s\n", i,
				srdma_strerror(rc), srdma_error_detail());
			return 1;
		}
		t[i] = now_us() - t0;
		if (got != size || memcmp(in, out, size)) {
			fprintf(stderr, "echo_probe: echo #%ld differs\n", i);
			return 1;
		}
		if (gap_ms > 0) {
			struct timespec ts = {gap_ms / 1000,
					      (gap_ms % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	qsort(t, (size_t)n, sizeof(double), cmp_double);
	printf("echo %ld x %zu B: p50 %.0f us p99 %.0f us max %.0f us\n", n,
	       size, t[n / 2], t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1],
	       t[n - 1]);
	free(out);
	free(in);
	free(t);
	return 0;
}

static int flood(srdma_conn *c, long secs, size_t size)
{
	unsigned char *out = calloc(1, size);
	double end = now_us() + (double)secs * 1e6;
	long sent = 0;
	int rc = 0;

	if (!out)
		return 1;
	while (now_us() < end) {
		rc = srdma_send_sync(c, out, size, 2000);
		if (rc == SRDMA_ETIMEDOUT)
			continue; /* the server stopped granting credits */
		if (rc < 0)
			break;
		sent++;
	}
	printf("flood: sent %ld messages (%llu bytes)%s%s\n", sent,
	       (unsigned long long)sent * size, rc < 0 ? "; cut off: " : "",
	       rc < 0 ? srdma_error_detail() : "");
	free(out);
	return rc < 0 ? 3 : 0;
}

int main(int argc, char **argv)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;
	srdma_conn *c = NULL;
	long lat_n = 0, flood_s = 0, gap_ms = 0;
	size_t size = 0;
	int rc;

	if (argc < 6) {
		fprintf(stderr, "usage: echo_probe HOST PORT CERTS_DIR "
				"--lat N|--flood SECONDS [--size S] "
				"[--gap-ms G]\n");
		return 2;
	}
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--lat"))
			lat_n = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--flood"))
			flood_s = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--size"))
			size = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--gap-ms"))
			gap_ms = atol(argv[i + 1]);
	}
	if (!size)
		size = lat_n ? 4096 : 65536;
	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.certs_dir = argv[3];
	rc = srdma_ctx_create(&cfg, &ctx);
	if (rc == 0)
		rc = srdma_connect(ctx, argv[1], (uint16_t)atoi(argv[2]), 20000,
				   &c);
	if (rc < 0) {
		fprintf(stderr, "echo_probe: %s\n", srdma_error_detail());
		srdma_ctx_destroy(ctx);
		return 1;
	}
	rc = lat_n > 0 ? lat(c, lat_n, size, gap_ms) : flood(c, flood_s, size);
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
	return rc;
}
