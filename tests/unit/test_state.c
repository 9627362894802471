/* SPDX-License-Identifier: MIT */
/*
 * The connection state machine and the data channel with no socket and no
 * fabric: connections are built by hand on a context whose transport is the
 * in-memory fake (fake_tp.h), and control messages are fed straight to the
 * dispatcher. Covers the transition table (every forbidden move), a handler
 * that fails half-way (the "resurrection" of a failed connection), messages
 * out of order, credits, and a write's notice and acknowledgement.
 */
#include <stdlib.h>
#include <string.h>

#include "srdma.h"
#include "session/conn.h"
#include "test.h"
#include "test_pki.h"
#include "fake_tp.h"

static char dir[256];

static void quiet(void *arg, int level, const char *line)
{
	(void)arg, (void)level, (void)line;
}

static struct srdma_ctx *mk_ctx(struct fake_tp **ft)
{
	struct srdma_config cfg;
	struct srdma_ctx *ctx = NULL;

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.certs_dir = dir;
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.log_fn = quiet;
	cfg.log_level = SRDMA_LOG_DEBUG;
	if (srdma_ctx_create(&cfg, &ctx) < 0) {
		fprintf(stderr, "ctx: %s\n", srdma_error_detail());
		exit(1);
	}
	*ft = fake_install(ctx);
	return ctx;
}

static void rm_ctx(struct srdma_ctx *ctx, struct fake_tp *ft)
{
	struct srdma_region *rs[16];
	int n = 0;

	/* Regions outlive their connection, detached (srdma.h, "Lifetimes"):
	 * freed by their own destroy. */
	for (struct srdma_conn *c = ctx->conns; c; c = c->next)
		for (struct srdma_region *r = c->regions; r && n < 16;
		     r = r->next)
			rs[n++] = r;
	while (ctx->conns)
		srdma__conn_free(ctx->conns);
	for (int i = 0; i < n; i++)
		srdma_region_destroy(rs[i]);
	fake_uninstall(ctx, ft);
	srdma_ctx_destroy(ctx);
}

static struct srdma_conn *mk_conn(struct srdma_ctx *ctx, bool server,
				  enum srdma_protect mode)
{
	struct srdma_conn *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->ctx = ctx;
	srdma__conn_init_state(c, server);
	c->fd = -1;
	c->protect = mode;
	c->cipher = mode == SRDMA_PROTECT_NONE ? SRDMA_CIPHER_NONE
					       : SRDMA_CIPHER_AES_256_GCM;
	c->max_msg = 4096;
	c->depth = 8;
	c->app_owned = true;
	snprintf(c->peer_addr, sizeof(c->peer_addr), "fake %s",
		 server ? "client" : "server");
	c->next = ctx->conns;
	if (ctx->conns)
		ctx->conns->prev = c;
	ctx->conns = c;
	if (server)
		ctx->nclients++;
	return c;
}

static void fill(uint8_t *p, size_t n, uint8_t v)
{
	memset(p, v, n);
}

/* Keys as the exporter would give them: one side's tx is the other's rx. */
static void keys_for(struct srdma__keys *k, bool client)
{
	memset(k, 0, sizeof(*k));
	fill(client ? k->tx_msg_key : k->rx_msg_key, SRDMA_KEY_LEN, 0x11);
	fill(client ? k->rx_msg_key : k->tx_msg_key, SRDMA_KEY_LEN, 0x22);
	fill(client ? k->tx_blk_key : k->rx_blk_key, SRDMA_KEY_LEN, 0x33);
	fill(client ? k->rx_blk_key : k->tx_blk_key, SRDMA_KEY_LEN, 0x44);
	fill(client ? k->tx_msg_salt : k->rx_msg_salt, SRDMA_SALT_LEN, 0x55);
	fill(client ? k->rx_msg_salt : k->tx_msg_salt, SRDMA_SALT_LEN, 0x66);
	fill(client ? k->tx_blk_salt : k->rx_blk_salt, SRDMA_SALT_LEN, 0x77);
	fill(client ? k->rx_blk_salt : k->tx_blk_salt, SRDMA_SALT_LEN, 0x88);
}

/* A client and a server connection, established over the fake fabric
 * (the client's window may be made larger than the server's, as a
 * hostile writer that ignores its credits would have it). */
static void mk_pair_d(struct srdma_ctx *ctx, enum srdma_protect mode,
		      uint32_t cl_depth, struct srdma_conn **cl,
		      struct srdma_conn **sv)
{
	struct srdma__keys k;

	*cl = mk_conn(ctx, false, mode);
	*sv = mk_conn(ctx, true, mode);
	(*cl)->depth = cl_depth;
	keys_for(&k, true);
	CHECK_RC(srdma__conn_install_keys(*cl, &k), 0);
	keys_for(&k, false);
	CHECK_RC(srdma__conn_install_keys(*sv, &k), 0);
	CHECK_RC(srdma__create_tp_conn(*cl), 0);
	CHECK_RC(srdma__create_tp_conn(*sv), 0);
	fake_link((*cl)->tc, (*sv)->tc);
	CHECK_RC(srdma__setup_rings(*cl), 0);
	CHECK_RC(srdma__setup_rings(*sv), 0);
	CHECK_RC(srdma__post_all_recvs(*cl), 0);
	CHECK_RC(srdma__post_all_recvs(*sv), 0);
	/* The fixture skips set-up: both start established. */
	(*cl)->state = (*sv)->state = ST_ESTABLISHED;
}

