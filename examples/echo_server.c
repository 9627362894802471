/* SPDX-License-Identifier: MIT */
/*
 * An event-loop server: the context's file descriptor in poll(2) beside
 * whatever else the program watches (here, signals through a pipe), and
 * srdma_ctx_poll() for the events. Every message a client sends comes back
 * to it. With the tool as the client:
 *
 *   srdma certs ./pki
 *   echo_server --certs ./pki --listen 127.0.0.1 --port 7471 &   (0: any)
 *   srdma client --connect 127.0.0.1:7471 --certs ./pki --op echo
 *
 * Build: cc echo_server.c $(pkg-config --cflags --libs srdma)
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <srdma.h>

/* A message waiting for room in its client's send window. */
struct pending {
	struct pending *next;
	size_t len;
	char data[];
};

struct client {
	srdma_conn *conn;
	struct pending *head, *tail;
	struct client *next;
};

static struct client *clients;
static int signal_pipe[2];

static void on_signal(int sig)
{
	(void)sig;
	if (write(signal_pipe[1], "", 1) < 0)
		_exit(1);
}

/* Sends what waits, oldest first, until the window is full. */
static void flush(struct client *cl)
{
	while (cl->head) {
		struct pending *p = cl->head;
		if (srdma_send(cl->conn, p->data, p->len) == SRDMA_EAGAIN)
			return; /* the next poll round tries again */
		cl->head = p->next;
		if (!cl->head)
			cl->tail = NULL;
		free(p);
	}
}

static void queue(struct client *cl, const void *data, size_t len)
{
	struct pending *p = malloc(sizeof(*p) + len);

	if (!p) {
		srdma_conn_abort(cl->conn, SRDMA_ENOMEM,
				 "server out of memory");
		return;
	}
	p->next = NULL;
	p->len = len;
	memcpy(p->data, data, len); /* e->data is valid until the next poll */
	if (cl->tail)
		cl->tail->next = p;
	else
		cl->head = p;
	cl->tail = p;
}

/* Frees a client and its connection (which may be open, closed, or
 * detached by srdma_ctx_destroy: all the same to srdma_conn_destroy). */
static void drop(struct client *cl)
{
	struct client **pp = &clients;

	while (*pp != cl)
		pp = &(*pp)->next;
	*pp = cl->next;
	while (cl->head) {
		struct pending *p = cl->head;
		cl->head = p->next;
		free(p);
	}
	srdma_conn_destroy(cl->conn);
	free(cl);
}

int main(int argc, char **argv)
{
	struct srdma_config cfg;
	const char *host = NULL;
	int port = 7471, max = 0, served = 0;
	srdma_listener *l = NULL;
	srdma_ctx *ctx = NULL;

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.log_fn = srdma_log_stderr; /* the library's warnings on stderr */
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--certs"))
			cfg.certs_dir = argv[i + 1];
		else if (!strcmp(argv[i], "--listen"))
			host = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--max")) /* stop after N clients */
			max = atoi(argv[i + 1]);
		else
			argc = 0;
	}
	if (argc % 2 == 0) {
		fprintf(stderr, "usage: echo_server --certs DIR [--listen HOST]"
				" [--port N] [--max N]\n");
		return 2;
	}
	if (pipe(signal_pipe) < 0)
		return 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, host, (uint16_t)port, &l) < 0) {
		fprintf(stderr, "echo_server: %s\n", srdma_error_detail());
		srdma_ctx_destroy(ctx);
		return 1;
	}
	printf("listening on port %u\n", srdma_listener_port(l));
	fflush(stdout);
	struct pollfd fds[2] = {{.fd = srdma_ctx_fd(ctx), .events = POLLIN},
				{.fd = signal_pipe[0], .events = POLLIN}};
	while (!max || served < max) {
		struct srdma_event evs[32];
		int n;

		/* Wait for the fd, or the library's next timer. */
		if (poll(fds, 2, srdma_ctx_timeout(ctx)) < 0)
			continue; /* interrupted: the pipe tells why */
		if (fds[1].revents)
			break;			     /* SIGINT or SIGTERM */
		n = srdma_ctx_poll(ctx, evs, 32, 0); /* 0: never blocks */
		if (n < 0) {
			fprintf(stderr, "echo_server: %s\n",
				srdma_error_detail());
			break;
		}
		for (int i = 0; i < n; i++) {
			struct srdma_event *e = &evs[i];
			struct client *cl =
				e->conn ? srdma_conn_user(e->conn) : NULL;
			struct srdma_conn_info info;

			switch (e->type) {
			case SRDMA_EV_ACCEPTED:
				cl = calloc(1, sizeof(*cl));
				if (!cl) { /* SRDMA_EV_CLOSED follows */
					srdma_conn_abort(e->conn, SRDMA_ENOMEM,
							 "out of memory");
					break;
				}
				cl->conn = e->conn;
				cl->next = clients;
				clients = cl;
				srdma_conn_set_user(e->conn, cl);
				srdma_conn_info(e->conn, &info);
				printf("%s connected from %s\n",
				       info.peer_identity, info.peer_addr);
				break;
			case SRDMA_EV_RECV:
				queue(cl, e->data, e->len);
				flush(cl);
				break;
			case SRDMA_EV_CLOSED: /* its last event */
				printf("a client left: %s\n",
				       e->status ? e->detail : "orderly");
				if (cl)
					drop(cl);
				else
					srdma_conn_destroy(e->conn);
				served++;
				break;
			case SRDMA_EV_REJECTED:
				printf("refused %s\n", e->detail);
				break;
			default:
				break;
			}
		}
		for (struct client *cl = clients; cl; cl = cl->next)
			flush(cl);
		fflush(stdout);
	}
	printf("served %d clients\n", served);
	/* The context first: it aborts the clients still on and detaches
	 * their handles, freed after it (any order is safe). */
	srdma_ctx_destroy(ctx);
	while (clients)
		drop(clients);
	srdma_listener_destroy(l);
	return 0;
}
