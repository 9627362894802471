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
#include "cp.h" /* srdma cp's side: --dir */
#include "config.h"
#include "metrics.h"
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

static volatile sig_atomic_t stop_signal, reload_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_signal = 1;
	else
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
		"  --config FILE         options from FILE, one \"key = "
		"value\" "
		"a line\n"
		"                        (keys: these long options; the "
		"command line wins)\n"
		"  --listen HOST[:PORT]  control address (default 0.0.0.0:%d)\n"
		"  --max-clients N       clients at once (default 4096)\n"
		"  --max-handshakes N    TLS handshakes at once (default 128); "
		"more wait\n"
		"                        in the listen backlog\n"
		"  --max-per-identity N  connections one client identity may "
		"hold\n"
		"                        (default 0: no limit)\n"
		"  --quota BYTES         region memory per client, counted "
		"sealed: the\n"
		"                        two regions take 2 x 4128/4096 x "
		"--region-size\n"
		"                        (default 64M; checked at start)\n"
		"  --region-size BYTES   size of each client region (default "
		"1M)\n"
		"  --resource-pool N     spare connections made ahead, handed "
		"out\n"
		"                        at random and reused (default 16; 0 = "
		"off)\n"
		"  --port-file FILE      write \"CONTROL_PORT FABRIC_PORT\" "
		"once listening\n"
		"                        (and \"METRICS_PORT\" with "
		"--metrics)\n"
		"  --metrics HOST:PORT   serve Prometheus metrics at "
		"http://HOST:PORT/metrics\n"
		"                        (default: none; PORT 0 = any)\n"
		"  --dir DIR             store what `srdma cp` sends under DIR "
		"(and\n"
		"                        nowhere else)\n"
		"%s\n"
		"SIGHUP reloads certificate, key, CA, CRL and allow-list (with "
		"--config,\n"
		"from the file again) without dropping anyone; SIGINT/SIGTERM "
		"stop.\n",
		"per-client", DEFAULT_PORT, common_help());
}

/* Regions may go before or after their connection (srdma.h, "Lifetimes"). */
static void free_client(struct client *cl)
{
	cp_serve_free(cl->cp);
	srdma_region_destroy(cl->rw);
	srdma_region_destroy(cl->ro);
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

/*
 * Each client gets two regions of region_size; sealed, they must fit the
 * quota, or every client would be refused (issue 18). A client may always
 * ask for encrypt, the largest footprint.
 */
static int check_quota(const struct srdma_config *cfg, uint64_t region_size)
{
	struct srdma_config defaults;
	uint64_t quota = cfg->client_quota, need;

	srdma_config_init(&defaults, SRDMA_ROLE_SERVER);
	if (!quota)
		quota = defaults.client_quota;
	need = 2 * srdma_region_footprint(region_size, SRDMA_PROTECT_ENCRYPT);
	if (need <= quota)
		return 0;
	fprintf(stderr,
		"srdma serve: --quota %llu is too small for --region-size "
		"%llu: each client gets two regions, %llu bytes when sealed "
		"(4128 bytes per 4 KiB block); give --quota %llu or more, or "
		"a smaller --region-size\n",
		(unsigned long long)quota, (unsigned long long)region_size,
		(unsigned long long)need, (unsigned long long)need);
	return -1;
}

struct serve_opts {
	struct common_opts o;
	const char *port_file;
	const char *cp_dir; /* --dir: srdma cp's files */
	uint64_t region_size;
	char metrics_host[256];
	uint16_t metrics_port;
	bool metrics;
};

/* The keys of --config FILE: serve's long options. */
static const char *const valued_keys[] = {"listen",
					  "max-clients",
					  "max-handshakes",
					  "max-per-identity",
					  "quota",
					  "region-size",
					  "resource-pool",
					  "port-file",
					  "dir",
					  "metrics",
					  "certs",
					  "identity",
					  "cert",
					  "key",
					  "ca",
					  "crl",
					  "transport",
					  "provider",
					  "device",
					  "protect",
					  "allow",
					  "max-msg",
					  "queue-depth",
					  "handshake-timeout",
					  NULL};
static const char *const flag_keys[] = {"no-resumption", "verbose", NULL};
static const char *const repeat_keys[] = {"allow", NULL};
static const struct config_keys serve_keys = {valued_keys, flag_keys,
					      repeat_keys};

/* 0: parsed; 1: --help shown; 2: bad usage (said why). */
static int parse(struct serve_opts *so, int argc, char **argv)
{
	struct common_opts *o = &so->o;
	uint64_t v;

	memset(so, 0, sizeof(*so));
	so->region_size = 1 << 20;
	common_init(o, SRDMA_ROLE_SERVER);
	for (int i = 1; i < argc; i++) {
		int c = common_parse(o, "serve", argc, argv, &i);
		if (c < 0)
			return 2;
		if (c > 0)
			continue;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 1;
		} else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
			if (parse_hostport(argv[++i], o->host, sizeof(o->host),
					   &o->port) < 0) {
				fprintf(stderr,
					"srdma serve: bad --listen '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--metrics") && i + 1 < argc) {
			const char *mv = argv[++i];
			/* a port is required: "HOST:PORT" or "[V6]:PORT" */
			bool port = mv[0] == '['
					    ? strstr(mv, "]:") != NULL
					    : strchr(mv, ':') &&
						      strchr(mv, ':') ==
							      strrchr(mv, ':');

			so->metrics = true;
			if (!port ||
			    parse_hostport(mv, so->metrics_host,
					   sizeof(so->metrics_host),
					   &so->metrics_port) < 0 ||
			    !so->metrics_host[0]) {
				fprintf(stderr,
					"srdma serve: bad --metrics '%s' "
					"(HOST:PORT, e.g. 127.0.0.1:9471)\n",
					mv);
				return 2;
			}
		} else if (!strcmp(argv[i], "--max-clients") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v > 0) {
			o->cfg.max_clients = (uint32_t)v;
			i++;
		} else if (!strcmp(argv[i], "--max-handshakes") &&
			   i + 1 < argc && parse_size(argv[i + 1], &v) == 0 &&
			   v > 0) {
			o->cfg.max_handshakes = (uint32_t)v;
			i++;
		} else if (!strcmp(argv[i], "--max-per-identity") &&
			   i + 1 < argc && parse_size(argv[i + 1], &v) == 0 &&
			   v <= UINT32_MAX) {
			o->cfg.max_per_identity = (uint32_t)v;
			i++;
		} else if (!strcmp(argv[i], "--quota") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0) {
			o->cfg.client_quota = v;
			i++;
		} else if (!strcmp(argv[i], "--region-size") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v >= 4096 &&
			   v <= (1ull << 32)) {
			so->region_size = (v + 4095) & ~4095ull;
			i++;
		} else if (!strcmp(argv[i], "--resource-pool") &&
			   i + 1 < argc && parse_size(argv[i + 1], &v) == 0 &&
			   v <= 1024) {
			o->cfg.resource_pool = (uint32_t)v;
			o->cfg.no_resource_pool = v == 0;
			i++;
		} else if (!strcmp(argv[i], "--port-file") && i + 1 < argc) {
			so->port_file = argv[++i];
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			so->cp_dir = argv[++i];
		} else {
			fprintf(stderr,
				"srdma serve: unknown or incomplete option "
				"'%s'\n",
				argv[i]);
			usage(stderr);
			return 2;
		}
	}
	return 0;
}

