/* SPDX-License-Identifier: MIT */
/*
 * srdma client: connects, authenticates and runs a self-verifying exchange
 * against `srdma serve`. Exit status 0 only when every byte checked out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cmd.h"

enum { OP_ECHO = 1, OP_WRITE = 2, OP_READ = 4 };

struct figures {
	uint64_t echo_n, write_n, read_n;
	uint64_t bytes;
	double echo_s, write_s, read_s;
	double rtt_min_us;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: srdma client --connect HOST[:PORT] --certs DIR "
		"[options]\n\n"
		"  --connect HOST[:PORT]  server (default localhost:%d)\n"
		"  --op OP                echo | write | read | all (default "
		"all)\n"
		"  --size BYTES           bytes per operation (default 4096)\n"
		"  --count N              operations per kind (default 10)\n"
		"  --timeout MS           per operation and for connecting "
		"(default 10000)\n"
		"  --reconnect N          then N verified reconnects (TLS "
		"resumption)\n"
		"                         and N borrows from a pool of 2 "
		"connections\n"
		"  --quiet                only the summary line\n"
		"%s",
		DEFAULT_PORT, common_help());
}

static int fail(const char *what, uint64_t i, int rc)
{
	const char *d = tool_error();
	fprintf(stderr, "srdma client: FAILED: %s #%llu: %s%s%s\n", what,
		(unsigned long long)i, srdma_strerror(rc), *d ? " " : "", d);
	return 1;
}

static int run_echo(srdma_conn *c, uint64_t size, uint64_t count, int tmo,
		    struct figures *fig)
{
	unsigned char *out = malloc(size ? size : 1),
		      *in = malloc(size ? size : 1);
	size_t got;
	int rc = 0;
	double t0 = now_s();

	fig->rtt_min_us = 1e12;
	for (uint64_t i = 0; i < count && rc == 0; i++) {
		double t = now_s();
		if (fill_random(out, size) < 0) {
			rc = fail("echo", i, SRDMA_ESYS);
			break;
		}
		int r = srdma_send_sync(c, out, size, tmo);
		if (r == 0)
			r = srdma_recv(c, in, size ? size : 1, &got, tmo);
		if (r < 0) {
			rc = fail("echo", i, r);
			break;
		}
		if (got != size || memcmp(in, out, size)) {
			fprintf(stderr,
				"srdma client: FAILED: echo #%llu came back "
				"different (%zu bytes, sent %llu)\n",
				(unsigned long long)i, got,
				(unsigned long long)size);
			rc = 1;
			break;
		}
		t = (now_s() - t) * 1e6;
		if (t < fig->rtt_min_us)
			fig->rtt_min_us = t;
		fig->echo_n++;
		fig->bytes += 2 * size;
	}
	fig->echo_s = now_s() - t0;
	free(out);
	free(in);
	return rc;
}

static int run_write(srdma_conn *c, uint32_t region, uint64_t rlen,
		     uint64_t size, uint64_t count, int tmo,
		     struct figures *fig)
{
	unsigned char *out = malloc(size), *in = malloc(size);
	uint64_t span = (size + 4095) & ~4095ull;
	uint64_t slots = rlen / span;
	int rc = 0;
	double t0 = now_s();

	if (!out || !in || slots == 0) {
		fprintf(stderr,
			"srdma client: FAILED: --size %llu does not fit the "
			"server's %llu-byte region\n",
			(unsigned long long)size, (unsigned long long)rlen);
		free(out);
		free(in);
		return 1;
	}
	for (uint64_t i = 0; i < count; i++) {
		uint64_t off = (i % slots) * span;
		int r;
		if (fill_random(out, size) < 0) {
			rc = fail("write", i, SRDMA_ESYS);
			break;
		}
		r = srdma_write_sync(c, region, off, out, size, tmo);
		if (r < 0) {
			rc = fail("write", i, r);
			break;
		}
		memset(in, 0, size);
		r = srdma_read_sync(c, region, off, in, size, tmo);
		if (r < 0) {
			rc = fail("read-back", i, r);
			break;
		}
		if (memcmp(in, out, size)) {
			fprintf(stderr,
				"srdma client: FAILED: write #%llu read back "
				"different bytes\n",
				(unsigned long long)i);
			rc = 1;
			break;
		}
		fig->write_n++;
		fig->bytes += 2 * size;
	}
	fig->write_s = now_s() - t0;
	free(out);
	free(in);
	return rc;
}

static int run_read(srdma_conn *c, uint32_t region, uint64_t rlen,
		    uint64_t size, uint64_t count, int tmo, struct figures *fig)
{
	unsigned char *in = malloc(size);
	uint64_t span = (size + 4095) & ~4095ull;
	uint64_t slots = rlen / span;
	int rc = 0;
	double t0 = now_s();

	if (!in || slots == 0) {
		fprintf(stderr,
			"srdma client: FAILED: --size %llu does not fit the "
			"server's %llu-byte region\n",
			(unsigned long long)size, (unsigned long long)rlen);
		free(in);
		return 1;
	}
	for (uint64_t i = 0; i < count; i++) {
		uint64_t off = (i % slots) * span;
		int r = srdma_read_sync(c, region, off, in, size, tmo);
		if (r < 0) {
			rc = fail("read", i, r);
			break;
		}
		for (uint64_t j = 0; j < size; j++)
			if (in[j] != pattern_byte(off + j)) {
				fprintf(stderr,
					"srdma client: FAILED: read #%llu: "
					"byte %llu differs from the server's "
					"pattern\n",
					(unsigned long long)i,
					(unsigned long long)(off + j));
				rc = 1;
				break;
			}
		if (rc)
			break;
		fig->read_n++;
		fig->bytes += size;
	}
	fig->read_s = now_s() - t0;
	free(in);
	return rc;
}

/*
 * --reconnect N: N sequential connects on one context (the first is a full
 * TLS handshake, later ones resume from tickets where the server allows),
 * each verified with an echo; then N borrows from a pool of 2 connections.
 */
