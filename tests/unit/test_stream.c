/* SPDX-License-Identifier: MIT */
/*
 * The byte stream over real libfabric tcp on 127.0.0.1, public API only.
 * The server echoes its stream (event-driven: srdma_stream_peek, _send,
 * _consume, woken only by SRDMA_EV_STREAM) and ends its side when the
 * client's ends. The client, in each protection mode: sizes from 0 to a
 * few MiB in pieces of random size, sending and reading interleaved
 * (rings of 64 KiB, so they wrap many times); many small sends; the
 * blocking forms with 8 MiB rings; zero-copy reserve/commit;
 * back-pressure a caller sees (SRDMA_EAGAIN with the peer not reading,
 * and everything delivered once it reads); the end of the stream; the
 * peer's ring not being an application region; the default ring size;
 * and, in test builds, a hostile peer breaking each rule of §6a.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "srdma.h"
#ifdef SRDMA_TEST_HOOKS
#include "session/conn.h"
#endif
#include "test.h"
#include "test_pki.h"

static char dir[256];
static atomic_int stop, server_port, server_errors;
/* Connections the server failed: the hostile client's, expected. */
static atomic_int server_fails, expected_fails;

static void quiet(void *arg, int level, const char *line)
{
	(void)arg, (void)level, (void)line;
}

/* ---- the server: a stream echo per connection ---- */

struct echo {
	srdma_stream *s;
	int shut;
};

/* Echoes what it can: consumes only what the send took (back-pressure
 * passes through), ends its side after the client's end. */
static void echo_step(struct echo *e)
{
	for (;;) {
		const void *p;
		size_t n;
		int rc = srdma_stream_peek(e->s, &p, &n), k;

		if (rc == SRDMA_EAGAIN)
			return;
		if (rc < 0) {
			fprintf(stderr, "server peek: %s\n",
				srdma_error_detail());
			server_errors++;
			return;
		}
		if (n == 0) {
			if (!e->shut && srdma_stream_shutdown(e->s) < 0) {
				fprintf(stderr, "server shutdown: %s\n",
					srdma_error_detail());
				server_errors++;
			}
			e->shut = 1;
			return;
		}
		k = srdma_stream_send(e->s, p, n);
		if (k == SRDMA_EAGAIN)
			return;
		if (k < 0 || srdma_stream_consume(e->s, (size_t)k) < 0) {
			fprintf(stderr, "server echo: %s\n",
				srdma_error_detail());
			server_errors++;
			return;
		}
	}
}

static void *server_main(void *arg)
{
	struct srdma_config cfg;
	srdma_ctx *ctx;
	srdma_listener *l;
	struct srdma_event evs[64];

	(void)arg;
	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = SRDMA_PROTECT_NONE; /* the weakest accepted */
	cfg.log_fn = quiet;
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, "127.0.0.1", 0, &l) < 0) {
		fprintf(stderr, "server: %s\n", srdma_error_detail());
		server_port = -1;
		return NULL;
	}
	server_port = srdma_listener_port(l);
	while (!stop) {
		int n = srdma_ctx_poll(ctx, evs, 64, 20);
		for (int i = 0; i < n; i++) {
			srdma_conn *c = evs[i].conn;
			struct echo *e = c ? srdma_conn_user(c) : NULL;
			char msg[64];

			switch (evs[i].type) {
			case SRDMA_EV_RECV: /* "open RING": open our side */
				snprintf(msg, sizeof(msg), "%.*s",
					 (int)evs[i].len,
					 (const char *)evs[i].data);
				if (!strcmp(msg, "destroy") && e) {
					srdma_stream_destroy(e->s);
					e->s = NULL;
					srdma_send_sync(c, "gone", 4, 1000);
					break;
				}
				if (strncmp(msg, "open ", 5))
					break; /* a message is no stream */
				e = calloc(1, sizeof(*e));
				if (!e ||
				    srdma_stream_open(c, strtoul(msg + 5, 0, 0),
						      &e->s) < 0) {
					fprintf(stderr, "server open: %s\n",
						srdma_error_detail());
					server_errors++;
					free(e);
					break;
				}
				srdma_conn_set_user(c, e);
				echo_step(e);
				break;
			case SRDMA_EV_STREAM:
				if (e && e->s)
					echo_step(e);
				else if (e)
					break; /* destroyed: old news */
				else
					server_errors++;
				break;
			case SRDMA_EV_REGION:
			case SRDMA_EV_PEER_WRITE:
				server_errors++; /* the ring is no region */
				break;
			case SRDMA_EV_CLOSED:
				if (evs[i].status) {
					if (expected_fails <= server_fails)
						fprintf(stderr,
							"server: closed: %s\n",
							evs[i].detail);
					server_fails++;
				}
				srdma_stream_destroy(e ? e->s : NULL);
				free(e);
				srdma_conn_destroy(c);
				break;
			default:
				break;
			}
		}
	}
	srdma_ctx_destroy(ctx);
	srdma_listener_destroy(l); /* detached by the context, freed here */
	return NULL;
}