static void mk_pair(struct srdma_ctx *ctx, enum srdma_protect mode,
		    struct srdma_conn **cl, struct srdma_conn **sv)
{
	mk_pair_d(ctx, mode, 8, cl, sv);
}

/* Polls until an event of this type for c arrives (or 2 s pass). */
static int wait_ev(struct srdma_ctx *ctx, struct srdma_conn *c,
		   enum srdma_event_type type, struct srdma_event *out)
{
	uint64_t end = srdma__now_ms() + 2000;
	struct srdma_event ev[16];

	while (srdma__now_ms() < end) {
		int n = srdma_ctx_poll(ctx, ev, 16, 10);
		for (int i = 0; i < n; i++)
			if (ev[i].conn == c && ev[i].type == type) {
				if (out)
					*out = ev[i];
				return 0;
			}
	}
	return -1;
}

/* ---- the transition table ---- */

/* What PROTOCOL.md §1 allows, written out independently of state.c. */
static bool protocol_allows(bool server, enum conn_state from,
			    enum conn_state to)
{
	if (from >= ST_CLOSED)
		return false; /* CLOSED and FAILED are final */
	if (server && (from == ST_TCP_CONNECTING || from == ST_PREPARE))
		return false; /* a server never is in these */
	if (to == ST_FAILED)
		return true;
	switch (to) {
	case ST_TCP_CONNECTING: /* again, after a busy server */
		return !server && from == ST_TLS;
	case ST_TLS:
		return !server && from == ST_TCP_CONNECTING;
	case ST_HELLO:
		return from == ST_TLS;
	case ST_PREPARE:
		return !server && from == ST_HELLO;
	case ST_PARAMS:
		return from == ST_HELLO || (!server && from == ST_PREPARE);
	case ST_FABRIC:
		return from == ST_PARAMS;
	case ST_ESTABLISHED:
		return from == ST_FABRIC;
	case ST_CLOSING:
		return from == ST_ESTABLISHED;
	case ST_CLOSED:
		return from == ST_CLOSING;
	default:
		return false;
	}
}

static void test_table(void)
{
	struct srdma_conn c;
	int allowed = 0, refused = 0;

	for (int role = 0; role < 2; role++)
		for (int from = 0; from < ST_COUNT; from++)
			for (int to = 0; to < ST_COUNT; to++) {
				bool want = protocol_allows(role, from, to);
				memset(&c, 0, sizeof(c));
				c.server = role;
				c.state = from;
				int rc = srdma__conn_set_state(&c, to);
				CHECK(rc == (want ? 0 : SRDMA_ESTATE));
				CHECK(c.state ==
				      (enum conn_state)(want ? to : from));
				CHECK(srdma__conn_may_move(role, from, to) ==
				      want);
				if (rc != (want ? 0 : SRDMA_ESTATE))
					fprintf(stderr, "%s %s -> %s\n",
						role ? "server" : "client",
						srdma__state_name(from),
						srdma__state_name(to));
				want ? allowed++ : refused++;
			}
	/* Legal: the client's 10 moves and FAILED from its 8 live states, the
	 * server's 6 and FAILED from its 6; the other 170 pairs are not. */
	CHECK(allowed == 10 + 6 + 8 + 6);
	CHECK(refused == 2 * ST_COUNT * ST_COUNT - allowed);
	/* Out-of-range states are refused, not indexed. */
	CHECK(!srdma__conn_may_move(false, ST_COUNT, ST_FAILED));
	CHECK(!srdma__conn_may_move(true, ST_TLS, ST_COUNT));
}

/* ---- a handler that fails half-way ---- */

/*
 * The server's HELLO handler sends its own HELLO; when that send fails the
 * connection must end FAILED, counted down once, and never come back as
 * PARAMS (before the state table, a failed send failed the connection and
 * the handler then set PARAMS on it, and nclients was decremented again
 * when it failed later).
 */
