/* SPDX-License-Identifier: MIT */
/*
 * One internal interface, two backends (libuv style): ofi (libfabric
 * FI_EP_MSG) and verbs (librdmacm + libibverbs). A backend knows nothing of
 * TLS or AEAD: it moves bytes between registered buffers and reports
 * connection events and completions through callbacks, always from the loop
 * thread, never from inside the call that caused them unless stated.
 *
 * Lifecycle, server side:
 *   listen() (several may coexist); per client after TLS: dev_for_addr()
 *   with the address the client reached (where a host has several
 *   devices), conn_create() on that device (allocates the per-connection
 *   domain/PD and CQs), set_psn(), mr_reg() for its buffers; the listener's
 *   on_connreq callback then hands a connect request whose private data
 *   the session checks, and the session posts its receives (before
 *   accept() where recv_before_accept) and calls accept() with that conn
 *   or reject(), before the callback returns.
 * Client side:
 *   conn_create(), resolve() (async on verbs: on_prepared follows; QPN known
 *   after it), set_psn(), mr_reg(), connect() with the private data;
 *   on_established follows.
 * Either side: post_*; completions arrive through on_cqe; a remotely
 * accessible registration may be pending (mr.pending) until on_mr_ready;
 * disconnect() for an orderly close (on_closed follows), conn_destroy() at
 * any time.
 */
#ifndef SRDMA_TRANSPORT_TRANSPORT_H
#define SRDMA_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "base/err.h"
#include "base/loop.h"

struct srdma__tp;
struct srdma__tp_listener;
struct srdma__tp_conn;

enum srdma__tp_access {
	SRDMA_TP_LOCAL = 1,	   /* send/recv buffers, read targets */
	SRDMA_TP_REMOTE_READ = 2,  /* the peer may RDMA-read it */
	SRDMA_TP_REMOTE_WRITE = 4, /* the peer may RDMA-write it */
};

/* A registration. The backend allocates it; fields are read-only. */
struct srdma__tp_mr {
	void *buf;
	size_t len;
	uint64_t
		addr; /* what the peer passes as the remote address of buf[0] */
	uint64_t key; /* what the peer passes as the remote key (0 if local) */
	void *desc;   /* backend's local descriptor */
	/*
	 * The key is not usable by the peer yet (verbs: its memory window
	 * bind is still in the send queue): do not hand it out before
	 * on_mr_ready(mr, 0). Cleared by the backend before that callback.
	 */
	bool pending;
};

enum srdma__tp_op {
	SRDMA_TP_OP_SEND = 1,
	SRDMA_TP_OP_RECV = 2,
	SRDMA_TP_OP_WRITE = 3,
	SRDMA_TP_OP_READ = 4,
};

struct srdma__tp_cqe {
	uint64_t wr_id;
	enum srdma__tp_op op;
	int status; /* 0, SRDMA_EREMOTE_ACCESS, SRDMA_ECLOSED (flushed), ... */
	uint32_t len; /* bytes received (RECV) */
};

struct srdma__tp_conn_cb {
	void *arg;
	/* Client: resolve() finished asynchronously (status 0 or error). */
	void (*on_prepared)(void *arg, int status);
	/* The fabric connection is up; posted receives may now match. */
	void (*on_established)(void *arg);
	/*
	 * The connection is gone: orderly (status 0) or not. After this, every
	 * outstanding work request has completed (flushed with an error).
	 */
	void (*on_closed)(void *arg, int status, const char *detail);
	void (*on_cqe)(void *arg, const struct srdma__tp_cqe *cqe);
	/*
	 * A registration that mr_reg() returned with pending set is ready
	 * (status 0) or never will be (status < 0, detail one sentence;
	 * SRDMA_ECLOSED when the connection closed first). Once per such
	 * registration, unless it is deregistered first. NULL ok.
	 */
	void (*on_mr_ready)(void *arg, struct srdma__tp_mr *mr, int status,
			    const char *detail);
};

struct srdma__tp_connreq {
	uint8_t pdata[256]; /* copied out of the fabric event */
	size_t pdata_len;
	uint32_t initiator_qpn; /* verbs; 0 on ofi */
	char peer[64];		/* "ip:port" for logs */
	void *handle;		/* backend's */
};

struct srdma__tp_listener_cb {
	void *arg;
	/* Must call accept() or reject() before returning; if neither, the
	 * backend rejects. */
	void (*on_connreq)(void *arg, struct srdma__tp_connreq *req);
};

