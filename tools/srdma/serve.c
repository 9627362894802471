/* SPDX-License-Identifier: MIT */
/*
 * srdma serve: an event-driven multi-client server. Each client gets an
 * echo service and two regions: region 1 it may write and read, region 2
 * (read-only) filled with a known pattern the client verifies.
 */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "cmd.h"
#include "cp.h"		/* srdma cp's side: --dir */
#include "bench_sink.h" /* bench sink (end of file) */

struct pending {
	struct pending *next;
	size_t len;
	unsigned char data[];
};

struct client {
	srdma_conn *conn;
	srdma_region *rw, *ro;
	struct pending *echo_head, *echo_tail;
	size_t echo_bytes; /* waiting for send window space */
	struct srdma_conn_info info;
	uint64_t msgs, peer_writes;
	struct client *next, *prev;
	/* bench sink (end of file): 0 = echo */
	uint32_t sink_every, sink_flags;
	uint64_t sink_count, sink_hash;
	struct cp_serve *cp; /* srdma cp (cp.c) */
};

static int sink_recv(struct client *cl, const void *data, size_t len);

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void stamp(FILE *f)
{
	struct timespec ts;
	struct tm tm;
	char buf[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
	fprintf(f, "%s.%03ld ", buf, ts.tv_nsec / 1000000);
}

#define LOG(...)                                                               \
	do {                                                                   \
		stamp(stdout);                                                 \
		printf(__VA_ARGS__);                                           \
		putchar('\n');                                                 \
		fflush(stdout);                                                \
	} while (0)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: srdma serve [--listen HOST[:PORT]] --certs DIR "
		"[options]\n\n"
		"Serves many clients at once: each gets an echo service, a %s\n"
		"region it may write and read (id 1), and a read-only region "
		"with\n"
		"a known pattern (id 2).\n\n"
		"  --listen HOST[:PORT]  control address (default 0.0.0.0:%d)\n"
		"  --max-clients N       clients at once (default 4096)\n"
		"  --max-handshakes N    TLS handshakes at once (default 128)\n"
		"  --quota BYTES         region memory per client (default "
		"64M)\n"
		"  --region-size BYTES   size of each client region (default "
		"1M)\n"
		"  --resource-pool N     spare connections made ahead, handed "
		"out\n"
		"                        at random and reused (default 16; 0 = "
		"off)\n"
		"  --port-file FILE      write \"CONTROL_PORT FABRIC_PORT\" "
		"once listening\n"
		"  --dir DIR             store what `srdma cp` sends under DIR "
		"(and\n"
		"                        nowhere else)\n"
		"%s",
		"per-client", DEFAULT_PORT, common_help());
}

static void free_client(struct client *cl)
{
	cp_serve_free(cl->cp);
	while (cl->echo_head) {
		struct pending *p = cl->echo_head;
		cl->echo_head = p->next;
		free(p);
	}
	free(cl);
}

/* Echo what we can now; keep the rest for when the window opens. */
static void flush_echo(struct client *cl)
{
	while (cl->echo_head) {
		struct pending *p = cl->echo_head;
		int rc = srdma_send(cl->conn, p->data, p->len);
		if (rc == SRDMA_EAGAIN)
			return;
		cl->echo_head = p->next;
		if (!cl->echo_head)
			cl->echo_tail = NULL;
		cl->echo_bytes -= p->len;
		free(p);
		if (rc < 0)
			return;
	}
}

/* The read-only region's content, made once (same for every client). */
static unsigned char *pattern;

static int setup_client(struct client *cl, uint64_t region_size)
{
	int rc;

	rc = srdma_region_create(
		cl->conn, region_size,
		SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE, &cl->rw);
	if (rc < 0)
		return rc;
	rc = srdma_region_create(
		cl->conn, region_size,
		SRDMA_ACCESS_REMOTE_READ | SRDMA_REGION_DEFER_GRANT, &cl->ro);
	if (rc < 0)
		return rc;
	if (!pattern) {
		pattern = malloc(region_size);
		if (!pattern)
			return SRDMA_ENOMEM;
		for (uint64_t i = 0; i < region_size; i++)
			pattern[i] = pattern_byte(i);
	}
	rc = srdma_region_put(cl->ro, 0, pattern, region_size);
	if (rc < 0)
		return rc;
	/* Grant only once the pattern is sealed in: the NIC serves reads
	 * without us. */
	return srdma_region_grant(cl->ro);
}