static void test_resurrection(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *c = mk_conn(ctx, true, SRDMA_PROTECT_ENCRYPT);
	struct srdma_listener l = {.ctx = ctx, .fabric_port = 4711};
	struct srdma__msg m = {.type = SRDMA_MSG_HELLO};
	struct srdma_event ev;
	int rejected = 0, n;

	c->listener = &l;
	c->counted_hs = true;
	ctx->handshakes = 1;
	c->max_msg = 65536;
	c->depth = 16;
	CHECK_RC(srdma__conn_set_state(c, ST_HELLO), 0);
	CHECK(ctx->nclients == 1);
	m.u.hello.version = SRDMA_WIRE_VERSION;
	m.u.hello.transport = SRDMA_TRANSPORT_OFI;
	m.u.hello.protect = SRDMA_PROTECT_ENCRYPT;
	m.u.hello.cipher = SRDMA_CIPHER_AES_256_GCM;
	m.u.hello.max_msg = 65536;
	m.u.hello.queue_depth = 16;
	/* No control connection: the HELLO answer cannot be sent. */
	CHECK(c->ctrl == NULL);
	CHECK(!srdma__conn_dispatch_msg(c, &m));
	CHECK(c->state == ST_FAILED);
	CHECK(ctx->nclients == 0);
	CHECK(ctx->handshakes == 0);
	/* Later failures are no-ops: nothing is counted down twice. */
	srdma__conn_fail(c, SRDMA_ETIMEDOUT, "later");
	CHECK(c->state == ST_FAILED);
	CHECK(ctx->nclients == 0);
	CHECK(!srdma__conn_step(c, 0, ST_PARAMS));
	CHECK(c->state == ST_FAILED);
	/* An ended connection takes no step, not even one that stays, and
	 * keeps the reason it ended with. */
	{
		int code = c->fail_code;
		CHECK(!srdma__conn_step(c, 0, c->state));
		CHECK(!srdma__conn_step(c, SRDMA_EPROTO, c->state));
		CHECK(c->fail_code == code && code != SRDMA_EPROTO);
	}
	while ((n = srdma_ctx_poll(ctx, &ev, 1, 0)) > 0)
		rejected += ev.type == SRDMA_EV_CLOSED;
	CHECK(rejected == 1);
	rm_ctx(ctx, ft);
}

/* ---- control messages against the state ---- */

static void feed(struct srdma_conn *c, const struct srdma__msg *m, bool alive,
		 int code)
{
	bool a = srdma__conn_dispatch_msg(c, m);

	CHECK(a == alive);
	if (!alive) {
		CHECK(c->state == ST_FAILED);
		CHECK(c->fail_code == code);
		if (c->fail_code != code)
			fprintf(stderr, "  fail %d (%s), want %d\n",
				c->fail_code, c->fail_detail, code);
	}
}

static void test_order(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma__msg hello = {.type = SRDMA_MSG_HELLO};
	struct srdma__msg params = {.type = SRDMA_MSG_PARAMS};
	struct srdma__msg region = {.type = SRDMA_MSG_REGION};
	struct srdma__msg bye = {.type = SRDMA_MSG_GOODBYE};
	struct srdma__msg err = {.type = SRDMA_MSG_ERROR};
	struct srdma_conn *c;

	/* PARAMS before HELLO */
	c = mk_conn(ctx, true, SRDMA_PROTECT_ENCRYPT);
	CHECK_RC(srdma__conn_set_state(c, ST_HELLO), 0);
	feed(c, &params, false, SRDMA_EPROTO);
	/* a second HELLO */
	c = mk_conn(ctx, true, SRDMA_PROTECT_ENCRYPT);
	CHECK_RC(srdma__conn_set_state(c, ST_HELLO), 0);
	CHECK_RC(srdma__conn_set_state(c, ST_PARAMS), 0);
	feed(c, &hello, false, SRDMA_EPROTO);
	/* a client may not grant the server a region during set-up... */
	c = mk_conn(ctx, true, SRDMA_PROTECT_ENCRYPT);
	CHECK_RC(srdma__conn_set_state(c, ST_HELLO), 0);
	feed(c, &region, false, SRDMA_EPROTO);
	/* ...nor say goodbye before it is established */
	c = mk_conn(ctx, false, SRDMA_PROTECT_ENCRYPT);
	CHECK_RC(srdma__conn_set_state(c, ST_TLS), 0);
	CHECK_RC(srdma__conn_set_state(c, ST_HELLO), 0);
	feed(c, &bye, false, SRDMA_ECLOSED);
	/* the peer's ERROR: its code and sentence become ours */
	c = mk_conn(ctx, false, SRDMA_PROTECT_ENCRYPT);
	c->state = ST_ESTABLISHED;
	err.u.error.code = SRDMA_EQUOTA;
	snprintf(err.u.error.text, sizeof(err.u.error.text), "over quota");
	err.u.error.text_len = 10;
	feed(c, &err, false, SRDMA_EQUOTA);
	CHECK(strstr(c->fail_detail, "server said: over quota") != NULL);
	CHECK(c->peer_failed);
	/* an ERROR code out of range becomes SRDMA_EPEER */
	c = mk_conn(ctx, false, SRDMA_PROTECT_ENCRYPT);
	c->state = ST_ESTABLISHED;
	err.u.error.code = -1000;
	feed(c, &err, false, SRDMA_EPEER);
	/* goodbye while established: CLOSING, alive */
	c = mk_conn(ctx, false, SRDMA_PROTECT_ENCRYPT);
	c->state = ST_ESTABLISHED;
	feed(c, &bye, true, 0);
	CHECK(c->state == ST_CLOSING);
	CHECK(c->goodbye_rcvd);
	rm_ctx(ctx, ft);
}

/* ---- the data channel over the fake fabric ---- */