struct srdma__tp_conn_attr {
	bool server;
	/* Server: the device, as dev_for_addr() returned it; 0 = the
	 * listener's (or the first usable one). Ignored where there is one. */
	int dev;
	uint32_t sq_depth;   /* send/write/read work requests in flight */
	uint32_t rq_depth;   /* receives posted */
	uint32_t max_inline; /* wanted inline size for small sends (hint) */
};

struct srdma__tp_info {
	char provider[32];
	uint32_t local_qpn, remote_qpn;
	uint32_t sq_psn, rq_psn;	 /* as set on the QP, read back when it
					  * reached RTS (verbs) */
	uint32_t sq_psn_now, rq_psn_now; /* verbs: the QP's now (next to
					  * send, next expected) */
	uint32_t max_inline;
	int traffic_class; /* verbs: the QP's, read back; -1 unknown */
};

enum {
	SRDMA_TP_F_INLINE = 1,
	/* post_write: complete only once the data is placed at the target,
	 * so a bad key or range shows in this completion (verbs RC writes
	 * always do). Without it a write may complete when its buffer can be
	 * reused, and a remote error then shows as the connection failing:
	 * the session does not ask, its notices and ACKs carry the outcome. */
	SRDMA_TP_F_DELIVERED = 2,
};

struct srdma__tp_ops {
	const char *name;
	int (*open)(struct srdma__tp *tp, const char *provider,
		    const char *device);
	void (*close)(struct srdma__tp *tp);

	int (*listen)(struct srdma__tp *tp, const char *host, uint16_t port,
		      const struct srdma__tp_listener_cb *cb,
		      struct srdma__tp_listener **out);
	uint16_t (*listener_port)(const struct srdma__tp_listener *l);
	void (*listener_destroy)(struct srdma__tp_listener *l);
	int (*accept)(struct srdma__tp_conn *c, struct srdma__tp_connreq *req,
		      const void *pdata, size_t len);
	int (*reject)(struct srdma__tp_listener *l,
		      struct srdma__tp_connreq *req, const void *pdata,
		      size_t len);

	int (*conn_create)(struct srdma__tp *tp,
			   const struct srdma__tp_conn_attr *attr,
			   const struct srdma__tp_conn_cb *cb,
			   struct srdma__tp_conn **out);
	/* Client: 0 = prepared now; SRDMA_EAGAIN = on_prepared follows. */
	int (*resolve)(struct srdma__tp_conn *c, const char *host,
		       uint16_t port, int timeout_ms);
	/* QPN once prepared (client) or accepted (server); 0 on ofi. */
	uint32_t (*local_qpn)(const struct srdma__tp_conn *c);
	/* Verbs: the PSNs for our sq and for our rq (= the peer's sq). */
	void (*set_psn)(struct srdma__tp_conn *c, uint32_t sq_psn,
			uint32_t rq_psn);
	/* Optional (NULL where resolution binds the port, as rdma_cm does):
	 * changes the port connect() goes to after a resolve() that was done
	 * before the port was known (the client's pipelined PARAMS). */
	void (*set_port)(struct srdma__tp_conn *c, uint16_t port);
	int (*connect)(struct srdma__tp_conn *c, const void *pdata, size_t len);
	/* Orderly: on_closed follows. */
	int (*disconnect)(struct srdma__tp_conn *c);
	/* Any time; no callback fires after it returns; never blocks for long.
	 */
	void (*conn_destroy)(struct srdma__tp_conn *c);
	int (*conn_info)(const struct srdma__tp_conn *c,
			 struct srdma__tp_info *out);
	/*
	 * Server resource pool (session/respool.c). conn_reset brings a server
	 * connection whose fabric life is over (never accepted, or closed with
	 * on_closed delivered) back to the state conn_create leaves: endpoint
	 * or rdma_cm id gone, queues empty, every completion discarded, the
	 * domain/PD, CQ and (verbs) QP kept, the QP in RESET. Registrations
	 * the caller still holds stay valid; the caller must have deregistered
	 * every remotely accessible one first (else SRDMA_ESTATE: a key of the
	 * previous owner must never outlive it). <0: not reusable, destroy it.
	 * conn_set_cb replaces the callbacks (the pool parks spares on no-op
	 * ones and hands them to a session with its own).
	 */
	int (*conn_reset)(struct srdma__tp_conn *c);
	void (*conn_set_cb)(struct srdma__tp_conn *c,
			    const struct srdma__tp_conn_cb *cb);
	/*
	 * Optional (NULL: always 1). Whether a reset connection may be handed
	 * to a client now (1), later (0: verbs waits for the CM's
	 * TIMEWAIT_EXIT before a QP number serves a new peer) or never (<0:
	 * its device is gone, or the wait never ended; destroy it).
	 */
	int (*conn_usable)(const struct srdma__tp_conn *c);
	/*
	 * Optional (NULL: one device, 0). Server: the device a connection for
	 * a client that reached this host at local address sa must use (>0,
	 * for conn_attr.dev), or <0 with a sentence when no usable device has
	 * that address. sa NULL: the default device.
	 */
	int (*dev_for_addr)(struct srdma__tp *tp, const struct sockaddr *sa);
	/* Registrations pin pages (verbs): memory under one must be zeroed
	 * in place, never dropped with madvise. */
	bool pins_memory;
	/* A server connection takes post_recv() before accept() (verbs: the
	 * receives are on the QP before the peer can send, so its first
	 * sends meet no RNR NAK); otherwise post them right after. */
	bool recv_before_accept;