/* ---- the client ---- */

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

static void pattern(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

/* A connection whose stream the server has opened with server_ring. */
static srdma_conn *connect_stream(srdma_ctx **pctx, enum srdma_protect mode,
				  size_t client_ring, size_t server_ring,
				  srdma_stream **s)
{
	struct srdma_config cfg;
	srdma_conn *c = NULL;
	char msg[32];

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = mode;
	cfg.log_fn = quiet;
	CHECK_RC(srdma_ctx_create(&cfg, pctx), 0);
	CHECK_RC(srdma_connect(*pctx, "127.0.0.1", (uint16_t)server_port, 10000,
			       &c),
		 0);
	if (!c)
		return NULL;
	/* Ours first: the server's comes after our message. */
	CHECK_RC(srdma_stream_open(c, client_ring, s), 0);
	snprintf(msg, sizeof(msg), "open %zu", server_ring);
	CHECK_RC(srdma_send_sync(c, msg, strlen(msg), 5000), 0);
	return c;
}

static void end_conn(srdma_ctx *ctx, srdma_conn *c, srdma_stream *s)
{
	srdma_stream_destroy(s);
	srdma_conn_destroy(c);
	srdma_ctx_destroy(ctx);
}

/*
 * Sends len bytes in pieces of 1..max_piece and reads the echo
 * interleaved, without blocking; waits in srdma_ctx_poll only when
 * neither moved (an SRDMA_EV_STREAM must then come). Returns the bytes
 * echoed back (len unless something failed); counts EAGAINs of send.
 */
static size_t transfer(srdma_ctx *ctx, srdma_stream *s, const uint8_t *data,
		       uint8_t *back, size_t len, size_t max_piece,
		       int *blocked, int *events)
{
	size_t sent = 0, got = 0;
	int shut = 0, eof = 0, idle = 0;

	while (!eof) {
		int moved = 0, k;

		if (sent < len) {
			size_t piece = 1 + rnd() % max_piece;
			if (piece > len - sent)
				piece = len - sent;
			k = srdma_stream_send(s, data + sent, piece);
			if (k > 0) {
				sent += (size_t)k, moved = 1;
			} else if (k == SRDMA_EAGAIN) {
				(*blocked)++;
			} else {
				fprintf(stderr, "send: %s\n",
					srdma_error_detail());
				return got;
			}
		} else if (!shut) {
			CHECK_RC(srdma_stream_shutdown(s), 0);
			CHECK_RC(srdma_stream_send(s, "x", 1), SRDMA_ESTATE);
			shut = moved = 1;
		}
		k = srdma_stream_recv(s, back + got, len - got + 1, 0);
		if (k > 0) {
			got += (size_t)k, moved = 1;
		} else if (k == 0) {
			eof = 1;
		} else if (k != SRDMA_EAGAIN) {
			fprintf(stderr, "recv: %s\n", srdma_error_detail());
			return got;
		}
		if (!moved && !eof) {
			struct srdma_event ev[16];
			int n = srdma_ctx_poll(ctx, ev, 16, 1000);
			for (int i = 0; i < n; i++)
				*events += ev[i].type == SRDMA_EV_STREAM;
			if (n == 0 && ++idle > 10) {
				fprintf(stderr,
					"stuck: %zu sent, %zu back of %zu\n",
					sent, got, len);
				return got;
			}
		}
	}
	return got;
}

static void test_sizes(enum srdma_protect mode)
{
	static const size_t sizes[] = {0,	1,	4095,	4096,
				       4097,	65536,	100000, 1 << 20,
				       3 << 20, 3000017};
	size_t maxlen = 3 << 20;
	uint8_t *data = malloc(maxlen + 100), *back = malloc(maxlen + 100);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		srdma_ctx *ctx;
		srdma_stream *s = NULL;
		srdma_conn *c =
			connect_stream(&ctx, mode, 64 << 10, 64 << 10, &s);
		struct srdma_stream_info info;
		size_t len = sizes[i];
		int blocked = 0, events = 0;

		if (!c || !s)
			continue;
		pattern(data, len, (uint32_t)(len + mode));
		size_t got = transfer(ctx, s, data, back, len,
				      len > 65536 ? 200000 : 5000, &blocked,
				      &events);
		CHECK(got == len && !memcmp(back, data, len));
		if (got != len || memcmp(back, data, len))
			fprintf(stderr, "mode %d size %zu: %zu back\n", mode,
				len, got);
		/* The end stays the end. */
		CHECK_RC(srdma_stream_recv(s, back, 16, 0), 0);
		CHECK_RC(srdma_stream_info(s, &info), 0);
		CHECK(info.sent == len && info.received == len && info.eof);
		CHECK(info.ring == 64 << 10 && info.peer_ring == 64 << 10);
		if (len >= (1 << 20)) {
			/* 64 KiB rings: the sender waited, and was woken. */
			CHECK(blocked > 0 && events > 0);
			CHECK(info.segments_written > 0);
		}
		end_conn(ctx, c, s);
	}
	free(data);
	free(back);
}