static void test_credits(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma_event ev[16];
	char msg[100] = "hello";
	int sent = 0, got = 0, total = 60;
	uint64_t end;

	mk_pair(ctx, SRDMA_PROTECT_ENCRYPT, &cl, &sv);
	/* One credit is always kept back for credit returns. */
	while (srdma_send(cl, msg, sizeof(msg)) == 0)
		sent++;
	CHECK(sent == (int)cl->depth - 1);
	CHECK_RC(srdma_send(cl, msg, sizeof(msg)), SRDMA_EAGAIN);
	/* Delivered and released, the slots go back (CREDIT records) and the
	 * client may send again; never more than the window in flight. */
	end = srdma__now_ms() + 5000;
	while ((sent < total || got < sent) && srdma__now_ms() < end) {
		while (sent < total && srdma_send(cl, msg, sizeof(msg)) == 0)
			sent++;
		int n = srdma_ctx_poll(ctx, ev, 16, 5);
		for (int i = 0; i < n; i++)
			got += ev[i].conn == sv && ev[i].type == SRDMA_EV_RECV;
	}
	CHECK(sent == total && got == total);
	CHECK(ft->rnr == 0);
	CHECK(cl->state == ST_ESTABLISHED && sv->state == ST_ESTABLISHED);
	rm_ctx(ctx, ft);
}

/*
 * GOODBYE travels on TLS and may overtake the last records on the fabric:
 * it counts them, and the peer reads that many before it takes the fabric
 * down (a disconnect loses what has not landed).
 */
static void test_goodbye_drain(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma__msg bye = {.type = SRDMA_MSG_GOODBYE};
	struct srdma_event ev[16];
	char msg[100] = "last words";
	int sent = 0, got = 0, closed = 0;
	uint64_t end;

	mk_pair(ctx, SRDMA_PROTECT_ENCRYPT, &cl, &sv);
	while (srdma_send(cl, msg, sizeof(msg)) == 0)
		sent++;
	CHECK(sent > 0);
	/* The client's goodbye, ahead of its records (still on the fake
	 * fabric: nothing runs before the loop does). */
	bye.u.goodbye.sent = cl->tx.seq;
	feed(sv, &bye, true, 0);
	CHECK(sv->state == ST_CLOSING);
	end = srdma__now_ms() + 3000;
	while (!closed && srdma__now_ms() < end) {
		int n = srdma_ctx_poll(ctx, ev, 16, 5);
		for (int i = 0; i < n; i++) {
			if (ev[i].conn != sv)
				continue;
			if (ev[i].type == SRDMA_EV_RECV) {
				CHECK(!closed);
				got++;
			}
			if (ev[i].type == SRDMA_EV_CLOSED) {
				CHECK(ev[i].status == 0);
				closed = 1;
			}
		}
	}
	printf("goodbye ahead of %d records: %d read, then closed %d, %llu "
	       "sends lost\n",
	       sent, got, closed, (unsigned long long)ft->dropped);
	CHECK(got == sent && closed);
	CHECK(ft->dropped == 0);
	rm_ctx(ctx, ft);

	/* A goodbye that counts fewer records than arrived is no lie: a
	 * closing peer still acknowledges what we send while it drains us
	 * (seen on Soft-RoCE). Nothing is left to wait for: it closes. */
	ctx = mk_ctx(&ft);
	mk_pair(ctx, SRDMA_PROTECT_ENCRYPT, &cl, &sv);
	CHECK_RC(srdma_send(cl, msg, sizeof(msg)), 0);
	CHECK(wait_ev(ctx, sv, SRDMA_EV_RECV, NULL) == 0);
	bye.u.goodbye.sent = 0;
	feed(sv, &bye, true, 0);
	CHECK(sv->state == ST_CLOSING);
	CHECK(wait_ev(ctx, sv, SRDMA_EV_CLOSED, &ev[0]) == 0);
	CHECK(ev[0].status == 0);
	rm_ctx(ctx, ft);
}

/*
 * A server's regions for one client stop at client_quota, counted in
 * sealed bytes (4128 per 4096 in encrypt): past it SRDMA_EQUOTA with the
 * sentence, and a destroyed region gives its bytes back. (srdma serve
 * refuses to start with a quota its two regions do not fit, so only the
 * library shows this check.)
 */
static void test_quota(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma_region *a = NULL, *b = NULL;
	const int acc = SRDMA_ACCESS_REMOTE_READ | SRDMA_REGION_DEFER_GRANT;

	ctx->cfg.client_quota = 3 * 4128;
	mk_pair(ctx, SRDMA_PROTECT_ENCRYPT, &cl, &sv);
	CHECK_RC(srdma_region_create(sv, 8192, acc, &a), 0);
	CHECK_RC(srdma_region_create(sv, 8192, acc, &b), SRDMA_EQUOTA);
	CHECK(strstr(srdma_error_detail(), "would exceed client_quota (8256 "
					   "of 12384 bytes used)"));
	CHECK(b == NULL);
	CHECK_RC(srdma_region_create(sv, 4096, acc, &b), 0); /* fits */
	srdma_region_destroy(a);
	a = NULL;
	CHECK_RC(srdma_region_create(sv, 8192, acc, &a), 0); /* given back */
	rm_ctx(ctx, ft);
}

