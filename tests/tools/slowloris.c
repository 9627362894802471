/* SPDX-License-Identifier: MIT */
/*
 * slowloris: opens N TCP connections to a control port and never finishes
 * TLS (each sends the first 5 bytes of a TLS record header, then nothing),
 * then waits for the server to close them and reports when it did:
 *
 *   slowloris HOST PORT N [--wait SECONDS] [--ready FILE] [--silent]
 *
 * --silent: send nothing at all (not even the partial record header).
 *
 * Writes FILE (if given) once all N are open, so a test can start its
 * legitimate clients while the idle ones are held. Prints
 *   "opened N closed C min X.XXs median X.XXs max X.XXs"
 * and exits 0 when every connection was closed by the server within
 * SECONDS (default 30), 1 otherwise.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	/* A TLS handshake record header announcing 512 bytes that never
	 * come. */
	static const unsigned char partial[5] = {0x16, 0x03, 0x01, 0x02, 0x00};
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	const char *ready = NULL;
	int silent = 0;
	struct pollfd *p;
	double *closed_at, t0, wait_s = 30;
	int n, nclosed = 0;

	if (argc < 4 || (n = atoi(argv[3])) <= 0) {
		fprintf(stderr, "usage: slowloris HOST PORT N [--wait S] "
				"[--ready FILE]\n");
		return 2;
	}
	for (int i = 4; i < argc; i += 2) {
		if (!strcmp(argv[i], "--silent")) {
			silent = 1;
			i--;
		} else if (i + 1 >= argc)
			break;
		else if (!strcmp(argv[i], "--wait"))
			wait_s = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--ready"))
			ready = argv[i + 1];
	}
	if (getaddrinfo(argv[1], argv[2], &hints, &ai)) {
		fprintf(stderr, "slowloris: cannot resolve %s\n", argv[1]);
		return 2;
	}
	p = calloc((size_t)n, sizeof(*p));
	closed_at = calloc((size_t)n, sizeof(*closed_at));
	if (!p || !closed_at)
		return 2;
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		int fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			fprintf(stderr, "slowloris: connection %d: %s\n", i,
				strerror(errno));
			return 2;
		}
		if (!silent && write(fd, partial, sizeof(partial)) < 0) {
			/* The server may already have closed it. */
		}
		p[i].fd = fd;
		p[i].events = POLLIN;
		closed_at[i] = -1;
	}
	freeaddrinfo(ai);
	if (ready) {
		FILE *f = fopen(ready, "w");
		if (f) {
			fprintf(f, "%d\n", n);
			fclose(f);
		}
	}
	while (nclosed < n && now_s() - t0 < wait_s) {
		if (poll(p, (nfds_t)n, 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			char buf[512];
			ssize_t r;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			r = read(p[i].fd, buf, sizeof(buf));
			if (r > 0)
				continue; /* an alert; the close follows */
			if (r < 0 && errno == EAGAIN)
				continue;
			closed_at[i] = now_s() - t0;
			close(p[i].fd);
			p[i].fd = -1;
			nclosed++;
		}
	}
	{
		double *s = calloc((size_t)n, sizeof(*s));
		int k = 0;
		for (int i = 0; i < n; i++)
			if (closed_at[i] >= 0)
				s[k++] = closed_at[i];
		qsort(s, (size_t)k, sizeof(*s), cmp_double);
		printf("opened %d closed %d min %.2fs median %.2fs max %.2fs\n",
		       n, k, k ? s[0] : -1.0, k ? s[k / 2] : -1.0,
		       k ? s[k - 1] : -1.0);
		free(s);
	}
	for (int i = 0; i < n; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	free(p);
	free(closed_at);
	return nclosed == n ? 0 : 1;
}
