/* SPDX-License-Identifier: MIT */
/*
 * A key-value service: values travel by RDMA, commands by messages.
 * The server grants every client two regions: id 1, which the client may
 * write (PUT: the client RDMA-writes the value, then says "PUT key len";
 * the server takes the verified bytes with srdma_region_get), and id 2,
 * which the client may read (GET: the server puts the value there with
 * srdma_region_put and answers "VAL len"; the client RDMA-reads it).
 *
 *   kv server --certs DIR [--listen HOST] [--port N]   (0: any port)
 *   kv client --certs DIR --connect HOST --port N put KEY VALUE get KEY ...
 *
 * Build: cc kv.c $(pkg-config --cflags --libs srdma)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <srdma.h>

enum { VMAX = 64 << 10, PUT_REGION = 1, GET_REGION = 2, TMO = 10000 };

struct entry {
	struct entry *next;
	char key[64];
	size_t len;
	char val[];
};

static struct entry *store;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = sig;
}

static struct entry **find(const char *key)
{
	struct entry **pp = &store;

	while (*pp && strcmp((*pp)->key, key))
		pp = &(*pp)->next;
	return pp;
}

/* The server's answer to one command, sealed into GET_REGION for GET. */
static void command(srdma_conn *c, srdma_region *rw[2], const char *cmd)
{
	char key[64], reply[128] = "ERR bad command";
	size_t len;
	struct entry *e, **pp;

	if (sscanf(cmd, "PUT %63s %zu", key, &len) == 2 && len && len <= VMAX &&
	    (e = malloc(sizeof(*e) + len))) {
		/* Verified bytes only: a tampered write fails here. */
		if (srdma_region_get(rw[0], 0, e->val, len) < 0) {
			snprintf(reply, sizeof(reply), "ERR %s",
				 srdma_error_detail());
			free(e);
		} else {
			pp = find(key);
			e->next = *pp ? (*pp)->next : NULL;
			free(*pp);
			*pp = e;
			snprintf(e->key, sizeof(e->key), "%s", key);
			e->len = len;
			snprintf(reply, sizeof(reply), "OK");
		}
	} else if (sscanf(cmd, "GET %63s", key) == 1) {
		e = *find(key);
		if (!e)
			snprintf(reply, sizeof(reply), "NONE");
		else if (srdma_region_put(rw[1], 0, e->val, e->len) < 0)
			snprintf(reply, sizeof(reply), "ERR %s",
				 srdma_error_detail());
		else
			snprintf(reply, sizeof(reply), "VAL %zu", e->len);
	}
	/* A client that does not read its answers is cut off. */
	if (srdma_send(c, reply, strlen(reply)) < 0)
		srdma_conn_abort(c, SRDMA_ELIMIT, "answers not read");
}

static int server(struct srdma_config *cfg, const char *host, int port)
{
	srdma_listener *l = NULL;
	srdma_ctx *ctx = NULL;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (srdma_ctx_create(cfg, &ctx) < 0 ||
	    srdma_listen(ctx, host, (uint16_t)port, &l) < 0) {
		fprintf(stderr, "kv: %s\n", srdma_error_detail());
		srdma_ctx_destroy(ctx);
		return 1;
	}
	printf("listening on port %u\n", srdma_listener_port(l));
	fflush(stdout);
	while (!stop) {
		struct srdma_event evs[16];
		int n = srdma_ctx_poll(ctx, evs, 16, 200);
		for (int i = 0; i < n; i++) {
			srdma_conn *c = evs[i].conn;
			srdma_region **rw = c ? srdma_conn_user(c) : NULL;
			char cmd[128];

			if (evs[i].type == SRDMA_EV_ACCEPTED) {
				rw = calloc(2, sizeof(*rw));
				srdma_conn_set_user(c, rw);
				/* PUT_REGION then GET_REGION: ids 1 and 2. */
				if (!rw ||
				    srdma_region_create(
					    c, VMAX, SRDMA_ACCESS_REMOTE_WRITE,
					    &rw[0]) < 0 ||
				    srdma_region_create(
					    c, VMAX, SRDMA_ACCESS_REMOTE_READ,
					    &rw[1]) < 0)
					srdma_conn_abort(c, SRDMA_ENOMEM,
							 srdma_error_detail());
			} else if (evs[i].type == SRDMA_EV_RECV && rw) {
				snprintf(cmd, sizeof(cmd), "%.*s",
					 (int)evs[i].len,
					 (const char *)evs[i].data);
				command(c, rw, cmd);
			} else if (evs[i].type == SRDMA_EV_CLOSED) {
				if (rw) {
					srdma_region_destroy(rw[0]);
					srdma_region_destroy(rw[1]);
					free(rw);
				}
				srdma_conn_destroy(c);
			}
		}
	}
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx); /* clients still on: they see an error */
	while (store) {
		struct entry *e = store;
		store = e->next;
		free(e);
	}
	return 0;
}

