/* SPDX-License-Identifier: MIT */
/*
 * srdma bench: perftest-style bandwidth and latency figures for protected
 * send/recv, RDMA write and RDMA read against `srdma serve`.
 *
 *   send  bw: a one-way stream into the server's bench sink (bench_sink.h),
 *             at most --window messages ahead of the server's acks; the
 *             clock stops when the server confirms the last message.
 *   send lat: ping-pong with the server's echo.
 *   write/read bw: --window asynchronous operations in flight on the
 *             server's region 1 (srdma_write/srdma_read + srdma_ctx_poll).
 *   write/read lat: one operation at a time.
 *   stream bw: srdma_stream_send_sync of --size bytes at a time into the
 *             server's copy sink (cp_serve.c, a copy that stores nothing,
 *             so `srdma serve` needs no --dir); the clock stops when the
 *             server has counted every byte (--verify: and compared the
 *             SHA-256 of all of them). One connection per size (a
 *             connection carries one stream).
 *
 * --verify checks the data at the end of each size: write/read write a
 * known pattern and read it back; send compares the server's count and
 * stream hash (bw) or the echoed bytes (lat).
 *
 * --mode connect measures set-up instead (bench_connect.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bench_connect.h"
#include "bench_sink.h"
#include "cmd.h"
#include "common.h"
#include "cp.h" /* --op stream: the server's copy sink */

enum op { OP_SEND = 1, OP_WRITE, OP_READ, OP_STREAM };
enum {
	MAX_SIZES = 32,
	MAX_RW_WINDOW = 64,
	RW_REGION = 1,
	NEVS = 64,
};

struct bench {
	struct common_opts co;
	enum op op;
	int lat;     /* --mode lat */
	int connect; /* --mode connect */
	int iters_set;
	uint64_t sizes[MAX_SIZES];
	int nsizes;
	uint64_t iters;	 /* 0 = use duration */
	double duration; /* seconds per size */
	unsigned window;
	int json, verify, quiet, tmo, registered;

	srdma_ctx *ctx;
	srdma_conn *c;
	struct srdma_conn_info info;
	uint64_t rlen; /* region 1 length (write/read) */
	uint8_t seed;
	int progress_tty;
};

struct result {
	uint64_t size, ops;
	double secs;
	double lat_avg, lat_p50, lat_p99, lat_min, lat_max;
	int verified; /* -1 not asked, 1 ok */
};

/* Latency samples in microseconds, grown as needed. */
struct samples {
	double *v;
	size_t n, cap;
};

static const char *op_name(enum op op)
{
	return op == OP_SEND	 ? "send"
	       : op == OP_WRITE	 ? "write"
	       : op == OP_STREAM ? "stream"
				 : "read";
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: srdma bench --connect HOST[:PORT] --certs DIR "
		"[options]\n\n"
		"Measures protected send/recv, RDMA write or RDMA read against "
		"`srdma serve`\n"
		"(start it with --region-size >= window x largest size for "
		"write/read, and\n"
		"--max-msg >= the largest size for send).\n\n"
		"  --connect HOST[:PORT]  server (default localhost:%d)\n"
		"  --op OP                send | write (default) | read | "
		"stream\n"
		"  --size LIST            bytes per operation, e.g. "
		"64,4K,64K,1M (default 64K)\n"
		"  --iters N              operations per size (default 1000;\n"
		"                         connect: connects per case, default "
		"200)\n"
		"  --duration S           seconds per size instead of --iters\n"
		"  --window W             operations in flight (default 16; "
		"send: <= queue depth,\n"
		"                         write/read: <= %d)\n"
		"  --mode M               bw (default) | lat | connect\n"
		"                         (connect: set-up cost; full "
		"handshakes and\n"
		"                         resumed ones, each with a verified "
		"64 B echo)\n"
		"  --json                 one JSON object per size on stdout\n"
		"  --verify               check the data after each size\n"
		"  --registered           write/read: register the buffers "
		"once (srdma_mem_register:\n"
		"                         zero copy in mode none)\n"
		"  --timeout MS           connect / per-operation deadline "
		"(default 10000)\n"
		"  --quiet                no header, no progress\n"
		"%s",
		DEFAULT_PORT, MAX_RW_WINDOW, common_help());
}

static int err_line(const char *what, int rc)
{
	const char *d = tool_error();

	fprintf(stderr, "srdma bench: %s: %s\n", what,
		*d ? d : srdma_strerror(rc));
	return 1;
}

