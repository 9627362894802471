/* SPDX-License-Identifier: MIT */
/* The Prometheus listener of `srdma serve --metrics` (metrics.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

enum {
	MAX_CONNS = METRICS_MAX_FDS - 1,
	REQ_MAX = 4096,	  /* request line and headers */
	RESP_MAX = 32768, /* the exposition is about 6 KiB */
	CONN_TIMEOUT_MS = 5000,
};

struct hconn {
	int fd; /* -1: free */
	uint64_t deadline_ms;
	char req[REQ_MAX];
	size_t req_len;
	char *resp; /* being written */
	size_t resp_len, resp_off;
};

struct metrics_http {
	int fd;
	uint16_t port;
	struct hconn c[MAX_CONNS];
	char body[RESP_MAX];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int metrics_http_open(const char *host, uint16_t port,
		      struct metrics_http **out, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct metrics_http *m;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char portstr[8];
	int one = 1, rc;

	*out = NULL;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "cannot listen for metrics on %s:%u: %s",
			 host, port, gai_strerror(rc));
		return -1;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		freeaddrinfo(ai);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < MAX_CONNS; i++)
		m->c[i].fd = -1;
	m->fd = socket(ai->ai_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->fd < 0 ||
	    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) <
		    0 ||
	    bind(m->fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(m->fd, 16) < 0 ||
	    getsockname(m->fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(err, errlen, "cannot listen for metrics on %s:%u: %s",
			 host, port, strerror(errno));
		freeaddrinfo(ai);
		metrics_http_close(m);
		return -1;
	}
	freeaddrinfo(ai);
	m->port = ntohs(ss.ss_family == AF_INET6
				? ((struct sockaddr_in6 *)&ss)->sin6_port
				: ((struct sockaddr_in *)&ss)->sin_port);
	*out = m;
	return 0;
}

static void drop(struct hconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->resp);
	c->fd = -1;
	c->resp = NULL;
	c->req_len = c->resp_len = c->resp_off = 0;
}

void metrics_http_close(struct metrics_http *m)
{
	if (!m)
		return;
	for (int i = 0; i < MAX_CONNS; i++)
		drop(&m->c[i]);
	if (m->fd >= 0)
		close(m->fd);
	free(m);
}

uint16_t metrics_http_port(const struct metrics_http *m)
{
	return m ? m->port : 0;
}

int metrics_http_fds(struct metrics_http *m, struct pollfd *p)
{
	int n = 0, used = 0;

	for (int i = 0; i < MAX_CONNS; i++) {
		if (m->c[i].fd < 0)
			continue;
		used++;
		p[n].fd = m->c[i].fd;
		p[n].events = m->c[i].resp ? POLLOUT : POLLIN;
		p[n++].revents = 0;
	}
	/* Full: further scrapers wait in the backlog. */
	if (used < MAX_CONNS) {
		p[n].fd = m->fd;
		p[n].events = POLLIN;
		p[n++].revents = 0;
	}
	return n;
}

/* ---- the exposition ---- */

struct out {
	char *buf;
	size_t len, at;
};

static void put(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->at >= o->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->at, o->len - o->at, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->at += (size_t)n;
	if (o->at > o->len)
		o->at = o->len;
}

static void head(struct out *o, const char *name, const char *type,
		 const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct out *o, const char *name, const char *type,
		const char *help, unsigned long long v)
{
	head(o, name, type, help);
	put(o, "%s %llu\n", name, v);
}