/* Thousands of small sends: each arrives, in order. */
static void test_small(enum srdma_protect mode)
{
	enum { N = 20000 };
	srdma_ctx *ctx;
	srdma_stream *s = NULL;
	srdma_conn *c = connect_stream(&ctx, mode, 0, 0, &s);
	uint8_t *data = malloc((size_t)N * 64), *back = malloc((size_t)N * 64);
	size_t len = 0, got = 0;
	int eof = 0, idle = 0;
	struct srdma_stream_info info;

	if (!c || !s)
		return;
	pattern(data, (size_t)N * 64, 99 + mode);
	for (int i = 0; i < N || !eof;) {
		int k, moved = 0;
		if (i < N) {
			size_t piece = 1 + rnd() % 64;
			k = srdma_stream_send(s, data + len, piece);
			if (k > 0)
				len += (size_t)k, i++, moved = 1;
			else
				CHECK(k == SRDMA_EAGAIN);
			if (i == N)
				CHECK_RC(srdma_stream_shutdown(s), 0);
		}
		k = srdma_stream_recv(s, back + got, (size_t)N * 64 - got, 0);
		if (k > 0)
			got += (size_t)k, moved = 1;
		else if (k == 0)
			eof = 1;
		else
			CHECK(k == SRDMA_EAGAIN);
		if (!moved && !eof) {
			struct srdma_event ev[16];
			if (srdma_ctx_poll(ctx, ev, 16, 1000) == 0 &&
			    ++idle > 10)
				break;
		}
	}
	CHECK(eof && got == len && !memcmp(back, data, len));
	CHECK_RC(srdma_stream_info(s, &info), 0);
	CHECK(info.segments_inline > 0);
	CHECK(info.ring == SRDMA_STREAM_RING_DEFAULT &&
	      info.peer_ring == SRDMA_STREAM_RING_DEFAULT);
	end_conn(ctx, c, s);
	free(data);
	free(back);
}

