/* SPDX-License-Identifier: MIT */
/*
 * raw_verbs: the raw verbs baseline for `srdma bench` over rdma_cm (RC) —
 * the same operation, size and window with no security and no library
 * layer. Needs an RDMA device (the Soft-RoCE VM: bench/vm-bench.sh).
 *
 *   raw_verbs server PORT [--busy]
 *   raw_verbs client HOST PORT --op write|read|send --size N --window W
 *             (--iters N | --duration S) [--mode bw|lat] [--json] [--busy]
 *
 * Set-up travels in rdma_cm private data: the client's config on connect,
 * the server's buffer address/rkey on accept. write/read end with the
 * client's disconnect; send bw is a one-way stream with an ack every
 * window/2 messages and a DONE message of another length; send lat is a
 * ping-pong with the server echoing. Completions are waited for on the
 * completion channel (--busy: spin on ibv_poll_cq).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "bench_util.h"

enum { OP_WRITE = 1, OP_READ, OP_SEND };
enum { CFG_MAGIC = 0x52415756, MAX_WINDOW = 256, NACK = 64 };
enum { K_RX = 1, K_TX, K_RMA, K_ACK_RX, K_ACK_TX };

#define WRID(k, i) (((uint64_t)(k) << 32) | (uint32_t)(i))
#define WR_K(id)   ((int)((id) >> 32))
#define WR_I(id)   ((uint32_t)(id))

struct cfg_msg {
	uint32_t magic, op, lat, window;
	uint64_t size;
};

struct reply_msg {
	uint64_t addr, len;
	uint32_t rkey, pad;
};

struct conn {
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
	struct ibv_mr *mr, *amr;
	uint8_t *buf;
	uint64_t acks[2 * NACK]; /* ack send + receive buffers */
	size_t buflen;
};

static int g_busy;

static _Noreturn void die(const char *what)
{
	perror(what);
	fprintf(stderr, "raw_verbs: %s failed\n", what);
	exit(1);
}

static struct rdma_cm_event *cm_wait(struct rdma_event_channel *ec,
				     enum rdma_cm_event_type want)
{
	struct rdma_cm_event *ev;

	if (rdma_get_cm_event(ec, &ev))
		die("rdma_get_cm_event");
	if (ev->event != want) {
		fprintf(stderr, "raw_verbs: got %s, wanted %s (status %d)\n",
			rdma_event_str(ev->event), rdma_event_str(want),
			ev->status);
		exit(1);
	}
	return ev;
}

static void setup(struct conn *c, size_t buflen)
{
	struct ibv_qp_init_attr qa = {0};
	struct ibv_context *v = c->id->verbs;

	c->pd = ibv_alloc_pd(v);
	c->ch = ibv_create_comp_channel(v);
	if (!c->pd || !c->ch)
		die("ibv_alloc_pd/channel");
	c->cq = ibv_create_cq(v, 1024, NULL, c->ch, 0);
	if (!c->cq)
		die("ibv_create_cq");
	qa.send_cq = qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = 2 * MAX_WINDOW;
	qa.cap.max_recv_wr = 2 * MAX_WINDOW;
	qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
	qa.cap.max_inline_data = 64;
	if (rdma_create_qp(c->id, c->pd, &qa)) {
		qa.cap.max_inline_data = 0;
		if (rdma_create_qp(c->id, c->pd, &qa))
			die("rdma_create_qp");
	}
	c->buflen = buflen;
	c->buf = aligned_alloc(4096, (buflen + 4095) & ~(size_t)4095);
	if (!c->buf)
		die("alloc");
	memset(c->buf, 0x3c, buflen);
	c->mr = ibv_reg_mr(c->pd, c->buf, buflen,
			   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_READ);
	c->amr = ibv_reg_mr(c->pd, c->acks, sizeof(c->acks),
			    IBV_ACCESS_LOCAL_WRITE);
	if (!c->mr || !c->amr)
		die("ibv_reg_mr");
}

static void teardown(struct conn *c)
{
	rdma_destroy_qp(c->id);
	ibv_dereg_mr(c->mr);
	ibv_dereg_mr(c->amr);
	ibv_destroy_cq(c->cq);
	ibv_destroy_comp_channel(c->ch);
	ibv_dealloc_pd(c->pd);
	free(c->buf);
}