static int parse_sizes(struct bench *b, const char *list)
{
	char tmp[512], *save = NULL, *tok;

	if (strlen(list) >= sizeof(tmp))
		return -1;
	snprintf(tmp, sizeof(tmp), "%s", list);
	b->nsizes = 0;
	for (tok = strtok_r(tmp, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		if (b->nsizes >= MAX_SIZES || parse_size(tok, &v) < 0 ||
		    v == 0 || v > (1ull << 30)) {
			fprintf(stderr,
				"srdma bench: bad size '%s' in --size '%s' "
				"(1..1G each, e.g. 64,4K,64K,1M; at most %d)\n",
				tok, list, MAX_SIZES);
			return -1;
		}
		b->sizes[b->nsizes++] = v;
	}
	if (!b->nsizes) {
		fprintf(stderr, "srdma bench: empty --size list\n");
		return -1;
	}
	return 0;
}

static uint64_t max_size(const struct bench *b)
{
	uint64_t m = 0;

	for (int i = 0; i < b->nsizes; i++)
		if (b->sizes[i] > m)
			m = b->sizes[i];
	return m;
}

/* Known content of region slot `slot` for this run. */
static void fill_pattern(const struct bench *b, uint8_t *p, uint64_t len,
			 uint64_t slot)
{
	for (uint64_t j = 0; j < len; j++)
		p[j] = (uint8_t)(pattern_byte(j) + slot * 131u + b->seed);
}

static int samples_add(struct samples *s, double us)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		double *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = us;
	return 0;
}

static void lat_stats(struct samples *s, struct result *r)
{
	double sum = 0;

	if (!s->n)
		return;
	qsort(s->v, s->n, sizeof(double), cmp_double);
	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	r->lat_avg = sum / (double)s->n;
	r->lat_p50 = s->v[s->n / 2];
	r->lat_p99 = s->v[(size_t)((double)(s->n - 1) * 0.99)];
	r->lat_min = s->v[0];
	r->lat_max = s->v[s->n - 1];
}

/* Stop condition shared by every loop. */
static int more(const struct bench *b, uint64_t issued, double t0)
{
	if (b->iters)
		return issued < b->iters;
	return now_s() - t0 < b->duration;
}

struct prog {
	double t0, last;
	uint64_t size;
};

static void progress(const struct bench *b, struct prog *p, uint64_t done)
{
	double t = now_s();

	if (b->quiet || b->json || t - p->t0 < 2.0 || t - p->last < 1.0)
		return;
	p->last = t;
	fprintf(stderr,
		"%ssrdma bench: %s %llu B: %.0f s, %llu ops, %.3f GB/s%s",
		b->progress_tty ? "\r" : "", op_name(b->op),
		(unsigned long long)p->size, t - p->t0,
		(unsigned long long)done,
		(double)done * (double)p->size / (t - p->t0) / 1e9,
		b->progress_tty ? "  " : "\n");
}

static void progress_end(const struct bench *b, const struct prog *p)
{
	if (b->progress_tty && !b->quiet && !b->json && p->last > 0)
		fputc('\n', stderr);
}

/* ---- write / read ---- */

static int rw_issue(struct bench *b, uint8_t *buf, uint64_t off, uint64_t size,
		    unsigned k)
{
	void *user = (void *)(uintptr_t)(k + 1);

	return b->op == OP_WRITE
		       ? srdma_write(b->c, RW_REGION, off, buf, size, user)
		       : srdma_read(b->c, RW_REGION, off, buf, size, user);
}

/*
 * Keeps `window` operations in flight until the stop condition; buffer k
 * always targets slot k % nslots. lat != NULL records each op's time.
 */
static int rw_loop(struct bench *b, uint8_t **bufs, unsigned window,
		   uint64_t nslots, uint64_t span, uint64_t size,
		   uint64_t limit, double duration, struct samples *lat,
		   struct prog *pg, uint64_t *done_out, double *secs)
{
	struct srdma_event evs[NEVS];
	double t_issue[MAX_RW_WINDOW];
	uint64_t issued = 0, done = 0;
	unsigned inflight = 0;
	double t0 = now_s();
	int rc;

