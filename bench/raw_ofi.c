/* SPDX-License-Identifier: MIT */
/*
 * raw_ofi: the raw libfabric baseline for `srdma bench` — the same
 * operation, size and window over an FI_EP_MSG endpoint (provider tcp by
 * default), with no security and no library layer.
 *
 *   raw_ofi server PORT [--provider P]
 *   raw_ofi client HOST PORT --op write|read|send --size N --window W
 *           (--iters N | --duration S) [--mode bw|lat] [--json]
 *           [--delivery-complete] [--provider P]
 *   raw_ofi client HOST PORT --op connect [--iters N | --duration S]
 *           [--json] [--provider P]
 *
 * Both sides wait on their completion queue with fi_cq_sread (--busy:
 * spin on fi_cq_read); libfabric tcp progress is manual: the target only
 * moves when it reads its CQ. The server serves
 * one client at a time, forever. Session set-up over the endpoint itself:
 * the client sends a config message, the server registers its buffer and
 * answers with address/key; write/read end with a DONE message. send bw is
 * a one-way stream with an ack every window/2 messages (like srdma's bench
 * sink); send lat is a ping-pong with the server echoing.
 *
 * --op connect is the bare fabric set-up baseline for `srdma bench --mode
 * connect`: N sequential cycles of endpoint + CQ + MR, fi_connect, one
 * 64-byte message echoed by the server and checked, fi_shutdown and close
 * (fabric, domain and EQ stay open, as a context's do). It reports the
 * connect time (fi_endpoint to FI_CONNECTED), the time to the first
 * verified byte (median and p99) and cycles per second.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "bench_util.h"

#define API FI_VERSION(1, 9)

/* --busy: spin on fi_cq_read; default: sleep in fi_cq_sread like srdma */
static int g_busy;

enum { OP_WRITE = 1, OP_READ, OP_SEND, OP_CONNECT };
enum { CFG_MAGIC = 0x52415731, MAX_WINDOW = 256, CTRL_LEN = 64 };

struct cfg_msg {
	uint32_t magic, op, lat, window;
	uint64_t size, buflen;
};

struct reply_msg {
	uint64_t addr, key, len;
};

/* wr context: kind in the top byte, slot below */
#define CTX(kind, i) ((void *)(uintptr_t)(((uint64_t)(kind) << 32) | (i)))
#define CTX_KIND(c)  ((int)((uintptr_t)(c) >> 32))
#define CTX_IDX(c)   ((uint32_t)((uintptr_t)(c)&0xffffffffu))
enum { K_CTRL_RX = 1, K_CTRL_TX, K_DATA_RX, K_DATA_TX, K_RMA, K_ACK_TX };

struct ep {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_ep *ep;
	struct fid_cq *cq;
	struct fid_mr *mr, *ctrl_mr;
	uint8_t *buf, *ctrl; /* data buffer; ctrl: 2 x CTRL_LEN */
	size_t buflen;
	bool virt_addr;
};

static _Noreturn void die(const char *what, int rc)
{
	fprintf(stderr, "raw_ofi: %s: %s\n", what, fi_strerror(-rc));
	exit(1);
}

static struct fi_info *hints(const char *prov)
{
	struct fi_info *h = fi_allocinfo();

	if (!h)
		die("fi_allocinfo", -FI_ENOMEM);
	h->ep_attr->type = FI_EP_MSG;
	h->caps = FI_MSG | FI_RMA;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
				  FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->fabric_attr->prov_name = strdup(prov);
	return h;
}

static void reg(struct ep *e, void *buf, size_t len, struct fid_mr **mr,
		uint64_t key)
{
	int rc = fi_mr_reg(e->domain, buf, len,
			   FI_SEND | FI_RECV | FI_READ | FI_WRITE |
				   FI_REMOTE_READ | FI_REMOTE_WRITE,
			   0, key, 0, mr, NULL);
	if (rc)
		die("fi_mr_reg", rc);
}

