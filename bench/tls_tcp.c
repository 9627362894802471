/* SPDX-License-Identifier: MIT */
/*
 * tls_tcp: the TLS-over-TCP baseline for `srdma bench` — what a user would
 * pick instead of secure RDMA. TLS 1.3 with TLS_AES_256_GCM_SHA384 (the
 * AEAD srdma's encrypt mode uses), a one-way stream of size-byte
 * SSL_write() calls; the server counts the bytes and answers with the total
 * after the client's close_notify, which stops the clock.
 *
 *   tls_tcp server PORT --cert FILE --key FILE [--ca FILE] [--out FILE]
 *   tls_tcp client HOST PORT --size N (--iters N | --duration S) [--json]
 *   tls_tcp client HOST PORT --file PATH [--size N] [--json]
 *   tls_tcp client HOST PORT --op connect --certs DIR
 *           [--iters N | --duration S] [--json]
 *
 * The server serves one client at a time, forever.
 *
 * --file / --out is the TLS 1.3 baseline for `srdma cp`: the same work as
 * a copy. The client reads PATH --size bytes at a time (default 1 MiB),
 * hashes it with SHA-256 and sends it; the server writes what arrives to
 * FILE (made anew for each client, never synced: srdma cp without --fsync)
 * and hashes it, and after the close_notify answers the total and its
 * SHA-256, which the client compares.
 *
 * --op connect is the TLS-over-TCP set-up baseline for `srdma bench --mode
 * connect`: sequential cycles of TCP connect, TLS 1.3 handshake with mutual
 * certificates (DIR as written by `srdma certs`: the server needs --ca to
 * ask for the client's), one 64-byte record echoed by the server and
 * checked, close_notify and close. Two series run interleaved like srdma's:
 * full handshakes, and resumed ones offering the ticket of the previous
 * resumed-series connection (the server issues one ticket per handshake,
 * as srdma's does). A first record starting with CONNECT_MAGIC makes the
 * server echo instead of count.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "bench_util.h"

#define SUITE	      "TLS_AES_256_GCM_SHA384"
#define CONNECT_MAGIC "TLSCONN1"
enum { ECHO_LEN = 64 };

static _Noreturn void die(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	fprintf(stderr, "tls_tcp: %s%s%s\n", what, e ? ": " : "", buf);
	exit(1);
}

static SSL_CTX *make_ctx(int server)
{
	SSL_CTX *ctx =
		SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx)
		die("SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	if (SSL_CTX_set_ciphersuites(ctx, SUITE) != 1)
		die("SSL_CTX_set_ciphersuites");
	return ctx;
}

/* Reads exactly len bytes; 0 on success. */
static int read_all(SSL *ssl, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len) {
		int n = SSL_read(ssl, p, len > (1u << 30) ? 1 << 30 : (int)len);
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Echo mode (connect baseline): buf holds the first n bytes read. */
static void serve_echo(SSL *ssl, unsigned char *buf, int n)
{
	while (n < ECHO_LEN) {
		int k = SSL_read(ssl, buf + n, ECHO_LEN - n);
		if (k <= 0)
			return;
		n += k;
	}
	if (SSL_write(ssl, buf, ECHO_LEN) != ECHO_LEN)
		return;
	/* until the client's close_notify */
	while (SSL_read(ssl, buf, ECHO_LEN) > 0)
		;
	if (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN)
		SSL_shutdown(ssl);
}

/* Writes n bytes to fd, all of them. */
static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k <= 0)
			return -1;
		p += k, n -= (size_t)k;
	}
	return 0;
}