static int client(struct srdma_config *cfg, const char *host, int port,
		  int argc, char **argv)
{
	static char val[VMAX + 1];
	char cmd[128], reply[128];
	srdma_ctx *ctx = NULL;
	srdma_conn *c = NULL;
	size_t len;
	int rc = 0;

	if (srdma_ctx_create(cfg, &ctx) < 0 ||
	    srdma_connect(ctx, host, (uint16_t)port, TMO, &c) < 0) {
		fprintf(stderr, "kv: %s\n", srdma_error_detail());
		srdma_ctx_destroy(ctx);
		return 1;
	}
	for (int i = 0; i + 1 < argc && rc == 0; i += 2) {
		const char *key = argv[i + 1], *v = val;
		if (!strcmp(argv[i], "put") && i + 2 < argc) {
			v = argv[++i + 1];
			snprintf(cmd, sizeof(cmd), "PUT %s %zu", key,
				 strlen(v));
			/* _sync waits for the grant if it is on its way. */
			rc = srdma_write_sync(c, PUT_REGION, 0, v, strlen(v),
					      TMO);
		} else if (!strcmp(argv[i], "get")) {
			snprintf(cmd, sizeof(cmd), "GET %s", key);
		} else {
			fprintf(stderr, "kv: put KEY VALUE or get KEY\n");
			break;
		}
		if (rc == 0)
			rc = srdma_send_sync(c, cmd, strlen(cmd), TMO);
		if (rc == 0)
			rc = srdma_recv(c, reply, sizeof(reply) - 1, &len, TMO);
		if (rc < 0)
			break;
		reply[len] = 0;
		if (sscanf(reply, "VAL %zu", &len) == 1 && len <= VMAX) {
			rc = srdma_read_sync(c, GET_REGION, 0, val, len, TMO);
			val[len] = 0;
		}
		printf("%s %s: %s\n", cmd[0] == 'P' ? "put" : "get", key,
		       v == val && !strncmp(reply, "VAL ", 4) ? val : reply);
	}
	if (rc < 0)
		fprintf(stderr, "kv: %s\n", srdma_error_detail());
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
	return rc < 0;
}

int main(int argc, char **argv)
{
	struct srdma_config cfg;
	const char *host = NULL;
	int port = 7472, i;

	if (argc < 2 ||
	    (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
		fprintf(stderr, "usage: kv server|client --certs DIR ...\n");
		return 2;
	}
	srdma_config_init(&cfg, !strcmp(argv[1], "server") ? SRDMA_ROLE_SERVER
							   : SRDMA_ROLE_CLIENT);
	cfg.log_fn = srdma_log_stderr;
	for (i = 2; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--certs"))
			cfg.certs_dir = argv[i + 1];
		else if (!strcmp(argv[i], "--listen") ||
			 !strcmp(argv[i], "--connect"))
			host = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
	}
	if (cfg.role == SRDMA_ROLE_SERVER)
		return server(&cfg, host, port);
	return client(&cfg, host ? host : "localhost", port, argc - i,
		      argv + i);
}