	for (unsigned k = 0; k < window; k++) {
		if (limit ? issued >= limit : now_s() - t0 >= duration)
			break;
		t_issue[k] = now_s();
		rc = rw_issue(b, bufs[k], (k % nslots) * span, size, k);
		if (rc < 0)
			return err_line(op_name(b->op), rc);
		issued++;
		inflight++;
	}
	while (inflight) {
		int n = srdma_ctx_poll(b->ctx, evs, NEVS, b->tmo);
		if (n < 0)
			return err_line("polling", n);
		if (n == 0) {
			fprintf(stderr,
				"srdma bench: no %s completed within %d ms "
				"(%u in flight)\n",
				op_name(b->op), b->tmo, inflight);
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct srdma_event *e = &evs[i];
			unsigned k;
			if (e->type == SRDMA_EV_CLOSED) {
				fprintf(stderr,
					"srdma bench: the server closed the "
					"connection: %s\n",
					e->detail && *e->detail
						? tool_text(e->detail)
						: srdma_strerror(e->status));
				return 1;
			}
			if (e->type != SRDMA_EV_WRITE_DONE &&
			    e->type != SRDMA_EV_READ_DONE)
				continue;
			if (e->status < 0) {
				fprintf(stderr, "srdma bench: %s failed: %s\n",
					op_name(b->op),
					e->detail && *e->detail
						? tool_text(e->detail)
						: srdma_strerror(e->status));
				return 1;
			}
			k = (unsigned)((uintptr_t)e->user - 1);
			if (k >= window)
				continue;
			done++;
			inflight--;
			if (lat)
				samples_add(lat, (now_s() - t_issue[k]) * 1e6);
			if (limit ? issued >= limit : now_s() - t0 >= duration)
				continue;
			t_issue[k] = now_s();
			rc = rw_issue(b, bufs[k], (k % nslots) * span, size, k);
			if (rc < 0)
				return err_line(op_name(b->op), rc);
			issued++;
			inflight++;
		}
		if (pg)
			progress(b, pg, done);
	}
	*secs = now_s() - t0;
	*done_out = done;
	return 0;
}

static int run_rw(struct bench *b, uint64_t size, struct result *r)
{
	uint64_t span = (size + SRDMA_BLOCK_SIZE - 1) / SRDMA_BLOCK_SIZE *
			SRDMA_BLOCK_SIZE;
	unsigned window = b->lat ? 1 : b->window;
	uint64_t nslots = b->rlen / span;
	uint8_t *bufs[MAX_RW_WINDOW] = {0}, *chk = NULL;
	srdma_mem *mems[MAX_RW_WINDOW] = {0};
	struct samples lat = {0};
	struct prog pg = {.size = size};
	uint64_t warm = window * 2u, done = 0;
	double secs = 0;
	int rc = 1;

	if (nslots > window)
		nslots = window;
	for (unsigned k = 0; k < window; k++) {
		bufs[k] = malloc(size);
		if (!bufs[k]) {
			fprintf(stderr, "srdma bench: out of memory\n");
			goto out;
		}
		/* Writes carry their slot's pattern; reads start zeroed. */
		if (b->op == OP_WRITE)
			fill_pattern(b, bufs[k], size, k % nslots);
		else
			memset(bufs[k], 0, size);
		if (b->registered) {
			int m = srdma_mem_register(b->c, bufs[k], size,
						   &mems[k]);
			if (m < 0) {
				err_line("registering a buffer", m);
				goto out;
			}
		}
	}
	chk = malloc(size);
	if (!chk) {
		fprintf(stderr, "srdma bench: out of memory\n");
		goto out;
	}
	if (b->op == OP_READ) {
		/* Reads need known, sealed content in every slot. */
		for (uint64_t s = 0; s < nslots; s++) {
			fill_pattern(b, chk, size, s);
			int w = srdma_write_sync(b->c, RW_REGION, s * span, chk,
						 size, b->tmo);
			if (w < 0) {
				err_line("filling the region for reads", w);
				goto out;
			}
		}
	}
	/* Warm-up: connections, staging buffers, caches. */
	if (rw_loop(b, bufs, window, nslots, span, size, warm, 0, NULL, NULL,
		    &done, &secs))
		goto out;
	pg.t0 = now_s();
	if (rw_loop(b, bufs, window, nslots, span, size, b->iters, b->duration,
		    b->lat ? &lat : NULL, &pg, &done, &secs))
		goto out;
	progress_end(b, &pg);
	r->ops = done;
	r->secs = secs;
	lat_stats(&lat, r);
	r->verified = -1;
	if (b->verify) {
		/* Read every slot back into a zeroed buffer (write: what the
		 * timed loop wrote there; read: the pattern put there). */
		for (uint64_t s = 0; s < nslots; s++) {
			int v;
			memset(chk, 0, size);
			v = srdma_read_sync(b->c, RW_REGION, s * span, chk,
					    size, b->tmo);
			if (v < 0) {
				err_line("verification read", v);
				goto out;
			}
			fill_pattern(b, bufs[0], size, s);
			if (memcmp(chk, bufs[0], size)) {
				fprintf(stderr,
					"srdma bench: verification FAILED: "
					"slot %llu (offset %llu) holds other "
					"bytes than were written\n",
					(unsigned long long)s,
					(unsigned long long)(s * span));
				goto out;
			}
		}
		r->verified = 1;
	}
	rc = 0;
out:
	for (unsigned k = 0; k < window; k++) {
		srdma_mem_deregister(mems[k]);
		free(bufs[k]);
	}
	free(chk);
	free(lat.v);
	return rc;
}