/* The blocking forms with 8 MiB rings, and zero-copy sending. */
static void test_blocking(enum srdma_protect mode)
{
	size_t len = (3 << 20) + 11, got = 0;
	srdma_ctx *ctx;
	srdma_stream *s = NULL, *s2;
	srdma_conn *c = connect_stream(&ctx, mode, 8 << 20, 8 << 20, &s);
	uint8_t *data = malloc(len), *back = malloc(len + 1);
	struct srdma_stream_info info;
	uint64_t rlen;
	int k;

	if (!c || !s)
		return;
	CHECK_RC(srdma_stream_open(c, 0, &s2), SRDMA_ESTATE);
	pattern(data, len, 7 + mode);
	/* A first megabyte through reserve/commit, the rest in one call:
	 * both fit the 8 MiB rings, so the echo never blocks us. */
	for (size_t done = 0; done < (1 << 20);) {
		void *p;
		size_t room;
		k = srdma_stream_reserve(s, &p, &room);
		if (k == SRDMA_EAGAIN) {
			struct srdma_event ev[4];
			srdma_ctx_poll(ctx, ev, 4, 100);
			continue;
		}
		CHECK_RC(k, 0);
		if (k)
			break;
		if (room > (1 << 20) - done)
			room = (1 << 20) - done;
		if (room > 3000)
			room -= 1000; /* a partial commit */
		memcpy(p, data + done, room);
		CHECK_RC(srdma_stream_commit(s, room), 0);
		done += room;
	}
	CHECK_RC(srdma_stream_commit(s, 1), SRDMA_EINVAL);
	CHECK_RC(srdma_stream_send_sync(s, data + (1 << 20), len - (1 << 20),
					10000),
		 0);
	CHECK_RC(srdma_stream_shutdown(s), 0);
	CHECK_RC(srdma_stream_flush(s, 10000), 0);
	while ((k = srdma_stream_recv(s, back + got, len + 1 - got, 10000)) > 0)
		got += (size_t)k;
	CHECK(k == 0 && got == len && !memcmp(back, data, len));
	CHECK_RC(srdma_stream_info(s, &info), 0);
	CHECK(info.ring == 8 << 20 && info.peer_ring == 8 << 20);
	/* The server's ring is not an application region. */
	CHECK_RC(srdma_conn_wait_region(c, 0, 200, &rlen), SRDMA_ETIMEDOUT);
	CHECK_RC(srdma_write(c, 1, 0, data, 16, NULL), SRDMA_EREMOTE_ACCESS);
	/* Messages still go their own way. */
	CHECK_RC(srdma_send_sync(c, "ping", 4, 1000), 0);
	end_conn(ctx, c, s);
	free(data);
	free(back);
}

/*
 * Back-pressure: with the client not reading, the server stops reading
 * when its sends find no room, and the client's sends stop: SRDMA_EAGAIN,
 * after no more than the two rings (and a little) were accepted. Reading
 * again lets everything through.
 */