static int server(const char *port, const char *cert, const char *key,
		  const char *ca, const char *out)
{
	SSL_CTX *ctx = make_ctx(1);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int one = 1, lfd;
	size_t cap = 1 << 20;
	unsigned char *buf = malloc(cap);

	if (!buf)
		die("malloc");
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		die("loading --cert/--key");
	if (ca) {
		/* Mutual TLS like srdma; one ticket per handshake. */
		static const unsigned char sid[] = "tls_tcp";
		STACK_OF(X509_NAME) *cas = SSL_load_client_CA_file(ca);
		if (!cas || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
			die("loading --ca");
		SSL_CTX_set_client_CA_list(ctx, cas);
		SSL_CTX_set_verify(
			ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			NULL);
		SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
		SSL_CTX_set_num_tickets(ctx, 1);
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)atoi(port));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 16)) {
		perror("tls_tcp: listen");
		return 1;
	}
	{
		socklen_t sl = sizeof(sa);
		getsockname(lfd, (struct sockaddr *)&sa, &sl);
		fprintf(stderr, "tls_tcp: listening on port %u\n",
			ntohs(sa.sin_port));
	}
	for (;;) {
		int fd = accept(lfd, NULL, NULL), ofd = -1;
		unsigned char reply[8 + 32];
		EVP_MD_CTX *sha = NULL;
		uint64_t total = 0;
		SSL *ssl;
		if (fd < 0)
			continue;
		if (out) {
			ofd = open(out,
				   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
				   0600);
			sha = EVP_MD_CTX_new();
			if (ofd < 0 || !sha ||
			    EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)
				die("--out");
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1) {
			for (;;) {
				int n = SSL_read(ssl, buf, (int)cap);
				if (n <= 0)
					break; /* close_notify or error */
				if (!total && n >= 8 &&
				    !memcmp(buf, CONNECT_MAGIC, 8)) {
					serve_echo(ssl, buf, n);
					total = ~0ull;
					break;
				}
				total += (uint64_t)n;
				if (ofd >= 0 &&
				    (write_all(ofd, buf, (size_t)n) < 0 ||
				     EVP_DigestUpdate(sha, buf, (size_t)n) !=
					     1))
					die("writing --out");
			}
			if (total != ~0ull &&
			    (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN ||
			     SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN)) {
				ERR_clear_error();
				memcpy(reply, &total, sizeof(total));
				if (sha)
					EVP_DigestFinal_ex(sha, reply + 8,
							   NULL);
				SSL_write(ssl, reply, sha ? 40 : 8);
				SSL_shutdown(ssl);
			}
		}
		ERR_clear_error();
		SSL_free(ssl);
		close(fd);
		if (ofd >= 0)
			close(ofd);
		EVP_MD_CTX_free(sha);
	}
	return 0;
}