/* Endpoint + CQ on e->domain for e->info; bound and enabled. */
static void open_ep(struct ep *e)
{
	struct fi_cq_attr ca = {.size = 1024,
				.format = FI_CQ_FORMAT_DATA,
				.wait_obj =
					g_busy ? FI_WAIT_NONE : FI_WAIT_UNSPEC};
	int rc;

	if ((rc = fi_endpoint(e->domain, e->info, &e->ep, NULL)))
		die("fi_endpoint", rc);
	if ((rc = fi_cq_open(e->domain, &ca, &e->cq, NULL)))
		die("fi_cq_open", rc);
	if ((rc = fi_ep_bind(e->ep, &e->eq->fid, 0)))
		die("fi_ep_bind eq", rc);
	if ((rc = fi_ep_bind(e->ep, &e->cq->fid, FI_TRANSMIT | FI_RECV)))
		die("fi_ep_bind cq", rc);
	if ((rc = fi_enable(e->ep)))
		die("fi_enable", rc);
	e->virt_addr = e->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR;
	e->ctrl = aligned_alloc(4096, 4096);
	if (!e->ctrl)
		die("alloc", -FI_ENOMEM);
	memset(e->ctrl, 0, 4096);
	reg(e, e->ctrl, 4096, &e->ctrl_mr, 1);
}

/* Waits for event `want` on e->ep; events of earlier endpoints sharing the
 * EQ (a late FI_SHUTDOWN or error) are skipped. */
static void wait_cm(struct ep *e, uint32_t want)
{
	struct fi_eq_cm_entry ent;
	uint32_t ev;
	ssize_t n;

	for (;;) {
		n = fi_eq_sread(e->eq, &ev, &ent, sizeof(ent), 10000, 0);
		if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT) {
			fprintf(stderr, "raw_ofi: no connection event\n");
			exit(1);
		}
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry err = {0};
			fi_eq_readerr(e->eq, &err, 0);
			if (err.fid != &e->ep->fid)
				continue;
			fprintf(stderr, "raw_ofi: connection failed: %s\n",
				fi_strerror(err.err));
			exit(1);
		}
		if (n < 0)
			die("fi_eq_sread", (int)n);
		if (ev == want && ent.fid == &e->ep->fid)
			return;
	}
}

/* One completion (busy-polling); returns its context and length. */
static void *cq_one(struct ep *e, size_t *len)
{
	struct fi_cq_data_entry c;
	ssize_t n;

	for (;;) {
		n = g_busy ? fi_cq_read(e->cq, &c, 1)
			   : fi_cq_sread(e->cq, &c, 1, NULL, 10000);
		if (n == 1) {
			if (len)
				*len = c.len;
			return c.op_context;
		}
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry err = {0};
			fi_cq_readerr(e->cq, &err, 0);
			fprintf(stderr, "raw_ofi: completion error: %s\n",
				fi_strerror(err.err));
			exit(1);
		}
		if (n != -FI_EAGAIN)
			die(g_busy ? "fi_cq_read" : "fi_cq_sread (10 s)",
			    (int)n);
	}
}

