/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: librdmacm for connection management, libibverbs for the
 * data path (DESIGN.md §3-§5).
 *
 * Choices worth knowing:
 * - One rdma_event_channel per transport instance, O_NONBLOCK in the loop,
 *   drained until EAGAIN. Each event is copied (private data included) and
 *   acknowledged at once, before it is dispatched by cm_id->context, so no
 *   handler can ever leave an event unacked (which would make
 *   rdma_destroy_id block forever).
 * - We create the QP ourselves (ibv_create_qp, RC) on a per-connection PD and
 *   move it INIT->RTR->RTS with rdma_init_qp_attr, overriding rq_psn (RTR)
 *   and sq_psn (RTS) with the values from set_psn(). The client reaches
 *   INIT when the route is resolved (on_prepared), RTR/RTS on
 *   CONNECT_RESPONSE, then calls rdma_establish (which sends the RTU); the
 *   active side gets no ESTABLISHED event of its own, so on_established
 *   fires right after it. The server's fires on ESTABLISHED, or on its first
 *   successful completion if that comes first.
 *   The server creates its QP in accept() and reaches RTS before
 *   rdma_accept sends the REP.
 * - Server receives: the session may call post_recv() before accept() (the
 *   QP does not exist yet). Such receives are queued and posted in accept()
 *   while the QP is in INIT, i.e. before the peer can send anything. Send,
 *   write and read need the QP in RTS (accept() returned / established).
 * - A server conn's PD lives on the device of the listener, or on the first
 *   device with an ACTIVE port when the listener is on a wildcard address;
 *   accept() fails with SRDMA_ENODEV if the request came in on another one.
 * - Memory windows: where the device has type-2 MWs, a remote-access
 *   registration gets an MR with only LOCAL_WRITE|MW_BIND and a type-2 MW.
 *   The key handed out is the MW's index with 8 fresh random tag bits; it is
 *   fixed at mr_reg() time so the session can grant it over TLS before the
 *   fabric connects, and the bind (IBV_WR_BIND_MW, bound to this QP) is
 *   posted as soon as the QP reaches RTS (at once if it already is). The
 *   MR's own rkey then grants nothing remotely. Without MW support the MR
 *   gets the remote flags and its rkey is handed out (logged at INFO).
 *   mr_dereg deallocates the MW (invalidating the key at once), then the MR.
 *   The send queue has room for 64 binds beyond sq_depth: register at most
 *   that many remote regions before the connection is up.
 * - Work requests carry a slot index as wr_id; the slot keeps the session's
 *   wr_id and the opcode, since an error completion's opcode is undefined.
 * - Close: disconnect() sends the DREQ and moves the QP to ERR itself (a
 *   self-created QP is not moved by rdma_disconnect); on DISCONNECTED and
 *   once every outstanding work request has completed (flushed), on_closed
 *   fires. A peer's DISCONNECTED is answered the same way and also reported
 *   with status 0; errors (REJECTED -> SRDMA_ECONNREFUSED, UNREACHABLE,
 *   CONNECT_ERROR, DEVICE_REMOVAL) with a negative status. A disconnect
 *   before establishment reports on_closed from the loop (eventfd).
 * - conn_destroy() at any time: no callback fires after it. The QP goes to
 *   ERR, MWs and MRs still registered on the conn are released (do not call
 *   mr_dereg on them afterwards). If the connection is up, the DREQ is sent
 *   and the rest (QP, CQ, channel, PD, cm_id) waits on a zombie list for
 *   DISCONNECTED, or for close().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "transport/transport.h"
#include "transport/verbs/verbs.h"

enum {
	KIND_LISTENER = 0x4c53,
	KIND_CONN = 0x434e,
	OP_BIND = 64,  /* internal work request: memory window bind */
	SQ_EXTRA = 64, /* send-queue room for MW binds */
	DEFAULT_DEPTH = 64,
	LISTEN_BACKLOG = 128,
	MAX_RD_ATOM = 16,
	CONNECT_PDATA_MAX = 56, /* RC connect, DESIGN.md §6 */
	ACCEPT_PDATA_MAX = 196,
	REJECT_PDATA_MAX = 148,
	PSN_MASK = 0xffffff,
	SLOT_NONE = -1,
};

enum vstate {
	VS_NEW,		  /* created; server: PD/CQ, no cm_id yet */
	VS_RESOLVING,	  /* client: address/route resolution in flight */
	VS_PREPARED,	  /* client: QP in INIT */
	VS_CONNECTING,	  /* client: REQ sent */
	VS_ACCEPTING,	  /* server: REP sent, waiting for RTU */
	VS_ESTABLISHED,	  /* connection up */
	VS_DISCONNECTING, /* DREQ sent, waiting for DISCONNECTED */
	VS_DRAINING,	  /* waiting for flush completions */
	VS_CLOSED,	  /* on_closed delivered, or preparation failed */
};

struct vtp {
	struct srdma__tp *tp;
	struct rdma_event_channel *ech;
	struct srdma__loop_fd *ech_reg;
	int evfd; /* deferred work: closes that need no fabric event */
	struct srdma__loop_fd *ev_reg;
	struct ibv_context **devs; /* rdma_get_devices(): librdmacm's own */
	int ndevs;
	struct ibv_context *listen_ctx; /* device of a listener, if bound */
	char device[64];		/* device filter, "" = any */
	/* values of the connect request being decided (accept() is called
	 * from inside on_connreq) */
	uint8_t req_initiator_depth, req_responder_resources;
	struct srdma__tp_conn *conns; /* all conns, zombies included */
	struct srdma__tp_listener *listeners;
};

struct vmr {
	struct srdma__tp_mr pub; /* first: the session holds &pub */
	struct srdma__tp_conn *c;
	struct ibv_mr *mr;
	struct ibv_mw *mw;
	unsigned mw_access;
	bool bound;
	struct vmr *next;
};

struct qrecv {
	struct vmr *m;
	void *buf;
	size_t len;
	uint64_t wr_id;
};

struct wslot {
	uint64_t wr_id;
	int op; /* SRDMA_TP_OP_* or OP_BIND; 0 = free */
	int next_free;
};

struct srdma__tp_listener {
	int kind;
	struct vtp *v;
	struct rdma_cm_id *id;
	struct srdma__tp_listener_cb cb;
	uint16_t port;
	struct srdma__tp_listener *next;
};

struct srdma__tp_conn {
	int kind;
	struct vtp *v;
	struct srdma__tp_conn *next, *prev;
	struct srdma__tp_conn_attr attr;
	struct srdma__tp_conn_cb cb;
	enum vstate state;
	bool destroyed;	    /* conn_destroy() called: no more callbacks */
	bool reap;	    /* free when no handler holds it */
	bool check_pending; /* deferred drain check queued on evfd */
	int busy;	    /* handlers on the stack holding it */
	int close_status;
	char close_detail[192];
	char peer[64];

	struct rdma_cm_id *id;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cch;
	struct srdma__loop_fd *cch_reg;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	bool qp_rts, qp_err;
	bool qp_used; /* left RESET since it was created or reset */
	bool mw_ok;
	uint8_t resp_res, init_depth;
	uint8_t dev_resp_res, dev_init_depth; /* before a request clamps them */
	uint32_t max_inline;
	bool psn_set;
	uint32_t sq_psn, rq_psn;
	uint32_t remote_qpn;

	struct vmr *mrs;
	struct qrecv *qr;
	size_t nqr, qr_cap;
	struct wslot *slots;
	int nslots, free_slot;
	uint32_t outstanding;
};

static const struct srdma__logger *lg(const struct vtp *v)
{
	return v->tp->log;
}

/* ---- helpers ------------------------------------------------------ */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return srdma__err(SRDMA_ESYS, "fcntl(O_NONBLOCK) on fd %d: %s",
				  fd, strerror(errno));
	return 0;
}

static const char *dev_name(struct ibv_context *ctx)
{
	return ctx ? ibv_get_device_name(ctx->device) : "?";
}

static bool dev_matches(const struct vtp *v, struct ibv_context *ctx)
{
	return !v->device[0] || !strcmp(v->device, dev_name(ctx));
}

static void fmt_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, len, "%s:%u", host, port);
}

static uint8_t clamp_atom(int dev_max, int peer)
{
	int v = dev_max < MAX_RD_ATOM ? dev_max : MAX_RD_ATOM;

	if (peer >= 0 && peer < v)
		v = peer;
	return (uint8_t)(v < 1 ? 1 : v);
}

/* ---- work-request slots -------------------------------------------- */

