/* SPDX-License-Identifier: MIT */
/*
 * tls_tcp: the TLS-over-TCP baseline for `srdma bench` — what a user would
 * pick instead of secure RDMA. TLS 1.3 with TLS_AES_256_GCM_SHA384 (the
 * AEAD srdma's encrypt mode uses), a one-way stream of size-byte
 * SSL_write() calls; the server counts the bytes and answers with the total
 * after the client's close_notify, which stops the clock.
 *
 *   tls_tcp server PORT --cert FILE --key FILE
 *   tls_tcp client HOST PORT --size N (--iters N | --duration S) [--json]
 *
 * The server serves one client at a time, forever.
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

#include <openssl/err.h>
#include <openssl/ssl.h>

#define SUITE "TLS_AES_256_GCM_SHA384"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
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

static int server(const char *port, const char *cert, const char *key)
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
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons((uint16_t)atoi(port));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 16)) {
		perror("tls_tcp: listen");
		return 1;
	}
	fprintf(stderr, "tls_tcp: listening on port %s\n", port);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		uint64_t total = 0;
		SSL *ssl;
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1) {
			for (;;) {
				int n = SSL_read(ssl, buf, (int)cap);
				if (n <= 0)
					break; /* close_notify or error */
				total += (uint64_t)n;
			}
			if (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN ||
			    SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) {
				ERR_clear_error();
				SSL_write(ssl, &total, sizeof(total));
				SSL_shutdown(ssl);
			}
		}
		ERR_clear_error();
		SSL_free(ssl);
		close(fd);
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

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return -1;
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: tls_tcp server PORT --cert FILE --key FILE\n"
			"       tls_tcp client HOST PORT --size N (--iters N | "
			"--duration S) [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL;
	uint64_t size = 65536, iters = 1000, v;
	double duration = 0;
	int json = 0, first;

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
		else if (!strcmp(a, "--size") && !parse_size(val, &v) && v)
			size = v;
		else if (!strcmp(a, "--iters") && !parse_size(val, &v) && v)
			iters = v, duration = 0;
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
		return server(argv[2], cert, key);
	}
	if (!strcmp(argv[1], "client"))
		return client(argv[2], argv[3], size, iters, duration, json);
	usage();
	return 2;
}
