/* SPDX-License-Identifier: MIT */
/*
 * srdma bench --mode connect: what a connection costs to set up.
 *
 * Each sample is one sequential cycle against `srdma serve`: srdma_connect
 * (TLS 1.3, parameters, fabric connect), one 64-byte echo whose bytes are
 * checked (the first verified byte), and srdma_conn_destroy. Two series run
 * interleaved, one cycle each in turn, so load from elsewhere hits both:
 *
 *   full:    a context with no_resumption set: every connect does the whole
 *            certificate handshake;
 *   resumed: one context that keeps the server's tickets, as a
 *            reconnecting client does (the first connect, a warm-up, is
 *            full).
 *
 * Samples are filed by what srdma_conn_info().resumed says, not by the
 * series they came from, so a server started with --no-resumption yields no
 * resumed samples at all. Reported per case: connect time (srdma_connect
 * alone) and time to the first verified byte (from the start of the connect
 * to the verified echo), median and p99, and the sequential rate (cycles
 * per second, close included).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_connect.h"

enum { ECHO_LEN = 64, WARMUP = 1 };

struct series {
	double *conn_us, *first_us; /* per sample */
	double cycle_s;		    /* sum of whole cycles */
	size_t n, cap;
};

struct cb {
	const struct common_opts *co;
	const struct connect_opts *o;
	struct srdma_conn_info info; /* of the first connection */
	int have_info;
	struct series full, res;
	uint64_t missed; /* resumption asked for, full handshake done */
};

struct stat2 {
	double p50, p99;
};

static int err_line(const char *what, int rc)
{
	const char *d = tool_error();

	fprintf(stderr, "srdma bench: %s: %s\n", what,
		*d ? d : srdma_strerror(rc));
	return 1;
}

static int series_add(struct series *s, double conn_us, double first_us,
		      double cycle_s)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		double *a = realloc(s->conn_us, cap * sizeof(*a));
		if (!a)
			return -1;
		s->conn_us = a;
		a = realloc(s->first_us, cap * sizeof(*a));
		if (!a)
			return -1;
		s->first_us = a;
		s->cap = cap;
	}
	s->conn_us[s->n] = conn_us;
	s->first_us[s->n] = first_us;
	s->n++;
	s->cycle_s += cycle_s;
	return 0;
}

static void series_free(struct series *s)
{
	free(s->conn_us);
	free(s->first_us);
}

static struct stat2 stats(double *v, size_t n)
{
	struct stat2 s = {0, 0};

	if (!n)
		return s;
	qsort(v, n, sizeof(*v), cmp_double);
	s.p50 = v[n / 2];
	s.p99 = v[(size_t)((double)(n - 1) * 0.99)];
	return s;
}

/*
 * One cycle on ctx: connect, verified 64 B echo, close. record 0 for the
 * warm-up. want_resume: the series asks for resumption (for `missed`).
 */
static int cycle(struct cb *b, srdma_ctx *ctx, int want_resume, int record)
{
	const struct common_opts *co = b->co;
	uint8_t out[ECHO_LEN], in[ECHO_LEN];
	struct srdma_conn_info ci;
	srdma_conn *c = NULL;
	size_t got = 0;
	double t0, t1, t2;
	int rc;

	if (fill_random(out, sizeof(out)) < 0)
		return err_line("random payload", SRDMA_ESYS);
	t0 = now_s();
	rc = srdma_connect(ctx, co->host, co->port, b->o->tmo, &c);
	if (rc < 0) {
		const char *d = tool_error();
		if (*d && strstr(d, co->host))
			fprintf(stderr, "srdma bench: %s\n", d);
		else
			fprintf(stderr,
				"srdma bench: cannot connect to %s:%u: %s\n",
				co->host, co->port,
				*d ? d : srdma_strerror(rc));
		return 1;
	}
	t1 = now_s();
	rc = srdma_send_sync(c, out, sizeof(out), b->o->tmo);
	if (rc == 0)
		rc = srdma_recv(c, in, sizeof(in), &got, b->o->tmo);
	if (rc < 0) {
		srdma_conn_destroy(c);
		return err_line("echo after connecting", rc);
	}
	if (got != sizeof(out) || memcmp(in, out, sizeof(out))) {
		srdma_conn_destroy(c);
		fprintf(stderr,
			"srdma bench: the server's echo came back different "
			"(%zu bytes for %d; is it `srdma serve`?)\n",
			got, ECHO_LEN);
		return 1;
	}
	t2 = now_s();
	srdma_conn_info(c, &ci);
	if (!b->have_info) {
		b->info = ci;
		b->have_info = 1;
	}
	srdma_conn_destroy(c);
	if (!record)
		return 0;
	if (want_resume && !ci.resumed)
		b->missed++;
	if (series_add(ci.resumed ? &b->res : &b->full, (t1 - t0) * 1e6,
		       (t2 - t0) * 1e6, now_s() - t0) < 0) {
		fprintf(stderr, "srdma bench: out of memory\n");
		return 1;
	}
	return 0;
}

static double rate(const struct series *s)
{
	return s->cycle_s > 0 ? (double)s->n / s->cycle_s : 0;
}

static void json_num(const char *k, double v, int have)
{
	if (have)
		printf(",\"%s\":%.3f", k, v);
	else
		printf(",\"%s\":null", k);
}