/*
 * SIGHUP: the trust material again, from the config file (read again) and
 * the command line, or from the same files. A failure keeps the old.
 */
static void reload(srdma_ctx *ctx, int argc, char **argv)
{
	struct config_args args = {0};
	struct serve_opts so;
	const char *file;
	char err[512];
	int rc;

	if (config_args(&serve_keys, argc, argv, &file, &args, err,
			sizeof(err)) < 0) {
		LOG("reload failed, still serving with the old certificates: "
		    "%s",
		    err);
		return;
	}
	if (parse(&so, args.argc, args.argv) != 0) {
		LOG("reload failed, still serving with the old certificates: "
		    "bad options in %s",
		    file ? file : "the command line");
		config_args_free(&args);
		return;
	}
	if (check_quota(&so.o.cfg, so.region_size) < 0) {
		LOG("reload failed, still serving with the old settings: the "
		    "quota above is too small");
		config_args_free(&args);
		return;
	}
	rc = srdma_ctx_reload(ctx, &so.o.cfg);
	if (rc < 0)
		LOG("reload failed, still serving with the old certificates: "
		    "%s",
		    srdma_error_detail());
	else if (so.o.nallow)
		LOG("reloaded certificate, key, CA%s and allow-list (%d "
		    "%s)%s%s; new handshakes use them",
		    so.o.cfg.crl_file ? ", CRL" : "", so.o.nallow,
		    so.o.nallow == 1 ? "identity" : "identities",
		    file ? " from " : "", file ? file : "");
	else
		LOG("reloaded certificate, key and CA%s (no allow-list: any "
		    "client of the CA)%s%s; new handshakes use them",
		    so.o.cfg.crl_file ? ", CRL" : "", file ? " from " : "",
		    file ? file : "");
	config_args_free(&args);
}