/* ---- send ---- */

/*
 * Handles events until an ack arrives (timeout_ms -1: block up to b->tmo;
 * 0: only what is there). Returns 1 when an ack was seen, 0 if none, -1 on
 * error (printed).
 */
static int take_acks(struct bench *b, int block, uint64_t *count,
		     uint64_t *hash, int *kind)
{
	struct srdma_event evs[NEVS];
	int seen = 0;

	for (;;) {
		int n = srdma_ctx_poll(b->ctx, evs, NEVS, block ? b->tmo : 0);
		if (n < 0)
			return err_line("polling", n) ? -1 : -1;
		if (n == 0 && block) {
			fprintf(stderr,
				"srdma bench: the server sent no bench ack "
				"within %d ms (is it `srdma serve` with the "
				"bench sink?)\n",
				b->tmo);
			return -1;
		}
		for (int i = 0; i < n; i++) {
			struct srdma_event *e = &evs[i];
			const uint8_t *d = e->data;
			if (e->type == SRDMA_EV_CLOSED) {
				fprintf(stderr,
					"srdma bench: the server closed the "
					"connection: %s\n",
					e->detail && *e->detail
						? tool_text(e->detail)
						: srdma_strerror(e->status));
				return -1;
			}
			if (e->type != SRDMA_EV_RECV)
				continue;
			if (e->len != SINK_ACK_LEN ||
			    memcmp(d, SINK_ACK, strlen(SINK_ACK))) {
				fprintf(stderr,
					"srdma bench: the server does not "
					"answer bench requests (got a %zu-byte "
					"message instead of a sink ack; is it "
					"an older `srdma serve`?)\n",
					e->len);
				return -1;
			}
			*count = sink_get_be(d + 16, 8);
			*hash = sink_get_be(d + 24, 8);
			*kind = d[15];
			seen = 1;
			/* Stop at a start/done ack so the caller sees it. */
			if (*kind != SINK_ACK_MORE)
				return 1;
		}
		if (seen || n == 0 || !block)
			return seen;
	}
}

static int send_ctrl(struct bench *b, const void *msg, size_t len)
{
	int rc = srdma_send_sync(b->c, msg, len, b->tmo);

	return rc < 0 ? err_line("sending a bench request", rc) : 0;
}

static int run_send_bw(struct bench *b, uint64_t size, uint8_t *buf,
		       struct result *r)
{
	uint8_t hello[SINK_HELLO_LEN];
	uint64_t every = b->window / 2 ? b->window / 2 : 1;
	uint64_t sent = 0, acked = 0, cnt = 0, hash = 0;
	uint64_t h = SINK_HASH_SEED;
	struct prog pg = {.size = size};
	int kind = 0, a;
	double t0;

	memcpy(hello, SINK_MAGIC, SINK_MAGIC_LEN);
	sink_put_be(hello + 16, every, 4);
	sink_put_be(hello + 20, b->verify ? SINK_F_HASH : 0, 4);
	if (send_ctrl(b, hello, sizeof(hello)))
		return 1;
	do {
		a = take_acks(b, 1, &cnt, &hash, &kind);
		if (a < 0)
			return 1;
	} while (kind != SINK_ACK_START);
	fill_pattern(b, buf, size, 7);
	pg.t0 = t0 = now_s();
	while (more(b, sent, t0)) {
		int rc;
		if (sent - acked >= b->window) {
			a = take_acks(b, 1, &cnt, &hash, &kind);
			if (a < 0)
				return 1;
			acked = cnt;
			continue;
		}
		rc = srdma_send(b->c, buf, size);
		if (rc == SRDMA_EAGAIN)
			rc = srdma_send_sync(b->c, buf, size, b->tmo);
		if (rc < 0)
			return err_line("send", rc);
		if (b->verify)
			h = sink_hash(h, buf, size);
		sent++;
		if (sent % every == 0) {
			a = take_acks(b, 0, &cnt, &hash, &kind);
			if (a < 0)
				return 1;
			if (a > 0)
				acked = cnt;
			progress(b, &pg, acked);
		}
	}
	if (send_ctrl(b, SINK_DONE, SINK_MAGIC_LEN))
		return 1;
	do {
		a = take_acks(b, 1, &cnt, &hash, &kind);
		if (a < 0)
			return 1;
	} while (kind != SINK_ACK_DONE);
	r->secs = now_s() - t0;
	progress_end(b, &pg);
	r->ops = sent;
	r->verified = -1;
	if (cnt != sent) {
		fprintf(stderr,
			"srdma bench: the server received %llu messages, "
			"we sent %llu\n",
			(unsigned long long)cnt, (unsigned long long)sent);
		return 1;
	}
	if (b->verify) {
		if (hash != h) {
			fprintf(stderr,
				"srdma bench: verification FAILED: the server "
				"received other bytes than were sent\n");
			return 1;
		}
		r->verified = 1;
	}
	return 0;
}