static void report(struct cb *b)
{
	const struct srdma_conn_info *i = &b->info;
	struct stat2 fc = stats(b->full.conn_us, b->full.n);
	struct stat2 ff = stats(b->full.first_us, b->full.n);
	struct stat2 rc = stats(b->res.conn_us, b->res.n);
	struct stat2 rf = stats(b->res.first_us, b->res.n);
	int hf = b->full.n > 0, hr = b->res.n > 0;
	double speedup = hf && hr && rc.p50 > 0 ? fc.p50 / rc.p50 : 0;

	if (b->o->json) {
		printf("{\"tool\":\"srdma\",\"op\":\"connect\","
		       "\"mode\":\"connect\",\"size\":%d,"
		       "\"protect\":\"%s\",\"transport\":\"%s\","
		       "\"provider\":\"%s\",\"cipher\":\"%s\","
		       "\"iters\":%llu,\"full_count\":%llu,"
		       "\"resumed_count\":%llu,\"resume_missed\":%llu",
		       ECHO_LEN, srdma_protect_name(i->protect),
		       srdma_transport_name(i->transport), i->provider,
		       i->cipher, (unsigned long long)(b->full.n + b->res.n),
		       (unsigned long long)b->full.n,
		       (unsigned long long)b->res.n,
		       (unsigned long long)b->missed);
		json_num("full_connect_us", fc.p50, hf);
		json_num("full_connect_us_p99", fc.p99, hf);
		json_num("full_first_byte_us", ff.p50, hf);
		json_num("full_first_byte_us_p99", ff.p99, hf);
		json_num("full_connects_per_s", rate(&b->full), hf);
		json_num("resumed_connect_us", rc.p50, hr);
		json_num("resumed_connect_us_p99", rc.p99, hr);
		json_num("resumed_first_byte_us", rf.p50, hr);
		json_num("resumed_first_byte_us_p99", rf.p99, hr);
		json_num("resumed_connects_per_s", rate(&b->res), hr);
		/* The headline figures: full handshakes (the worst case). */
		json_num("connects_per_s", rate(&b->full), hf);
		json_num("first_byte_us", ff.p50, hf);
		json_num("resumed_speedup", speedup, speedup > 0);
		printf("}\n");
		fflush(stdout);
		return;
	}
	if (!b->o->quiet)
		printf("# srdma bench: connect + verified %d B echo + close, "
		       "sequential; %s over %s/%s%s%s, peer %s (%s)\n"
		       "%-10s %-10s %-11s %-14s %-14s %-14s %s\n",
		       ECHO_LEN, srdma_protect_name(i->protect),
		       srdma_transport_name(i->transport), i->provider,
		       i->cipher[0] ? ", " : "", i->cipher, i->peer_addr,
		       i->peer_identity, "#case", "#connects", "conn/s",
		       "t_conn_p50[us]", "t_conn_p99[us]", "t_1st_p50[us]",
		       "t_1st_p99[us]");
	if (hf)
		printf("%-10s %-10zu %-11.1f %-14.1f %-14.1f %-14.1f "
		       "%.1f\n",
		       "full", b->full.n, rate(&b->full), fc.p50, fc.p99,
		       ff.p50, ff.p99);
	if (hr)
		printf("%-10s %-10zu %-11.1f %-14.1f %-14.1f %-14.1f "
		       "%.1f\n",
		       "resumed", b->res.n, rate(&b->res), rc.p50, rc.p99,
		       rf.p50, rf.p99);
	if (!b->o->quiet) {
		if (speedup > 0)
			printf("# resumed connect %.2fx faster than full "
			       "(medians)\n",
			       speedup);
		if (b->missed)
			printf("# %llu connects offered a ticket and did a "
			       "full handshake (server --no-resumption?)\n",
			       (unsigned long long)b->missed);
	}
	fflush(stdout);
}

int bench_connect(const struct common_opts *co, const struct connect_opts *o)
{
	struct srdma_config full_cfg = co->cfg;
	srdma_ctx *full = NULL, *res = NULL;
	struct cb b = {.co = co, .o = o};
	uint64_t n = 0;
	double t0;
	int rc;

	/* Full series: never offer a ticket. */
	full_cfg.no_resumption = 1;
	rc = srdma_ctx_create(&full_cfg, &full);
	if (rc < 0)
		return err_line("cannot set up", rc);
	rc = srdma_ctx_create(&co->cfg, &res);
	if (rc < 0) {
		rc = err_line("cannot set up", rc);
		goto out_destroy_full;
	}
	/* Warm-up: code paths, and the resumed series' first ticket. */
	for (int w = 0; w < WARMUP; w++) {
		rc = cycle(&b, full, 0, 0);
		if (!rc)
			rc = cycle(&b, res, 0, 0);
		if (rc)
			goto out_free;
	}
	t0 = now_s();
	while (o->iters ? n < o->iters : now_s() - t0 < o->duration) {
		rc = cycle(&b, full, 0, 1);
		if (!rc)
			rc = cycle(&b, res, !co->cfg.no_resumption, 1);
		if (rc)
			goto out_free;
		n++;
		if (!o->json && !o->quiet && isatty(2) && n % 50 == 0)
			fprintf(stderr, "\rsrdma bench: %llu + %llu connects",
				(unsigned long long)n, (unsigned long long)n);
	}
	if (!o->json && !o->quiet && isatty(2) && n >= 50)
		fputc('\n', stderr);
	report(&b);
	rc = 0;
out_free:
	series_free(&b.full);
	series_free(&b.res);
	srdma_ctx_destroy(res);
out_destroy_full:
	srdma_ctx_destroy(full);
	return rc;
}