static void test_backpressure(enum srdma_protect mode)
{
	size_t len = 4 << 20, sent = 0;
	srdma_ctx *ctx;
	srdma_stream *s = NULL;
	srdma_conn *c = connect_stream(&ctx, mode, 64 << 10, 128 << 10, &s);
	uint8_t *data = malloc(len), *back = malloc(len + 1);
	int blocked = 0, k;

	if (!c || !s)
		return;
	pattern(data, len, 3 + mode);
	for (int tries = 0; tries < 200 && sent < len; tries++) {
		struct srdma_event ev[16];
		k = srdma_stream_send(s, data + sent, len - sent);
		if (k > 0) {
			sent += (size_t)k;
			continue;
		}
		CHECK_RC(k, SRDMA_EAGAIN);
		if (k != SRDMA_EAGAIN)
			break;
		blocked++;
		/* The ring must stay full: no event while nobody reads. */
		srdma_ctx_poll(ctx, ev, 16, 10);
	}
	CHECK(blocked > 0);
	CHECK(sent < len && sent <= (64 << 10) + (128 << 10) + (256 << 10));
	/* Now read while sending the rest. */
	{
		size_t have = 0, eof = 0;
		int idle = 0;
		while (!eof) {
			int moved = 0;
			if (sent < len) {
				k = srdma_stream_send(s, data + sent,
						      len - sent);
				if (k > 0)
					sent += (size_t)k, moved = 1;
				else
					CHECK(k == SRDMA_EAGAIN);
				if (sent == len)
					CHECK_RC(srdma_stream_shutdown(s), 0);
			}
			k = srdma_stream_recv(s, back + have, len + 1 - have,
					      0);
			if (k > 0)
				have += (size_t)k, moved = 1;
			else if (k == 0)
				eof = 1;
			if (!moved && !eof) {
				struct srdma_event ev[16];
				if (srdma_ctx_poll(ctx, ev, 16, 1000) == 0 &&
				    ++idle > 10)
					break;
			}
		}
		CHECK(eof && have == len && !memcmp(back, data, len));
	}
	end_conn(ctx, c, s);
	free(data);
	free(back);
}

/*
 * The server destroys its stream: our sends end with SRDMA_ECLOSED (the
 * bytes on their way are dropped), reading what had arrived still works,
 * and the connection lives on.
 */
static void test_peer_destroys(enum srdma_protect mode)
{
	srdma_ctx *ctx;
	srdma_stream *s = NULL;
	srdma_conn *c = connect_stream(&ctx, mode, 0, 0, &s);
	uint8_t buf[65536], back[16];
	size_t got = 0;
	int k = 0;

	if (!c || !s)
		return;
	memset(buf, 'q', sizeof(buf));
	CHECK_RC(srdma_stream_send_sync(s, "hello", 5, 5000), 0);
	while (got < 5 &&
	       (k = srdma_stream_recv(s, back + got, 5 - got, 5000)) > 0)
		got += (size_t)k;
	CHECK(got == 5 && !memcmp(back, "hello", 5));
	CHECK_RC(srdma_send_sync(c, "destroy", 7, 5000), 0);
	CHECK_RC(srdma_recv(c, back, sizeof(back), &got, 5000), 0);
	CHECK(got == 4 && !memcmp(back, "gone", 4));
	for (int i = 0; i < 1000 && k >= 0; i++) {
		k = srdma_stream_send(s, buf, sizeof(buf));
		if (k == SRDMA_EAGAIN) {
			struct srdma_event ev[8];
			srdma_ctx_poll(ctx, ev, 8, 10);
			k = 0;
		}
	}
	CHECK_RC(k, SRDMA_ECLOSED);
	CHECK_RC(srdma_send_sync(c, "still here", 10, 1000), 0);
	end_conn(ctx, c, s);
}

#ifdef SRDMA_TEST_HOOKS
/* ---- a hostile peer (test builds): the server must refuse each ---- */

enum hostile_kind { H_NONE, H_BOUND };

static int raw(srdma_conn *c, uint8_t kind, uint32_t region, uint64_t value,
	       size_t len)
{
	struct srdma__stream_rec m = {
		.kind = kind, .region = region, .value = value, .len = len};
	uint8_t body[SRDMA_STREAM_HDR_LEN + 8192];

	memset(body, 'z', sizeof(body));
	m.data = body + SRDMA_STREAM_HDR_LEN;
	if (srdma__stream_rec_encode(&m, body) < 0)
		return -1;
	return srdma__test_send_record(c, SRDMA_REC_STREAM, body,
				       SRDMA_STREAM_HDR_LEN + len);
}

/* The server's stream ring, as the client's library knows it. */
static uint32_t server_ring(srdma_conn *c)
{
	for (struct remote_region *rr = c->remote; rr; rr = rr->next)
		if (rr->access & SRDMA_WIRE_ACCESS_STREAM)
			return rr->id;
	return 0;
}