/* Grants the client a region the server made, as REGION would. */
static struct srdma_region *grant(struct srdma_conn *sv, struct srdma_conn *cl,
				  uint64_t len, int access)
{
	struct srdma_region *r = NULL;
	struct srdma__msg m;

	CHECK_RC(srdma_region_create(sv, len, access | SRDMA_REGION_DEFER_GRANT,
				     &r),
		 0);
	if (!r)
		return NULL;
	CHECK_RC(srdma__region_grant_msg(r, &m), 0);
	r->granted = true;
	CHECK(srdma__conn_dispatch_msg(cl, &m));
	return r;
}

static void test_write_ack(void)
{
	for (int mode = 0; mode <= SRDMA_PROTECT_ENCRYPT; mode++) {
		struct fake_tp *ft;
		struct srdma_ctx *ctx = mk_ctx(&ft);
		struct srdma_conn *cl, *sv;
		struct srdma_region *r;
		struct srdma_event ev;
		static uint8_t data[3 * 4096 + 100], back[sizeof(data)];

		static uint8_t sink[65536];

		mk_pair(ctx, (enum srdma_protect)mode, &cl, &sv);
		r = grant(sv, cl, 65536,
			  SRDMA_ACCESS_REMOTE_READ | SRDMA_ACCESS_REMOTE_WRITE);
		CHECK_RC(srdma_region_set_sink(r, sink, 4096), SRDMA_EINVAL);
		CHECK_RC(srdma_region_set_sink(r, sink, sizeof(sink)), 0);
		memset(sink, 0xee, sizeof(sink));
		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = (uint8_t)(i * 7 + mode);
		CHECK_RC(srdma_write(cl, r->id, 8192, data, sizeof(data), data),
			 0);
		CHECK(wait_ev(ctx, sv, SRDMA_EV_PEER_WRITE, &ev) == 0);
		CHECK(ev.region == r->id && ev.offset == 8192 &&
		      ev.len == sizeof(data));
		/* The plaintext is in the sink when the event arrives. */
		CHECK(!memcmp(sink + 8192, data, sizeof(data)));
		CHECK(sink[8191] == 0xee);
		CHECK(wait_ev(ctx, cl, SRDMA_EV_WRITE_DONE, &ev) == 0);
		CHECK(ev.status == 0 && ev.user == data);
		CHECK_RC(srdma_region_get(r, 8192, back, sizeof(back)), 0);
		CHECK(memcmp(back, data, sizeof(data)) == 0);
		memset(back, 0, sizeof(back));
		CHECK_RC(srdma_read(cl, r->id, 8192, back, sizeof(back), back),
			 0);
		CHECK(wait_ev(ctx, cl, SRDMA_EV_READ_DONE, &ev) == 0);
		CHECK(ev.status == 0 && memcmp(back, data, sizeof(data)) == 0);
		CHECK(ft->rnr == 0 && ft->access_errors == 0);
		rm_ctx(ctx, ft);
	}
}

/* Region ids only grow: a revoked id granted again is refused (its
 * block nonces would repeat under the same key). */
static void test_regrant(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma_region *r;
	struct srdma__msg m, revoke = {.type = SRDMA_MSG_REGION_REVOKE};

	mk_pair(ctx, SRDMA_PROTECT_ENCRYPT, &cl, &sv);
	r = grant(sv, cl, 8192, SRDMA_ACCESS_REMOTE_READ);
	CHECK_RC(srdma__region_grant_msg(r, &m), SRDMA_ESTATE);
	r->granted = false;
	CHECK_RC(srdma__region_grant_msg(r, &m), 0);
	revoke.u.revoke.region_id = r->id;
	CHECK(srdma__conn_dispatch_msg(cl, &revoke));
	CHECK(srdma_conn_remote_region(cl, r->id, NULL) == SRDMA_ENOENT);
	feed(cl, &m, false, SRDMA_EPROTO);
	CHECK(strstr(cl->fail_detail, "ids must grow") != NULL);
	rm_ctx(ctx, ft);
}

/* An UPDATE that overtakes its grant (grants travel over TLS) waits for
 * it: the read after the grant finds what the put announced. */
static void test_early_update(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma_region *r = NULL;
	struct srdma__msg m;
	struct srdma_event ev;
	uint8_t data[4096], back[4096];

	mk_pair(ctx, SRDMA_PROTECT_INTEGRITY, &cl, &sv);
	CHECK_RC(srdma_region_create(sv, 8192,
				     SRDMA_ACCESS_REMOTE_READ |
					     SRDMA_REGION_DEFER_GRANT,
				     &r),
		 0);
	CHECK_RC(srdma__region_grant_msg(r, &m), 0);
	r->granted = true; /* granted, but the REGION is still on its way */
	memset(data, 0x42, sizeof(data));
	CHECK_RC(srdma_region_put(r, 4096, data, sizeof(data)), 0);
	for (int i = 0; i < 20; i++)
		(void)srdma_ctx_poll(ctx, &ev, 1, 5); /* the UPDATE arrives */
	CHECK(cl->nearly_upd == 1);
	CHECK(srdma__conn_dispatch_msg(cl, &m));
	CHECK(cl->nearly_upd == 0);
	CHECK_RC(srdma_read(cl, r->id, 4096, back, sizeof(back), back), 0);
	CHECK(wait_ev(ctx, cl, SRDMA_EV_READ_DONE, &ev) == 0);
	CHECK(ev.status == 0 && !memcmp(back, data, sizeof(back)));
	CHECK(cl->read_retries == 0);
	rm_ctx(ctx, ft);
}