static int run_send_lat(struct bench *b, uint64_t size, uint8_t *buf,
			uint8_t *in, struct result *r)
{
	struct samples lat = {0};
	struct prog pg = {.size = size};
	uint64_t n = 0, warm = 8;
	double t0;
	int rc = 1;

	fill_pattern(b, buf, size, 3);
	for (uint64_t i = 0; i < warm + 1; i++) {
		double t = now_s();
		size_t got = 0;
		int s;
		if (i == warm) {
			/* Timed part starts here. */
			pg.t0 = t0 = now_s();
			while (more(b, n, t0)) {
				t = now_s();
				s = srdma_send_sync(b->c, buf, size, b->tmo);
				if (s == 0)
					s = srdma_recv(b->c, in, size, &got,
						       b->tmo);
				if (s < 0) {
					err_line("ping-pong", s);
					goto out;
				}
				samples_add(&lat, (now_s() - t) * 1e6);
				if (b->verify &&
				    (got != size || memcmp(in, buf, size))) {
					fprintf(stderr,
						"srdma bench: verification "
						"FAILED: echo #%llu came back "
						"different\n",
						(unsigned long long)n);
					goto out;
				}
				n++;
				progress(b, &pg, n);
			}
			r->secs = now_s() - t0;
			break;
		}
		s = srdma_send_sync(b->c, buf, size, b->tmo);
		if (s == 0)
			s = srdma_recv(b->c, in, size, &got, b->tmo);
		if (s < 0) {
			err_line("ping-pong", s);
			goto out;
		}
		if (got != size || memcmp(in, buf, size)) {
			fprintf(stderr,
				"srdma bench: the server does not echo "
				"(got %zu bytes back for %llu)\n",
				got, (unsigned long long)size);
			goto out;
		}
	}
	progress_end(b, &pg);
	r->ops = n;
	r->verified = b->verify ? 1 : -1;
	lat_stats(&lat, r);
	rc = 0;
out:
	free(lat.v);
	return rc;
}

static int run_send(struct bench *b, uint64_t size, struct result *r)
{
	uint8_t *buf = malloc(size), *in = malloc(size);
	int rc = 1;

	if (!buf || !in)
		fprintf(stderr, "srdma bench: out of memory\n");
	else
		rc = b->lat ? run_send_lat(b, size, buf, in, r)
			    : run_send_bw(b, size, buf, r);
	free(buf);
	free(in);
	return rc;
}

/* ---- stream ---- */

static int run_stream(struct bench *b, uint64_t size, struct result *r,
		      bool first)
{
	uint8_t *buf = malloc(size);
	struct prog pg = {.size = size};
	srdma_stream *s = NULL;
	EVP_MD_CTX *sha = NULL;
	uint8_t digest[32];
	uint64_t sent = 0, got = 0;
	double t0;
	int rc = 1;

	if (!buf) {
		fprintf(stderr, "srdma bench: out of memory\n");
		return 1;
	}
	if (!first) { /* one stream per connection */
		srdma_conn_destroy(b->c);
		b->c = NULL;
		if (srdma_connect(b->ctx, b->co.host, b->co.port, b->tmo,
				  &b->c) < 0) {
			fprintf(stderr, "srdma bench: %s\n",
				srdma_error_detail());
			goto out;
		}
	}
	if (cp_sink_open(b->c, b->tmo, b->verify, &s))
		goto out;
	if (b->verify && !(sha = EVP_MD_CTX_new())) {
		fprintf(stderr, "srdma bench: out of memory\n");
		goto out;
	}
	if (sha)
		EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
	fill_pattern(b, buf, size, 5);
	pg.t0 = t0 = now_s();
	while (more(b, sent, t0)) {
		int e = srdma_stream_send_sync(s, buf, size, b->tmo);
		if (e < 0) {
			err_line("stream send", e);
			goto out;
		}
		if (sha)
			EVP_DigestUpdate(sha, buf, size);
		sent++;
		progress(b, &pg, sent);
	}
	if (sha)
		EVP_DigestFinal_ex(sha, digest, NULL);
	if (cp_sink_close(b->c, s, b->tmo, sha ? digest : NULL, &got)) {
		if (sha)
			fprintf(stderr, "srdma bench: verification FAILED (or "
					"the server ended the stream)\n");
		goto out;
	}
	r->secs = now_s() - t0;
	progress_end(b, &pg);
	r->ops = sent;
	r->verified = sha ? 1 : -1;
	if (got != sent * size) {
		fprintf(stderr,
			"srdma bench: the server counted %llu bytes, we sent "
			"%llu\n",
			(unsigned long long)got,
			(unsigned long long)(sent * size));
		goto out;
	}
	rc = 0;
out:
	srdma_stream_destroy(s);
	EVP_MD_CTX_free(sha);
	free(buf);
	return rc;
}

