/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: librdmacm for connection management, libibverbs for the
 * data path (DESIGN.md §3-§5).
 *
 * What the files of the backend share: verbs.c (helpers, open/close, ops
 * table), device.c (the devices: capabilities, policy, which device an
 * address is on, asynchronous events), cm.c (rdma_cm events, listener),
 * setup.c (per-connection resources, QP, accept, connect), conn.c
 * (lifetime, callbacks to the session, disconnect, destroy), mr.c
 * (registrations, memory windows), data.c (work slots, completions,
 * posting), reset.c (resource pool reset, TIMEWAIT) and testhook.c
 * (imitated hardware, test builds only). Nothing outside transport/verbs/
 * includes it.
 *
 * Choices worth knowing:
 * - Devices: each transport instance opens its own ibv_context per device
 *   (not librdmacm's shared ones), so the asynchronous events of its QPs and
 *   CQs come to its own async fd, read in its loop; a device is named by
 *   what rdma_cm resolved (cm_id->verbs), matched by name. A device is
 *   usable when it carries reliable connections the way this backend drives
 *   them: transport InfiniBand (IB or RoCE). iWARP devices are refused with
 *   a sentence (the connect request carries no QPN to bind to the TLS
 *   session, the QP is moved to RTS by the iWARP CM, there are no PSNs, and
 *   a read sink needs remote write access; none of it can be tested here,
 *   Debian's kernel has no soft-iWARP); so are devices of other transports
 *   (EFA, usNIC: no RC). AUTO then picks ofi.
 * - One rdma_event_channel per transport instance, O_NONBLOCK in the loop,
 *   drained until EAGAIN. Each event is copied (private data included) and
 *   acknowledged at once, before it is dispatched by cm_id->context, so no
 *   handler can ever leave an event unacked (which would make
 *   rdma_destroy_id block forever).
 * - We create the QP ourselves (ibv_create_qp, RC) on a per-connection PD and
 *   move it INIT->RTR->RTS with rdma_init_qp_attr, overriding rq_psn and
 *   min_rnr_timer (RTR) and sq_psn (RTS) with the values from set_psn() and
 *   our own RNR delay. The client reaches INIT when the route is resolved
 *   (on_prepared), RTR/RTS on CONNECT_RESPONSE, then calls rdma_establish
 *   (which sends the RTU); the active side gets no ESTABLISHED event of its
 *   own, so on_established fires right after it. The server's fires on
 *   ESTABLISHED, on COMM_EST (then rdma_notify) or on its first successful
 *   completion, whichever comes first. The server creates its QP in
 *   conn_create (on the device conn_attr.dev names) and reaches RTS before
 *   rdma_accept sends the REP.
 * - Server receives: the session posts them before accept() (the QP is in
 *   RESET or does not exist yet). Such receives are queued and posted in
 *   accept() while the QP is in INIT, i.e. before the peer can send
 *   anything. Send, write and read need the QP in RTS.
 * - Which device serves a client: the session asks dev_for_addr() with the
 *   local address the client's control connection arrived on (a bound
 *   rdma_cm id names the device), so hosts with several devices or ports
 *   serve every client on the device its packets arrive on; accept() still
 *   refuses a request that came in on another device. Listeners each keep
 *   their own device (none for a wildcard address).
 * - Memory windows: where the device has usable type-2 MWs, a remote-access
 *   registration gets an MR with only LOCAL_WRITE|MW_BIND and a type-2 MW.
 *   The key handed out is the MW's index with 8 fresh random tag bits; the
 *   bind (IBV_WR_BIND_MW, bound to this QP) is posted at once if the QP is
 *   in RTS, else as soon as it gets there, and the registration stays
 *   pending (srdma__tp_mr.pending) until the bind completes: the session
 *   grants the key only after on_mr_ready(0). A failed bind reports its
 *   status instead. Windows cover at most MW_MAX_LEN bytes (ConnectX
 *   refuses more). Without usable type-2 MWs (none advertised, or a
 *   provider known not to bind them) remote access is refused unless the
 *   context allows MR keys; then the MR gets the remote flags and its
 *   rkey is handed out, logged once per device. mr_dereg deallocates the
 *   MW (invalidating the key at once), then the MR. The send queue has
 *   room for SQ_EXTRA binds beyond sq_depth.
 * - Asynchronous events (device.c): QP and CQ errors close the connection
 *   they concern with a sentence; a port error closes every connection on
 *   that port; a fatal device error closes every connection on it and
 *   makes its spare connections unusable (the pool destroys them).
 * - Work requests carry a slot index as wr_id; the slot keeps the session's
 *   wr_id (for a bind: the registration) and the opcode, since an error
 *   completion's opcode is undefined.
 * - Close: disconnect() sends the DREQ and moves the QP to ERR itself (a
 *   self-created QP is not moved by rdma_disconnect); on DISCONNECTED and
 *   once every outstanding work request has completed (flushed), on_closed
 *   fires. A peer's DISCONNECTED is answered the same way and also reported
 *   with status 0; errors (REJECTED -> SRDMA_ECONNREFUSED, UNREACHABLE,
 *   CONNECT_ERROR, DEVICE_REMOVAL, asynchronous errors) with a negative
 *   status. A disconnect before establishment reports on_closed from the
 *   loop (eventfd).
 * - Reuse (reset.c): a server connection that was accepted keeps its
 *   rdma_cm id after conn_reset until the CM's TIMEWAIT_EXIT, and
 *   conn_usable() says 0 meanwhile, so a QP number never serves a new peer
 *   while packets of the old connection may still be on the wire.
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
	/* RNR NAK delay asked of the peer (IBA table 45: 12 = 0.64 ms); the
	 * CM's 0 means 655 ms */
	MIN_RNR_TIMER = 12,
	ROUTE_TIMEOUT_MS = 2000,
	/* A reset connection whose TIMEWAIT_EXIT never came is not reused. */
	TIMEWAIT_MAX_MS = 60000,
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

/* The largest memory window bound (ConnectX refuses binds over 2 GiB). */
#define MW_MAX_LEN ((size_t)1 << 31)

struct vdev {
	struct vtp *v;
	struct ibv_context *ctx; /* ours (ibv_open_device) */
	char name[64];
	struct ibv_device_attr da;
	bool usable; /* RC through rdma_cm as this backend drives it */
	bool mw;     /* usable type-2 memory windows */
	bool dead;   /* fatal device error or removal: nothing works */
	bool mr_keys_logged;
	char why[256]; /* when not usable: one sentence */
	struct srdma__loop_fd *async_reg;
	unsigned imitate;  /* test builds: enum srdma__verbs_imitate_flags */
	int bind_delay_ms; /* test builds: binds posted this much later */
};

struct vtp {
	struct srdma__tp *tp;
	struct rdma_event_channel *ech;
	struct srdma__loop_fd *ech_reg;
	int evfd; /* deferred work: closes that need no fabric event */
	struct srdma__loop_fd *ev_reg;
	struct vdev **devs; /* every device opened (stable pointers) */
	int ndevs;
	char device[64]; /* device filter, "" = any */
	/* values of the connect request being decided (accept() is called
	 * from inside on_connreq) */
	uint8_t req_initiator_depth, req_responder_resources;
	struct srdma__tp_conn *conns; /* all conns, zombies included */
	struct srdma__tp_listener *listeners;
	int tfd; /* test builds: timer for delayed binds, else -1 */
	struct srdma__loop_fd *tfd_reg;
};

struct vmr {
	struct srdma__tp_mr pub; /* first: the session holds &pub */
	struct srdma__tp_conn *c;
	struct ibv_mr *mr;
	struct ibv_mw *mw;
	unsigned mw_access;
	bool bound;	     /* bind posted (and maybe completed) */
	int bind_slot;	     /* work slot of the bind in flight, or SLOT_NONE */
	uint64_t bind_at_ms; /* test builds: not before this */
	struct vmr *next;
};

struct qrecv {
	struct vmr *m;
	void *buf;
	size_t len;
	uint64_t wr_id;
};

struct wslot {
	uint64_t wr_id; /* the session's, or (bind) the vmr, 0 if gone */
	int op;		/* SRDMA_TP_OP_* or OP_BIND; 0 = free */
	int next_free;
};

struct srdma__tp_listener {
	int kind;
	struct vtp *v;
	struct rdma_cm_id *id;
	struct vdev *dev; /* NULL: a wildcard address */
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
	struct vdev *dev;
	struct ibv_context *ctx; /* dev->ctx */
	struct ibv_pd *pd;
	struct ibv_comp_channel *cch;
	struct srdma__loop_fd *cch_reg;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	bool qp_rts, qp_err;
	bool qp_used;	/* left RESET since it was created or reset */
	bool accepted;	/* server: REP sent; the CM's TIMEWAIT follows */
	bool tw_exited; /* TIMEWAIT_EXIT seen on id */
	bool timewait;	/* reset, waiting for TIMEWAIT_EXIT on id */
	uint64_t timewait_since_ms;
	uint8_t resp_res, init_depth;
	uint8_t dev_resp_res, dev_init_depth; /* before a request clamps them */
	uint32_t max_inline;
	bool psn_set;
	uint32_t sq_psn, rq_psn;
	/* What the QP said its PSNs were right after RTS, before the peer
	 * could move them (conn_info) */
	bool psn_read;
	uint32_t rts_sq_psn, rts_rq_psn;
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

static inline int dev_index(const struct vdev *d)
{
	for (int i = 0; i < d->v->ndevs; i++)
		if (d->v->devs[i] == d)
			return i + 1;
	return 0;
}

/* verbs.c */
int srdma__verbs_set_nonblock(int fd);
void srdma__verbs_fmt_addr(const struct sockaddr *sa, char *out, size_t len);
/* "" or "; the locked-memory limit ... `ulimit -l` ..." for ENOMEM. */
const char *srdma__verbs_memlock_hint(char *buf, size_t len);

/* device.c */
int srdma__verbs_devs_open(struct vtp *v);
void srdma__verbs_devs_close(struct vtp *v);
/* Our device for a context rdma_cm resolved (opened if new), or NULL. */
struct vdev *srdma__verbs_dev_of(struct vtp *v, struct ibv_context *cmctx);
/* 0 if d can carry this backend's connections, else the sentence. */
int srdma__verbs_dev_check(const struct vdev *d);
/* The device for a server connection without an address: a listener's,
 * else the first usable one with an active port. */
int srdma__verbs_dev_default(struct vtp *v, struct vdev **out);
int srdma__verbs_dev_for_addr(struct srdma__tp *tp, const struct sockaddr *sa);
/* Whether port p of d is ACTIVE (why says what it is otherwise). */
bool srdma__verbs_port_active(struct vdev *d, uint8_t p, char *why, size_t len);

/* testhook.c: imitated hardware, test builds only (elsewhere nothing) */
#ifdef SRDMA_TEST_HOOKS
void srdma__verbs_imitate_dev(struct vdev *d);
void srdma__verbs_imitate_attr(const char *name, unsigned *flags,
			       struct ibv_device_attr *da);
int srdma__verbs_timer_open(struct vtp *v);
void srdma__verbs_timer_close(struct vtp *v);
void srdma__verbs_timer_arm(struct vtp *v, int ms);
#else
static inline void srdma__verbs_imitate_dev(struct vdev *d)
{
	(void)d;
}
static inline void srdma__verbs_imitate_attr(const char *name, unsigned *flags,
					     struct ibv_device_attr *da)
{
	(void)name, (void)flags, (void)da;
}
static inline int srdma__verbs_timer_open(struct vtp *v)
{
	v->tfd = -1;
	return 0;
}
static inline void srdma__verbs_timer_close(struct vtp *v)
{
	(void)v;
}
#endif

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
int srdma__verbs_res_alloc(struct srdma__tp_conn *c, struct vdev *d);
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
/* A bind's completion (status 0 or SRDMA_E*): the registration is ready,
 * or failed; tells the session. */
void srdma__verbs_bind_done(struct srdma__tp_conn *c, struct vmr *m, int status,
			    const char *wc_status);
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
int srdma__verbs_conn_usable(const struct srdma__tp_conn *c);
/* TIMEWAIT_EXIT (or another end) on a reset connection's id. */
void srdma__verbs_timewait_over(struct srdma__tp_conn *c);

#endif