static void cq_one(struct conn *c, struct ibv_wc *wc)
{
	for (;;) {
		int n = ibv_poll_cq(c->cq, 1, wc);
		if (n < 0)
			die("ibv_poll_cq");
		if (n == 0 && !g_busy) {
			struct ibv_cq *cq;
			void *ctx;
			struct pollfd p = {.fd = c->ch->fd, .events = POLLIN};
			ibv_req_notify_cq(c->cq, 0);
			n = ibv_poll_cq(c->cq, 1, wc);
			if (n == 0) {
				if (poll(&p, 1, 20000) <= 0) {
					fprintf(stderr, "raw_verbs: no "
							"completion in 20 s\n");
					exit(1);
				}
				if (ibv_get_cq_event(c->ch, &cq, &ctx))
					die("ibv_get_cq_event");
				ibv_ack_cq_events(cq, 1);
				continue;
			}
		}
		if (n == 1) {
			if (wc->status != IBV_WC_SUCCESS) {
				fprintf(stderr, "raw_verbs: completion: %s\n",
					ibv_wc_status_str(wc->status));
				exit(1);
			}
			return;
		}
	}
}

static void post_recv(struct conn *c, void *buf, size_t len, uint32_t lkey,
		      uint64_t wrid)
{
	struct ibv_sge sge = {(uintptr_t)buf, (uint32_t)len, lkey};
	struct ibv_recv_wr wr = {.wr_id = wrid, .sg_list = &sge, .num_sge = 1},
			   *bad;

	if (ibv_post_recv(c->id->qp, &wr, &bad))
		die("ibv_post_recv");
}

static void post_send(struct conn *c, enum ibv_wr_opcode opc, void *buf,
		      size_t len, uint32_t lkey, uint64_t raddr, uint32_t rkey,
		      uint64_t wrid)
{
	struct ibv_sge sge = {(uintptr_t)buf, (uint32_t)len, lkey};
	struct ibv_send_wr wr = {.wr_id = wrid,
				 .sg_list = &sge,
				 .num_sge = 1,
				 .opcode = opc,
				 .send_flags = IBV_SEND_SIGNALED},
			   *bad;

	if (opc == IBV_WR_SEND && len <= 64)
		wr.send_flags |= IBV_SEND_INLINE;
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	if (ibv_post_send(c->id->qp, &wr, &bad)) {
		wr.send_flags &= ~(unsigned)IBV_SEND_INLINE;
		if (ibv_post_send(c->id->qp, &wr, &bad))
			die("ibv_post_send");
	}
}

static size_t slot_len(uint64_t size)
{
	return (size_t)(size < 64 ? 64 : size) + 64;
}

/* ---- server ---- */

static void serve_send(struct conn *c, const struct cfg_msg *cfg)
{
	size_t sl = slot_len(cfg->size);
	uint64_t count = 0, every = cfg->window / 2 ? cfg->window / 2 : 1;
	unsigned nacks = 0;
	struct ibv_wc wc;

	for (;;) {
		cq_one(c, &wc);
		uint32_t i = WR_I(wc.wr_id);
		if (WR_K(wc.wr_id) == K_TX) { /* echo sent */
			post_recv(c, c->buf + i * sl, sl, c->mr->lkey,
				  WRID(K_RX, i));
			continue;
		}
		if (WR_K(wc.wr_id) != K_RX)
			continue;
		if (wc.byte_len != cfg->size) { /* DONE */
			c->acks[0] = count | 1ull << 63;
			post_send(c, IBV_WR_SEND, &c->acks[0], 8, c->amr->lkey,
				  0, 0, WRID(K_ACK_TX, 0));
			while (cq_one(c, &wc), WR_K(wc.wr_id) != K_ACK_TX ||
						       WR_I(wc.wr_id) != 0)
				;
			return;
		}
		count++;
		if (cfg->lat) {
			post_send(c, IBV_WR_SEND, c->buf + i * sl, wc.byte_len,
				  c->mr->lkey, 0, 0, WRID(K_TX, i));
			continue;
		}
		post_recv(c, c->buf + i * sl, sl, c->mr->lkey, WRID(K_RX, i));
		if (count % every == 0) {
			unsigned a = 1 + nacks++ % (NACK - 1);
			c->acks[a] = count;
			post_send(c, IBV_WR_SEND, &c->acks[a], 8, c->amr->lkey,
				  0, 0, WRID(K_ACK_TX, a));
		}
	}
}