size_t metrics_render(srdma_ctx *ctx, char *buf, size_t len)
{
	static const char *const reasons[SRDMA_REFUSAL_COUNT] = {
		"shed",	   "timeout",	  "not_tls",	 "certificate",
		"revoked", "not_allowed", "max_clients", "max_per_identity",
		"policy",  "token",	  "other"};
	static const char *const ops[SRDMA_METRIC_OP_COUNT] = {
		"send", "recv", "write", "read", "peer_write"};
	struct srdma_metrics m;
	struct out o = {buf, len, 0};

	if (srdma_ctx_metrics(ctx, &m) < 0)
		return 0;
	one(&o, "srdma_clients", "gauge", "Established connections.",
	    m.clients);
	one(&o, "srdma_handshakes_in_flight", "gauge",
	    "Connections in set-up (TLS to the fabric connect).", m.handshakes);
	one(&o, "srdma_accept_paused", "gauge",
	    "1 while every handshake slot is taken and new connections wait "
	    "in the listen backlog.",
	    m.accept_paused);
	one(&o, "srdma_pool_spares", "gauge",
	    "Resource-pool connection kits ready.", m.pool_spares);
	one(&o, "srdma_accepted_total", "counter",
	    "TCP connections accepted at the control port.", m.accepted);
	one(&o, "srdma_established_total", "counter",
	    "Connections that completed set-up.", m.established);
	one(&o, "srdma_resumed_total", "counter",
	    "Connections set up with a resumed TLS session.", m.resumed);
	one(&o, "srdma_resume_refused_total", "counter",
	    "Connections whose session ticket was not used (full handshake).",
	    m.resume_refused);
	head(&o, "srdma_refused_total", "counter",
	     "Would-be clients refused, by reason.");
	for (int i = 0; i < SRDMA_REFUSAL_COUNT; i++)
		put(&o, "srdma_refused_total{reason=\"%s\"} %llu\n", reasons[i],
		    (unsigned long long)m.refused[i]);
	head(&o, "srdma_closed_total", "counter",
	     "Established connections that ended, by how.");
	put(&o, "srdma_closed_total{how=\"orderly\"} %llu\n",
	    (unsigned long long)(m.closed - m.closed_error));
	put(&o, "srdma_closed_total{how=\"error\"} %llu\n",
	    (unsigned long long)m.closed_error);
	one(&o, "srdma_verify_failures_total", "counter",
	    "Connections failed because a record or block failed "
	    "authentication or arrived out of sequence.",
	    m.verify_failures);
	head(&o, "srdma_operations_total", "counter",
	     "Payload operations completed, by kind and protection mode.");
	for (int i = 0; i < SRDMA_METRIC_OP_COUNT; i++)
		for (int k = 0; k < 3; k++)
			put(&o,
			    "srdma_operations_total{op=\"%s\",mode=\"%s\"} "
			    "%llu\n",
			    ops[i], srdma_protect_name((enum srdma_protect)k),
			    (unsigned long long)m.ops[i][k]);
	head(&o, "srdma_payload_bytes_total", "counter",
	     "Payload bytes of those operations.");
	for (int i = 0; i < SRDMA_METRIC_OP_COUNT; i++)
		for (int k = 0; k < 3; k++)
			put(&o,
			    "srdma_payload_bytes_total{op=\"%s\",mode=\"%s\"} "
			    "%llu\n",
			    ops[i], srdma_protect_name((enum srdma_protect)k),
			    (unsigned long long)m.bytes[i][k]);
	one(&o, "srdma_pool_hits_total", "counter",
	    "Clients given a ready resource-pool kit.", m.pool_hits);
	one(&o, "srdma_pool_misses_total", "counter",
	    "Clients whose kit was made on arrival (pool empty).",
	    m.pool_misses);
	head(&o, "srdma_reloads_total", "counter",
	     "Reloads of certificate, key, CA, CRL and allow-list, by result.");
	put(&o, "srdma_reloads_total{result=\"ok\"} %llu\n",
	    (unsigned long long)m.reloads);
	put(&o, "srdma_reloads_total{result=\"failed\"} %llu\n",
	    (unsigned long long)m.reload_failures);
	return o.at;
}

/* ---- HTTP ---- */