/* ---- output ---- */

static void print_header(const struct bench *b)
{
	const struct srdma_conn_info *i = &b->info;

	printf("# srdma bench: %s %s, window %u, %s over %s/%s%s%s%s%s, "
	       "peer %s (%s)\n",
	       op_name(b->op), b->lat ? "latency" : "bandwidth",
	       b->lat ? 1 : b->window, srdma_protect_name(i->protect),
	       srdma_transport_name(i->transport), i->provider,
	       i->cipher[0] ? ", " : "", i->cipher,
	       i->aead_impl[0] ? " via " : "", i->aead_impl, i->peer_addr,
	       i->peer_identity);
	printf("%-12s %-12s %-10s %-10s %-10s", "#bytes", "#iterations",
	       "BW[GB/s]", "BW[Gb/s]", "MsgRate[Mmsg/s]");
	if (b->lat)
		printf("  %-10s %-10s %-10s", "t_avg[us]", "t_p50[us]",
		       "t_p99[us]");
	printf("\n");
	fflush(stdout);
}

static void print_row(const struct bench *b, const struct result *r)
{
	double gbs = r->secs > 0
			     ? (double)r->ops * (double)r->size / r->secs / 1e9
			     : 0;
	double mps = r->secs > 0 ? (double)r->ops / r->secs : 0;

	if (b->json) {
		printf("{\"tool\":\"srdma\",\"op\":\"%s\",\"mode\":\"%s\","
		       "\"size\":%llu,\"iters\":%llu,\"window\":%u,"
		       "\"protect\":\"%s\",\"transport\":\"%s\","
		       "\"provider\":\"%s\",\"cipher\":\"%s\","
		       "\"seconds\":%.6f,\"gbytes_per_s\":%.6f,"
		       "\"gbits_per_s\":%.6f,\"msgs_per_s\":%.1f",
		       op_name(b->op), b->lat ? "lat" : "bw",
		       (unsigned long long)r->size, (unsigned long long)r->ops,
		       b->lat ? 1 : b->window,
		       srdma_protect_name(b->info.protect),
		       srdma_transport_name(b->info.transport),
		       b->info.provider, b->info.cipher, r->secs, gbs, gbs * 8,
		       mps);
		if (b->lat)
			printf(",\"lat_us_avg\":%.3f,\"lat_us_p50\":%.3f,"
			       "\"lat_us_p99\":%.3f,\"lat_us_min\":%.3f,"
			       "\"lat_us_max\":%.3f",
			       r->lat_avg, r->lat_p50, r->lat_p99, r->lat_min,
			       r->lat_max);
		if (b->op != OP_SEND)
			printf(",\"region_bytes\":%llu",
			       (unsigned long long)b->rlen);
		printf(",\"verified\":%s}\n",
		       r->verified < 0 ? "null" : "true");
	} else {
		printf("%-12llu %-12llu %-10.3f %-10.2f %-15.4f",
		       (unsigned long long)r->size, (unsigned long long)r->ops,
		       gbs, gbs * 8, mps / 1e6);
		if (b->lat)
			printf("  %-10.2f %-10.2f %-10.2f", r->lat_avg,
			       r->lat_p50, r->lat_p99);
		printf("\n");
	}
	fflush(stdout);
}

/* ---- command ---- */

