/* SPDX-License-Identifier: MIT */
/*
 * ctrl_server: runs the server side of the control-channel handshake for N
 * connections and prints one line per connection, so integration tests can
 * drive it with real third-party clients (openssl s_client, plain text).
 *
 *   ctrl_server --certs DIR --port P [--allow ID]... [--count N]
 *
 * Prints "listening PORT", then per connection exactly one of
 *   handshake ok identity=<id>
 *   handshake failed code=<n> <srdma_strerror> detail=<detail>
 * and exits 0 after N connections (1 if it could not accept one).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctrl/ctrl.h"

enum { MAX_ALLOW = 32, TIMEOUT_MS = 5000 };

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ctrl_server --certs DIR --port P [--allow ID]... "
		   "[--count N]\n");
}

/* Runs one server handshake with a deadline; prints the outcome line. */
static void serve_one(struct srdma__tls_ctx *t, int fd)
{
	struct srdma__ctrl *c = NULL;
	long end = now_ms() + TIMEOUT_MS;
	char detail[512];
	int rc;

	rc = srdma__ctrl_create(t, fd, NULL, &c);
	while (rc == 0 || rc == SRDMA_EAGAIN) {
		struct pollfd p = {.fd = srdma__ctrl_fd(c)};
		long left;

		rc = srdma__ctrl_handshake(c);
		if (rc != SRDMA_EAGAIN)
			break;
		left = end - now_ms();
		if (left <= 0) {
			rc = srdma__err(SRDMA_ETIMEDOUT,
					"the TLS handshake did not finish "
					"within %d ms",
					TIMEOUT_MS);
			break;
		}
		p.events = srdma__ctrl_want_write(c) ? POLLOUT : POLLIN;
		poll(&p, 1, (int)left);
	}
	if (rc == 0) {
		printf("handshake ok identity=%s\n",
		       srdma__ctrl_peer_identity(c));
		srdma__ctrl_shutdown(c);
	} else {
		srdma__err_copy(detail, sizeof(detail));
		printf("handshake failed code=%d %s detail=%s\n", rc,
		       srdma_strerror(rc), detail);
	}
	fflush(stdout);
	srdma__ctrl_destroy(c);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"certs", required_argument, NULL, 'd'},
		{"port", required_argument, NULL, 'p'},
		{"allow", required_argument, NULL, 'a'},
		{"count", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *allow[MAX_ALLOW + 1] = {0};
	const char *dir = NULL;
	char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
	struct srdma__tls_config cfg = {.server = true};
	struct srdma__tls_ctx *t = NULL;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	size_t n_allow = 0;
	long port = -1, count = 1;
	int opt, lfd, one = 1, rc = 0;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'p':
			port = strtol(optarg, NULL, 10);
			break;
		case 'a':
			if (n_allow < MAX_ALLOW)
				allow[n_allow++] = optarg;
			break;
		case 'n':
			count = strtol(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!dir || port < 0 || port > 65535 || count < 1) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (srdma__certs_paths(dir, "server", cert, sizeof(cert), key,
			       sizeof(key), ca, sizeof(ca)) < 0) {
		fprintf(stderr, "ctrl_server: %s\n", srdma_error_detail());
		return 1;
	}
	cfg.cert_file = cert;
	cfg.key_file = key;
	cfg.ca_file = ca;
	cfg.allow = n_allow ? allow : NULL;
	if (srdma__tls_ctx_create(&cfg, &t) < 0) {
		fprintf(stderr, "ctrl_server: %s\n", srdma_error_detail());
		return 1;
	}

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
		fprintf(stderr,
			"ctrl_server: cannot listen on 127.0.0.1:%ld: %s\n",
			port, strerror(errno));
		srdma__tls_ctx_destroy(t);
		return 1;
	}
	printf("listening %u\n", ntohs(sa.sin_port));
	fflush(stdout);

	for (long i = 0; i < count; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR) {
				i--;
				continue;
			}
			fprintf(stderr, "ctrl_server: accept: %s\n",
				strerror(errno));
			rc = 1;
			break;
		}
		serve_one(t, fd);
	}
	close(lfd);
	srdma__tls_ctx_destroy(t);
	return rc;
}