int cmd_serve(int argc, char **argv)
{
	struct common_opts o;
	struct client *clients = NULL;
	const char *port_file = NULL, *cp_dir = NULL;
	uint64_t region_size = 1 << 20, v;
	srdma_ctx *ctx = NULL;
	srdma_listener *l = NULL;
	struct srdma_event evs[64];
	struct sigaction sa;
	unsigned long nconn = 0, nrej = 0;
	int rc, nlive = 0;
	bool idle_trim = false;
	const char *why;

	common_init(&o, SRDMA_ROLE_SERVER);
	for (int i = 1; i < argc; i++) {
		int c = common_parse(&o, "serve", argc, argv, &i);
		if (c < 0)
			return 2;
		if (c > 0)
			continue;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
			if (parse_hostport(argv[++i], o.host, sizeof(o.host),
					   &o.port) < 0) {
				fprintf(stderr,
					"srdma serve: bad --listen '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--max-clients") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v > 0) {
			o.cfg.max_clients = (uint32_t)v;
			i++;
		} else if (!strcmp(argv[i], "--max-handshakes") &&
			   i + 1 < argc && parse_size(argv[i + 1], &v) == 0 &&
			   v > 0) {
			o.cfg.max_handshakes = (uint32_t)v;
			i++;
		} else if (!strcmp(argv[i], "--quota") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0) {
			o.cfg.client_quota = v;
			i++;
		} else if (!strcmp(argv[i], "--region-size") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v >= 4096 &&
			   v <= (1ull << 32)) {
			region_size = (v + 4095) & ~4095ull;
			i++;
		} else if (!strcmp(argv[i], "--resource-pool") &&
			   i + 1 < argc && parse_size(argv[i + 1], &v) == 0 &&
			   v <= 1024) {
			o.cfg.resource_pool = (uint32_t)v;
			o.cfg.no_resource_pool = v == 0;
			i++;
		} else if (!strcmp(argv[i], "--port-file") && i + 1 < argc) {
			port_file = argv[++i];
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			cp_dir = argv[++i];
		} else {
			fprintf(stderr,
				"srdma serve: unknown or incomplete option "
				"'%s'\n",
				argv[i]);
			usage(stderr);
			return 2;
		}
	}

	if (cp_dir && cp_serve_init(cp_dir) < 0)
		return 1;
	rc = srdma_ctx_create(&o.cfg, &ctx);
	if (rc < 0) {
		fprintf(stderr, "srdma serve: %s\n",
			*srdma_error_detail() ? srdma_error_detail()
					      : srdma_strerror(rc));
		return 1;
	}
	srdma_ctx_transport(ctx, &why);
	rc = srdma_listen(ctx, strcmp(o.host, "0.0.0.0") ? o.host : NULL,
			  o.port, &l);
	if (rc < 0) {
		fprintf(stderr, "srdma serve: %s\n", srdma_error_detail());
		srdma_ctx_destroy(ctx);
		return 1;
	}
	LOG("listening on %s:%u, fabric port %u; %s; minimum protection %s",
	    o.host, srdma_listener_port(l), srdma_listener_fabric_port(l), why,
	    srdma_protect_name(o.cfg.protect));
	if (port_file) {
		FILE *f = fopen(port_file, "w");
		if (!f) {
			fprintf(stderr, "srdma serve: cannot write %s: %s\n",
				port_file, strerror(errno));
			srdma_ctx_destroy(ctx);
			return 1;
		}
		fprintf(f, "%u %u\n", srdma_listener_port(l),
			srdma_listener_fabric_port(l));
		fclose(f);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	while (!stop_signal) {
		int n = srdma_ctx_poll(ctx, evs, 64, 200);
		if (n < 0) {
			fprintf(stderr, "srdma serve: %s\n",
				srdma_error_detail());
			break;
		}
		/* Connections are destroyed after the batch: later events in
		 * it may still name them. */
		srdma_conn *dead[64];
		int ndead = 0;
		for (int i = 0; i < n; i++) {
			struct srdma_event *e = &evs[i];
			struct client *cl;
			bool gone = false;
			for (int k = 0; k < ndead; k++)
				gone |= dead[k] == e->conn;
			if (gone)
				continue;
			cl = e->conn ? srdma_conn_user(e->conn) : NULL;
			switch (e->type) {
			case SRDMA_EV_ACCEPTED:
				cl = calloc(1, sizeof(*cl));
				if (!cl) {
					dead[ndead++] = e->conn;
					break;
				}
				cl->conn = e->conn;
				srdma_conn_set_user(e->conn, cl);
				srdma_conn_info(e->conn, &cl->info);
				rc = setup_client(cl, region_size);
				if (rc < 0) {
					LOG("reject %s id=%s: %s",
					    cl->info.peer_addr,
					    cl->info.peer_identity,
					    srdma_error_detail());
					/* Tell the client why before dropping
					 * it. */
					srdma_conn_abort(e->conn, rc,
							 srdma_error_detail());
					dead[ndead++] = e->conn;
					free_client(cl);
					nrej++;
					break;
				}
				cl->next = clients;
				if (clients)
					clients->prev = cl;
				clients = cl;
				nconn++;
				nlive++;
				LOG("connect %s id=%s transport=%s provider=%s "
				    "protect=%s%s%s tls=%s clients=%d",
				    cl->info.peer_addr, cl->info.peer_identity,
				    srdma_transport_name(cl->info.transport),
				    cl->info.provider,
				    srdma_protect_name(cl->info.protect),
				    cl->info.cipher[0] ? " cipher=" : "",
				    cl->info.cipher,
				    cl->info.resumed ? "resumed" : "full",
				    nlive);
				break;
			case SRDMA_EV_RECV:
				if (!cl)
					break;
				cl->msgs++;
				if (cp_serve_recv(&cl->cp, cl->conn, e->data,
						  e->len))
					break; /* srdma cp: handled */
				if (sink_recv(cl, e->data, e->len))
					break; /* bench sink: consumed */
				{
					struct pending *p =
						malloc(sizeof(*p) + e->len);
					if (!p)
						break;
					p->next = NULL;
					p->len = e->len;
					memcpy(p->data, e->data, e->len);
					cl->echo_bytes += e->len;
					if (cl->echo_tail)
						cl->echo_tail->next = p;
					else
						cl->echo_head = p;
					cl->echo_tail = p;
				}
				flush_echo(cl);
				/* A client that sends but never reads its
				 * echoes must not make us buffer without bound.
				 */
				if (cl->echo_bytes >
				    4ull * cl->info.queue_depth *
					    cl->info.max_msg) {
					LOG("reject %s id=%s: it stopped "
					    "reading its "
					    "echoes (%zu bytes waiting)",
					    cl->info.peer_addr,
					    cl->info.peer_identity,
					    cl->echo_bytes);
					srdma_conn_abort(
						cl->conn, SRDMA_ELIMIT,
						"the client stopped reading "
						"its echoes");
				}
				break;
			case SRDMA_EV_PEER_WRITE:
				if (cl)
					cl->peer_writes++;
				break;
			case SRDMA_EV_STREAM:
				if (cl)
					cp_serve_stream(cl->cp);
				break;
			case SRDMA_EV_CLOSED:
				if (!cl) {
					dead[ndead++] = e->conn;
					break;
				}
				LOG("disconnect %s id=%s %s%s%s msgs=%llu "
				    "writes=%llu clients=%d",
				    cl->info.peer_addr, cl->info.peer_identity,
				    e->status ? "error: " : "orderly",
				    e->status ? e->detail : "",
				    e->status ? "" : "",
				    (unsigned long long)cl->msgs,
				    (unsigned long long)cl->peer_writes,
				    nlive - 1);
				if (cl->prev)
					cl->prev->next = cl->next;
				else
					clients = cl->next;
				if (cl->next)
					cl->next->prev = cl->prev;
				nlive--;
				idle_trim = nlive == 0;
				dead[ndead++] = e->conn;
				free_client(cl);
				break;
			case SRDMA_EV_REJECTED:
				nrej++;
				LOG("reject %s (%s)", e->detail,
				    srdma_strerror(e->status));
				break;
			default:
				break;
			}
		}
		for (int k = 0; k < ndead; k++)
			srdma_conn_destroy(dead[k]);
		if (idle_trim) {
			/* Last client gone: hand freed heap back to the system
			 * so an idle server's RSS returns to its start. */
			malloc_trim(0);
			idle_trim = false;
		}
		for (struct client *cl = clients; cl; cl = cl->next)
			if (cl->echo_head)
				flush_echo(cl);
	}

	LOG("shutting down (%s): closing %d client%s", strsignal(stop_signal),
	    nlive, nlive == 1 ? "" : "s");
	for (struct client *cl = clients; cl; cl = cl->next)
		srdma_conn_close(cl->conn);
	while (clients) {
		struct client *cl = clients;
		clients = cl->next;
		srdma_conn_destroy(cl->conn);
		free_client(cl);
	}
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx);
	free(pattern);
	pattern = NULL;
	cp_serve_fini();
	LOG("stopped: %lu clients served, %lu refused", nconn, nrej);
	return 0;
}