/* A read that meets a block the owner sealed after the read was posted
 * (its UPDATE not in yet) is read again, never taken for a forgery. */
static void test_read_race(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma_region *r;
	struct srdma_event ev;
	uint8_t v1[4096], v2[4096], back[4096];

	mk_pair(ctx, SRDMA_PROTECT_ENCRYPT, &cl, &sv);
	r = grant(sv, cl, 8192, SRDMA_ACCESS_REMOTE_READ);
	memset(v1, 1, sizeof(v1));
	memset(v2, 2, sizeof(v2));
	CHECK_RC(srdma_region_put(r, 0, v1, sizeof(v1)), 0);
	for (int i = 0; i < 10; i++)
		(void)srdma_ctx_poll(ctx, &ev, 1, 2); /* UPDATE(v1) in */
	/* The read is posted; before the fake fabric runs it, the owner
	 * seals v2 (on verbs the NIC reads without the owner: this race). */
	CHECK_RC(srdma_read(cl, r->id, 0, back, sizeof(back), back), 0);
	r->conn->nupd = 0; /* hold v2's UPDATE back for a moment */
	CHECK_RC(srdma_region_put(r, 0, v2, sizeof(v2)), 0);
	CHECK(wait_ev(ctx, cl, SRDMA_EV_READ_DONE, &ev) == 0);
	CHECK(ev.status == 0 && !memcmp(back, v2, sizeof(back)));
	CHECK(cl->read_retries >= 1);
	CHECK(cl->state == ST_ESTABLISHED);
	rm_ctx(ctx, ft);
}

/* A hostile owner: an ACK for a write we never made, an UPDATE outside
 * the region. Each fails the connection with the protocol error. */
static void test_hostile_owner(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma_region *r;
	struct srdma_event ev;
	uint8_t body[64];
	struct srdma__ack a = {.count = 1, .region = 1, .version = 5};
	struct srdma__update u = {
		.region = 1, .first = 1, .count = 2, .version = 9};

	mk_pair(ctx, SRDMA_PROTECT_INTEGRITY, &cl, &sv);
	r = grant(sv, cl, 8192, SRDMA_ACCESS_REMOTE_READ);
	(void)r;
	CHECK_RC(srdma__ack_encode(&a, body), SRDMA_ACK_LEN);
	CHECK_RC(srdma__post_record(sv, SRDMA_REC_ACK, body, SRDMA_ACK_LEN), 0);
	CHECK(wait_ev(ctx, cl, SRDMA_EV_CLOSED, &ev) == 0);
	CHECK(ev.status == SRDMA_EPROTO &&
	      strstr(ev.detail, "did not announce") != NULL);
	rm_ctx(ctx, ft);

	ctx = mk_ctx(&ft);
	mk_pair(ctx, SRDMA_PROTECT_INTEGRITY, &cl, &sv);
	r = grant(sv, cl, 8192, SRDMA_ACCESS_REMOTE_READ);
	CHECK_RC(srdma__updates_encode(&u, 1, body, sizeof(body)),
		 SRDMA_UPDATE_LEN);
	CHECK_RC(srdma__post_record(sv, SRDMA_REC_UPDATE, body,
				    SRDMA_UPDATE_LEN),
		 0);
	CHECK(wait_ev(ctx, cl, SRDMA_EV_CLOSED, &ev) == 0);
	CHECK(ev.status == SRDMA_EPROTO &&
	      strstr(ev.detail, "UPDATE for blocks") != NULL);
	rm_ctx(ctx, ft);
}

/* A writer that ignores its credits and floods notices: the owner never
 * queues more than its window can have announced. */
static void test_notice_flood(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma__notice n[SRDMA_REC_MAX_ENTRIES];
	uint8_t body[SRDMA_REC_MAX_ENTRIES * SRDMA_NOTICE_LEN];
	struct srdma_event ev;
	uint64_t v = 1;
	int len;

	/* The client's ring holds more records than the server's window. */
	mk_pair_d(ctx, SRDMA_PROTECT_NONE, 4 * 8, &cl, &sv);
	(void)grant(sv, cl, 65536, SRDMA_ACCESS_REMOTE_WRITE);
	for (uint32_t rec = 0; rec <= sv->depth; rec++) {
		for (int i = 0; i < SRDMA_REC_MAX_ENTRIES; i++)
			n[i] = (struct srdma__notice){.region = 1,
						      .offset = 0,
						      .len = 1,
						      .version = v++};
		len = srdma__notices_encode(n, SRDMA_REC_MAX_ENTRIES, body,
					    sizeof(body));
		CHECK_RC(srdma__post_record(cl, SRDMA_REC_NOTICE, body,
					    (size_t)len),
			 0);
	}
	CHECK(wait_ev(ctx, sv, SRDMA_EV_CLOSED, &ev) == 0);
	CHECK(ev.status == SRDMA_EPROTO &&
	      strstr(ev.detail, "more unacknowledged writes than its window"));
	rm_ctx(ctx, ft);
}