static int run_reconnect(srdma_ctx *ctx, struct common_opts *o, uint64_t n,
			 int tmo)
{
	double *full = calloc(n + 1, sizeof(double));
	double *res = calloc(n + 1, sizeof(double));
	struct srdma_pool_config pc = {0};
	struct srdma_pool_stats st;
	srdma_pool *pool = NULL;
	uint64_t nf = 0, nr = 0;
	int rc = 0;

	if (!full || !res) {
		free(full);
		free(res);
		return 1;
	}
	for (uint64_t i = 0; i < n; i++) {
		struct srdma_conn_info ci;
		struct figures fig = {0};
		srdma_conn *c;
		double t = now_s();
		int r = srdma_connect(ctx, o->host, o->port, tmo, &c);
		if (r < 0) {
			rc = fail("reconnect", i, r);
			break;
		}
		t = (now_s() - t) * 1e3;
		srdma_conn_info(c, &ci);
		if (ci.resumed)
			res[nr++] = t;
		else
			full[nf++] = t;
		r = run_echo(c, 64, 1, tmo, &fig);
		srdma_conn_destroy(c);
		if (r) {
			rc = 1;
			break;
		}
	}
	qsort(full, nf, sizeof(double), cmp_double);
	qsort(res, nr, sizeof(double), cmp_double);
	if (!rc) {
		char a[64] = "", b[64] = "";
		if (nf)
			snprintf(a, sizeof(a), " (median %.2f ms)",
				 full[nf / 2]);
		if (nr)
			snprintf(b, sizeof(b), " (median %.2f ms)",
				 res[nr / 2]);
		printf("reconnect: %llu connections verified, %llu full TLS "
		       "handshakes%s, %llu resumed%s\n",
		       (unsigned long long)n, (unsigned long long)nf, a,
		       (unsigned long long)nr, b);
	}
	free(full);
	free(res);
	if (rc)
		return rc;

	pc.cfg = &o->cfg;
	pc.host = o->host;
	pc.port = o->port;
	pc.max_conns = 2;
	pc.connect_timeout_ms = tmo;
	if (srdma_pool_create(&pc, &pool) < 0)
		return fail("pool", 0, SRDMA_ENOMEM);
	for (uint64_t i = 0; i < n && !rc; i++) {
		struct figures fig = {0};
		srdma_conn *c;
		int r = srdma_pool_borrow(pool, tmo, &c);
		if (r < 0) {
			rc = fail("pool borrow", i, r);
			break;
		}
		rc = run_echo(c, 64, 1, tmo, &fig);
		srdma_pool_return(pool, c);
	}
	srdma_pool_stats(pool, &st);
	if (!rc)
		printf("pool: %llu borrows verified over %llu connection%s "
		       "(%u open)\n",
		       (unsigned long long)n, (unsigned long long)st.connects,
		       st.connects == 1 ? "" : "s", st.open);
	srdma_pool_destroy(pool);
	return rc;
}