static int server(const char *port)
{
	struct rdma_event_channel *ec = rdma_create_event_channel();
	struct rdma_cm_id *lid;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	if (!ec || rdma_create_id(ec, &lid, NULL, RDMA_PS_TCP))
		die("rdma_create_id");
	sa.sin_port = htons((uint16_t)atoi(port));
	if (rdma_bind_addr(lid, (struct sockaddr *)&sa) || rdma_listen(lid, 8))
		die("rdma_listen");
	fprintf(stderr, "raw_verbs: listening on port %s\n", port);
	for (;;) {
		struct rdma_cm_event *ev =
			cm_wait(ec, RDMA_CM_EVENT_CONNECT_REQUEST);
		struct conn c = {.id = ev->id};
		struct cfg_msg cfg = {0};
		struct reply_msg rep = {0};
		struct rdma_conn_param p = {0};
		if (ev->param.conn.private_data_len >= sizeof(cfg))
			memcpy(&cfg, ev->param.conn.private_data, sizeof(cfg));
		rdma_ack_cm_event(ev);
		if (cfg.magic != CFG_MAGIC || !cfg.size ||
		    cfg.window > MAX_WINDOW) {
			rdma_reject(c.id, NULL, 0);
			rdma_destroy_id(c.id);
			continue;
		}
		size_t sl = slot_len(cfg.size);
		setup(&c, cfg.op == OP_SEND ? sl * (cfg.window + 2)
					    : cfg.size * cfg.window);
		if (cfg.op == OP_SEND) {
			unsigned n = cfg.lat ? 2 : cfg.window + 2;
			for (unsigned i = 0; i < n; i++)
				post_recv(&c, c.buf + i * sl, sl, c.mr->lkey,
					  WRID(K_RX, i));
		}
		rep.addr = (uintptr_t)c.buf;
		rep.len = c.buflen;
		rep.rkey = c.mr->rkey;
		p.private_data = &rep;
		p.private_data_len = sizeof(rep);
		p.responder_resources = 16;
		p.initiator_depth = 16;
		p.rnr_retry_count = 7;
		if (rdma_accept(c.id, &p))
			die("rdma_accept");
		rdma_ack_cm_event(cm_wait(ec, RDMA_CM_EVENT_ESTABLISHED));
		if (cfg.op == OP_SEND)
			serve_send(&c, &cfg);
		rdma_ack_cm_event(cm_wait(ec, RDMA_CM_EVENT_DISCONNECTED));
		teardown(&c);
		rdma_destroy_id(c.id);
	}
	return 0;
}

/* ---- client ---- */

struct copts {
	int op, lat, json;
	uint64_t size, iters;
	unsigned window;
	double duration;
};

static bool more(const struct copts *o, uint64_t n, double t0)
{
	return o->iters ? n < o->iters : now_s() - t0 < o->duration;
}

static void add_lat(double **lat, size_t *n, size_t *cap, double us)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4096;
		*lat = realloc(*lat, *cap * sizeof(**lat));
		if (!*lat)
			die("realloc");
	}
	(*lat)[(*n)++] = us;
}

