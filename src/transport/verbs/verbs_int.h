/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: librdmacm for connection management, libibverbs for the
 * data path (DESIGN.md §3-§5).
 *
 * What the files of the backend share: verbs.c (helpers, device choice,
 * open/close, ops table), cm.c (rdma_cm events, listener), setup.c
 * (per-connection resources, QP, accept, connect), conn.c (lifetime,
 * callbacks to the session, disconnect, destroy), mr.c (registrations,
 * memory windows), data.c (work slots, completions, posting) and
 * reset.c (resource pool reset). Nothing outside transport/verbs/
 * includes it.
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
#ifndef SRDMA_TRANSPORT_VERBS_VERBS_INT_H
#define SRDMA_TRANSPORT_VERBS_VERBS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

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

static inline const struct srdma__logger *lg(const struct vtp *v)
{
	return v->tp->log;
}

static inline const char *dev_name(struct ibv_context *ctx)
{
	return ctx ? ibv_get_device_name(ctx->device) : "?";
}

static inline bool dev_matches(const struct vtp *v, struct ibv_context *ctx)
{
	return !v->device[0] || !strcmp(v->device, dev_name(ctx));
}

/* verbs.c */
int srdma__verbs_set_nonblock(int fd);
void srdma__verbs_fmt_addr(const struct sockaddr *sa, char *out, size_t len);
int srdma__verbs_first_active(struct vtp *v, struct ibv_context **out);

/* cm.c */
void srdma__verbs_cm_ready(void *arg, uint32_t events);
void srdma__verbs_deferred_ready(void *arg, uint32_t events);
int srdma__verbs_listen(struct srdma__tp *tp, const char *host, uint16_t port,
			const struct srdma__tp_listener_cb *cb,
			struct srdma__tp_listener **out);
uint16_t srdma__verbs_listener_port(const struct srdma__tp_listener *l);
void srdma__verbs_listener_destroy(struct srdma__tp_listener *l);
int srdma__verbs_reject(struct srdma__tp_listener *l,
			struct srdma__tp_connreq *req, const void *pdata,
			size_t len);

/* setup.c */
int srdma__verbs_res_alloc(struct srdma__tp_conn *c, struct ibv_context *ctx);
int srdma__verbs_qp_create(struct srdma__tp_conn *c);
int srdma__verbs_qp_move(struct srdma__tp_conn *c, enum ibv_qp_state st);
int srdma__verbs_accept(struct srdma__tp_conn *c, struct srdma__tp_connreq *req,
			const void *pdata, size_t len);
int srdma__verbs_conn_create(struct srdma__tp *tp,
			     const struct srdma__tp_conn_attr *attr,
			     const struct srdma__tp_conn_cb *cb,
			     struct srdma__tp_conn **out);
int srdma__verbs_resolve(struct srdma__tp_conn *c, const char *host,
			 uint16_t port, int timeout_ms);
uint32_t srdma__verbs_local_qpn(const struct srdma__tp_conn *c);
void srdma__verbs_set_psn(struct srdma__tp_conn *c, uint32_t sq_psn,
			  uint32_t rq_psn);
int srdma__verbs_connect(struct srdma__tp_conn *c, const void *pdata,
			 size_t len);

/* conn.c */
void srdma__verbs_hold(struct srdma__tp_conn *c);
void srdma__verbs_release(struct srdma__tp_conn *c);
void srdma__verbs_res_free(struct srdma__tp_conn *c);
void srdma__verbs_conn_free(struct srdma__tp_conn *c);
void srdma__verbs_tell_established(struct srdma__tp_conn *c);
void srdma__verbs_tell_prepared(struct srdma__tp_conn *c, int status);
void srdma__verbs_check_drained(struct srdma__tp_conn *c);
void srdma__verbs_begin_close(struct srdma__tp_conn *c, int status,
			      const char *detail);
int srdma__verbs_disconnect(struct srdma__tp_conn *c);
void srdma__verbs_conn_destroy(struct srdma__tp_conn *c);
void srdma__verbs_conn_set_cb(struct srdma__tp_conn *c,
			      const struct srdma__tp_conn_cb *cb);
int srdma__verbs_conn_info(const struct srdma__tp_conn *c,
			   struct srdma__tp_info *out);

/* mr.c */
void srdma__verbs_mr_free(struct vmr *m);
int srdma__verbs_bind_pending(struct srdma__tp_conn *c);
int srdma__verbs_mr_reg(struct srdma__tp_conn *c, void *buf, size_t len,
			unsigned access, struct srdma__tp_mr **out);
void srdma__verbs_mr_dereg(struct srdma__tp_mr *pub);

/* data.c */
int srdma__verbs_slot_get(struct srdma__tp_conn *c, int op, uint64_t wr_id);
void srdma__verbs_slot_put(struct srdma__tp_conn *c, int i);
void srdma__verbs_slots_reset(struct srdma__tp_conn *c);
void srdma__verbs_poll_cq(struct srdma__tp_conn *c);
void srdma__verbs_cq_ready(void *arg, uint32_t events);
int srdma__verbs_post_recv(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			   void *buf, size_t len, uint64_t wr_id);
int srdma__verbs_post_send(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			   const void *buf, size_t len, uint64_t wr_id,
			   unsigned flags);
int srdma__verbs_post_write(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			    const void *buf, size_t len, uint64_t raddr,
			    uint64_t rkey, uint64_t wr_id, unsigned flags);
int srdma__verbs_post_read(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			   void *buf, size_t len, uint64_t raddr, uint64_t rkey,
			   uint64_t wr_id, unsigned flags);

/* reset.c */
int srdma__verbs_conn_reset(struct srdma__tp_conn *c);

#endif