/* An owner that puts without pause: a read keeps racing (each put lands
 * between the read's post and the fake fabric running it) until the
 * reader asks for a hold. Then the owner's puts into the range answer
 * SRDMA_EAGAIN, the read completes with one whole version, and after the
 * RELEASE the puts go on. Without holds the read ends with SRDMA_EAGAIN
 * (make mutants: hold-put, hold-ask). */
static void test_read_hold(void)
{
	for (int mode = SRDMA_PROTECT_INTEGRITY; mode <= SRDMA_PROTECT_ENCRYPT;
	     mode++) {
		struct fake_tp *ft;
		struct srdma_ctx *ctx = mk_ctx(&ft);
		struct srdma_conn *cl, *sv;
		struct srdma_region *r;
		struct srdma_event evs[16];
		static uint8_t v[4 * 4096], back[4 * 4096];
		int puts = 0, again = 0, status = 1;
		bool whole = true;

		mk_pair(ctx, (enum srdma_protect)mode, &cl, &sv);
		r = grant(sv, cl, sizeof(v), SRDMA_ACCESS_REMOTE_READ);
		CHECK_RC(srdma_read(cl, r->id, 0, back, sizeof(back), back), 0);
		for (int i = 0; i < 5000 && status == 1; i++) {
			int rc, n;
			fill(v, sizeof(v), (uint8_t)(puts % 255 + 1));
			rc = srdma_region_put(r, 0, v, sizeof(v));
			if (rc == SRDMA_EAGAIN) {
				again++;
				CHECK(strstr(srdma_error_detail(),
					     "holds puts there") != NULL);
			} else {
				CHECK_RC(rc, 0);
				puts++;
			}
			n = srdma_ctx_poll(ctx, evs, 16, 0);
			for (int k = 0; k < n; k++)
				if (evs[k].conn == cl &&
				    evs[k].type == SRDMA_EV_READ_DONE)
					status = evs[k].status;
		}
		CHECK_RC(status, 0);
		for (size_t i = 1; i < sizeof(back); i++)
			whole = whole && back[i] == back[0];
		CHECK(whole && back[0] != 0);
		CHECK(cl->read_retries >= 2 && cl->read_holds == 1);
		CHECK(again > 0);
		/* The RELEASE reaches the owner: puts go on. */
		for (int i = 0; i < 100 && sv->held.kind; i++)
			(void)srdma_ctx_poll(ctx, evs, 16, 1);
		CHECK(!sv->held.kind && cl->hold_state == HOLD_NONE);
		CHECK_RC(srdma_region_put(r, 0, v, sizeof(v)), 0);
		CHECK(cl->state == ST_ESTABLISHED &&
		      sv->state == ST_ESTABLISHED);
		rm_ctx(ctx, ft);
	}
}

/* Two reads of different halves, each half put without pause: one read
 * holds at a time, the other waits its turn (without reading meanwhile),
 * takes the next hold, and both complete whole. */
static void test_read_hold_turns(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma_region *r;
	struct srdma_event evs[16];
	static uint8_t v[4 * 4096], a[4 * 4096], b[4 * 4096];
	int st_a = 1, st_b = 1, puts = 0;

	mk_pair(ctx, SRDMA_PROTECT_ENCRYPT, &cl, &sv);
	r = grant(sv, cl, 2 * sizeof(v), SRDMA_ACCESS_REMOTE_READ);
	CHECK_RC(srdma_read(cl, r->id, 0, a, sizeof(a), a), 0);
	CHECK_RC(srdma_read(cl, r->id, sizeof(v), b, sizeof(b), b), 0);
	for (int i = 0; i < 5000 && (st_a == 1 || st_b == 1); i++) {
		int n;
		fill(v, sizeof(v), (uint8_t)(puts++ % 255 + 1));
		(void)srdma_region_put(r, 0, v, sizeof(v));
		(void)srdma_region_put(r, sizeof(v), v, sizeof(v));
		n = srdma_ctx_poll(ctx, evs, 16, 0);
		for (int k = 0; k < n; k++) {
			if (evs[k].conn != cl ||
			    evs[k].type != SRDMA_EV_READ_DONE)
				continue;
			if (evs[k].user == a)
				st_a = evs[k].status;
			else
				st_b = evs[k].status;
		}
	}
	CHECK_RC(st_a, 0);
	CHECK_RC(st_b, 0);
	for (size_t i = 1; i < sizeof(a); i++)
		if (a[i] != a[0] || b[i] != b[0]) {
			CHECK(!"a read came back mixed");
			break;
		}
	CHECK(cl->read_holds == 2);
	CHECK(cl->state == ST_ESTABLISHED && sv->state == ST_ESTABLISHED);
	rm_ctx(ctx, ft);
}

/* A hold the reader does not give back ends by itself: puts go on after
 * SRDMA_HOLD_MAX_MS; puts outside the held range never wait. */