static void respond(struct metrics_http *m, struct hconn *c, srdma_ctx *ctx)
{
	char *end = memmem(c->req, c->req_len, "\r\n", 2);
	char method[16] = "", path[256] = "", version[16] = "";
	const char *status = "400 Bad Request", *extra = "";
	const char *type = "text/plain; charset=utf-8";
	const char *body = "bad request\n";
	size_t body_len, hlen;
	bool head_only = false;
	char hdr[512];

	if (end) {
		*end = '\0';
		if (sscanf(c->req, "%15s %255s %15s", method, path, version) ==
			    3 &&
		    !strncmp(version, "HTTP/1.", 7)) {
			bool get = !strcmp(method, "GET");

			head_only = !strcmp(method, "HEAD");
			if (!get && !head_only) {
				status = "405 Method Not Allowed";
				extra = "Allow: GET, HEAD\r\n";
				body = "only GET /metrics\n";
			} else if (strcmp(path, "/metrics") &&
				   strncmp(path, "/metrics?", 9)) {
				status = "404 Not Found";
				body = "not found: try /metrics\n";
			} else {
				status = "200 OK";
				type = "text/plain; version=0.0.4; "
				       "charset=utf-8";
				body = NULL;
			}
		}
	}
	if (!body) {
		body_len = metrics_render(ctx, m->body, sizeof(m->body));
		body = m->body;
	} else {
		body_len = strlen(body);
	}
	hlen = (size_t)snprintf(hdr, sizeof(hdr),
				"HTTP/1.1 %s\r\n"
				"Content-Type: %s\r\n"
				"Content-Length: %zu\r\n"
				"%s"
				"Connection: close\r\n\r\n",
				status, type, body_len, extra);
	c->resp_len = hlen + (head_only ? 0 : body_len);
	c->resp = malloc(c->resp_len);
	if (!c->resp) {
		drop(c);
		return;
	}
	memcpy(c->resp, hdr, hlen);
	if (!head_only)
		memcpy(c->resp + hlen, body, body_len);
	c->resp_off = 0;
}

static void on_readable(struct metrics_http *m, struct hconn *c, srdma_ctx *ctx)
{
	ssize_t n = recv(c->fd, c->req + c->req_len,
			 sizeof(c->req) - 1 - c->req_len, MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		drop(c);
		return;
	}
	if (n < 0)
		return;
	c->req_len += (size_t)n;
	c->req[c->req_len] = '\0';
	if (memmem(c->req, c->req_len, "\r\n\r\n", 4) ||
	    memmem(c->req, c->req_len, "\n\n", 2) ||
	    c->req_len == sizeof(c->req) - 1)
		respond(m, c, ctx); /* a too long request: 400 */
}

static void on_writable(struct hconn *c)
{
	ssize_t n =
		send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off,
		     MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		c->resp_off += (size_t)n;
	if (n <= 0 || c->resp_off == c->resp_len) {
		shutdown(c->fd, SHUT_WR);
		drop(c);
	}
}

static void accept_one(struct metrics_http *m)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		struct hconn *c = &m->c[i];

		if (c->fd >= 0)
			continue;
		c->fd = accept4(m->fd, NULL, NULL,
				SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c->fd >= 0)
			c->deadline_ms = now_ms() + CONN_TIMEOUT_MS;
		return;
	}
}

void metrics_http_handle(struct metrics_http *m, const struct pollfd *p, int n,
			 srdma_ctx *ctx)
{
	uint64_t now = now_ms();

	for (int k = 0; k < n; k++) {
		if (!p[k].revents)
			continue;
		if (p[k].fd == m->fd) {
			accept_one(m);
			continue;
		}
		for (int i = 0; i < MAX_CONNS; i++) {
			struct hconn *c = &m->c[i];

			if (c->fd != p[k].fd)
				continue;
			if (c->resp)
				on_writable(c);
			else if (p[k].revents & (POLLIN | POLLHUP | POLLERR))
				on_readable(m, c, ctx);
			break;
		}
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (m->c[i].fd >= 0 && now >= m->c[i].deadline_ms)
			drop(&m->c[i]);
}
