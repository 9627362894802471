/* SPDX-License-Identifier: MIT */
/*
 * torn_reads: reads racing with the owner's in-place updates (issue 13,
 * "no torn reads"; docs/PROTOCOL.md §6). On verbs the NIC serves RDMA READs
 * from the owner's memory without the owner, so a read can meet a block
 * the owner is sealing at that moment.
 *
 *   torn_reads serve HOST PORT_FILE CERTS_DIR [options]
 *     accepts one client, grants it a read-only region of --blocks blocks
 *     and, until the client leaves, puts whole versions into all of it:
 *     put number g writes g into every 32-bit word of the region (one
 *     srdma_region_put over every block). Writes "CONTROL_PORT" to
 *     PORT_FILE once listening. Prints "serve: puts N (put EAGAIN E)".
 *   torn_reads read HOST PORT CERTS_DIR [options]
 *     reads the whole region with srdma_read_sync for --secs seconds and
 *     checks every read: each block holds one generation in every word,
 *     no block's generation ever goes back, and (reported, see --strict)
 *     whether the blocks of one read hold one generation. A read may end
 *     with SRDMA_EAGAIN (counted); any other failure fails the test.
 *     Prints "reads N retries R holds H eagain E mixed M gen A..B" with R
 *     and H from srdma_conn_info's read_retries and read_holds.
 *
 * Options: --transport verbs|ofi (default verbs), --device DEV,
 * --protect encrypt|integrity|none (read; default encrypt), --blocks N
 * (default 8), --secs S (default 10), --want-retries (read: fail when no
 * read raced with an update), --strict (read: fail when a read mixes
 * generations across blocks), --want-progress (read: fail when more than
 * one read in ten ended with SRDMA_EAGAIN: the reader was starved).
 *
 * Exit status: 0 when every check held, 1 when one failed, 2 on usage or
 * set-up errors.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "srdma.h"

enum { TMO = 30000 };

struct opts {
	const char *device;
	enum srdma_transport transport;
	enum srdma_protect protect;
	uint32_t blocks;
	double secs;
	int want_retries, strict, count_torn, want_progress;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(uint32_t *w, size_t words, uint32_t gen)
{
	for (size_t i = 0; i < words; i++)
		w[i] = gen;
}

static int serve(const char *host, const char *port_file, const char *certs,
		 const struct opts *o)
{
	struct srdma_config cfg;
	struct srdma_event evs[16];
	srdma_ctx *ctx = NULL;
	srdma_listener *l = NULL;
	srdma_conn *c = NULL;
	srdma_region *r = NULL;
	size_t len = (size_t)o->blocks * SRDMA_BLOCK_SIZE;
	uint32_t *buf = malloc(len);
	uint64_t puts = 0, again = 0;
	int done = 0, closing = 0, status = 0, rc = 2;
	FILE *f;

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.transport = o->transport;
	cfg.device = o->device;
	cfg.certs_dir = certs;
	cfg.protect = SRDMA_PROTECT_NONE; /* the client picks */
	if (!buf || srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, host, 0, &l) < 0) {
		fprintf(stderr, "serve: %s\n", srdma_error_detail());
		goto out;
	}
	if (!(f = fopen(port_file, "w"))) {
		perror(port_file);
		goto out;
	}
	fprintf(f, "%u\n", srdma_listener_port(l));
	fclose(f);

	while (!done) {
		int n = srdma_ctx_poll(ctx, evs, 16, r && !closing ? 0 : 100);

		if (n < 0) {
			fprintf(stderr, "serve: poll: %s\n",
				srdma_error_detail());
			goto out;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].type == SRDMA_EV_ACCEPTED && !c) {
				c = evs[i].conn;
				if (srdma_region_create(
					    c, len, SRDMA_ACCESS_REMOTE_READ,
					    &r) < 0) {
					fprintf(stderr, "serve: region: %s\n",
						srdma_error_detail());
					goto out;
				}
			} else if (evs[i].type == SRDMA_EV_CLOSED &&
				   evs[i].conn == c) {
				done = 1;
				status = evs[i].status;
				if (status < 0)
					fprintf(stderr,
						"serve: connection failed: "
						"%s (%s)\n",
						srdma_strerror(status),
						evs[i].detail);
			}
		}
		if (!r || done || closing)
			continue;
		/* The next whole version: one put over every block. */
		fill(buf, len / 4, (uint32_t)(puts + 1));
		int prc = srdma_region_put(r, 0, buf, len);
		if (prc == SRDMA_EAGAIN) {
			again++; /* the reader has not taken the last UPDATEs */
			continue;
		}
		if (prc == SRDMA_ECLOSED) {
			closing = 1; /* the reader said goodbye */
			continue;
		}
		if (prc < 0) {
			fprintf(stderr, "serve: put: %s\n",
				srdma_error_detail());
			goto out;
		}
		puts++;
	}
	printf("serve: puts %" PRIu64 " (put EAGAIN %" PRIu64 ")\n", puts,
	       again);
	rc = status < 0 ? 1 : 0;