static int parse_args(struct bench *b, int argc, char **argv)
{
	uint64_t v;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int k = common_parse(&b->co, "bench", argc, argv, &i);
		if (k < 0)
			return 2;
		if (k > 0)
			continue;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(a, "--json")) {
			b->json = 1;
			continue;
		}
		if (!strcmp(a, "--registered")) {
			b->registered = 1;
			continue;
		}
		if (!strcmp(a, "--verify")) {
			b->verify = 1;
			continue;
		}
		if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
			b->quiet = 1;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr,
				"srdma bench: unknown option or missing value "
				"'%s' (see --help)\n",
				a);
			return 2;
		}
		const char *val = argv[++i];
		if (!strcmp(a, "--connect")) {
			if (parse_hostport(val, b->co.host, sizeof(b->co.host),
					   &b->co.port) < 0 ||
			    !b->co.host[0]) {
				fprintf(stderr,
					"srdma bench: bad --connect '%s'\n",
					val);
				return 2;
			}
		} else if (!strcmp(a, "--op")) {
			b->op = !strcmp(val, "send")	 ? OP_SEND
				: !strcmp(val, "write")	 ? OP_WRITE
				: !strcmp(val, "read")	 ? OP_READ
				: !strcmp(val, "stream") ? OP_STREAM
							 : 0;
			if (!b->op || (b->op == OP_STREAM && b->lat)) {
				fprintf(stderr,
					"srdma bench: unknown --op '%s' (send, "
					"write, read, stream: bw only)\n",
					val);
				return 2;
			}
		} else if (!strcmp(a, "--mode")) {
			b->lat = b->connect = 0;
			if (!strcmp(val, "bw"))
				b->lat = 0;
			else if (!strcmp(val, "lat"))
				b->lat = 1;
			else if (!strcmp(val, "connect"))
				b->connect = 1;
			else {
				fprintf(stderr,
					"srdma bench: unknown --mode '%s' (bw, "
					"lat, connect)\n",
					val);
				return 2;
			}
		} else if (!strcmp(a, "--size")) {
			if (parse_sizes(b, val) < 0)
				return 2;
		} else if (!strcmp(a, "--iters")) {
			if (parse_size(val, &v) < 0 || v == 0) {
				fprintf(stderr,
					"srdma bench: bad --iters '%s' (a "
					"positive count)\n",
					val);
				return 2;
			}
			b->iters = v;
			b->iters_set = 1;
			b->duration = 0;
		} else if (!strcmp(a, "--duration")) {
			char *end;
			double d = strtod(val, &end);
			if (*end || !(d > 0 && d <= 86400)) {
				fprintf(stderr,
					"srdma bench: bad --duration '%s' "
					"(seconds, > 0)\n",
					val);
				return 2;
			}
			b->duration = d;
			b->iters = 0;
		} else if (!strcmp(a, "--window")) {
			if (parse_size(val, &v) < 0 || v == 0 || v > 1u << 20) {
				fprintf(stderr,
					"srdma bench: bad --window '%s' (a "
					"positive count)\n",
					val);
				return 2;
			}
			b->window = (unsigned)v;
		} else if (!strcmp(a, "--timeout")) {
			if (parse_size(val, &v) < 0 || v == 0 || v > 3600000) {
				fprintf(stderr,
					"srdma bench: bad --timeout '%s' "
					"(milliseconds)\n",
					val);
				return 2;
			}
			b->tmo = (int)v;
		} else {
			fprintf(stderr,
				"srdma bench: unknown option '%s' (see "
				"--help)\n",
				a);
			return 2;
		}
	}
	return 0;
}

static int check_args(struct bench *b)
{
	uint32_t qd = b->co.cfg.queue_depth ? b->co.cfg.queue_depth : 16;
	uint64_t ms = max_size(b);

	if (b->op != OP_SEND && !b->lat && b->window > MAX_RW_WINDOW) {
		fprintf(stderr,
			"srdma bench: --window %u is above %d, the most "
			"write/read operations bench keeps in flight\n",
			b->window, MAX_RW_WINDOW);
		return 2;
	}
	if (b->op == OP_SEND && !b->lat && b->window > qd) {
		fprintf(stderr,
			"srdma bench: --window %u is above the queue depth %u "
			"(raise --queue-depth here and on the server)\n",
			b->window, qd);
		return 2;
	}
	if (b->op == OP_SEND) {
		if (ms > (16u << 20)) {
			fprintf(stderr,
				"srdma bench: send sizes above 16M are not "
				"supported (largest message)\n");
			return 2;
		}
		if (ms > b->co.cfg.max_msg)
			b->co.cfg.max_msg = (uint32_t)ms;
	}
	return 0;
}