static void test_hold_expiry(void)
{
	struct fake_tp *ft;
	struct srdma_ctx *ctx = mk_ctx(&ft);
	struct srdma_conn *cl, *sv;
	struct srdma_region *r;
	static uint8_t v[3 * 4096];
	uint64_t t0;
	int rc;

	mk_pair(ctx, SRDMA_PROTECT_ENCRYPT, &cl, &sv);
	r = grant(sv, cl, 4 * 4096, SRDMA_ACCESS_REMOTE_READ);
	sv->held = (struct srdma__hold){.kind = SRDMA_HOLD_ASK,
					.region = r->id,
					.first = 1,
					.count = 2};
	t0 = srdma__now_ms();
	sv->held_until_ms = t0 + SRDMA_HOLD_MAX_MS;
	CHECK_RC(srdma_region_put(r, 0, v, 4096), 0);
	CHECK_RC(srdma_region_put(r, 3 * 4096, v, 4096), 0);
	CHECK_RC(srdma_region_put(r, 4096, v, 4096), SRDMA_EAGAIN);
	CHECK(strstr(srdma_error_detail(), "blocks 1..2 of region") != NULL);
	CHECK_RC(srdma_region_put(r, 0, v, 2 * 4096 + 1), SRDMA_EAGAIN);
	do
		rc = srdma_region_put(r, 2 * 4096, v, 4096);
	while (rc == SRDMA_EAGAIN && srdma__now_ms() < t0 + 5000);
	CHECK_RC(rc, 0);
	CHECK(srdma__now_ms() >= t0 + SRDMA_HOLD_MAX_MS);
	rm_ctx(ctx, ft);
}

static int post_hold(struct srdma_conn *c, uint8_t kind, uint32_t region,
		     uint64_t first, uint64_t count)
{
	struct srdma__hold h = {
		.kind = kind, .region = region, .first = first, .count = count};
	uint8_t p[SRDMA_HOLD_LEN];

	CHECK_RC(srdma__hold_encode(&h, p), SRDMA_HOLD_LEN);
	return srdma__post_record(c, SRDMA_REC_HOLD, p, sizeof(p));
}

/* A hostile reader or owner: every HOLD the protocol does not allow fails
 * the connection with a sentence, and the other side's state is unharmed
 * until then. */
static void test_hostile_hold(void)
{
	static const struct {
		bool from_owner; /* the server (owner) sends it */
		uint8_t kind;
		uint32_t region; /* 0: the granted readable region */
		uint64_t first, count;
		bool twice;
		const char *want;
	} cases[] = {
		{false, SRDMA_HOLD_ASK, 99, 0, 1, false, "never granted"},
		{false, SRDMA_HOLD_ASK, 2, 0, 1, false, "may not read"},
		{false, SRDMA_HOLD_ASK, 0, 3, 2, false, "asked to hold blocks"},
		{false, SRDMA_HOLD_ASK, 0, 0, 1, true, "was not released"},
		{false, SRDMA_HOLD_RELEASE, 0, 0, 1, false, "did not have"},
		{true, SRDMA_HOLD_HELD, 1, 0, 1, false, "did not ask for"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake_tp *ft;
		struct srdma_ctx *ctx = mk_ctx(&ft);
		struct srdma_conn *cl, *sv, *from, *victim;
		struct srdma_region *r;
		struct srdma_event ev;
		uint32_t id;

		mk_pair(ctx, SRDMA_PROTECT_INTEGRITY, &cl, &sv);
		r = grant(sv, cl, 4 * 4096, SRDMA_ACCESS_REMOTE_READ);
		(void)grant(sv, cl, 4096, SRDMA_ACCESS_REMOTE_WRITE);
		id = cases[i].region ? cases[i].region : r->id;
		from = cases[i].from_owner ? sv : cl;
		victim = cases[i].from_owner ? cl : sv;
		CHECK_RC(post_hold(from, cases[i].kind, id, cases[i].first,
				   cases[i].count),
			 0);
		if (cases[i].twice)
			CHECK_RC(post_hold(from, cases[i].kind, id,
					   cases[i].first, cases[i].count),
				 0);
		CHECK(wait_ev(ctx, victim, SRDMA_EV_CLOSED, &ev) == 0);
		CHECK(ev.status == SRDMA_EPROTO &&
		      strstr(ev.detail, cases[i].want) != NULL);
		if (!(ev.status == SRDMA_EPROTO &&
		      strstr(ev.detail, cases[i].want)))
			fprintf(stderr, "case %zu: %s\n", i, ev.detail);
		rm_ctx(ctx, ft);
	}
}

int main(void)
{
	if (test_pki_make(dir, sizeof(dir), "test_state", NULL) < 0)
		return 1;
	test_table();
	test_resurrection();
	test_order();
	test_credits();
	test_goodbye_drain();
	test_quota();
	test_write_ack();
	test_regrant();
	test_early_update();
	test_read_race();
	test_read_hold();
	test_read_hold_turns();
	test_hold_expiry();
	test_hostile_hold();
	test_hostile_owner();
	test_notice_flood();
	test_pki_remove(dir);
	TEST_DONE();
}