static int wait_grant(srdma_conn *c, uint32_t id, uint64_t *len, int tmo)
{
	int rc = srdma_conn_wait_region(c, id, tmo, len);
	return rc < 0 ? rc : 0;
}

int cmd_client(int argc, char **argv)
{
	struct common_opts o;
	struct srdma_conn_info info;
	struct figures fig = {0};
	uint64_t size = 4096, count = 10, v, reconnect = 0;
	int ops = OP_ECHO | OP_WRITE | OP_READ, tmo = 10000, quiet = 0, rc;
	srdma_ctx *ctx = NULL;
	srdma_conn *c = NULL;
	double t0;

	common_init(&o, SRDMA_ROLE_CLIENT);
	for (int i = 1; i < argc; i++) {
		int k = common_parse(&o, "client", argc, argv, &i);
		if (k < 0)
			return 2;
		if (k > 0)
			continue;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--connect") && i + 1 < argc) {
			if (parse_hostport(argv[++i], o.host, sizeof(o.host),
					   &o.port) < 0 ||
			    !o.host[0]) {
				fprintf(stderr,
					"srdma client: bad --connect '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--op") && i + 1 < argc) {
			const char *s = argv[++i];
			ops = !strcmp(s, "echo")    ? OP_ECHO
			      : !strcmp(s, "write") ? OP_WRITE
			      : !strcmp(s, "read")  ? OP_READ
			      : !strcmp(s, "all") ? OP_ECHO | OP_WRITE | OP_READ
						  : 0;
			if (!ops) {
				fprintf(stderr,
					"srdma client: unknown --op '%s' "
					"(echo, "
					"write, read, all)\n",
					s);
				return 2;
			}
		} else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			if (parse_size(argv[++i], &size) < 0 || size == 0 ||
			    size > (1ull << 30)) {
				fprintf(stderr,
					"srdma client: bad --size '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			if (parse_size(argv[++i], &count) < 0) {
				fprintf(stderr,
					"srdma client: bad --count '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v > 0) {
			tmo = (int)v;
			i++;
		} else if (!strcmp(argv[i], "--reconnect") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v > 0) {
			reconnect = v;
			i++;
		} else if (!strcmp(argv[i], "--quiet") ||
			   !strcmp(argv[i], "-q")) {
			quiet = 1;
		} else {
			fprintf(stderr,
				"srdma client: unknown or incomplete option "
				"'%s'\n",
				argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if ((ops & OP_ECHO) && size > o.cfg.max_msg) {
		if (size > (16u << 20)) {
			fprintf(stderr,
				"srdma client: echo --size above 16M\n");
			return 2;
		}
		o.cfg.max_msg = (uint32_t)size;
	}

	rc = srdma_ctx_create(&o.cfg, &ctx);
	if (rc < 0) {
		fprintf(stderr, "srdma client: %s\n",
			*tool_error() ? tool_error() : srdma_strerror(rc));
		return 1;
	}
	t0 = now_s();
	rc = srdma_connect(ctx, o.host, o.port, tmo, &c);
	if (rc < 0) {
		fprintf(stderr, "srdma client: cannot connect to %s:%u: %s\n",
			o.host, o.port,
			*tool_error() ? tool_error() : srdma_strerror(rc));
		srdma_ctx_destroy(ctx);
		return 1;
	}
	srdma_conn_info(c, &info);
	if (!quiet)
		printf("connected to %s (%s) in %.1f ms: %s/%s, %s%s%s%s%s%s, "
		       "%s\n",
		       info.peer_addr, info.peer_identity, (now_s() - t0) * 1e3,
		       srdma_transport_name(info.transport), info.provider,
		       srdma_protect_name(info.protect),
		       info.cipher[0] ? " " : "", info.cipher,
		       info.aead_impl[0] ? " (" : "", info.aead_impl,
		       info.aead_impl[0] ? ")" : "", info.tls_version);
	if ((ops & OP_ECHO) && size > info.max_msg) {
		fprintf(stderr,
			"srdma client: FAILED: --size %llu is above the "
			"server's max message %u (start it with --max-msg)\n",
			(unsigned long long)size, info.max_msg);
		rc = 1;
		goto out;
	}
	rc = 0;
	if (ops & OP_ECHO)
		rc = run_echo(c, size, count, tmo, &fig);
	if (!rc && (ops & OP_WRITE)) {
		uint64_t rlen;
		int wr = wait_grant(c, 1, &rlen, tmo);
		if (wr < 0)
			rc = fail("waiting for region 1", 0, wr);
		else
			rc = run_write(c, 1, rlen, size, count, tmo, &fig);
	}
	if (!rc && (ops & OP_READ)) {
		uint64_t rlen;
		int wr = wait_grant(c, 2, &rlen, tmo);
		if (wr < 0)
			rc = fail("waiting for region 2", 0, wr);
		else
			rc = run_read(c, 2, rlen, size, count, tmo, &fig);
	}
	if (!rc) {
		char parts[3][96];
		int np = 0;
		if (fig.echo_n)
			snprintf(parts[np++], sizeof(parts[0]),
				 "echo %llux%llu B (min RTT %.0f us)",
				 (unsigned long long)fig.echo_n,
				 (unsigned long long)size, fig.rtt_min_us);
		if (fig.write_n)
			snprintf(parts[np++], sizeof(parts[0]),
				 "write+readback %llux%llu B (%.1f MB/s)",
				 (unsigned long long)fig.write_n,
				 (unsigned long long)size,
				 2.0 * (double)(fig.write_n * size) /
					 fig.write_s / 1e6);
		if (fig.read_n)
			snprintf(parts[np++], sizeof(parts[0]),
				 "read %llux%llu B (%.1f MB/s)",
				 (unsigned long long)fig.read_n,
				 (unsigned long long)size,
				 (double)(fig.read_n * size) / fig.read_s /
					 1e6);
		printf("srdma client: OK: %s%s%s%s%s verified, %s/%s, %s\n",
		       np > 0 ? parts[0] : "nothing", np > 1 ? ", " : "",
		       np > 1 ? parts[1] : "", np > 2 ? ", " : "",
		       np > 2 ? parts[2] : "",
		       srdma_transport_name(info.transport), info.provider,
		       srdma_protect_name(info.protect));
	}
out:
	srdma_conn_destroy(c);
	if (!rc && reconnect)
		rc = run_reconnect(ctx, &o, reconnect, tmo);
	srdma_ctx_destroy(ctx);
	return rc ? 1 : 0;
}