static int slot_get(struct srdma__tp_conn *c, int op, uint64_t wr_id)
{
	int i;

	if (c->free_slot == SLOT_NONE) {
		int n = c->nslots ? c->nslots * 2 : 128;
		struct wslot *s = realloc(c->slots, (size_t)n * sizeof(*s));
		if (!s)
			return srdma__err(SRDMA_ENOMEM,
					  "out of memory for %d work slots", n);
		for (i = c->nslots; i < n; i++) {
			s[i].op = 0;
			s[i].next_free = i + 1 < n ? i + 1 : SLOT_NONE;
		}
		c->slots = s;
		c->free_slot = c->nslots;
		c->nslots = n;
	}
	i = c->free_slot;
	c->free_slot = c->slots[i].next_free;
	c->slots[i].op = op;
	c->slots[i].wr_id = wr_id;
	c->outstanding++;
	return i;
}

static void slot_put(struct srdma__tp_conn *c, int i)
{
	c->slots[i].op = 0;
	c->slots[i].next_free = c->free_slot;
	c->free_slot = i;
	c->outstanding--;
}

/* Forget every outstanding work request (the QP they were on is gone). */
static void slots_reset(struct srdma__tp_conn *c)
{
	int i;

	for (i = 0; i < c->nslots; i++)
		if (c->slots[i].op)
			slot_put(c, i);
}

/* ---- conn lifetime ---------------------------------------------------- */

static void conn_free(struct srdma__tp_conn *c);

static void hold(struct srdma__tp_conn *c)
{
	c->busy++;
}

static void maybe_free(struct srdma__tp_conn *c)
{
	if (c->destroyed && c->reap && c->busy == 0)
		conn_free(c);
}

static void release(struct srdma__tp_conn *c)
{
	c->busy--;
	maybe_free(c);
}