out:
	srdma_region_destroy(r);
	srdma_conn_destroy(c);
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx);
	free(buf);
	return rc;
}

/* Checks one read: 0, or 1 after printing what is wrong. */
static int check_read(const uint32_t *buf, uint32_t blocks, uint32_t *last,
		      int torn_ok, uint64_t *mixed, uint64_t *torn,
		      uint32_t *lo, uint32_t *hi)
{
	const size_t words = SRDMA_BLOCK_SIZE / 4;
	int mix = 0;

	for (uint32_t b = 0; b < blocks; b++) {
		const uint32_t *w = buf + (size_t)b * words;
		uint32_t g = w[0];

		for (size_t i = 1; i < words; i++)
			if (w[i] != g) {
				if ((*torn)++ < 3)
					printf("torn block %u: word 0 is "
					       "generation %u, word %zu is "
					       "%u\n",
					       b, g, i, w[i]);
				if (!torn_ok)
					return 1;
				break;
			}
		if (g < last[b]) {
			printf("block %u went back from generation %u to "
			       "%u\n",
			       b, last[b], g);
			return 1;
		}
		last[b] = g;
		if (g != buf[0])
			mix = 1;
		if (g < *lo)
			*lo = g;
		if (g > *hi)
			*hi = g;
	}
	if (mix && (*mixed)++ < 3) {
		printf("mixed read:");
		for (uint32_t b = 0; b < blocks; b++)
			printf(" %u", buf[(size_t)b * words]);
		printf("\n");
	}
	return 0;
}