/* ---- bench sink (for `srdma bench --op send --mode bw`) ----
 * Protocol in bench_sink.h: after SINK_MAGIC the connection stops echoing
 * and acknowledges every sink_every messages with the count (and hash);
 * SINK_DONE gets a final ack and restores echoing. */
static void sink_ack(struct client *cl, uint8_t kind)
{
	struct pending *p = malloc(sizeof(*p) + SINK_ACK_LEN);

	if (!p)
		return;
	p->next = NULL;
	p->len = SINK_ACK_LEN;
	memset(p->data, 0, SINK_ACK_LEN);
	memcpy(p->data, SINK_ACK, strlen(SINK_ACK));
	p->data[15] = kind;
	sink_put_be(p->data + 16, cl->sink_count, 8);
	sink_put_be(p->data + 24, cl->sink_hash, 8);
	cl->echo_bytes += p->len; /* flush_echo() subtracts it */
	if (cl->echo_tail)
		cl->echo_tail->next = p;
	else
		cl->echo_head = p;
	cl->echo_tail = p;
	flush_echo(cl);
}

/* Returns 1 when the message belonged to the sink protocol. */
static int sink_recv(struct client *cl, const void *data, size_t len)
{
	if (!cl->sink_every) {
		if (len < SINK_MAGIC_LEN ||
		    memcmp(data, SINK_MAGIC, SINK_MAGIC_LEN))
			return 0;
		cl->sink_every = SINK_DEFAULT_EVERY;
		cl->sink_flags = 0;
		if (len >= SINK_HELLO_LEN) {
			uint64_t k = sink_get_be((const uint8_t *)data + 16, 4);
			cl->sink_every = k ? (uint32_t)k : 1;
			cl->sink_flags = (uint32_t)sink_get_be(
				(const uint8_t *)data + 20, 4);
		}
		cl->sink_count = 0;
		cl->sink_hash = SINK_HASH_SEED;
		sink_ack(cl, SINK_ACK_START);
		return 1;
	}
	if (len == SINK_MAGIC_LEN && !memcmp(data, SINK_DONE, SINK_MAGIC_LEN)) {
		sink_ack(cl, SINK_ACK_DONE);
		cl->sink_every = 0;
		return 1;
	}
	cl->sink_count++;
	if (cl->sink_flags & SINK_F_HASH)
		cl->sink_hash = sink_hash(cl->sink_hash, data, len);
	if (cl->sink_count % cl->sink_every == 0)
		sink_ack(cl, SINK_ACK_MORE);
	return 1;
}