static void kick(struct srdma__tp_conn *c)
{
	uint64_t one = 1;

	c->check_pending = true;
	if (write(c->v->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		srdma__log(lg(c->v), SRDMA_LOG_ERROR,
			   "verbs: eventfd write: %s", strerror(errno));
}

static void qp_to_err(struct srdma__tp_conn *c)
{
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
	int rc;

	if (!c->qp || c->qp_err)
		return;
	c->qp_err = true;
	c->qp_rts = false;
	if (!c->qp_used) /* still in RESET: no work to flush (rxe refuses) */
		return;
	rc = ibv_modify_qp(c->qp, &a, IBV_QP_STATE);
	if (rc)
		srdma__log(lg(c->v), SRDMA_LOG_WARN,
			   "verbs: ibv_modify_qp(ERR) on QP %u: %s",
			   c->qp->qp_num, strerror(rc));
}

static void mr_free(struct vmr *m)
{
	int rc;

	if (m->mw) {
		rc = ibv_dealloc_mw(m->mw);
		if (rc)
			srdma__log(lg(m->c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_dealloc_mw: %s", strerror(rc));
	}
	if (m->mr) {
		rc = ibv_dereg_mr(m->mr);
		if (rc)
			srdma__log(lg(m->c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_dereg_mr: %s", strerror(rc));
	}
	free(m);
}

/* Teardown order: QP, CQ, completion channel, (MWs, MRs), PD. */
static void res_free(struct srdma__tp_conn *c)
{
	int rc;

	srdma__loop_del(c->cch_reg);
	c->cch_reg = NULL;
	if (c->qp) {
		qp_to_err(c);
		rc = ibv_destroy_qp(c->qp);
		if (rc)
			srdma__log(lg(c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_destroy_qp: %s", strerror(rc));
		c->qp = NULL;
		slots_reset(c);
	}
	if (c->cq) {
		rc = ibv_destroy_cq(c->cq);
		if (rc)
			srdma__log(lg(c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_destroy_cq: %s", strerror(rc));
		c->cq = NULL;
	}
	if (c->cch) {
		ibv_destroy_comp_channel(c->cch);
		c->cch = NULL;
	}
	while (c->mrs) {
		struct vmr *m = c->mrs;
		c->mrs = m->next;
		mr_free(m);
	}
	if (c->pd) {
		rc = ibv_dealloc_pd(c->pd);
		if (rc)
			srdma__log(lg(c->v), SRDMA_LOG_WARN,
				   "verbs: ibv_dealloc_pd: %s", strerror(rc));
		c->pd = NULL;
	}
}

static void conn_free(struct srdma__tp_conn *c)
{
	struct vtp *v = c->v;

	res_free(c);
	if (c->id) {
		rdma_destroy_id(c->id);
		c->id = NULL;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		v->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->slots);
	free(c->qr);
	free(c);
}

/* ---- callbacks to the session --------------------------------------- */

static void tell_established(struct srdma__tp_conn *c)
{
	c->state = VS_ESTABLISHED;
	if (!c->destroyed && c->cb.on_established)
		c->cb.on_established(c->cb.arg);
}

static void tell_prepared(struct srdma__tp_conn *c, int status)
{
	if (!c->destroyed && c->cb.on_prepared)
		c->cb.on_prepared(c->cb.arg, status);
}

/* Closes once DRAINING and every work request has completed. */
static void check_drained(struct srdma__tp_conn *c)
{
	if (c->state != VS_DRAINING || c->outstanding || c->destroyed)
		return;
	/* Receives queued before accept() never reached a QP: flush them. */
	while (c->nqr && !c->destroyed) {
		struct qrecv q = c->qr[--c->nqr];
		struct srdma__tp_cqe e = {.wr_id = q.wr_id,
					  .op = SRDMA_TP_OP_RECV,
					  .status = SRDMA_ECLOSED};
		if (c->cb.on_cqe)
			c->cb.on_cqe(c->cb.arg, &e);
	}
	if (c->destroyed || c->state != VS_DRAINING)
		return;
	c->state = VS_CLOSED;
	if (c->cb.on_closed)
		c->cb.on_closed(c->cb.arg, c->close_status, c->close_detail);
}

/* The connection is going away: flush everything, then on_closed. */
static void begin_close(struct srdma__tp_conn *c, int status,
			const char *detail)
{
	if (c->state >= VS_DRAINING)
		return;
	c->state = VS_DRAINING;
	c->close_status = status;
	snprintf(c->close_detail, sizeof(c->close_detail), "%s", detail);
	if (status)
		srdma__log(lg(c->v), SRDMA_LOG_INFO, "verbs: %s: %s", c->peer,
			   detail);
	qp_to_err(c);
	kick(c);
}

/* ---- completions ------------------------------------------------------ */

static int map_status(const struct srdma__tp_conn *c, const struct ibv_wc *wc,
		      int op)
{
	switch (wc->status) {
	case IBV_WC_SUCCESS:
		return 0;
	case IBV_WC_WR_FLUSH_ERR:
		return SRDMA_ECLOSED;
	case IBV_WC_REM_ACCESS_ERR:
	case IBV_WC_REM_INV_REQ_ERR:
		srdma__log(lg(c->v), SRDMA_LOG_INFO,
			   "verbs: QP %u op %d: %s (vendor error 0x%x)",
			   wc->qp_num, op, ibv_wc_status_str(wc->status),
			   wc->vendor_err);
		return SRDMA_EREMOTE_ACCESS;
	default:
		srdma__log(lg(c->v), SRDMA_LOG_WARN,
			   "verbs: QP %u op %d completed with %s (vendor error "
			   "0x%x)",
			   wc->qp_num, op, ibv_wc_status_str(wc->status),
			   wc->vendor_err);
		return SRDMA_EFABRIC;
	}
}

static void handle_wc(struct srdma__tp_conn *c, const struct ibv_wc *wc)
{
	struct srdma__tp_cqe e = {0};
	uint64_t i = wc->wr_id;
	int op;

	if (i >= (uint64_t)c->nslots || !c->slots[i].op) {
		srdma__log(lg(c->v), SRDMA_LOG_WARN,
			   "verbs: completion for unknown work request %llu",
			   (unsigned long long)i);
		return;
	}
	op = c->slots[i].op;
	e.wr_id = c->slots[i].wr_id;
	slot_put(c, (int)i);
	e.status = map_status(c, wc, op);
	if (op == OP_BIND) {
		if (e.status && e.status != SRDMA_ECLOSED)
			srdma__log(lg(c->v), SRDMA_LOG_ERROR,
				   "verbs: memory window bind failed: %s",
				   ibv_wc_status_str(wc->status));
		return;
	}
	/* A completion can beat the RTU's ESTABLISHED event: the QP is up. */
	if (c->state == VS_ACCEPTING && !e.status)
		tell_established(c);
	e.op = (enum srdma__tp_op)op;
	if (op == SRDMA_TP_OP_RECV && !e.status)
		e.len = wc->byte_len;
	if (!c->destroyed && c->cb.on_cqe)
		c->cb.on_cqe(c->cb.arg, &e);
}

static void poll_cq(struct srdma__tp_conn *c)
{
	struct ibv_wc wc[16];
	int n = 0, i;

	while (c->cq && !c->destroyed && (n = ibv_poll_cq(c->cq, 16, wc)) > 0)
		for (i = 0; i < n && !c->destroyed; i++)
			handle_wc(c, &wc[i]);
	if (n < 0)
		srdma__log(lg(c->v), SRDMA_LOG_ERROR,
			   "verbs: ibv_poll_cq failed (%d)", n);
}

static void cq_ready(void *arg, uint32_t events)
{
	struct srdma__tp_conn *c = arg;
	struct ibv_cq *cq;
	void *ctx;
	int rc;

	hold(c);
	while (ibv_get_cq_event(c->cch, &cq, &ctx) == 0)
		ibv_ack_cq_events(cq, 1);
	/* Re-arm first, then poll until empty: nothing slips between. */
	rc = ibv_req_notify_cq(c->cq, 0);
	if (rc)
		srdma__log(lg(c->v), SRDMA_LOG_ERROR,
			   "verbs: ibv_req_notify_cq: %s", strerror(rc));
	poll_cq(c);
	check_drained(c);
	release(c);
}

/* ---- per-connection resources ----------------------------------------- */

static int res_alloc(struct srdma__tp_conn *c, struct ibv_context *ctx)
{
	struct ibv_device_attr da;
	int rc, cqe;

	rc = ibv_query_device(ctx, &da);
	if (rc)
		return srdma__err(SRDMA_ENODEV, "ibv_query_device(%s): %s",
				  dev_name(ctx), strerror(rc));
	c->ctx = ctx;
	c->mw_ok = (da.device_cap_flags & (IBV_DEVICE_MEM_WINDOW_TYPE_2A |
					   IBV_DEVICE_MEM_WINDOW_TYPE_2B)) &&
		   da.max_mw > 0;
	c->resp_res = clamp_atom(da.max_qp_rd_atom, -1);
	c->init_depth = clamp_atom(da.max_qp_init_rd_atom, -1);
	c->dev_resp_res = c->resp_res;
	c->dev_init_depth = c->init_depth;

	c->pd = ibv_alloc_pd(ctx);
	if (!c->pd)
		return srdma__err(SRDMA_EFABRIC, "ibv_alloc_pd(%s): %s",
				  dev_name(ctx), strerror(errno));
	c->cch = ibv_create_comp_channel(ctx);
	if (!c->cch) {
		rc = srdma__err(SRDMA_EFABRIC, "ibv_create_comp_channel: %s",
				strerror(errno));
		goto out_free;
	}
	rc = set_nonblock(c->cch->fd);
	if (rc < 0)
		goto out_free;
	cqe = (int)(c->attr.sq_depth + SQ_EXTRA + c->attr.rq_depth);
	if (cqe > da.max_cqe)
		cqe = da.max_cqe;
	c->cq = ibv_create_cq(ctx, cqe, c, c->cch, 0);
	if (!c->cq) {
		rc = srdma__err(SRDMA_EFABRIC, "ibv_create_cq(%d entries): %s",
				cqe, strerror(errno));
		goto out_free;
	}
	rc = ibv_req_notify_cq(c->cq, 0);
	if (rc) {
		rc = srdma__err(SRDMA_EFABRIC, "ibv_req_notify_cq: %s",
				strerror(rc));
		goto out_free;
	}
	rc = srdma__loop_add(c->v->tp->loop, c->cch->fd, EPOLLIN, cq_ready,
			     NULL, c, &c->cch_reg);
	if (rc < 0)
		goto out_free;
	return 0;

out_free:
	res_free(c);
	return rc;
}

static int qp_create(struct srdma__tp_conn *c)
{
	struct ibv_qp_init_attr ia = {0};

	ia.send_cq = c->cq;
	ia.recv_cq = c->cq;
	ia.qp_type = IBV_QPT_RC;
	ia.sq_sig_all = 0;
	ia.cap.max_send_wr = c->attr.sq_depth + SQ_EXTRA;
	ia.cap.max_recv_wr = c->attr.rq_depth;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	ia.cap.max_inline_data = c->attr.max_inline;
	c->qp = ibv_create_qp(c->pd, &ia);
	if (!c->qp && ia.cap.max_inline_data) {
		srdma__log(lg(c->v), SRDMA_LOG_INFO,
			   "verbs: %s refused max_inline %u; no inline sends",
			   dev_name(c->ctx), ia.cap.max_inline_data);
		ia.cap.max_inline_data = 0;
		c->qp = ibv_create_qp(c->pd, &ia);
	}
	if (!c->qp)
		return srdma__err(SRDMA_EFABRIC,
				  "ibv_create_qp(RC, sq %u, rq %u) on %s: %s",
				  ia.cap.max_send_wr, ia.cap.max_recv_wr,
				  dev_name(c->ctx), strerror(errno));
	c->max_inline = ia.cap.max_inline_data;
	c->qp_err = false;
	c->qp_used = false;
	c->qp_rts = false;
	return 0;
}

static const char *qps_name(enum ibv_qp_state s)
{
	return s == IBV_QPS_INIT ? "INIT" : s == IBV_QPS_RTR ? "RTR" : "RTS";
}

/* One transition with the CM's attributes and our overrides. */
static int qp_move(struct srdma__tp_conn *c, enum ibv_qp_state st)
{
	struct ibv_qp_attr a;
	int mask = 0, rc;

	memset(&a, 0, sizeof(a));
	a.qp_state = st;
	if (rdma_init_qp_attr(c->id, &a, &mask))
		return srdma__err(SRDMA_EFABRIC, "rdma_init_qp_attr(%s): %s",
				  qps_name(st), strerror(errno));
	switch (st) {
	case IBV_QPS_INIT:
		/* The per-MR/MW flags decide what the peer may touch. */
		a.qp_access_flags =
			IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
		mask |= IBV_QP_ACCESS_FLAGS;
		break;
	case IBV_QPS_RTR:
		if (c->psn_set) {
			a.rq_psn = c->rq_psn;
			mask |= IBV_QP_RQ_PSN;
		}
		if (c->attr.server) {
			a.max_dest_rd_atomic = c->resp_res;
			mask |= IBV_QP_MAX_DEST_RD_ATOMIC;
		}
		break;
	case IBV_QPS_RTS:
		if (c->psn_set) {
			a.sq_psn = c->sq_psn;
			mask |= IBV_QP_SQ_PSN;
		}
		if (c->attr.server) {
			a.max_rd_atomic = c->init_depth;
			mask |= IBV_QP_MAX_QP_RD_ATOMIC;
		}
		break;
	default:
		break;
	}
	rc = ibv_modify_qp(c->qp, &a, mask);
	if (rc)
		return srdma__err(SRDMA_EFABRIC,
				  "ibv_modify_qp(%s) on QP %u: %s",
				  qps_name(st), c->qp->qp_num, strerror(rc));
	c->qp_used = true;
	if (st == IBV_QPS_RTS)
		c->qp_rts = true;
	return 0;
}

static int bind_mw(struct srdma__tp_conn *c, struct vmr *m)
{
	struct ibv_send_wr wr, *bad = NULL;
	int slot, rc;

	slot = slot_get(c, OP_BIND, 0);
	GUARD(slot);
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = (uint64_t)slot;
	wr.opcode = IBV_WR_BIND_MW;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.bind_mw.mw = m->mw;
	wr.bind_mw.rkey = (uint32_t)m->pub.key;
	wr.bind_mw.bind_info.mr = m->mr;
	wr.bind_mw.bind_info.addr = (uint64_t)(uintptr_t)m->pub.buf;
	wr.bind_mw.bind_info.length = m->pub.len;
	wr.bind_mw.bind_info.mw_access_flags = m->mw_access;
	rc = ibv_post_send(c->qp, &wr, &bad);
	if (rc) {
		slot_put(c, slot);
		return srdma__err(SRDMA_EFABRIC,
				  "ibv_post_send(BIND_MW) on QP %u: %s",
				  c->qp->qp_num, strerror(rc));
	}
	m->bound = true;
	return 0;
}

static int bind_pending(struct srdma__tp_conn *c)
{
	struct vmr *m;

	for (m = c->mrs; m; m = m->next)
		if (m->mw && !m->bound)
			GUARD(bind_mw(c, m));
	return 0;
}

static int post_queued_recvs(struct srdma__tp_conn *c)
{
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;
	size_t i;
	int slot, rc;

	for (i = 0; i < c->nqr; i++) {
		struct qrecv *q = &c->qr[i];
		slot = slot_get(c, SRDMA_TP_OP_RECV, q->wr_id);
		GUARD(slot);
		sge.addr = (uint64_t)(uintptr_t)q->buf;
		sge.length = (uint32_t)q->len;
		sge.lkey = q->m->mr->lkey;
		memset(&wr, 0, sizeof(wr));
		wr.wr_id = (uint64_t)slot;
		wr.sg_list = &sge;
		wr.num_sge = 1;
		rc = ibv_post_recv(c->qp, &wr, &bad);
		if (rc) {
			slot_put(c, slot);
			return srdma__err(SRDMA_EFABRIC,
					  "ibv_post_recv (queued #%zu): %s", i,
					  strerror(rc));
		}
	}
	return 0;
}

/* ---- rdma_cm events ----------------------------------------------------- */

struct vev {
	enum rdma_cm_event_type type;
	int status;
	struct rdma_cm_id *id, *listen_id;
	uint8_t pdata[256];
	size_t pdata_len;
	uint32_t qp_num;
	uint8_t initiator_depth, responder_resources;
};

static void on_connect_request(struct vtp *v, struct vev *ev)
{
	struct srdma__tp_listener *l = ev->listen_id->context;
	struct srdma__tp_connreq req;
	struct rdma_cm_id *id = ev->id;

	memset(&req, 0, sizeof(req));
	memcpy(req.pdata, ev->pdata, ev->pdata_len);
	req.pdata_len = ev->pdata_len;
	req.initiator_qpn = ev->qp_num;
	fmt_addr(rdma_get_peer_addr(id), req.peer, sizeof(req.peer));
	req.handle = id;
	v->req_initiator_depth = ev->initiator_depth;
	v->req_responder_resources = ev->responder_resources;
	if (l && l->kind == KIND_LISTENER && l->cb.on_connreq)
		l->cb.on_connreq(l->cb.arg, &req);
	if (req.handle) {
		/* Neither accepted nor rejected: refuse, free the id. */
		srdma__log(lg(v), SRDMA_LOG_INFO,
			   "verbs: connect request from %s not accepted",
			   req.peer);
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
	}
}

static void prepare_client(struct srdma__tp_conn *c)
{
	int rc;

	if (!dev_matches(c->v, c->id->verbs)) {
		rc = srdma__err(SRDMA_ENODEV,
				"the route to %s goes through RDMA device %s, "
				"not the configured %s",
				c->peer, dev_name(c->id->verbs), c->v->device);
		goto out_fail;
	}
	rc = res_alloc(c, c->id->verbs);
	if (rc < 0)
		goto out_fail;
	rc = qp_create(c);
	if (rc < 0)
		goto out_free_res;
	rc = qp_move(c, IBV_QPS_INIT);
	if (rc < 0)
		goto out_free_res;
	c->state = VS_PREPARED;
	tell_prepared(c, 0);
	return;

out_free_res:
	res_free(c);
out_fail:
	c->state = VS_CLOSED;
	tell_prepared(c, rc);
}

static void fail_prepare(struct srdma__tp_conn *c, int err, const char *what,
			 int status)
{
	int rc = srdma__err(err, "%s for %s failed (status %d: %s)", what,
			    c->peer, status,
			    strerror(status < 0 ? -status : status));

	c->state = VS_CLOSED;
	tell_prepared(c, rc);
}

static void on_connect_response(struct srdma__tp_conn *c, struct vev *ev)
{
	int rc;

	c->remote_qpn = ev->qp_num;
	rc = qp_move(c, IBV_QPS_RTR);
	if (rc == 0)
		rc = qp_move(c, IBV_QPS_RTS);
	if (rc == 0)
		rc = bind_pending(c);
	if (rc == 0 && rdma_establish(c->id))
		rc = srdma__err(SRDMA_EFABRIC, "rdma_establish to %s: %s",
				c->peer, strerror(errno));
	if (rc < 0) {
		char d[192];
		srdma__err_copy(d, sizeof(d));
		rdma_disconnect(c->id);
		begin_close(c, rc, d);
		return;
	}
	tell_established(c);
}

static bool terminal_event(enum rdma_cm_event_type t)
{
	return t == RDMA_CM_EVENT_DISCONNECTED || t == RDMA_CM_EVENT_REJECTED ||
	       t == RDMA_CM_EVENT_CONNECT_ERROR ||
	       t == RDMA_CM_EVENT_UNREACHABLE ||
	       t == RDMA_CM_EVENT_DEVICE_REMOVAL ||
	       t == RDMA_CM_EVENT_TIMEWAIT_EXIT;
}

static void conn_event(struct srdma__tp_conn *c, struct vev *ev)
{
	char d[192];

	if (c->destroyed) {
		/* Zombie: waiting for the CM to finish with the id. */
		if (terminal_event(ev->type))
			c->reap = true;
		return;
	}
	switch (ev->type) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (c->state != VS_RESOLVING)
			break;
		if (rdma_resolve_route(c->id, 2000)) {
			int rc = srdma__err(SRDMA_EUNREACHABLE,
					    "rdma_resolve_route to %s: %s",
					    c->peer, strerror(errno));
			c->state = VS_CLOSED;
			tell_prepared(c, rc);
		}
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		if (c->state == VS_RESOLVING)
			prepare_client(c);
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
		if (c->state == VS_RESOLVING)
			fail_prepare(c, SRDMA_EUNREACHABLE,
				     "RDMA address resolution", ev->status);
		break;
	case RDMA_CM_EVENT_ROUTE_ERROR:
		if (c->state == VS_RESOLVING)
			fail_prepare(c, SRDMA_EUNREACHABLE,
				     "RDMA route resolution", ev->status);
		break;
	case RDMA_CM_EVENT_CONNECT_RESPONSE:
		if (c->state == VS_CONNECTING)
			on_connect_response(c, ev);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		if (c->state == VS_ACCEPTING)
			tell_established(c);
		break;
	case RDMA_CM_EVENT_REJECTED:
		snprintf(d, sizeof(d),
			 "the server at %s rejected the connection (reason %d)",
			 c->peer, ev->status);
		if (c->state == VS_RESOLVING)
			fail_prepare(c, SRDMA_ECONNREFUSED, "connect",
				     ev->status);
		else
			begin_close(c, SRDMA_ECONNREFUSED, d);
		break;
	case RDMA_CM_EVENT_UNREACHABLE:
		snprintf(d, sizeof(d), "%s is unreachable (status %d)", c->peer,
			 ev->status);
		if (c->state == VS_RESOLVING)
			fail_prepare(c, SRDMA_EUNREACHABLE, "connect",
				     ev->status);
		else
			begin_close(c, SRDMA_EUNREACHABLE, d);
		break;
	case RDMA_CM_EVENT_CONNECT_ERROR:
		snprintf(d, sizeof(d), "connection with %s failed (status %d)",
			 c->peer, ev->status);
		begin_close(c, SRDMA_EFABRIC, d);
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		snprintf(d, sizeof(d), "RDMA device %s was removed",
			 dev_name(c->ctx));
		begin_close(c, SRDMA_ENODEV, d);
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		if (c->state == VS_DISCONNECTING) {
			begin_close(c, 0, "disconnected");
		} else if (c->state < VS_DISCONNECTING) {
			/* The peer's DREQ: answer it (DREP), then drain. */
			rdma_disconnect(c->id);
			begin_close(c, 0, "the peer disconnected");
		}
		break;
	default:
		srdma__log(lg(c->v), SRDMA_LOG_DEBUG,
			   "verbs: %s: ignoring %s (status %d)", c->peer,
			   rdma_event_str(ev->type), ev->status);
		break;
	}
}

static void dispatch(struct vtp *v, struct vev *ev)
{
	int *kind;

	srdma__log(lg(v), SRDMA_LOG_DEBUG, "verbs: cm event %s status %d",
		   rdma_event_str(ev->type), ev->status);
	if (ev->type == RDMA_CM_EVENT_CONNECT_REQUEST) {
		on_connect_request(v, ev);
		return;
	}
	kind = ev->id ? ev->id->context : NULL;
	if (kind && *kind == KIND_CONN) {
		struct srdma__tp_conn *c = (void *)kind;
		hold(c);
		conn_event(c, ev);
		release(c);
	} else {
		srdma__log(lg(v), SRDMA_LOG_INFO,
			   "verbs: %s (status %d) on a listener",
			   rdma_event_str(ev->type), ev->status);
	}
}

static void cm_ready(void *arg, uint32_t events)
{
	struct vtp *v = arg;
	struct rdma_cm_event *e;
	struct vev ev;

	for (;;) {
		if (rdma_get_cm_event(v->ech, &e)) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				srdma__log(lg(v), SRDMA_LOG_ERROR,
					   "verbs: rdma_get_cm_event: %s",
					   strerror(errno));
			return;
		}
		/* Copy what we need, private data first: it dies with the ack.
		 */
		memset(&ev, 0, sizeof(ev));
		ev.type = e->event;
		ev.status = e->status;
		ev.id = e->id;
		ev.listen_id = e->listen_id;
		if (e->param.conn.private_data) {
			ev.pdata_len = e->param.conn.private_data_len;
			if (ev.pdata_len > sizeof(ev.pdata))
				ev.pdata_len = sizeof(ev.pdata);
			memcpy(ev.pdata, e->param.conn.private_data,
			       ev.pdata_len);
		}
		ev.qp_num = e->param.conn.qp_num;
		ev.initiator_depth = e->param.conn.initiator_depth;
		ev.responder_resources = e->param.conn.responder_resources;
		rdma_ack_cm_event(e);
		dispatch(v, &ev);
	}
}

static void deferred_ready(void *arg, uint32_t events)
{
	struct vtp *v = arg;
	struct srdma__tp_conn *c;
	uint64_t n;

	if (read(v->evfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		srdma__log(lg(v), SRDMA_LOG_ERROR, "verbs: eventfd read: %s",
			   strerror(errno));
again:
	for (c = v->conns; c; c = c->next) {
		if (!c->check_pending || c->destroyed)
			continue;
		c->check_pending = false;
		hold(c);
		poll_cq(c);
		check_drained(c);
		release(c);
		goto again; /* callbacks may have changed the list */
	}
}

/* ---- ops: transport --------------------------------------------------- */

static int first_active(struct vtp *v, struct ibv_context **out)
{
	int i, p;

	for (i = 0; i < v->ndevs; i++) {
		struct ibv_device_attr da;
		if (!dev_matches(v, v->devs[i]) ||
		    ibv_query_device(v->devs[i], &da))
			continue;
		for (p = 1; p <= da.phys_port_cnt; p++) {
			struct ibv_port_attr pa;
			if (!ibv_query_port(v->devs[i], (uint8_t)p, &pa) &&
			    pa.state == IBV_PORT_ACTIVE) {
				*out = v->devs[i];
				return 0;
			}
		}
	}
	return srdma__err(SRDMA_ENODEV,
			  "no RDMA device%s%s with an ACTIVE "
			  "port",
			  v->device[0] ? " named " : "", v->device);
}

static void v_close(struct srdma__tp *tp);

static int v_open(struct srdma__tp *tp, const char *provider,
		  const char *device)
{
	struct vtp *v = calloc(1, sizeof(*v));
	int rc, i;

	ENSURE(v, SRDMA_ENOMEM, "out of memory opening verbs");
	v->tp = tp;
	v->evfd = -1;
	tp->priv = v;
	if (device && device[0])
		snprintf(v->device, sizeof(v->device), "%s", device);
	v->devs = rdma_get_devices(&v->ndevs);
	if (!v->devs || v->ndevs <= 0) {
		rc = srdma__err(SRDMA_ENODEV,
				"no RDMA device: load rdma_rxe and run `rdma "
				"link add rxe0 type rxe netdev eth0`, or use "
				"--transport ofi");
		goto out_close;
	}
	if (v->device[0]) {
		for (i = 0; i < v->ndevs; i++)
			if (dev_matches(v, v->devs[i]))
				break;
		if (i == v->ndevs) {
			rc = srdma__err(SRDMA_ENODEV,
					"RDMA device %s not found (first "
					"present: %s); check `rdma link`",
					v->device, dev_name(v->devs[0]));
			goto out_close;
		}
	}
	v->ech = rdma_create_event_channel();
	if (!v->ech) {
		rc = srdma__err(SRDMA_ENODEV,
				"rdma_create_event_channel: %s (is rdma_ucm "
				"loaded?)",
				strerror(errno));
		goto out_close;
	}
	rc = set_nonblock(v->ech->fd);
	if (rc < 0)
		goto out_close;
	rc = srdma__loop_add(tp->loop, v->ech->fd, EPOLLIN, cm_ready, NULL, v,
			     &v->ech_reg);
	if (rc < 0)
		goto out_close;
	v->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->evfd < 0) {
		rc = srdma__err(SRDMA_ESYS, "eventfd: %s", strerror(errno));
		goto out_close;
	}
	rc = srdma__loop_add(tp->loop, v->evfd, EPOLLIN, deferred_ready, NULL,
			     v, &v->ev_reg);
	if (rc < 0)
		goto out_close;
	return 0;

out_close:
	v_close(tp);
	return rc;
}

static void l_destroy(struct srdma__tp_listener *l);

static void v_close(struct srdma__tp *tp)
{
	struct vtp *v = tp ? tp->priv : NULL;

	if (!v)
		return;
	while (v->listeners)
		l_destroy(v->listeners);
	while (v->conns) {
		struct srdma__tp_conn *c = v->conns;
		if (!c->destroyed)
			srdma__log(lg(v), SRDMA_LOG_WARN,
				   "verbs: closing with a live connection "
				   "to %s",
				   c->peer);
		conn_free(c);
	}
	srdma__loop_del(v->ev_reg);
	srdma__loop_del(v->ech_reg);
	if (v->evfd >= 0)
		close(v->evfd);
	if (v->ech)
		rdma_destroy_event_channel(v->ech);
	if (v->devs)
		rdma_free_devices(v->devs);
	free(v);
	tp->priv = NULL;
}

/* ---- ops: listener ------------------------------------------------------ */

static int v_listen(struct srdma__tp *tp, const char *host, uint16_t port,
		    const struct srdma__tp_listener_cb *cb,
		    struct srdma__tp_listener **out)
{
	struct vtp *v = tp->priv;
	struct srdma__tp_listener *l;
	struct sockaddr_in any = {.sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_ANY)};
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM},
			*ai = NULL;
	struct sockaddr *sa = (struct sockaddr *)&any;
	char ps[8];
	int rc;

	ENSURE(cb && cb->on_connreq, SRDMA_EINVAL, "listen needs on_connreq");
	l = calloc(1, sizeof(*l));
	ENSURE(l, SRDMA_ENOMEM, "out of memory for a listener");
	l->kind = KIND_LISTENER;
	l->v = v;
	l->cb = *cb;
	if (rdma_create_id(v->ech, &l->id, l, RDMA_PS_TCP)) {
		rc = srdma__err(SRDMA_EFABRIC, "rdma_create_id: %s",
				strerror(errno));
		goto out_free;
	}
	if (host && host[0]) {
		snprintf(ps, sizeof(ps), "%u", port);
		rc = getaddrinfo(host, ps, &hints, &ai);
		if (rc) {
			rc = srdma__err(SRDMA_ECONFIG,
					"cannot resolve listen address %s: %s",
					host, gai_strerror(rc));
			goto out_destroy_id;
		}
		sa = ai->ai_addr;
	}
	if (rdma_bind_addr(l->id, sa)) {
		int e = errno;
		rc = srdma__err(e == ENODEV || e == EADDRNOTAVAIL ? SRDMA_ENODEV
								  : SRDMA_ESYS,
				"rdma_bind_addr(%s:%u): %s%s",
				host && host[0] ? host : "*", port, strerror(e),
				e == ENODEV || e == EADDRNOTAVAIL
					? " (no RDMA device on that address)"
					: "");
		goto out_free_ai;
	}
	if (rdma_listen(l->id, LISTEN_BACKLOG)) {
		rc = srdma__err(SRDMA_ESYS, "rdma_listen(%s:%u): %s",
				host && host[0] ? host : "*", port,
				strerror(errno));
		goto out_free_ai;
	}
	if (l->id->verbs) {
		if (!dev_matches(v, l->id->verbs)) {
			rc = srdma__err(SRDMA_ENODEV,
					"listen address %s is on RDMA device "
					"%s, not the configured %s",
					host, dev_name(l->id->verbs),
					v->device);
			goto out_free_ai;
		}
		v->listen_ctx = l->id->verbs;
	}
	l->port = ntohs(rdma_get_src_port(l->id));
	if (ai)
		freeaddrinfo(ai);
	l->next = v->listeners;
	v->listeners = l;
	*out = l;
	return 0;

out_free_ai:
	if (ai)
		freeaddrinfo(ai);
out_destroy_id:
	rdma_destroy_id(l->id);
out_free:
	free(l);
	return rc;
}

static uint16_t l_port(const struct srdma__tp_listener *l)
{
	return l ? l->port : 0;
}

static void l_destroy(struct srdma__tp_listener *l)
{
	struct srdma__tp_listener **pp;

	if (!l)
		return;
	for (pp = &l->v->listeners; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	if (l->id)
		rdma_destroy_id(l->id);
	free(l);
}

static int c_accept(struct srdma__tp_conn *c, struct srdma__tp_connreq *req,
		    const void *pdata, size_t len)
{
	struct rdma_cm_id *id = req ? req->handle : NULL;
	struct rdma_conn_param p;
	int rc;

	ENSURE(id, SRDMA_EINVAL, "accept: the request was already decided");
	ENSURE(c->attr.server && c->state == VS_NEW && !c->destroyed && c->qp,
	       SRDMA_ESTATE,
	       "accept: the connection is not a fresh server "
	       "connection");
	ENSURE(len <= ACCEPT_PDATA_MAX, SRDMA_EMSGSIZE,
	       "accept private data is %zu bytes; at most %d fit", len,
	       ACCEPT_PDATA_MAX);
	ENSURE(id->verbs == c->ctx, SRDMA_ENODEV,
	       "the connect request from %s arrived on RDMA device %s but the "
	       "connection's resources are on %s",
	       req->peer, dev_name(id->verbs), dev_name(c->ctx));
	c->id = id;
	snprintf(c->peer, sizeof(c->peer), "%s", req->peer);
	c->resp_res = clamp_atom(c->resp_res, c->v->req_initiator_depth);
	c->init_depth =
		clamp_atom(c->init_depth, c->v->req_responder_resources);
	rc = qp_move(c, IBV_QPS_INIT);
	if (rc < 0)
		goto out_destroy_qp;
	/* Receives before RTR, so the peer's first sends find them. */
	rc = post_queued_recvs(c);
	if (rc < 0)
		goto out_destroy_qp;
	rc = qp_move(c, IBV_QPS_RTR);
	if (rc < 0)
		goto out_destroy_qp;
	rc = qp_move(c, IBV_QPS_RTS);
	if (rc < 0)
		goto out_destroy_qp;
	rc = bind_pending(c);
	if (rc < 0)
		goto out_destroy_qp;
	memset(&p, 0, sizeof(p));
	p.private_data = pdata;
	p.private_data_len = (uint8_t)len;
	p.responder_resources = c->resp_res;
	p.initiator_depth = c->init_depth;
	p.retry_count = 7;
	p.rnr_retry_count = 7;
	p.flow_control = 1;
	p.qp_num = c->qp->qp_num;
	if (rdma_accept(id, &p)) {
		rc = srdma__err(SRDMA_EFABRIC, "rdma_accept from %s: %s",
				req->peer, strerror(errno));
		goto out_destroy_qp;
	}
	c->nqr = 0;
	c->remote_qpn = req->initiator_qpn;
	id->context = c;
	req->handle = NULL;
	c->state = VS_ACCEPTING;
	return 0;

out_destroy_qp:
	ibv_destroy_qp(c->qp);
	c->qp = NULL;
	slots_reset(c);
	for (struct vmr *m = c->mrs; m; m = m->next)
		m->bound = false;
	c->id = NULL; /* the listener path rejects and frees it */
	return rc;
}

static int c_reject(struct srdma__tp_listener *l, struct srdma__tp_connreq *req,
		    const void *pdata, size_t len)
{
	struct rdma_cm_id *id = req ? req->handle : NULL;
	int rc = 0;

	ENSURE(id, SRDMA_EINVAL, "reject: the request was already decided");
	if (len > REJECT_PDATA_MAX)
		len = REJECT_PDATA_MAX;
	if (rdma_reject(id, pdata, (uint8_t)len))
		rc = srdma__err(SRDMA_EFABRIC, "rdma_reject to %s: %s",
				req->peer, strerror(errno));
	rdma_destroy_id(id);
	req->handle = NULL;
	return rc;
}

/* ---- ops: connection ----------------------------------------------------- */

static int c_create(struct srdma__tp *tp,
		    const struct srdma__tp_conn_attr *attr,
		    const struct srdma__tp_conn_cb *cb,
		    struct srdma__tp_conn **out)
{
	struct vtp *v = tp->priv;
	struct srdma__tp_conn *c;
	struct ibv_context *ctx = NULL;
	int rc;

	ENSURE(attr && cb, SRDMA_EINVAL, "conn_create needs attr and cb");
	c = calloc(1, sizeof(*c));
	ENSURE(c, SRDMA_ENOMEM, "out of memory for a connection");
	c->kind = KIND_CONN;
	c->v = v;
	c->attr = *attr;
	c->cb = *cb;
	c->free_slot = SLOT_NONE;
	if (!c->attr.sq_depth)
		c->attr.sq_depth = DEFAULT_DEPTH;
	if (!c->attr.rq_depth)
		c->attr.rq_depth = DEFAULT_DEPTH;
	snprintf(c->peer, sizeof(c->peer), "(unconnected)");
	c->next = v->conns;
	if (v->conns)
		v->conns->prev = c;
	v->conns = c;
	if (attr->server) {
		ctx = v->listen_ctx;
		if (!ctx) {
			rc = first_active(v, &ctx);
			if (rc < 0)
				goto out_free;
		}
		rc = res_alloc(c, ctx);
		if (rc < 0)
			goto out_free;
		/* The QP exists before any client is seen (its number comes
		 * out of the server's resource pool, not the connect). */
		rc = qp_create(c);
		if (rc < 0)
			goto out_free;
	} else if (rdma_create_id(v->ech, &c->id, c, RDMA_PS_TCP)) {
		rc = srdma__err(SRDMA_EFABRIC, "rdma_create_id: %s",
				strerror(errno));
		goto out_free;
	}
	*out = c;
	return 0;

out_free:
	c->destroyed = true;
	conn_free(c);
	return rc;
}

static int c_resolve(struct srdma__tp_conn *c, const char *host, uint16_t port,
		     int timeout_ms)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM},
			*ai;
	char ps[8];
	int rc;

	ENSURE(!c->attr.server && c->state == VS_NEW && c->id, SRDMA_ESTATE,
	       "resolve: only once, on a new client connection");
	ENSURE(host && host[0], SRDMA_EINVAL, "resolve needs a host");
	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(host, ps, &hints, &ai);
	ENSURE(rc == 0, SRDMA_EUNREACHABLE, "cannot resolve %s: %s", host,
	       gai_strerror(rc));
	fmt_addr(ai->ai_addr, c->peer, sizeof(c->peer));
	rc = rdma_resolve_addr(c->id, NULL, ai->ai_addr,
			       timeout_ms > 0 ? timeout_ms : 2000);
	freeaddrinfo(ai);
	ENSURE(rc == 0, SRDMA_EUNREACHABLE, "rdma_resolve_addr(%s): %s",
	       c->peer, strerror(errno));
	c->state = VS_RESOLVING;
	return SRDMA_EAGAIN;
}

static uint32_t c_local_qpn(const struct srdma__tp_conn *c)
{
	return c && c->qp ? c->qp->qp_num : 0;
}

static void c_set_psn(struct srdma__tp_conn *c, uint32_t sq_psn,
		      uint32_t rq_psn)
{
	c->sq_psn = sq_psn & PSN_MASK;
	c->rq_psn = rq_psn & PSN_MASK;
	c->psn_set = true;
	if (c->qp_rts)
		srdma__log(lg(c->v), SRDMA_LOG_WARN,
			   "verbs: set_psn after the QP reached RTS has no "
			   "effect");
}

static int c_connect(struct srdma__tp_conn *c, const void *pdata, size_t len)
{
	struct rdma_conn_param p;

	ENSURE(c->state == VS_PREPARED, SRDMA_ESTATE,
	       "connect: wait for on_prepared(0) first");
	ENSURE(len <= CONNECT_PDATA_MAX, SRDMA_EMSGSIZE,
	       "connect private data is %zu bytes; at most %d fit", len,
	       CONNECT_PDATA_MAX);
	memset(&p, 0, sizeof(p));
	p.private_data = pdata;
	p.private_data_len = (uint8_t)len;
	p.responder_resources = c->resp_res;
	p.initiator_depth = c->init_depth;
	p.retry_count = 7;
	p.rnr_retry_count = 7;
	p.flow_control = 1;
	p.qp_num = c->qp->qp_num;
	ENSURE(rdma_connect(c->id, &p) == 0, SRDMA_EFABRIC,
	       "rdma_connect to %s: %s", c->peer, strerror(errno));
	c->state = VS_CONNECTING;
	return 0;
}

static int c_disconnect(struct srdma__tp_conn *c)
{
	switch (c->state) {
	case VS_ESTABLISHED:
		qp_to_err(c);
		if (rdma_disconnect(c->id)) {
			srdma__log(lg(c->v), SRDMA_LOG_INFO,
				   "verbs: rdma_disconnect(%s): %s", c->peer,
				   strerror(errno));
			begin_close(c, 0, "disconnected");
			return 0;
		}
		c->state = VS_DISCONNECTING;
		return 0;
	case VS_DISCONNECTING:
	case VS_DRAINING:
		return 0;
	case VS_CLOSED:
		return srdma__err(SRDMA_ESTATE, "disconnect: already closed");
	default:
		/*
		 * Not up yet. Mid-handshake, destroying the cm_id makes the
		 * CM send a REJ, so the peer hears of it at once.
		 */
		if (c->id &&
		    (c->state == VS_CONNECTING || c->state == VS_ACCEPTING)) {
			rdma_destroy_id(c->id);
			c->id = NULL;
		}
		begin_close(c, 0, "closed before the connection was up");
		return 0;
	}
}

static void c_destroy(struct srdma__tp_conn *c)
{
	bool zombie;

	if (!c || c->destroyed)
		return;
	c->destroyed = true;
	zombie = c->id &&
		 (c->state == VS_ESTABLISHED || c->state == VS_DISCONNECTING);
	if (zombie && c->state == VS_ESTABLISHED && rdma_disconnect(c->id))
		zombie = false;
	/* Quiesce now: no DMA into the session's buffers after return. */
	srdma__loop_del(c->cch_reg);
	c->cch_reg = NULL;
	qp_to_err(c);
	while (c->mrs) {
		struct vmr *m = c->mrs;
		c->mrs = m->next;
		mr_free(m);
	}
	c->nqr = 0;
	c->reap = !zombie;
	maybe_free(c);
}

/*
 * Back to VS_NEW for the next client (session/respool.c): the rdma_cm id goes,
 * the QP returns to RESET (which empties both its queues), the CQ is polled
 * empty and re-armed, every work slot is free. PD, CQ, completion channel,
 * QP and the caller's local registrations stay; memory windows must already
 * be gone, so no key of the previous owner survives.
 */
static int c_reset(struct srdma__tp_conn *c)
{
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_RESET};
	struct ibv_wc wc[16];
	int rc, n, guard;

	ENSURE(c && !c->destroyed && c->attr.server && c->busy == 0 && c->qp,
	       SRDMA_ESTATE, "reset: only an idle server connection");
	ENSURE(c->state == VS_NEW || c->state == VS_CLOSED, SRDMA_ESTATE,
	       "reset: the fabric connection is still live");
	for (struct vmr *m = c->mrs; m; m = m->next)
		ENSURE(!m->mw && !m->mw_access, SRDMA_ESTATE,
		       "reset: a remotely accessible registration is still "
		       "live");
	if (c->id) {
		c->id->context = NULL;
		rdma_destroy_id(c->id);
		c->id = NULL;
	}
	rc = ibv_modify_qp(c->qp, &a, IBV_QP_STATE);
	ENSURE(rc == 0, SRDMA_EFABRIC,
	       "reset: ibv_modify_qp(RESET) on QP %u: %s", c->qp->qp_num,
	       strerror(rc));
	for (guard = 0; guard < 1 << 12; guard++) {
		n = ibv_poll_cq(c->cq, 16, wc);
		ENSURE(n >= 0, SRDMA_EFABRIC, "reset: ibv_poll_cq failed (%d)",
		       n);
		if (n == 0)
			break;
	}
	slots_reset(c);
	c->nqr = 0;
	c->qp_rts = c->qp_err = c->qp_used = false;
	c->psn_set = false;
	c->sq_psn = c->rq_psn = 0;
	c->remote_qpn = 0;
	c->check_pending = false;
	c->close_status = 0;
	c->close_detail[0] = '\0';
	c->resp_res = c->dev_resp_res;
	c->init_depth = c->dev_init_depth;
	snprintf(c->peer, sizeof(c->peer), "(unconnected)");
	c->state = VS_NEW;
	return 0;
}

static void c_set_cb(struct srdma__tp_conn *c,
		     const struct srdma__tp_conn_cb *cb)
{
	c->cb = *cb;
}

static int c_info(const struct srdma__tp_conn *c, struct srdma__tp_info *out)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	int rc;

	memset(out, 0, sizeof(*out));
	if (c->ctx)
		snprintf(out->provider, sizeof(out->provider), "%s",
			 dev_name(c->ctx));
	out->max_inline = c->max_inline;
	if (!c->qp)
		return 0;
	out->local_qpn = c->qp->qp_num;
	out->remote_qpn = c->remote_qpn;
	memset(&a, 0, sizeof(a));
	rc = ibv_query_qp(c->qp, &a,
			  IBV_QP_SQ_PSN | IBV_QP_RQ_PSN | IBV_QP_DEST_QPN |
				  IBV_QP_STATE,
			  &ia);
	ENSURE(rc == 0, SRDMA_EFABRIC, "ibv_query_qp(QP %u): %s", c->qp->qp_num,
	       strerror(rc));
	out->sq_psn = a.sq_psn;
	out->rq_psn = a.rq_psn;
	if (a.qp_state >= IBV_QPS_RTR && a.dest_qp_num)
		out->remote_qpn = a.dest_qp_num;
	return 0;
}

/* ---- ops: memory --------------------------------------------------------- */

static int c_mr_reg(struct srdma__tp_conn *c, void *buf, size_t len,
		    unsigned access, struct srdma__tp_mr **out)
{
	unsigned remote =
		access & (SRDMA_TP_REMOTE_READ | SRDMA_TP_REMOTE_WRITE);
	int flags = IBV_ACCESS_LOCAL_WRITE, rc;
	struct vmr *m;
	uint8_t tag;

	ENSURE(buf && len, SRDMA_EINVAL, "mr_reg needs a buffer");
	ENSURE(!(access & ~7u), SRDMA_EINVAL, "mr_reg: unknown access bits");
	ENSURE(c->pd && !c->destroyed, SRDMA_ESTATE,
	       "mr_reg: no protection domain yet (client: after on_prepared)");
	m = calloc(1, sizeof(*m));
	ENSURE(m, SRDMA_ENOMEM, "out of memory for a registration");
	m->c = c;
	if (access & SRDMA_TP_REMOTE_READ)
		m->mw_access |= IBV_ACCESS_REMOTE_READ;
	if (access & SRDMA_TP_REMOTE_WRITE)
		m->mw_access |= IBV_ACCESS_REMOTE_WRITE;
	if (remote && c->mw_ok) {
		m->mw = ibv_alloc_mw(c->pd, IBV_MW_TYPE_2);
		if (!m->mw)
			srdma__log(lg(c->v), SRDMA_LOG_INFO,
				   "verbs: ibv_alloc_mw(type 2) on %s: %s; "
				   "handing out the MR's rkey",
				   dev_name(c->ctx), strerror(errno));
	} else if (remote) {
		srdma__log(lg(c->v), SRDMA_LOG_INFO,
			   "verbs: %s has no type-2 memory windows; handing "
			   "out the MR's rkey",
			   dev_name(c->ctx));
	}
	if (m->mw)
		flags |= IBV_ACCESS_MW_BIND;
	else
		flags |= (int)m->mw_access;
	m->mr = ibv_reg_mr(c->pd, buf, len, flags);
	if (!m->mr) {
		rc = srdma__err(errno == ENOMEM ? SRDMA_ENOMEM : SRDMA_EFABRIC,
				"ibv_reg_mr(%zu bytes) on %s: %s", len,
				dev_name(c->ctx), strerror(errno));
		goto out_free;
	}
	m->pub.buf = buf;
	m->pub.len = len;
	m->pub.addr = (uint64_t)(uintptr_t)buf;
	m->pub.desc = m;
	if (m->mw) {
		/* The MW's index, a fresh random tag (ReDMArk: no guessing). */
		if (getrandom(&tag, 1, 0) != 1) {
			rc = srdma__err(SRDMA_ESYS, "getrandom: %s",
					strerror(errno));
			goto out_free;
		}
		m->pub.key = (m->mw->rkey & 0xffffff00u) | tag;
		if (c->qp_rts) {
			rc = bind_mw(c, m);
			if (rc < 0)
				goto out_free;
		}
	} else if (remote) {
		m->pub.key = m->mr->rkey;
	}
	m->next = c->mrs;
	c->mrs = m;
	*out = &m->pub;
	return 0;

out_free:
	mr_free(m);
	return rc;
}

static void c_mr_dereg(struct srdma__tp_mr *pub)
{
	struct vmr *m = (struct vmr *)pub, **pp;

	if (!m)
		return;
	for (pp = &m->c->mrs; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	mr_free(m);
}

bool srdma__verbs_mr_uses_mw(const struct srdma__tp_mr *pub)
{
	const struct vmr *m = (const struct vmr *)pub;

	return m && m->mw;
}

uint32_t srdma__verbs_mr_rkey(const struct srdma__tp_mr *pub)
{
	const struct vmr *m = (const struct vmr *)pub;

	return m && m->mr ? m->mr->rkey : 0;
}

int srdma__verbs_conn_count(const struct srdma__tp *tp)
{
	const struct vtp *v = tp->priv;
	const struct srdma__tp_conn *c;
	int n = 0;

	for (c = v->conns; c; c = c->next)
		n++;
	return n;
}

/* ---- ops: data path ------------------------------------------------------ */

static int check_buf(const struct vmr *m, const void *buf, size_t len)
{
	const uint8_t *b = buf, *base = m->pub.buf;

	ENSURE(b >= base && len <= m->pub.len &&
		       (size_t)(b - base) <= m->pub.len - len,
	       SRDMA_ERANGE, "buffer %p+%zu is outside its registration", buf,
	       len);
	return 0;
}

static int post_rc(struct srdma__tp_conn *c, int rc, const char *what)
{
	if (rc == ENOMEM)
		return srdma__err(SRDMA_EAGAIN, "%s: the queue is full", what);
	return srdma__err(SRDMA_EFABRIC, "%s on QP %u: %s", what,
			  c->qp ? c->qp->qp_num : 0, strerror(rc));
}

static int c_post_recv(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
		       void *buf, size_t len, uint64_t wr_id)
{
	struct vmr *m = (struct vmr *)mr;
	struct ibv_recv_wr wr, *bad;
	struct ibv_sge sge;
	int slot, rc;

	ENSURE(m && buf, SRDMA_EINVAL, "post_recv needs a registered buffer");
	GUARD(check_buf(m, buf, len));
	ENSURE(c->state < VS_DISCONNECTING, SRDMA_ECLOSED,
	       "post_recv: the connection is closing");
	/* Server: the QP waits in RESET (or does not exist yet) until
	 * accept(); queue receives until then. */
	if (!c->qp || (c->attr.server && c->state == VS_NEW)) {
		ENSURE(c->attr.server && c->state == VS_NEW, SRDMA_ESTATE,
		       "post_recv: no queue pair yet");
		ENSURE(c->nqr < c->attr.rq_depth, SRDMA_EAGAIN,
		       "post_recv: %zu receives queued already", c->nqr);
		if (c->nqr == c->qr_cap) {
			size_t n = c->qr_cap ? c->qr_cap * 2 : 16;
			struct qrecv *q = realloc(c->qr, n * sizeof(*q));
			ENSURE(q, SRDMA_ENOMEM, "out of memory queueing recvs");
			c->qr = q;
			c->qr_cap = n;
		}
		c->qr[c->nqr++] = (struct qrecv){
			.m = m, .buf = buf, .len = len, .wr_id = wr_id};
		return 0;
	}
	slot = slot_get(c, SRDMA_TP_OP_RECV, wr_id);
	GUARD(slot);
	sge.addr = (uint64_t)(uintptr_t)buf;
	sge.length = (uint32_t)len;
	sge.lkey = m->mr->lkey;
	memset(&wr, 0, sizeof(wr));
	wr.wr_id = (uint64_t)slot;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	rc = ibv_post_recv(c->qp, &wr, &bad);
	if (rc) {
		slot_put(c, slot);
		return post_rc(c, rc, "ibv_post_recv");
	}
	return 0;
}

static int post_sq(struct srdma__tp_conn *c, struct ibv_send_wr *wr,
		   struct ibv_sge *sge, int op, uint64_t wr_id,
		   const char *what)
{
	int slot, rc;
	struct ibv_send_wr *bad;

	ENSURE(c->state < VS_DISCONNECTING, SRDMA_ECLOSED,
	       "%s: the connection is closing", what);
	ENSURE(c->qp_rts, SRDMA_ESTATE, "%s: the connection is not up", what);
	slot = slot_get(c, op, wr_id);
	GUARD(slot);
	wr->wr_id = (uint64_t)slot;
	wr->sg_list = sge;
	wr->num_sge = 1;
	wr->send_flags |= IBV_SEND_SIGNALED;
	rc = ibv_post_send(c->qp, wr, &bad);
	if (rc) {
		slot_put(c, slot);
		return post_rc(c, rc, what);
	}
	return 0;
}

static int c_post_send(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
		       const void *buf, size_t len, uint64_t wr_id,
		       unsigned flags)
{
	struct vmr *m = (struct vmr *)mr;
	struct ibv_send_wr wr;
	struct ibv_sge sge;
	bool inl = (flags & SRDMA_TP_F_INLINE) && len <= c->max_inline;

	ENSURE(buf && (m || inl), SRDMA_EINVAL,
	       "post_send needs a registered buffer");
	if (m)
		GUARD(check_buf(m, buf, len));
	memset(&wr, 0, sizeof(wr));
	wr.opcode = IBV_WR_SEND;
	if (inl)
		wr.send_flags = IBV_SEND_INLINE;
	sge.addr = (uint64_t)(uintptr_t)buf;
	sge.length = (uint32_t)len;
	sge.lkey = m ? m->mr->lkey : 0;
	return post_sq(c, &wr, &sge, SRDMA_TP_OP_SEND, wr_id, "post_send");
}

static int post_rdma(struct srdma__tp_conn *c, struct vmr *m, const void *buf,
		     size_t len, uint64_t raddr, uint64_t rkey, uint64_t wr_id,
		     bool write)
{
	struct ibv_send_wr wr;
	struct ibv_sge sge;

	ENSURE(m && buf, SRDMA_EINVAL, "RDMA %s needs a registered buffer",
	       write ? "write" : "read");
	GUARD(check_buf(m, buf, len));
	ENSURE(rkey <= UINT32_MAX, SRDMA_EINVAL,
	       "remote key 0x%llx does not fit verbs' 32 bits",
	       (unsigned long long)rkey);
	memset(&wr, 0, sizeof(wr));
	wr.opcode = write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = (uint32_t)rkey;
	sge.addr = (uint64_t)(uintptr_t)buf;
	sge.length = (uint32_t)len;
	sge.lkey = m->mr->lkey;
	return post_sq(c, &wr, &sge,
		       write ? SRDMA_TP_OP_WRITE : SRDMA_TP_OP_READ, wr_id,
		       write ? "post_write" : "post_read");
}

static int c_post_write(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			const void *buf, size_t len, uint64_t raddr,
			uint64_t rkey, uint64_t wr_id, unsigned flags)
{
	return post_rdma(c, (struct vmr *)mr, buf, len, raddr, rkey, wr_id,
			 true);
}

static int c_post_read(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
		       void *buf, size_t len, uint64_t raddr, uint64_t rkey,
		       uint64_t wr_id, unsigned flags)
{
	return post_rdma(c, (struct vmr *)mr, buf, len, raddr, rkey, wr_id,
			 false);
}

/* ---- availability ------------------------------------------------------- */

bool srdma__verbs_available(char *why, size_t len)
{
	struct ibv_device **list;
	char first[96] = "";
	bool found = false;
	int n = 0, i, p;

	list = ibv_get_device_list(&n);
	if (!list || n <= 0) {
		snprintf(why, len, "no RDMA devices found");
		if (list)
			ibv_free_device_list(list);
		return false;
	}
	for (i = 0; i < n && !found; i++) {
		struct ibv_context *ctx = ibv_open_device(list[i]);
		struct ibv_device_attr da;
		if (!ctx)
			continue;
		if (ibv_query_device(ctx, &da) == 0) {
			for (p = 1; p <= da.phys_port_cnt && !found; p++) {
				struct ibv_port_attr pa;
				if (ibv_query_port(ctx, (uint8_t)p, &pa))
					continue;
				if (pa.state == IBV_PORT_ACTIVE) {
					snprintf(why, len,
						 "found %s port %d ACTIVE",
						 ibv_get_device_name(list[i]),
						 p);
					found = true;
				} else if (!first[0]) {
					snprintf(first, sizeof(first),
						 "%s port %d is %s",
						 ibv_get_device_name(list[i]),
						 p,
						 ibv_port_state_str(pa.state));
				}
			}
		}
		ibv_close_device(ctx);
	}
	if (!found)
		snprintf(why, len, "%d RDMA device(s) but no ACTIVE port (%s)",
			 n, first[0] ? first : "none could be opened");
	ibv_free_device_list(list);
	return found;
}

const struct srdma__tp_ops srdma__verbs_ops = {
	.name = "verbs",
	.open = v_open,
	.close = v_close,
	.listen = v_listen,
	.listener_port = l_port,
	.listener_destroy = l_destroy,
	.accept = c_accept,
	.reject = c_reject,
	.conn_create = c_create,
	.resolve = c_resolve,
	.local_qpn = c_local_qpn,
	.set_psn = c_set_psn,
	.connect = c_connect,
	.disconnect = c_disconnect,
	.conn_destroy = c_destroy,
	.conn_info = c_info,
	.conn_reset = c_reset,
	.conn_set_cb = c_set_cb,
	.pins_memory = true,
	.mr_reg = c_mr_reg,
	.mr_dereg = c_mr_dereg,
	.post_recv = c_post_recv,
	.post_send = c_post_send,
	.post_write = c_post_write,
	.post_read = c_post_read,
};