/* After connecting: limits only the server knows. */
static int check_conn(struct bench *b)
{
	uint64_t ms = max_size(b);

	if (b->op == OP_STREAM)
		return 0;
	if (b->op == OP_SEND) {
		if (!b->lat && b->window > b->info.queue_depth) {
			fprintf(stderr,
				"srdma bench: --window %u is above the "
				"connection's queue depth %u (start the "
				"server with a larger --queue-depth)\n",
				b->window, b->info.queue_depth);
			return 2;
		}
		if (ms > b->info.max_msg) {
			fprintf(stderr,
				"srdma bench: --size %llu is above the "
				"connection's max message %u (start the "
				"server with --max-msg %llu or more)\n",
				(unsigned long long)ms, b->info.max_msg,
				(unsigned long long)ms);
			return 2;
		}
		return 0;
	}
	int id = srdma_conn_wait_region(b->c, RW_REGION, b->tmo, &b->rlen);
	if (id < 0) {
		err_line("waiting for the server's region 1 (is it `srdma "
			 "serve`?)",
			 id);
		return 1;
	}
	uint64_t span = (ms + SRDMA_BLOCK_SIZE - 1) / SRDMA_BLOCK_SIZE *
			SRDMA_BLOCK_SIZE;
	unsigned w = b->lat ? 1 : b->window;
	if (b->rlen < span) {
		fprintf(stderr,
			"srdma bench: --size %llu does not fit the server's "
			"%llu-byte region 1 (start srdma serve with "
			"--region-size %llu or more)\n",
			(unsigned long long)ms, (unsigned long long)b->rlen,
			(unsigned long long)(span * w));
		return 2;
	}
	/* Operations on the same blocks wait for each other: a figure
	 * measured that way is not the fabric's, so say so always. */
	if (b->rlen < span * w)
		fprintf(stderr,
			"srdma bench: note: the server's region 1 (%llu B) "
			"holds %llu of the %u operations of %llu B in "
			"flight; the others wait for the same blocks, so "
			"this measures that wait (start srdma serve with "
			"--region-size %llu for one slot each)\n",
			(unsigned long long)b->rlen,
			(unsigned long long)(b->rlen / span), w,
			(unsigned long long)ms, (unsigned long long)(span * w));
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct timespec ts;
	int rc;

	if (!b) {
		fprintf(stderr, "srdma bench: out of memory\n");
		return 1;
	}
	common_init(&b->co, SRDMA_ROLE_CLIENT);
	b->op = OP_WRITE;
	b->sizes[0] = 64 * 1024;
	b->nsizes = 1;
	b->iters = 1000;
	b->window = 16;
	b->tmo = 10000;
	rc = parse_args(b, argc, argv);
	if (rc == 0 && b->op == OP_STREAM)
		b->window = 0; /* the stream's ring is the window */
	if (rc == 0)
		rc = check_args(b);
	if (rc) {
		free(b);
		return rc == 1 ? 0 : rc;
	}
	if (b->connect) {
		struct connect_opts co = {
			.iters = b->iters_set || b->duration > 0 ? b->iters
								 : 200,
			.duration = b->duration,
			.json = b->json,
			.quiet = b->quiet,
			.tmo = b->tmo,
		};
		rc = bench_connect(&b->co, &co);
		free(b);
		return rc;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	b->seed = (uint8_t)(ts.tv_nsec ^ getpid());
	b->progress_tty = isatty(2);

	rc = srdma_ctx_create(&b->co.cfg, &b->ctx);
	if (rc < 0) {
		err_line("cannot set up", rc);
		free(b);
		return 1;
	}
	rc = srdma_connect(b->ctx, b->co.host, b->co.port, b->tmo, &b->c);
	if (rc < 0) {
		const char *d = tool_error();
		/* The detail names the address already. */
		if (*d && strstr(d, b->co.host))
			fprintf(stderr, "srdma bench: %s\n", d);
		else
			fprintf(stderr,
				"srdma bench: cannot connect to %s:%u: %s\n",
				b->co.host, b->co.port,
				*d ? d : srdma_strerror(rc));
		rc = 1;
		goto out;
	}
	srdma_conn_info(b->c, &b->info);
	rc = check_conn(b);
	if (rc)
		goto out;
	if (!b->json && !b->quiet)
		print_header(b);
	for (int i = 0; i < b->nsizes && !rc; i++) {
		struct result r = {.size = b->sizes[i]};
		rc = b->op == OP_SEND ? run_send(b, b->sizes[i], &r)
		     : b->op == OP_STREAM
			     ? run_stream(b, b->sizes[i], &r, i == 0)
			     : run_rw(b, b->sizes[i], &r);
		if (!rc)
			print_row(b, &r);
	}
	if (b->c && !rc)
		srdma_conn_close(b->c);
out:
	srdma_conn_destroy(b->c);
	srdma_ctx_destroy(b->ctx);
	free(b);
	return rc;
}