static int connect_to(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *p;
	int fd = -1, one = 1;

	if (getaddrinfo(host, port, &hints, &ai)) {
		fprintf(stderr, "tls_tcp: cannot resolve %s\n", host);
		exit(1);
	}
	for (p = ai; p; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
		if (fd >= 0 && !connect(fd, p->ai_addr, p->ai_addrlen))
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fprintf(stderr, "tls_tcp: cannot connect to %s:%s\n", host,
			port);
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int client(const char *host, const char *port, uint64_t size,
		  uint64_t iters, double duration, int json)
{
	SSL_CTX *ctx = make_ctx(0);
	SSL *ssl = SSL_new(ctx);
	unsigned char *buf = malloc(size);
	uint64_t n = 0, total = 0;
	int fd = connect_to(host, port);
	double t0, secs;

	if (!buf || !ssl)
		die("malloc");
	memset(buf, 0x5a, size);
	SSL_set_fd(ssl, fd);
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL); /* a baseline, not auth */
	if (SSL_connect(ssl) != 1)
		die("TLS handshake");
	if (strcmp(SSL_get_cipher_name(ssl), SUITE)) {
		fprintf(stderr, "tls_tcp: negotiated %s, not %s\n",
			SSL_get_cipher_name(ssl), SUITE);
		return 1;
	}
	t0 = now_s();
	while (iters ? n < iters : now_s() - t0 < duration) {
		uint64_t off = 0;
		while (off < size) {
			uint64_t chunk =
				size - off > (1u << 30) ? 1u << 30 : size - off;
			int w = SSL_write(ssl, buf + off, (int)chunk);
			if (w <= 0)
				die("SSL_write");
			off += (uint64_t)w;
		}
		n++;
	}
	SSL_shutdown(ssl); /* close_notify: the server answers the total */
	if (read_all(ssl, &total, sizeof(total)))
		die("reading the server's total");
	secs = now_s() - t0;
	if (total != n * size) {
		fprintf(stderr,
			"tls_tcp: server received %" PRIu64 " bytes, sent "
			"%" PRIu64 "\n",
			total, n * size);
		return 1;
	}
	double gbs = (double)total / secs / 1e9, mps = (double)n / secs;
	if (json)
		printf("{\"tool\":\"tls_tcp\",\"op\":\"send\",\"mode\":\"bw\","
		       "\"size\":%" PRIu64 ",\"iters\":%" PRIu64
		       ",\"window\":0,\"protect\":\"encrypt\","
		       "\"transport\":\"tcp\",\"provider\":\"openssl\","
		       "\"cipher\":\"%s\",\"seconds\":%.6f,"
		       "\"gbytes_per_s\":%.6f,\"gbits_per_s\":%.6f,"
		       "\"msgs_per_s\":%.1f}\n",
		       size, n, SUITE, secs, gbs, gbs * 8, mps);
	else
		printf("tls_tcp %s size %" PRIu64 ": %" PRIu64
		       " messages in %.3f s, %.3f GB/s, %.4f Mmsg/s\n",
		       SUITE, size, n, secs, gbs, mps / 1e6);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	free(buf);
	return 0;
}

/* ---- file baseline (srdma cp) ---- */

static int client_file(const char *host, const char *port, const char *path,
		       uint64_t size, int json)
{
	SSL_CTX *ctx = make_ctx(0);
	SSL *ssl = SSL_new(ctx);
	unsigned char *buf = malloc(size), reply[40], mine[32];
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	int in = open(path, O_RDONLY | O_CLOEXEC), fd;
	uint64_t total = 0, got;
	double t0, secs;

	if (in < 0) {
		perror(path);
		return 1;
	}
	if (!buf || !ssl || !sha ||
	    EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)
		die("malloc");
	/* The clock runs from connecting, as srdma cp's does. */
	t0 = now_s();
	fd = connect_to(host, port);
	SSL_set_fd(ssl, fd);
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL); /* a baseline, not auth */
	if (SSL_connect(ssl) != 1)
		die("TLS handshake");
	for (;;) {
		ssize_t n = read(in, buf, size);
		if (n < 0)
			die("reading --file");
		if (n == 0)
			break;
		EVP_DigestUpdate(sha, buf, (size_t)n);
		for (ssize_t off = 0; off < n;) {
			int w = SSL_write(ssl, buf + off, (int)(n - off));
			if (w <= 0)
				die("SSL_write");
			off += w;
		}
		total += (uint64_t)n;
	}
	EVP_DigestFinal_ex(sha, mine, NULL);
	SSL_shutdown(ssl);
	if (read_all(ssl, reply, sizeof(reply)))
		die("reading the server's total and SHA-256 (is it started "
		    "with --out?)");
	secs = now_s() - t0;
	memcpy(&got, reply, 8);
	if (got != total || memcmp(reply + 8, mine, 32)) {
		fprintf(stderr,
			"tls_tcp: the server holds %" PRIu64
			" bytes of %" PRIu64 "%s\n",
			got, total,
			got == total ? " with another SHA-256" : "");
		return 1;
	}
	double gbs = (double)total / secs / 1e9;
	if (json)
		printf("{\"tool\":\"tls_tcp\",\"op\":\"file\",\"size\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"cipher\":\"%s\","
		       "\"seconds\":%.6f,\"gbytes_per_s\":%.6f}\n",
		       size, total, SUITE, secs, gbs);
	else
		printf("tls_tcp %s file %s: %" PRIu64
		       " bytes in %.3f s (%.3f GB/s), SHA-256 verified\n",
		       SUITE, path, total, secs, gbs);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	EVP_MD_CTX_free(sha);
	close(fd);
	close(in);
	free(buf);
	return 0;
}

/* ---- connect baseline ---- */

struct cseries {
	double *conn_us, *first_us, cycle_s;
	size_t n, cap;
};

static void cs_add(struct cseries *s, double c, double f, double cyc)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->conn_us = realloc(s->conn_us, s->cap * sizeof(double));
		s->first_us = realloc(s->first_us, s->cap * sizeof(double));
		if (!s->conn_us || !s->first_us)
			die("malloc");
	}
	s->conn_us[s->n] = c;
	s->first_us[s->n] = f;
	s->n++;
	s->cycle_s += cyc;
}

/*
 * One cycle. *sess: ticket to offer (NULL = full handshake); replaced by
 * this connection's when keep is set. Returns whether it resumed.
 */