int cmd_serve(int argc, char **argv)
{
	struct serve_opts so;
	struct config_args args = {0};
	struct metrics_http *mh = NULL;
	struct client *clients = NULL;
	srdma_ctx *ctx = NULL;
	srdma_listener *l = NULL;
	struct srdma_event evs[64];
	struct sigaction sa;
	unsigned long nconn = 0, nrej = 0;
	int rc, nlive = 0;
	bool idle_trim = false;
	const char *why, *file;
	char err[512];

	if (config_args(&serve_keys, argc, argv, &file, &args, err,
			sizeof(err)) < 0) {
		fprintf(stderr, "srdma serve: %s\n", err);
		return 2;
	}
	rc = parse(&so, args.argc, args.argv);
	if (rc != 0) {
		config_args_free(&args);
		return rc == 1 ? 0 : 2;
	}
	if (check_quota(&so.o.cfg, so.region_size) < 0) {
		config_args_free(&args);
		return 2;
	}
	if (so.cp_dir && cp_serve_init(so.cp_dir) < 0) {
		config_args_free(&args);
		return 1;
	}
	rc = srdma_ctx_create(&so.o.cfg, &ctx);
	if (rc < 0) {
		fprintf(stderr, "srdma serve: %s\n",
			*tool_error() ? tool_error() : srdma_strerror(rc));
		config_args_free(&args);
		return 1;
	}
	rc = srdma_listen(ctx, strcmp(so.o.host, "0.0.0.0") ? so.o.host : NULL,
			  so.o.port, &l);
	if (rc < 0) {
		fprintf(stderr, "srdma serve: %s\n", tool_error());
		srdma_ctx_destroy(ctx);
		config_args_free(&args);
		return 1;
	}
	/* After listening: auto decides by the listen address. */
	srdma_ctx_transport(ctx, &why);
	if (so.metrics && metrics_http_open(so.metrics_host, so.metrics_port,
					    &mh, err, sizeof(err)) < 0) {
		fprintf(stderr, "srdma serve: %s\n", err);
		srdma_listener_destroy(l);
		srdma_ctx_destroy(ctx);
		config_args_free(&args);
		return 1;
	}
	if (mh)
		LOG("metrics at http://%s:%u/metrics", so.metrics_host,
		    metrics_http_port(mh));
	LOG("listening on %s:%u, fabric port %u; %s; minimum protection %s",
	    so.o.host, srdma_listener_port(l), srdma_listener_fabric_port(l),
	    why, srdma_protect_name(so.o.cfg.protect));
	if (so.port_file) {
		FILE *f = fopen(so.port_file, "w");
		if (!f) {
			fprintf(stderr, "srdma serve: cannot write %s: %s\n",
				so.port_file, strerror(errno));
			metrics_http_close(mh);
			srdma_listener_destroy(l);
			srdma_ctx_destroy(ctx);
			config_args_free(&args);
			return 1;
		}
		fprintf(f, "%u %u", srdma_listener_port(l),
			srdma_listener_fabric_port(l));
		if (mh)
			fprintf(f, " %u", metrics_http_port(mh));
		fprintf(f, "\n");
		fclose(f);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	while (!stop_signal) {
		int n;

		if (reload_signal) {
			reload_signal = 0;
			reload(ctx, argc, argv);
		}
		/* With a metrics listener this loop polls: the library's fd
		 * and the HTTP ones (at most 50 ms, for the library's
		 * timers); without, the library waits. */
		n = srdma_ctx_poll(ctx, evs, 64, mh ? 0 : 200);
		if (n < 0) {
			fprintf(stderr, "srdma serve: %s\n", tool_error());
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
				rc = setup_client(cl, so.region_size);
				if (rc < 0 && rc != SRDMA_ESTATE) {
					LOG("reject %s id=%s: %s",
					    cl->info.peer_addr,
					    cl->info.peer_identity,
					    tool_error());
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
				/* SRDMA_ESTATE: the connection failed before we
				 * got to it (a first message that fails
				 * verification can be that quick). Not our
				 * refusal: SRDMA_EV_CLOSED follows, and its
				 * disconnect line says why. */
				if (rc == SRDMA_ESTATE)
					break;
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
				    e->status ? tool_text(e->detail) : "",
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
				LOG("reject %s (%s)", tool_text(e->detail),
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
		if (mh) {
			struct pollfd p[1 + METRICS_MAX_FDS];
			int np;

			p[0].fd = srdma_ctx_fd(ctx);
			p[0].events = POLLIN;
			np = metrics_http_fds(mh, p + 1);
			if (poll(p, (nfds_t)np + 1, n > 0 ? 0 : 50) > 0)
				metrics_http_handle(mh, p + 1, np, ctx);
			else
				metrics_http_handle(mh, p + 1, 0, ctx);
		}
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
	metrics_http_close(mh);
	srdma_ctx_destroy(ctx);
	free(pattern);
	pattern = NULL;
	cp_serve_fini();
	LOG("stopped: %lu clients served, %lu refused", nconn, nrej);
	config_args_free(&args);
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