static int client(const char *host, const char *port, const struct copts *o)
{
	struct rdma_event_channel *ec = rdma_create_event_channel();
	struct rdma_cm_event *ev;
	struct addrinfo *ai, hints = {.ai_family = AF_INET};
	struct conn cc = {0}, *c = &cc;
	struct cfg_msg cfg = {CFG_MAGIC, (uint32_t)o->op, (uint32_t)o->lat,
			      o->window, o->size};
	struct reply_msg rep;
	struct rdma_conn_param p = {0};
	unsigned window = o->lat ? 1 : o->window;
	size_t sl = slot_len(o->size), nlat = 0, cap = 0;
	uint64_t done = 0;
	double t0, secs, *lat = NULL;
	struct ibv_wc wc;

	if (!ec || rdma_create_id(ec, &c->id, NULL, RDMA_PS_TCP))
		die("rdma_create_id");
	if (getaddrinfo(host, port, &hints, &ai)) {
		fprintf(stderr, "raw_verbs: cannot resolve %s\n", host);
		return 1;
	}
	if (rdma_resolve_addr(c->id, NULL, ai->ai_addr, 2000))
		die("rdma_resolve_addr");
	freeaddrinfo(ai);
	rdma_ack_cm_event(cm_wait(ec, RDMA_CM_EVENT_ADDR_RESOLVED));
	if (rdma_resolve_route(c->id, 2000))
		die("rdma_resolve_route");
	rdma_ack_cm_event(cm_wait(ec, RDMA_CM_EVENT_ROUTE_RESOLVED));
	setup(c, o->op == OP_SEND ? sl * 2 : o->size * window);
	/* One receive queue: ack buffers only where only acks arrive. */
	if (o->op == OP_SEND && !o->lat)
		for (unsigned i = NACK; i < 2 * NACK; i++)
			post_recv(c, &c->acks[i], 8, c->amr->lkey,
				  WRID(K_ACK_RX, i));
	p.private_data = &cfg;
	p.private_data_len = sizeof(cfg);
	p.responder_resources = 16;
	p.initiator_depth = 16;
	p.retry_count = 7;
	p.rnr_retry_count = 7;
	if (rdma_connect(c->id, &p))
		die("rdma_connect");
	ev = cm_wait(ec, RDMA_CM_EVENT_ESTABLISHED);
	if (ev->param.conn.private_data_len < sizeof(rep)) {
		fprintf(stderr, "raw_verbs: no reply in accept data\n");
		return 1;
	}
	memcpy(&rep, ev->param.conn.private_data, sizeof(rep));
	rdma_ack_cm_event(ev);

	if (o->op != OP_SEND) {
		double tissue[MAX_WINDOW];
		enum ibv_wr_opcode opc = o->op == OP_WRITE ? IBV_WR_RDMA_WRITE
							   : IBV_WR_RDMA_READ;
		for (int pass = 0; pass < 2; pass++) {
			uint64_t issued = 0;
			done = 0;
			t0 = now_s();
			for (;;) {
				while (issued - done < window &&
				       (pass ? more(o, issued, t0)
					     : issued < window * 2u)) {
					unsigned k =
						(unsigned)(issued % window);
					tissue[k] = now_s();
					post_send(c, opc, c->buf + k * o->size,
						  o->size, c->mr->lkey,
						  rep.addr + k * o->size,
						  rep.rkey, WRID(K_RMA, k));
					issued++;
				}
				if (done == issued)
					break;
				cq_one(c, &wc);
				if (WR_K(wc.wr_id) != K_RMA)
					continue;
				if (pass && o->lat)
					add_lat(&lat, &nlat, &cap,
						(now_s() -
						 tissue[WR_I(wc.wr_id)]) *
							1e6);
				done++;
			}
		}
		secs = now_s() - t0;
	} else if (o->lat) {
		uint8_t *out = c->buf, *in = c->buf + sl;
		for (int pass = 0; pass < 2; pass++) {
			done = 0;
			t0 = now_s();
			while (pass ? more(o, done, t0) : done < 8) {
				double t = now_s();
				int seen = 0;
				post_recv(c, in, sl, c->mr->lkey,
					  WRID(K_RX, 0));
				post_send(c, IBV_WR_SEND, out, o->size,
					  c->mr->lkey, 0, 0, WRID(K_TX, 0));
				while (seen != 3) {
					cq_one(c, &wc);
					seen |= WR_K(wc.wr_id) == K_RX	 ? 1
						: WR_K(wc.wr_id) == K_TX ? 2
									 : 0;
				}
				if (pass)
					add_lat(&lat, &nlat, &cap,
						(now_s() - t) * 1e6);
				done++;
			}
		}
		secs = now_s() - t0;
		post_recv(c, in, sl, c->mr->lkey, WRID(K_ACK_RX, 0));
		post_send(c, IBV_WR_SEND, out, sl - 1, c->mr->lkey, 0, 0,
			  WRID(K_TX, 1));
		while (cq_one(c, &wc), WR_K(wc.wr_id) != K_ACK_RX)
			;
	} else {
		uint64_t acked = 0;
		unsigned ntx = 0;
		bool sent_done = false;
		t0 = now_s();
		for (;;) {
			bool go = more(o, done, t0);
			if (go && done - acked < window && ntx < window) {
				post_send(c, IBV_WR_SEND, c->buf, o->size,
					  c->mr->lkey, 0, 0, WRID(K_TX, 0));
				done++;
				ntx++;
				continue;
			}
			if (!go && !sent_done && ntx == 0) {
				post_send(c, IBV_WR_SEND, c->buf, sl - 1,
					  c->mr->lkey, 0, 0, WRID(K_TX, 1));
				ntx++;
				sent_done = true;
			}
			cq_one(c, &wc);
			if (WR_K(wc.wr_id) == K_TX) {
				ntx--;
			} else if (WR_K(wc.wr_id) == K_ACK_RX) {
				uint32_t i = WR_I(wc.wr_id);
				uint64_t v = c->acks[i];
				if (v >> 63) {
					if ((uint64_t)(v & ~(1ull << 63)) !=
					    done) {
						fprintf(stderr,
							"raw_verbs: server got "
							"%" PRIu64
							", sent %" PRIu64 "\n",
							(uint64_t)(v &
								   ~(1ull
								     << 63)),
							done);
						return 1;
					}
					break;
				}
				acked = v;
				post_recv(c, &c->acks[i], 8, c->amr->lkey,
					  WRID(K_ACK_RX, i));
			}
		}
		secs = now_s() - t0;
	}

	double gbs = (double)done * (double)o->size / secs / 1e9;
	double mps = (double)done / secs;
	static const char *const opn[] = {"?", "write", "read", "send"};
	if (o->json)
		printf("{\"tool\":\"raw_verbs\",\"op\":\"%s\",\"mode\":\"%s\","
		       "\"size\":%" PRIu64 ",\"iters\":%" PRIu64
		       ",\"window\":%u,\"protect\":\"raw\","
		       "\"transport\":\"verbs\",\"provider\":\"%s\","
		       "\"seconds\":%.6f,\"gbytes_per_s\":%.6f,"
		       "\"gbits_per_s\":%.6f,\"msgs_per_s\":%.1f",
		       opn[o->op], o->lat ? "lat" : "bw", o->size, done, window,
		       ibv_get_device_name(c->id->verbs->device), secs, gbs,
		       gbs * 8, mps);
	else
		printf("raw_verbs %s %s size %" PRIu64 " window %u: %" PRIu64
		       " ops in %.3f s, %.3f GB/s, %.4f Mmsg/s",
		       opn[o->op], o->lat ? "lat" : "bw", o->size, window, done,
		       secs, gbs, mps / 1e6);
	if (o->lat && nlat) {
		double sum = 0, p50, p99;
		for (size_t i = 0; i < nlat; i++)
			sum += lat[i];
		pct(lat, nlat, &p50, &p99);
		printf(o->json ? ",\"lat_us_avg\":%.3f,\"lat_us_p50\":%.3f,"
				 "\"lat_us_p99\":%.3f"
			       : ", lat avg %.2f p50 %.2f p99 %.2f us",
		       sum / (double)nlat, p50, p99);
	}
	printf(o->json ? "}\n" : "\n");
	free(lat);
	rdma_disconnect(c->id);
	rdma_ack_cm_event(cm_wait(ec, RDMA_CM_EVENT_DISCONNECTED));
	teardown(c);
	rdma_destroy_id(c->id);
	rdma_destroy_event_channel(ec);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: raw_verbs server PORT [--busy]\n"
		"       raw_verbs client HOST PORT --op write|read|send --size "
		"N --window W\n"
		"                 (--iters N | --duration S) [--mode bw|lat] "
		"[--json] [--busy]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct copts o = {
		.op = OP_WRITE, .size = 65536, .iters = 1000, .window = 16};
	int first;

	if (argc < 3)
		usage();
	first = !strcmp(argv[1], "server") ? 3 : 4;
	if (first > argc)
		usage();
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		uint64_t n;
		if (!strcmp(a, "--json")) {
			o.json = 1;
			continue;
		}
		if (!strcmp(a, "--busy")) {
			g_busy = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(a, "--op"))
			o.op = !strcmp(v, "write")  ? OP_WRITE
			       : !strcmp(v, "read") ? OP_READ
			       : !strcmp(v, "send") ? OP_SEND
						    : (usage(), 0);
		else if (!strcmp(a, "--mode"))
			o.lat = !strcmp(v, "lat");
		else if (!strcmp(a, "--size") && !parse_size(v, &n) && n)
			o.size = n;
		else if (!strcmp(a, "--iters") && !parse_size(v, &n) && n)
			o.iters = n, o.duration = 0;
		else if (!strcmp(a, "--duration"))
			o.duration = atof(v), o.iters = 0;
		else if (!strcmp(a, "--window") && !parse_size(v, &n) && n &&
			 n <= MAX_WINDOW)
			o.window = (unsigned)n;
		else
			usage();
	}
	if (!strcmp(argv[1], "server"))
		return server(argv[2]);
	if (!strcmp(argv[1], "client"))
		return client(argv[2], argv[3], &o);
	usage();
	return 2;
}