static int connect_cycle(SSL_CTX *ctx, const char *host, const char *port,
			 SSL_SESSION **sess, int keep, struct cseries *full,
			 struct cseries *res, int record)
{
	unsigned char out[ECHO_LEN], in[ECHO_LEN];
	double t0 = now_s(), t1, t2;
	int fd = connect_to(host, port), resumed;
	SSL *ssl = SSL_new(ctx);

	if (!ssl)
		die("SSL_new");
	for (int k = 0; k < ECHO_LEN; k++)
		out[k] = (unsigned char)(rand() & 0xff);
	memcpy(out, CONNECT_MAGIC, 8);
	SSL_set_fd(ssl, fd);
	if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1 &&
	    SSL_set1_host(ssl, host) != 1)
		die("setting the expected server name");
	if (*sess && SSL_set_session(ssl, *sess) != 1)
		die("SSL_set_session");
	if (SSL_connect(ssl) != 1)
		die("TLS handshake");
	t1 = now_s();
	if (SSL_write(ssl, out, ECHO_LEN) != ECHO_LEN ||
	    read_all(ssl, in, ECHO_LEN))
		die("echo");
	if (memcmp(in, out, ECHO_LEN)) {
		fprintf(stderr, "tls_tcp: the echo came back different\n");
		exit(1);
	}
	t2 = now_s();
	resumed = SSL_session_reused(ssl);
	if (keep) {
		/* The ticket came before the echo: this session resumes. */
		SSL_SESSION *s = SSL_get1_session(ssl);
		if (s && SSL_SESSION_is_resumable(s)) {
			SSL_SESSION_free(*sess);
			*sess = s;
		} else {
			SSL_SESSION_free(s);
		}
	}
	SSL_shutdown(ssl); /* close_notify */
	SSL_free(ssl);
	close(fd);
	if (record)
		cs_add(resumed ? res : full, (t1 - t0) * 1e6, (t2 - t0) * 1e6,
		       now_s() - t0);
	return resumed;
}

static void cs_json(const char *pfx, struct cseries *s)
{
	double c50, c99, f50, f99;

	if (!s->n) {
		printf(",\"%sconnect_us\":null,\"%sconnects_per_s\":null", pfx,
		       pfx);
		return;
	}
	pct(s->conn_us, s->n, &c50, &c99);
	pct(s->first_us, s->n, &f50, &f99);
	printf(",\"%sconnect_us\":%.3f,\"%sconnect_us_p99\":%.3f,"
	       "\"%sfirst_byte_us\":%.3f,\"%sfirst_byte_us_p99\":%.3f,"
	       "\"%sconnects_per_s\":%.3f",
	       pfx, c50, pfx, c99, pfx, f50, pfx, f99, pfx,
	       (double)s->n / s->cycle_s);
}

static void cs_line(const char *name, struct cseries *s)
{
	double c50, c99, f50, f99;

	if (!s->n)
		return;
	pct(s->conn_us, s->n, &c50, &c99);
	pct(s->first_us, s->n, &f50, &f99);
	printf("tls_tcp connect %-7s: %zu connects, %.1f conn/s, connect p50 "
	       "%.1f p99 %.1f us, first verified byte p50 %.1f p99 %.1f us\n",
	       name, s->n, (double)s->n / s->cycle_s, c50, c99, f50, f99);
}