#define POST(call)                                                             \
	do {                                                                   \
		ssize_t r_;                                                    \
		while ((r_ = (call)) == -FI_EAGAIN)                            \
			fi_cq_read(e->cq, NULL, 0); /* progress */             \
		if (r_)                                                        \
			die(#call, (int)r_);                                   \
	} while (0)

static void *ctrl_rx(struct ep *e)
{
	return e->ctrl;
}

static void *ctrl_tx(struct ep *e)
{
	return e->ctrl + CTRL_LEN;
}

static void post_ctrl_recv(struct ep *e)
{
	POST(fi_recv(e->ep, ctrl_rx(e), CTRL_LEN, fi_mr_desc(e->ctrl_mr), 0,
		     CTX(K_CTRL_RX, 0)));
}

static void send_ctrl(struct ep *e, const void *m, size_t len)
{
	memcpy(ctrl_tx(e), m, len);
	POST(fi_send(e->ep, ctrl_tx(e), len, fi_mr_desc(e->ctrl_mr), 0,
		     CTX(K_CTRL_TX, 0)));
}

static void close_ep(struct ep *e)
{
	if (e->ep)
		fi_close(&e->ep->fid);
	if (e->mr)
		fi_close(&e->mr->fid);
	if (e->ctrl_mr)
		fi_close(&e->ctrl_mr->fid);
	if (e->cq)
		fi_close(&e->cq->fid);
	free(e->buf);
	free(e->ctrl);
	e->ep = NULL;
	e->mr = e->ctrl_mr = NULL;
	e->cq = NULL;
	e->buf = e->ctrl = NULL;
}

/* ---- server ---- */

static size_t slot_len(uint64_t size)
{
	return (size_t)(size < 64 ? 64 : size) + 64;
}

static void serve_one(struct ep *e, const struct cfg_msg *cfg)
{
	size_t sl = slot_len(cfg->size), got;
	uint64_t count = 0, every = cfg->window / 2 ? cfg->window / 2 : 1;
	unsigned nacks = 0;
	uint64_t acks[64];
	struct reply_msg rep;

	if (cfg->op == OP_SEND)
		e->buflen = sl * (cfg->window + 2);
	else
		e->buflen = cfg->buflen;
	e->buf = aligned_alloc(4096, (e->buflen + 4095) & ~(size_t)4095);
	if (!e->buf)
		die("alloc", -FI_ENOMEM);
	memset(e->buf, 0, e->buflen);
	reg(e, e->buf, e->buflen, &e->mr, 2);
	if (cfg->op == OP_SEND) {
		unsigned n = cfg->lat ? 2 : cfg->window + 2;
		for (unsigned i = 0; i < n; i++)
			POST(fi_recv(e->ep, e->buf + i * sl, sl,
				     fi_mr_desc(e->mr), 0, CTX(K_DATA_RX, i)));
	} else {
		post_ctrl_recv(e);
	}
	rep.addr = e->virt_addr ? (uintptr_t)e->buf : 0;
	rep.key = fi_mr_key(e->mr);
	rep.len = e->buflen;
	send_ctrl(e, &rep, sizeof(rep));
	for (;;) {
		void *ctx = cq_one(e, &got);
		uint32_t i = CTX_IDX(ctx);
		switch (CTX_KIND(ctx)) {
		case K_CTRL_RX: /* DONE for write/read */
			send_ctrl(e, &count, sizeof(count));
			cq_one(e, NULL);
			return;
		case K_DATA_RX:
			if (got != cfg->size) { /* DONE */
				count |= 1ull << 63;
				send_ctrl(e, &count, sizeof(count));
				while (CTX_KIND(cq_one(e, NULL)) != K_CTRL_TX)
					;
				return;
			}
			count++;
			if (cfg->lat) {
				POST(fi_send(e->ep, e->buf + i * sl, got,
					     fi_mr_desc(e->mr), 0,
					     CTX(K_DATA_TX, i)));
				break;
			}
			POST(fi_recv(e->ep, e->buf + i * sl, sl,
				     fi_mr_desc(e->mr), 0, CTX(K_DATA_RX, i)));
			if (count % every == 0) {
				unsigned a = nacks++ % 64;
				acks[a] = count;
				memcpy(e->ctrl + 2 * CTRL_LEN + a * 8, &acks[a],
				       8);
				POST(fi_send(e->ep,
					     e->ctrl + 2 * CTRL_LEN + a * 8, 8,
					     fi_mr_desc(e->ctrl_mr), 0,
					     CTX(K_ACK_TX, a)));
			}
			break;
		case K_DATA_TX: /* echo sent: the slot takes messages again */
			POST(fi_recv(e->ep, e->buf + i * sl, sl,
				     fi_mr_desc(e->mr), 0, CTX(K_DATA_RX, i)));
			break;
		default:
			break;
		}
	}
}

static int server(const char *port, const char *prov)
{
	struct fi_info *h = hints(prov), *info;
	struct fid_pep *pep;
	struct fid_fabric *fabric;
	struct fid_domain *domain = NULL;
	struct fid_eq *peq;
	struct fi_eq_attr ea = {.wait_obj = FI_WAIT_UNSPEC};
	int rc;

	rc = fi_getinfo(API, NULL, port, FI_SOURCE, h, &info);
	if (rc)
		die("fi_getinfo (server)", rc);
	if ((rc = fi_fabric(info->fabric_attr, &fabric, NULL)))
		die("fi_fabric", rc);
	if ((rc = fi_eq_open(fabric, &ea, &peq, NULL)))
		die("fi_eq_open", rc);
	if ((rc = fi_passive_ep(fabric, info, &pep, NULL)))
		die("fi_passive_ep", rc);
	if ((rc = fi_pep_bind(pep, &peq->fid, 0)))
		die("fi_pep_bind", rc);
	if ((rc = fi_listen(pep)))
		die("fi_listen", rc);
	fprintf(stderr, "raw_ofi: listening on port %s (%s)\n", port, prov);
	for (;;) {
		struct fi_eq_cm_entry ent;
		struct ep e = {0};
		struct cfg_msg cfg;
		uint32_t ev;
		ssize_t n = fi_eq_sread(peq, &ev, &ent, sizeof(ent), -1, 0);
		if (n == -FI_EAGAIN || n == -FI_EINTR)
			continue;
		if (n < 0) {
			struct fi_eq_err_entry err = {0};
			fi_eq_readerr(peq, &err, 0);
			continue;
		}
		if (ev != FI_CONNREQ)
			continue;
		e.info = ent.info;
		e.fabric = fabric;
		e.eq = peq;
		/* One domain for every client, as a server keeps it. */
		if (!domain && (rc = fi_domain(fabric, e.info, &domain, NULL)))
			die("fi_domain", rc);
		e.domain = domain;
		open_ep(&e);
		post_ctrl_recv(&e);
		if ((rc = fi_accept(e.ep, NULL, 0)))
			die("fi_accept", rc);
		wait_cm(&e, FI_CONNECTED);
		while (CTX_KIND(cq_one(&e, NULL)) != K_CTRL_RX)
			;
		memcpy(&cfg, ctrl_rx(&e), sizeof(cfg));
		if (cfg.magic == CFG_MAGIC && cfg.op == OP_CONNECT) {
			/* connect baseline: echo the 64 bytes */
			send_ctrl(&e, ctrl_rx(&e), CTRL_LEN);
			while (CTX_KIND(cq_one(&e, NULL)) != K_CTRL_TX)
				;
		} else if (cfg.magic == CFG_MAGIC && cfg.window <= MAX_WINDOW &&
			   cfg.size && cfg.buflen <= (4ull << 30)) {
			serve_one(&e, &cfg);
		}
		fi_shutdown(e.ep, 0);
		close_ep(&e);
		fi_freeinfo(e.info);
	}
	return 0;
}

/* ---- client ---- */

struct copts {
	int op, lat, json, delivery;
	uint64_t size, iters;
	unsigned window;
	double duration;
};

static bool more(const struct copts *o, uint64_t n, double t0)
{
	return o->iters ? n < o->iters : now_s() - t0 < o->duration;
}

static int client(const char *host, const char *port, const char *prov,
		  const struct copts *o)
{
	struct fi_info *h = hints(prov);
	struct fi_eq_attr ea = {.wait_obj = FI_WAIT_UNSPEC};
	struct ep ee = {0}, *e = &ee;
	struct cfg_msg cfg = {CFG_MAGIC, (uint32_t)o->op, (uint32_t)o->lat,
			      o->window, o->size,	  o->size * o->window};
	struct reply_msg rep;
	uint64_t done = 0, issued = 0;
	size_t sl = slot_len(o->size);
	double t0, secs, *lat = NULL;
	size_t nlat = 0, cap = 0;
	unsigned window = o->lat ? 1 : o->window;
	int rc;

	rc = fi_getinfo(API, host, port, 0, h, &e->info);
	if (rc)
		die("fi_getinfo (client)", rc);
	if ((rc = fi_fabric(e->info->fabric_attr, &e->fabric, NULL)))
		die("fi_fabric", rc);
	if ((rc = fi_eq_open(e->fabric, &ea, &e->eq, NULL)))
		die("fi_eq_open", rc);
	if ((rc = fi_domain(e->fabric, e->info, &e->domain, NULL)))
		die("fi_domain", rc);
	open_ep(e);
	e->buflen = o->op == OP_SEND ? sl * 2 : o->size * window;
	e->buf = aligned_alloc(4096, (e->buflen + 4095) & ~(size_t)4095);
	if (!e->buf)
		die("alloc", -FI_ENOMEM);
	memset(e->buf, 0xa5, e->buflen);
	reg(e, e->buf, e->buflen, &e->mr, 3);
	post_ctrl_recv(e);
	if ((rc = fi_connect(e->ep, e->info->dest_addr, NULL, 0)))
		die("fi_connect", rc);
	wait_cm(e, FI_CONNECTED);
	send_ctrl(e, &cfg, sizeof(cfg));
	for (;;) {
		void *c = cq_one(e, NULL);
		if (CTX_KIND(c) == K_CTRL_RX)
			break;
	}
	memcpy(&rep, ctrl_rx(e), sizeof(rep));

	if (o->op != OP_SEND) {
		uint64_t flags = FI_COMPLETION |
				 (o->delivery ? FI_DELIVERY_COMPLETE : 0);
		double tissue[MAX_WINDOW];
		for (int pass = 0; pass < 2; pass++) {
			uint64_t limit = pass ? o->iters : window * 2u;
			issued = done = 0;
			t0 = now_s();
			for (;;) {
				while (issued - done < window &&
				       (pass ? more(o, issued, t0)
					     : issued < limit)) {
					unsigned k =
						(unsigned)(issued % window);
					uint8_t *lb = e->buf + k * o->size;
					uint64_t ra = rep.addr + k * o->size;
					struct iovec iov = {lb, o->size};
					void *desc = fi_mr_desc(e->mr);
					struct fi_rma_iov rma = {ra, o->size,
								 rep.key};
					struct fi_msg_rma m = {
						.msg_iov = &iov,
						.desc = &desc,
						.iov_count = 1,
						.rma_iov = &rma,
						.rma_iov_count = 1,
						.context = CTX(K_RMA, k)};
					tissue[k] = now_s();
					if (o->op == OP_WRITE)
						POST(fi_writemsg(e->ep, &m,
								 flags));
					else
						POST(fi_readmsg(e->ep, &m,
								FI_COMPLETION));
					issued++;
				}
				if (done == issued)
					break;
				void *c = cq_one(e, NULL);
				if (CTX_KIND(c) != K_RMA)
					continue;
				if (pass && o->lat) {
					if (nlat == cap) {
						cap = cap ? cap * 2 : 4096;
						lat = realloc(
							lat,
							cap * sizeof(*lat));
					}
					lat[nlat++] =
						(now_s() - tissue[CTX_IDX(c)]) *
						1e6;
				}
				done++;
			}
		}
		secs = now_s() - t0;
		post_ctrl_recv(e);
		send_ctrl(e, "DONE", 4);
		while (CTX_KIND(cq_one(e, NULL)) != K_CTRL_RX)
			;
	} else if (o->lat) {
		uint8_t *out = e->buf, *in = e->buf + sl;
		for (int pass = 0; pass < 2; pass++) {
			done = 0;
			t0 = now_s();
			while (pass ? more(o, done, t0) : done < 8) {
				double t = now_s();
				POST(fi_recv(e->ep, in, sl, fi_mr_desc(e->mr),
					     0, CTX(K_DATA_RX, 0)));
				POST(fi_send(e->ep, out, o->size,
					     fi_mr_desc(e->mr), 0,
					     CTX(K_DATA_TX, 0)));
				int seen = 0;
				while (seen != 3) {
					int k = CTX_KIND(cq_one(e, NULL));
					seen |= k == K_DATA_RX	 ? 1
						: k == K_DATA_TX ? 2
								 : 0;
				}
				if (pass) {
					if (nlat == cap) {
						cap = cap ? cap * 2 : 4096;
						lat = realloc(
							lat,
							cap * sizeof(*lat));
					}
					lat[nlat++] = (now_s() - t) * 1e6;
				}
				done++;
			}
		}
		secs = now_s() - t0;
		post_ctrl_recv(e);
		/* DONE: a length other than size, into a data slot */
		POST(fi_send(e->ep, e->buf, sl - 1, fi_mr_desc(e->mr), 0,
			     CTX(K_DATA_TX, 1)));
		while (CTX_KIND(cq_one(e, NULL)) != K_CTRL_RX)
			;
	} else {
		/* One-way stream: at most window messages beyond the acks;
		 * the clock stops at the server's final ack. */
		uint64_t acked = 0, sent_done = 0;
		unsigned ntx = 0;
		for (unsigned i = 0; i < 16; i++)
			POST(fi_recv(e->ep, e->ctrl + 2 * CTRL_LEN + i * 64, 64,
				     fi_mr_desc(e->ctrl_mr), 0,
				     CTX(K_CTRL_RX, 1 + i)));
		t0 = now_s();
		done = 0;
		for (;;) {
			bool go = more(o, done, t0);
			if (go && done - acked < window && ntx < window) {
				POST(fi_send(e->ep, e->buf, o->size,
					     fi_mr_desc(e->mr), 0,
					     CTX(K_DATA_TX, 0)));
				done++;
				ntx++;
				continue;
			}
			if (!go && !sent_done && ntx == 0) {
				POST(fi_send(e->ep, e->buf, sl - 1,
					     fi_mr_desc(e->mr), 0,
					     CTX(K_DATA_TX, 1)));
				ntx++;
				sent_done = 1;
			}
			void *c = cq_one(e, NULL);
			if (CTX_KIND(c) == K_DATA_TX) {
				ntx--;
			} else if (CTX_KIND(c) == K_CTRL_RX) {
				uint32_t i = CTX_IDX(c);
				uint64_t v;
				uint8_t *p = i ? e->ctrl + 2 * CTRL_LEN +
							     (i - 1) * 64
					       : ctrl_rx(e);
				memcpy(&v, p, 8);
				if (v >> 63) {
					if ((v & ~(1ull << 63)) != done) {
						fprintf(stderr,
							"raw_ofi: server got "
							"%" PRIu64
							" messages, sent "
							"%" PRIu64 "\n",
							(uint64_t)(v &
								   ~(1ull
								     << 63)),
							done);
						return 1;
					}
					break;
				}
				acked = v;
				POST(fi_recv(e->ep, p, 64,
					     fi_mr_desc(e->ctrl_mr), 0,
					     CTX(K_CTRL_RX, i)));
			}
		}
		secs = now_s() - t0;
	}

	double gbs = (double)done * (double)o->size / secs / 1e9;
	double mps = (double)done / secs;
	static const char *const opn[] = {"?", "write", "read", "send"};
	if (o->json) {
		printf("{\"tool\":\"raw_ofi\",\"op\":\"%s\",\"mode\":\"%s\","
		       "\"size\":%" PRIu64 ",\"iters\":%" PRIu64
		       ",\"window\":%u,\"protect\":\"raw\","
		       "\"transport\":\"ofi\",\"provider\":\"%s\","
		       "\"seconds\":%.6f,\"gbytes_per_s\":%.6f,"
		       "\"gbits_per_s\":%.6f,\"msgs_per_s\":%.1f",
		       opn[o->op], o->lat ? "lat" : "bw", o->size, done, window,
		       prov, secs, gbs, gbs * 8, mps);
	} else {
		printf("raw_ofi %s %s size %" PRIu64 " window %u: %" PRIu64
		       " ops in %.3f s, %.3f GB/s, %.4f Mmsg/s",
		       opn[o->op], o->lat ? "lat" : "bw", o->size, window, done,
		       secs, gbs, mps / 1e6);
	}
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
	fi_shutdown(e->ep, 0);
	close_ep(e);
	fi_close(&e->domain->fid);
	fi_close(&e->eq->fid);
	fi_close(&e->fabric->fid);
	fi_freeinfo(e->info);
	fi_freeinfo(h);
	return 0;
}

/* ---- connect baseline ---- */

/* One cycle; returns the connect and first-byte times in us. */
static void connect_cycle(struct ep *e, uint32_t i, double *conn_us,
			  double *first_us)
{
	struct cfg_msg cfg = {CFG_MAGIC, OP_CONNECT, 0, 0, i, 0};
	uint8_t msg[CTRL_LEN];
	double t0 = now_s(), t1;
	int rc, seen = 0;

	for (size_t k = 0; k < sizeof(msg); k++)
		msg[k] = (uint8_t)(k * 7u + i);
	memcpy(msg, &cfg, sizeof(cfg));
	open_ep(e);
	post_ctrl_recv(e);
	if ((rc = fi_connect(e->ep, e->info->dest_addr, NULL, 0)))
		die("fi_connect", rc);
	wait_cm(e, FI_CONNECTED);
	t1 = now_s();
	send_ctrl(e, msg, sizeof(msg));
	while (seen != 3) {
		int k = CTX_KIND(cq_one(e, NULL));
		seen |= k == K_CTRL_RX ? 1 : k == K_CTRL_TX ? 2 : 0;
	}
	if (memcmp(ctrl_rx(e), msg, sizeof(msg))) {
		fprintf(stderr, "raw_ofi: echo #%u came back different\n", i);
		exit(1);
	}
	*conn_us = (t1 - t0) * 1e6;
	*first_us = (now_s() - t0) * 1e6;
	fi_shutdown(e->ep, 0);
	close_ep(e);
}

static int connect_bench(const char *host, const char *port, const char *prov,
			 const struct copts *o)
{
	struct fi_info *h = hints(prov);
	struct fi_eq_attr ea = {.wait_obj = FI_WAIT_UNSPEC};
	struct ep ee = {0}, *e = &ee;
	uint64_t iters = o->iters ? o->iters : 0, n = 0, cap = 256;
	double *cu = malloc(cap * sizeof(double)),
	       *fu = malloc(cap * sizeof(double));
	double t0, secs, c50, c99, f50, f99, d1, d2;
	int rc;

	if (!cu || !fu)
		die("alloc", -FI_ENOMEM);
	rc = fi_getinfo(API, host, port, 0, h, &e->info);
	if (rc)
		die("fi_getinfo (client)", rc);
	if ((rc = fi_fabric(e->info->fabric_attr, &e->fabric, NULL)))
		die("fi_fabric", rc);
	if ((rc = fi_eq_open(e->fabric, &ea, &e->eq, NULL)))
		die("fi_eq_open", rc);
	if ((rc = fi_domain(e->fabric, e->info, &e->domain, NULL)))
		die("fi_domain", rc);
	connect_cycle(e, 0, &d1, &d2); /* warm-up */
	t0 = now_s();
	while (iters ? n < iters : now_s() - t0 < o->duration) {
		if (n == cap) {
			cap *= 2;
			cu = realloc(cu, cap * sizeof(double));
			fu = realloc(fu, cap * sizeof(double));
			if (!cu || !fu)
				die("alloc", -FI_ENOMEM);
		}
		connect_cycle(e, (uint32_t)n + 1, &cu[n], &fu[n]);
		n++;
	}
	secs = now_s() - t0;
	pct(cu, n, &c50, &c99);
	pct(fu, n, &f50, &f99);
	if (o->json)
		printf("{\"tool\":\"raw_ofi\",\"op\":\"connect\","
		       "\"mode\":\"connect\",\"size\":%d,"
		       "\"protect\":\"raw\",\"transport\":\"ofi\","
		       "\"provider\":\"%s\",\"iters\":%" PRIu64
		       ",\"seconds\":%.6f,\"connect_us\":%.3f,"
		       "\"connect_us_p99\":%.3f,\"first_byte_us\":%.3f,"
		       "\"first_byte_us_p99\":%.3f,"
		       "\"connects_per_s\":%.3f}\n",
		       CTRL_LEN, prov, n, secs, c50, c99, f50, f99,
		       (double)n / secs);
	else
		printf("raw_ofi connect (%s): %" PRIu64 " connects in %.3f s, "
		       "%.1f conn/s, connect p50 %.1f p99 %.1f us, first "
		       "verified byte p50 %.1f p99 %.1f us\n",
		       prov, n, secs, (double)n / secs, c50, c99, f50, f99);
	free(cu);
	free(fu);
	fi_close(&e->domain->fid);
	fi_close(&e->eq->fid);
	fi_close(&e->fabric->fid);
	fi_freeinfo(e->info);
	fi_freeinfo(h);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: raw_ofi server PORT [--provider P]\n"
		"       raw_ofi client HOST PORT --op write|read|send --size N "
		"--window W\n"
		"               (--iters N | --duration S) [--mode bw|lat] "
		"[--json]\n"
		"               [--delivery-complete] [--provider P] "
		"[--busy]\n"
		"       raw_ofi client HOST PORT --op connect (--iters N | "
		"--duration S)\n"
		"               [--json] [--provider P]\n"
		"  --busy: spin on the CQ (default: sleep in fi_cq_sread)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *prov = "tcp";
	struct copts o = {
		.op = OP_WRITE, .size = 65536, .iters = 1000, .window = 16};
	int first = 0;

	if (argc < 3)
		usage();
	first = !strcmp(argv[1], "server") ? 3 : 4;
	if (first > argc)
		usage();
	for (int i = first; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t n;
		if (!strcmp(a, "--json")) {
			o.json = 1;
			continue;
		}
		if (!strcmp(a, "--busy")) {
			g_busy = 1;
			continue;
		}
		if (!strcmp(a, "--delivery-complete")) {
			o.delivery = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--provider"))
			prov = v;
		else if (!strcmp(a, "--op"))
			o.op = !strcmp(v, "write")     ? OP_WRITE
			       : !strcmp(v, "read")    ? OP_READ
			       : !strcmp(v, "send")    ? OP_SEND
			       : !strcmp(v, "connect") ? OP_CONNECT
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
		return server(argv[2], prov);
	if (!strcmp(argv[1], "client") && o.op == OP_CONNECT)
		return connect_bench(argv[2], argv[3], prov, &o);
	if (!strcmp(argv[1], "client"))
		return client(argv[2], argv[3], prov, &o);
	usage();
	return 2;
}