/*
 * One attack on a fresh connection: the client opens its stream and
 * (H_BOUND) waits until it may send on the server's 64 KiB ring, then
 * `attack` breaks a rule; the server must fail the connection with a
 * detail holding `want`, and tell the client.
 */
static void hostile(const char *name, enum hostile_kind k,
		    int (*attack)(srdma_conn *c, srdma_stream *s),
		    const char *want)
{
	struct srdma_config cfg;
	srdma_ctx *ctx;
	srdma_conn *c = NULL;
	srdma_stream *s = NULL;
	char got[256] = "";

	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.protect = SRDMA_PROTECT_ENCRYPT;
	cfg.log_fn = quiet;
	CHECK_RC(srdma_ctx_create(&cfg, &ctx), 0);
	CHECK_RC(srdma_connect(ctx, "127.0.0.1", (uint16_t)server_port, 10000,
			       &c),
		 0);
	if (!c)
		return;
	CHECK_RC(srdma_stream_open(c, 64 << 10, &s), 0);
	if (k == H_BOUND) {
		CHECK_RC(srdma_send_sync(c, "open 65536", 10, 5000), 0);
		/* A 0-byte flush waits for nothing: wait for the ring. */
		for (int i = 0; i < 500 && !server_ring(c); i++) {
			struct srdma_event ev[8];
			srdma_ctx_poll(ctx, ev, 8, 10);
		}
		CHECK(server_ring(c) != 0);
	}
	expected_fails++;
	CHECK_RC(attack(c, s), 0);
	for (int i = 0; i < 500 && !got[0]; i++) {
		struct srdma_event ev[8];
		int n = srdma_ctx_poll(ctx, ev, 8, 10);
		for (int j = 0; j < n; j++)
			if (ev[j].type == SRDMA_EV_CLOSED)
				snprintf(got, sizeof(got), "%s", ev[j].detail);
	}
	CHECK(strstr(got, "server said") && strstr(got, want));
	if (!strstr(got, want))
		fprintf(stderr, "%s: want '%s', got '%s'\n", name, want, got);
	end_conn(ctx, c, s);
}

static int a_data_unopened(srdma_conn *c, srdma_stream *s)
{
	(void)s;
	return raw(c, SRDMA_STREAM_DATA, 0, 0, 10);
}

static int a_outside(srdma_conn *c, srdma_stream *s)
{
	(void)s;
	return raw(c, SRDMA_STREAM_DATA, 0, 64 << 10, 10);
}

static int a_overlap_inline(srdma_conn *c, srdma_stream *s)
{
	(void)s;
	/* Block 0 never comes: block 1 stays unread. */
	if (raw(c, SRDMA_STREAM_DATA, 0, 4096, 100) < 0)
		return -1;
	return raw(c, SRDMA_STREAM_DATA, 0, 4096, 10);
}

/* The same through a real RDMA write: refused at its notice, before
 * anything of it is opened into the sink. */
static int a_overlap_write(srdma_conn *c, srdma_stream *s)
{
	static uint8_t buf[8192];

	(void)s;
	if (raw(c, SRDMA_STREAM_DATA, 0, 4096, 100) < 0)
		return -1;
	return srdma__start_stream_write(c, server_ring(c), 0, buf,
					 sizeof(buf));
}

static int a_consumed(srdma_conn *c, srdma_stream *s)
{
	(void)s;
	return raw(c, SRDMA_STREAM_CONSUMED, 0, 1 << 20, 0);
}

static int a_open_twice(srdma_conn *c, srdma_stream *s)
{
	(void)s;
	return raw(c, SRDMA_STREAM_OPEN, 1, 64 << 10, 0);
}

static int a_fin_twice(srdma_conn *c, srdma_stream *s)
{
	(void)s;
	if (raw(c, SRDMA_STREAM_DATA, 0, 8192, 10) < 0 ||
	    raw(c, SRDMA_STREAM_FIN, 0, 8202, 0) < 0)
		return -1;
	return raw(c, SRDMA_STREAM_FIN, 0, 8202, 0);
}

