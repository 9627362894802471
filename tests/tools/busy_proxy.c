/* SPDX-License-Identifier: MIT */
/*
 * busy_proxy: a control-port stand-in for a busy server. It listens on
 * 127.0.0.1 (an ephemeral port, written to PORT_FILE), closes the first
 * DROP connections it accepts without a byte, as a server at its handshake
 * limit does when it sheds, and relays every later one to 127.0.0.1:TARGET
 * (the real `srdma serve` control port), so a client's retries can be seen
 * to end in a served connection:
 *
 *   busy_proxy PORT_FILE TARGET DROP [--seconds S]
 *
 * Runs S seconds (default 30), then prints "dropped D relayed R" and exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_PAIRS = 64, BUF = 65536 };

struct pair {
	int fd[2]; /* client, server; -1 = closed */
	char buf[2][BUF];
	size_t len[2]; /* bytes from fd[i] waiting to go to fd[!i] */
};

static struct pair pairs[MAX_PAIRS];

static void close_pair(struct pair *p)
{
	for (int i = 0; i < 2; i++)
		if (p->fd[i] >= 0)
			close(p->fd[i]);
	p->fd[0] = p->fd[1] = -1;
	p->len[0] = p->len[1] = 0;
}

static int dial(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Moves what it can between the two ends of p; false once it is over. */
static bool pump(struct pair *p, const short *rev)
{
	for (int i = 0; i < 2; i++) {
		if ((rev[i] & (POLLIN | POLLHUP | POLLERR)) && !p->len[i]) {
			ssize_t n = read(p->fd[i], p->buf[i], BUF);

			if (n <= 0)
				return false;
			p->len[i] = (size_t)n;
		}
		if (p->len[i]) {
			ssize_t n = write(p->fd[!i], p->buf[i], p->len[i]);

			if (n < 0 && errno != EAGAIN)
				return false;
			if (n > 0) {
				memmove(p->buf[i], p->buf[i] + n,
					p->len[i] - (size_t)n);
				p->len[i] -= (size_t)n;
			}
		}
	}
	return true;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int lfd, target, drop, dropped = 0, relayed = 0;
	double seconds = 30;
	time_t end;
	FILE *f;

	if (argc < 4) {
		fprintf(stderr, "usage: busy_proxy PORT_FILE TARGET DROP "
				"[--seconds S]\n");
		return 2;
	}
	target = atoi(argv[2]);
	drop = atoi(argv[3]);
	if (argc >= 6 && !strcmp(argv[4], "--seconds"))
		seconds = atof(argv[5]);
	for (int i = 0; i < MAX_PAIRS; i++)
		pairs[i].fd[0] = pairs[i].fd[1] = -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 64) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
		perror("busy_proxy: listen");
		return 2;
	}
	f = fopen(argv[1], "w");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	fprintf(f, "%u\n", ntohs(a.sin_port));
	fclose(f);
	end = time(NULL) + (time_t)seconds;
	while (time(NULL) < end) {
		struct pollfd p[1 + 2 * MAX_PAIRS];
		int n = 1;

		p[0].fd = lfd;
		p[0].events = POLLIN;
		for (int i = 0; i < MAX_PAIRS; i++)
			for (int k = 0; k < 2; k++) {
				p[n].fd = pairs[i].fd[k];
				p[n].events = POLLIN;
				if (pairs[i].len[!k])
					p[n].events |= POLLOUT;
				n++;
			}
		if (poll(p, (nfds_t)n, 100) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			int c = accept(lfd, NULL, NULL);

			if (c >= 0 && dropped < drop) {
				close(c); /* busy: not a byte */
				dropped++;
			} else if (c >= 0) {
				struct pair *q = NULL;

				for (int i = 0; i < MAX_PAIRS && !q; i++)
					if (pairs[i].fd[0] < 0)
						q = &pairs[i];
				if (!q || (q->fd[1] = dial(target)) < 0) {
					close(c);
				} else {
					q->fd[0] = c;
					relayed++;
				}
			}
		}
		for (int i = 0; i < MAX_PAIRS; i++) {
			short rev[2] = {p[1 + 2 * i].revents,
					p[2 + 2 * i].revents};

			if (pairs[i].fd[0] >= 0 && (rev[0] || rev[1]) &&
			    !pump(&pairs[i], rev))
				close_pair(&pairs[i]);
		}
	}
	printf("dropped %d relayed %d\n", dropped, relayed);
	return 0;
}