static int connect_bench(const char *host, const char *port, const char *dir,
			 uint64_t iters, double duration, int json)
{
	SSL_CTX *ctx = make_ctx(0);
	SSL_SESSION *none = NULL, *ticket = NULL;
	struct cseries full = {0}, res = {0};
	char ca[4096], crt[4096], key[4096];
	uint64_t n = 0, missed = 0;
	double t0;

	snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
	snprintf(crt, sizeof(crt), "%s/client.crt", dir);
	snprintf(key, sizeof(key), "%s/client.key", dir);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, crt) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		die("loading the --certs directory (ca.crt, client.crt, "
		    "client.key)");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* our own ticket handling: no client-side cache */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	srand((unsigned)getpid());
	/* warm-up; the resumed series' first ticket */
	connect_cycle(ctx, host, port, &none, 0, &full, &res, 0);
	connect_cycle(ctx, host, port, &ticket, 1, &full, &res, 0);
	if (!ticket) {
		fprintf(stderr, "tls_tcp: the server issued no ticket\n");
		return 1;
	}
	t0 = now_s();
	while (iters ? n < iters : now_s() - t0 < duration) {
		connect_cycle(ctx, host, port, &none, 0, &full, &res, 1);
		if (!connect_cycle(ctx, host, port, &ticket, 1, &full, &res, 1))
			missed++;
		n++;
	}
	if (json) {
		printf("{\"tool\":\"tls_tcp\",\"op\":\"connect\","
		       "\"mode\":\"connect\",\"size\":%d,"
		       "\"protect\":\"encrypt\",\"transport\":\"tcp\","
		       "\"provider\":\"openssl\",\"cipher\":\"%s\","
		       "\"iters\":%zu,\"full_count\":%zu,"
		       "\"resumed_count\":%zu,\"resume_missed\":%" PRIu64,
		       ECHO_LEN, SUITE, full.n + res.n, full.n, res.n, missed);
		cs_json("full_", &full);
		cs_json("resumed_", &res);
		printf(",\"connects_per_s\":%.3f}\n",
		       full.n ? (double)full.n / full.cycle_s : 0.0);
	} else {
		cs_line("full", &full);
		cs_line("resumed", &res);
		if (missed)
			printf("tls_tcp: %" PRIu64 " ticket offers did not "
			       "resume\n",
			       missed);
	}
	SSL_SESSION_free(ticket);
	SSL_CTX_free(ctx);
	free(full.conn_us);
	free(full.first_us);
	free(res.conn_us);
	free(res.first_us);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tls_tcp server PORT --cert FILE --key FILE [--ca "
		"FILE] [--out FILE]\n"
		"       tls_tcp client HOST PORT --size N (--iters N | "
		"--duration S) [--json]\n"
		"       tls_tcp client HOST PORT --file PATH [--size N] "
		"[--json]\n"
		"       tls_tcp client HOST PORT --op connect --certs DIR "
		"[--iters N | --duration S] [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL, *ca = NULL, *certs = NULL;
	const char *file = NULL, *out = NULL;
	uint64_t size = 65536, iters = 1000, v;
	int size_set = 0;
	double duration = 0;
	int json = 0, first, connect = 0, iters_set = 0;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 3)
		usage();
	first = !strcmp(argv[1], "server") ? 3 : 4;
	if (first > argc)
		usage();
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json")) {
			json = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *val = argv[++i];
		if (!strcmp(a, "--cert"))
			cert = val;
		else if (!strcmp(a, "--key"))
			key = val;
		else if (!strcmp(a, "--ca"))
			ca = val;
		else if (!strcmp(a, "--certs"))
			certs = val;
		else if (!strcmp(a, "--file"))
			file = val;
		else if (!strcmp(a, "--out"))
			out = val;
		else if (!strcmp(a, "--op") && !strcmp(val, "connect"))
			connect = 1;
		else if (!strcmp(a, "--size") && !parse_size(val, &v) && v)
			size = v, size_set = 1;
		else if (!strcmp(a, "--iters") && !parse_size(val, &v) && v)
			iters = v, duration = 0, iters_set = 1;
		else if (!strcmp(a, "--duration"))
			duration = atof(val), iters = 0;
		else if (!strcmp(a, "--window") || !strcmp(a, "--op") ||
			 !strcmp(a, "--mode"))
			; /* accepted for symmetry with raw_ofi; a stream */
		else
			usage();
	}
	if (!strcmp(argv[1], "server")) {
		if (!cert || !key)
			usage();
		return server(argv[2], cert, key, ca, out);
	}
	if (!strcmp(argv[1], "client") && connect) {
		if (!certs)
			usage();
		return connect_bench(argv[2], argv[3], certs,
				     duration > 0 ? 0
				     : iters_set  ? iters
						  : 200,
				     duration, json);
	}
	if (!strcmp(argv[1], "client") && file)
		return client_file(argv[2], argv[3], file,
				   size_set ? size : 1 << 20, json);
	if (!strcmp(argv[1], "client"))
		return client(argv[2], argv[3], size, iters, duration, json);
	usage();
	return 2;
}