/* Reads the server's echo of n bytes: it consumed them. */
static int echoed(srdma_stream *s, size_t n)
{
	static uint8_t buf[8192];
	size_t got = 0;

	while (got < n) {
		int k = srdma_stream_recv(s, buf, sizeof(buf), 5000);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

/* An end before bytes the server already read. */
static int a_fin_early(srdma_conn *c, srdma_stream *s)
{
	if (raw(c, SRDMA_STREAM_DATA, 0, 0, 100) < 0 || echoed(s, 100) < 0)
		return -1;
	return raw(c, SRDMA_STREAM_FIN, 0, 50, 0);
}

/* An end before bytes the server holds but cannot read yet (a gap). */
static int a_fin_gap(srdma_conn *c, srdma_stream *s)
{
	(void)s;
	if (raw(c, SRDMA_STREAM_DATA, 0, 8192, 100) < 0)
		return -1;
	return raw(c, SRDMA_STREAM_FIN, 0, 8192 + 50, 0);
}

/* In freed space, but across the ring's end: 8 KiB read and freed at
 * 0, then 8 KiB at 60 KiB of the 64 KiB ring. */
static int a_ring_end(srdma_conn *c, srdma_stream *s)
{
	if (raw(c, SRDMA_STREAM_DATA, 0, 0, 8192) < 0 || echoed(s, 8192) < 0)
		return -1;
	return raw(c, SRDMA_STREAM_DATA, 0, 61440, 8192);
}

static int a_past_fin(srdma_conn *c, srdma_stream *s)
{
	(void)s;
	if (raw(c, SRDMA_STREAM_FIN, 0, 8192 + 50, 0) < 0)
		return -1;
	return raw(c, SRDMA_STREAM_DATA, 0, 8192, 100);
}

static void test_hostile(void)
{
	hostile("data before open", H_NONE, a_data_unopened,
		"before we opened our stream");
	hostile("outside", H_BOUND, a_outside, "outside the ring space");
	hostile("overlap inline", H_BOUND, a_overlap_inline,
		"overlaps bytes not read yet");
	hostile("overlap write", H_BOUND, a_overlap_write,
		"overlaps bytes not read yet");
	hostile("consumed", H_BOUND, a_consumed, "stream CONSUMED up to");
	hostile("open twice", H_BOUND, a_open_twice, "opened its stream twice");
	hostile("fin twice", H_BOUND, a_fin_twice, "ended its stream twice");
	hostile("fin early", H_BOUND, a_fin_early, "before bytes it sent");
	hostile("fin gap", H_BOUND, a_fin_gap, "before bytes it sent");
	hostile("ring end", H_BOUND, a_ring_end, "crosses the ring's end");
	hostile("past fin", H_BOUND, a_past_fin, "past the end");
}
#else
static void test_hostile(void)
{
	printf("SKIP hostile-peer stream checks: not a test build "
	       "(-DSRDMA_TEST_HOOKS=ON)\n");
}
#endif

int main(void)
{
	pthread_t th;

	if (test_pki_make(dir, sizeof(dir), "test_stream", NULL) < 0)
		return 1;
	pthread_create(&th, NULL, server_main, NULL);
	while (!server_port)
		;
	if (server_port < 0)
		return 1;
	for (int m = SRDMA_PROTECT_ENCRYPT; m >= 0; m--) {
		enum srdma_protect mode = (enum srdma_protect)m;
		test_sizes(mode);
		test_small(mode);
		test_blocking(mode);
		test_backpressure(mode);
		test_peer_destroys(mode);
	}
	test_hostile();
	stop = 1;
	pthread_join(th, NULL);
	CHECK(server_errors == 0);
	CHECK(server_fails == expected_fails);
	test_pki_remove(dir);
	TEST_DONE();
}