static int reader(const char *host, const char *port, const char *certs,
		  const struct opts *o)
{
	struct srdma_config cfg;
	struct srdma_conn_info ci;
	srdma_ctx *ctx = NULL;
	srdma_conn *c = NULL;
	uint64_t len = 0, reads = 0, eagain = 0, mixed = 0, torn = 0;
	uint32_t *buf = NULL, *last = NULL, lo = UINT32_MAX, hi = 0;
	int id, rc = 2, bad = 0;
	double t0, t_end;

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.transport = o->transport;
	cfg.device = o->device;
	cfg.certs_dir = certs;
	cfg.protect = o->protect;
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_connect(ctx, host, (uint16_t)atoi(port), TMO, &c) < 0 ||
	    (id = srdma_conn_wait_region(c, 0, TMO, &len)) < 0) {
		fprintf(stderr, "read: %s\n", srdma_error_detail());
		goto out;
	}
	if (len != (uint64_t)o->blocks * SRDMA_BLOCK_SIZE) {
		fprintf(stderr,
			"read: region of %" PRIu64 " bytes, want %u "
			"blocks\n",
			len, o->blocks);
		goto out;
	}
	buf = malloc(len);
	last = calloc(o->blocks, sizeof(*last));
	if (!buf || !last)
		goto out;
	t0 = now_s();
	t_end = t0 + o->secs;
	while (!bad && now_s() < t_end) {
		int r = srdma_read_sync(c, (uint32_t)id, 0, buf, len, TMO);

		if (r == SRDMA_EAGAIN) {
			eagain++;
			continue;
		}
		if (r < 0) {
			printf("read %" PRIu64 " failed: %s (%s)\n", reads,
			       srdma_strerror(r), srdma_error_detail());
			bad = 1;
			break;
		}
		reads++;
		bad = check_read(buf, o->blocks, last, o->count_torn, &mixed,
				 &torn, &lo, &hi);
	}
	if (srdma_conn_info(c, &ci) < 0)
		goto out;
	printf("reads %" PRIu64 " retries %" PRIu64 " holds %" PRIu64
	       " eagain %" PRIu64 " mixed %" PRIu64 " torn %" PRIu64
	       " gen %u..%u in %.1f s (%s %s, %u blocks)\n",
	       reads, ci.read_retries, ci.read_holds, eagain, mixed, torn,
	       reads ? lo : 0, hi, now_s() - t0,
	       srdma_transport_name(ci.transport),
	       srdma_protect_name(ci.protect), o->blocks);
	rc = 0;
	if (bad) {
		rc = 1;
	} else if (!reads) {
		printf("no read completed\n");
		rc = 1;
	} else if (o->want_retries && !ci.read_retries) {
		printf("no read raced with an update (retries 0)\n");
		rc = 1;
	} else if (o->want_progress && eagain * 10 > reads) {
		printf("starved: %" PRIu64 " reads ended with EAGAIN, %" PRIu64
		       " completed\n",
		       eagain, reads);
		rc = 1;
	} else if (o->strict && mixed) {
		printf("%" PRIu64 " reads mixed generations\n", mixed);
		rc = 1;
	}
	if (srdma_conn_close(c) == 0) {
		struct srdma_event ev;
		double dl = now_s() + 10;
		while (now_s() < dl) {
			int n = srdma_ctx_poll(ctx, &ev, 1, 100);
			if (n < 0 || (n == 1 && ev.type == SRDMA_EV_CLOSED))
				break;
		}
	}
out:
	if (rc == 2)
		fprintf(stderr, "read: set-up failed\n");
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
	free(buf);
	free(last);
	return rc;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: torn_reads serve HOST PORT_FILE CERTS_DIR [options]\n"
		"       torn_reads read HOST PORT CERTS_DIR [options]\n"
		"options: --transport verbs|ofi --device DEV --protect MODE "
		"--blocks N --secs S --want-retries --strict\n"
		"         --want-progress --count-torn\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct opts o = {.transport = SRDMA_TRANSPORT_VERBS,
			 .protect = SRDMA_PROTECT_ENCRYPT,
			 .blocks = 8,
			 .secs = 10};

	if (argc < 5)
		return usage();
	for (int i = 5; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--want-retries")) {
			o.want_retries = 1;
		} else if (!strcmp(a, "--strict")) {
			o.strict = 1;
		} else if (!strcmp(a, "--count-torn")) {
			o.count_torn = 1;
		} else if (!strcmp(a, "--want-progress")) {
			o.want_progress = 1;
		} else if (!v) {
			return usage();
		} else if (!strcmp(a, "--device")) {
			o.device = v, i++;
		} else if (!strcmp(a, "--transport")) {
			o.transport = !strcmp(v, "ofi") ? SRDMA_TRANSPORT_OFI
							: SRDMA_TRANSPORT_VERBS;
			i++;
		} else if (!strcmp(a, "--protect")) {
			o.protect = !strcmp(v, "none") ? SRDMA_PROTECT_NONE
				    : !strcmp(v, "integrity")
					    ? SRDMA_PROTECT_INTEGRITY
					    : SRDMA_PROTECT_ENCRYPT;
			i++;
		} else if (!strcmp(a, "--blocks")) {
			o.blocks = (uint32_t)atoi(v), i++;
		} else if (!strcmp(a, "--secs")) {
			o.secs = atof(v), i++;
		} else {
			return usage();
		}
	}
	if (!o.blocks || o.secs <= 0)
		return usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "serve"))
		return serve(argv[2], argv[3], argv[4], &o);
	if (!strcmp(argv[1], "read"))
		return reader(argv[2], argv[3], argv[4], &o);
	return usage();
}