	/* access: SRDMA_TP_* bits. Remote keys are unpredictable (random on
	 * ofi; memory windows on verbs where supported). */
	int (*mr_reg)(struct srdma__tp_conn *c, void *buf, size_t len,
		      unsigned access, struct srdma__tp_mr **out);
	/* Invalidates the key at once. NULL ok. */
	void (*mr_dereg)(struct srdma__tp_mr *mr);

	int (*post_recv)(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 void *buf, size_t len, uint64_t wr_id);
	int (*post_send)(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 const void *buf, size_t len, uint64_t wr_id,
			 unsigned flags);
	int (*post_write)(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			  const void *buf, size_t len, uint64_t raddr,
			  uint64_t rkey, uint64_t wr_id, unsigned flags);
	int (*post_read)(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 void *buf, size_t len, uint64_t raddr, uint64_t rkey,
			 uint64_t wr_id, unsigned flags);
};

/* What a context asks of its transport, beyond the choice of backend. */
struct srdma__tp_opts {
	const char *provider; /* ofi: libfabric provider; NULL = tcp */
	const char *device;   /* verbs: device name; NULL = any */
	uint8_t tos;	      /* verbs: IP type of service (RDMA_OPTION_ID_TOS);
			       * 0 = the system's default */
	uint32_t route_timeout_ms; /* verbs: rdma_resolve_route; 0 = 2000 */
	/* verbs: on a device without usable type-2 memory windows, hand out
	 * the MR's own rkey instead of refusing remote access */
	bool allow_mr_keys;
};

/* The backend instance every call hangs off. */
struct srdma__tp {
	const struct srdma__tp_ops *ops;
	enum srdma_transport kind;
	enum srdma_transport want;  /* as asked: AUTO may still be settled */
	bool settled;		    /* AUTO decided by an address already */
	struct srdma__tp_opts opts; /* strings owned by the context */
	struct srdma__loop *loop;
	const struct srdma__logger *log;
	void *priv;    /* backend state */
	char why[384]; /* why this transport, one sentence (for the context) */
};

extern const struct srdma__tp_ops srdma__ofi_ops;
extern const struct srdma__tp_ops srdma__verbs_ops;

/*
 * Opens the transport: AUTO picks verbs when an RDMA device that can carry
 * reliable connections (InfiniBand or RoCE, not iWARP) has an active port,
 * ofi otherwise, until srdma__tp_settle() decides by an address; (*out)->why
 * says which and why, in one sentence, for as long as the transport lives.
 * SRDMA_ENODEV with detail when the asked-for one is unusable.
 */
int srdma__tp_open(enum srdma_transport want, const struct srdma__tp_opts *o,
		   struct srdma__loop *loop, const struct srdma__logger *log,
		   struct srdma__tp **out) SRDMA__WUR;
/*
 * AUTO only, once, before anything uses *tp: decides by the address the
 * context will use (passive: a listen address, NULL = all; else the
 * destination): verbs where it is reached through a usable RDMA device,
 * ofi otherwise. May replace *tp. Nothing to do for a chosen transport.
 */
int srdma__tp_settle(struct srdma__tp **tp, const char *host,
		     bool passive) SRDMA__WUR;
void srdma__tp_close(struct srdma__tp *tp);
/* True if verbs has a usable device with an active port (for AUTO). */
bool srdma__verbs_available(char *why, size_t len);
/*
 * True if host is reached through a usable RDMA device with an active port
 * (passive: host is a local address to listen on; NULL = all). why says
 * which device, or what stands in the way.
 */
bool srdma__verbs_reaches(const char *host, bool passive, char *why,
			  size_t len);
/*
 * True when registrations are bounded by RLIMIT_MEMLOCK (a finite limit and
 * no CAP_IPC_LOCK); *bytes is the limit.
 */
bool srdma__memlock_limited(uint64_t *bytes);

#endif
