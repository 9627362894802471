/* SPDX-License-Identifier: MIT */
/*
 * The srdma libfabric provider: what its files share.
 *
 * An FI_EP_MSG provider layered on libsrdma's public API (srdma.h only):
 * every endpoint connection is one srdma_conn, so it is mutually
 * authenticated with TLS 1.3 and its payloads are protected in the mode
 * FI_SRDMA_PROTECT asks. ofi_rxm stacks FI_EP_RDM and tagged messaging on
 * top by itself. Files: prov.c (provider, parameters, logging, getinfo),
 * fabric.c (fabric, the progress engine, libsrdma contexts, waiting), eq.c,
 * cq.c, domain.c (domain, memory registration), cm.c (passive endpoint,
 * connect/accept/reject), ep.c (endpoint, messages and RMA), wire.c (the
 * records carried inside srdma messages).
 *
 * Locking: one mutex per fabric guards every object made from it. Every
 * entry point takes it; internal functions (sp_*) expect it held. Progress
 * runs only inside the consumer's calls (fi_cq_read, fi_eq_read, waits,
 * fi_trywait), never in a thread of our own.
 */
#ifndef SRDMA_PROV_H
#define SRDMA_PROV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <rdma/fabric.h>
#include <rdma/fi_atomic.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_collective.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_tagged.h>
#include <rdma/providers/fi_log.h>
#include <rdma/providers/fi_prov.h>

#include "srdma.h"

#include "wire.h"

#define SP_NAME		"srdma"
#define SP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SP_CONTAINER(ptr, type, member)                                        \
	((type *)((char *)(ptr)-offsetof(type, member)))

enum {
	SP_IOV_LIMIT = 8,
	SP_TX_SIZE = 1024,
	SP_RX_SIZE = 1024,
	SP_INJECT_SIZE = 16384, /* ofi_rxm refuses more than its eager size */
	SP_MAX_MSG_SIZE = 1u << 30,
	SP_ERR_TEXT = 384,
	SP_MR_BUCKETS = 256,
	/* What one peer may make us hold: bytes of messages no receive took
	 * yet, reads being answered. Beyond, its connection fails. */
	SP_UNEXP_MAX = 64u << 20,
	SP_READS_MAX = 4096,
};

extern struct fi_provider sp_prov;

/* ---- intrusive list ---------------------------------------------------- */

struct sp_list {
	struct sp_list *next, *prev;
};

static inline void sp_list_init(struct sp_list *l)
{
	l->next = l->prev = l;
}

static inline bool sp_list_empty(const struct sp_list *l)
{
	return l->next == l;
}

static inline void sp_list_add_tail(struct sp_list *l, struct sp_list *e)
{
	e->prev = l->prev;
	e->next = l;
	l->prev->next = e;
	l->prev = e;
}

static inline void sp_list_del(struct sp_list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->next = e->prev = e;
}

/* ---- configuration (fi_param, read when a fabric opens) ----------------- */

struct sp_conf {
	char *certs; /* FI_SRDMA_CERTS: a directory by `srdma certs` */
	char *cert, *key, *ca; /* FI_SRDMA_CERT/_KEY/_CA: explicit PEM files */
	char *peer_name; /* FI_SRDMA_PEER_NAME: name every server must carry */
	char *allow;	 /* FI_SRDMA_ALLOW: identities a listener accepts */
	char *identity;	 /* FI_SRDMA_IDENTITY: who a connecting ep is */
	char *iface;	 /* FI_SRDMA_IFACE: interface for our address */
	enum srdma_protect protect;
	enum srdma_transport transport;
	char *ofi_provider; /* FI_SRDMA_OFI_PROVIDER, default tcp */
	uint32_t max_msg, queue_depth;
	int log_level; /* SRDMA_LOG_*, or -1 for none */
};

int sp_conf_load(struct sp_conf *c);
void sp_conf_free(struct sp_conf *c);

/* Logging: libfabric's log when FI_LOG_LEVEL enables the level, else
 * stderr up to FI_SRDMA_LOG (default warn): a refused peer is never
 * silent. */
void sp_log(int level, const char *fmt, ...) SP_PRINTF(2, 3);
extern int sp_log_level;

/* ---- fabric and progress ----------------------------------------------- */

/* A libsrdma context: the fabric's client context, or a passive
 * endpoint's server context. Freed when the last user lets go. */
struct sp_sctx {
	struct sp_list link;
	struct sp_fabric *fab;
	srdma_ctx *ctx;
	struct sp_pep *pep; /* server: the passive endpoint, NULL once closed */
	int refs;
	bool server;
};

struct sp_fabric {
	struct fid_fabric fid;
	pthread_mutex_t lock;
	int epfd;  /* epoll over every context's fd and sigfd */
	int sigfd; /* eventfd: fi_eq_write, fi_cq_signal */
	struct sp_list sctxs;
	struct sp_sctx *client;
	struct sp_list busy;	/* endpoints with queued transmits */
	struct sp_list closing; /* connections closing after fi_close */
	struct sp_list refused; /* peers that failed authentication */
	struct sp_list zombies; /* closed endpoints' shells */
	int refs;
	bool in_progress;
	struct sp_conf conf;
};

int sp_fabric_open(struct fi_fabric_attr *attr, struct fid_fabric **fabric,
		   void *context);
void sp_lock(struct sp_fabric *f);
void sp_unlock(struct sp_fabric *f);
void sp_progress(struct sp_fabric *f);
/* Waits until a context has work or timeout_ms passes (-1: forever);
 * called without the lock. */
void sp_wait(struct sp_fabric *f, int timeout_ms);
void sp_signal(struct sp_fabric *f);
/* An fd of its own for a CQ or EQ (FI_GETWAIT): an epoll fd holding the
 * fabric's, so that a consumer may poll several of ours in one set (epoll
 * refuses one fd twice); -1 on failure. */
int sp_wait_fd_new(struct sp_fabric *f);
/* fi_control's FI_GETWAIT / FI_GETWAITOBJ for a CQ or EQ with this wait
 * object and fd (from sp_wait_fd_new). */
int sp_wait_control(enum fi_wait_obj wait, int wait_fd, int command, void *arg);
/* fi_cq_strerror / fi_eq_strerror's answer: s, copied into buf when the
 * consumer gave one. */
const char *sp_strerror_out(const char *s, char *buf, size_t len);
int sp_sctx_new(struct sp_fabric *f, bool server, struct sp_sctx **out);
void sp_sctx_put(struct sp_sctx *s);
/* The fabric's client context, made on first use. */
int sp_client_ctx(struct sp_fabric *f, struct sp_sctx **out);
/* Hands a connection to the fabric to finish closing in the background. */
void sp_conn_linger(struct sp_fabric *f, srdma_conn *conn, struct sp_sctx *s);
int sp_srdma_to_fi(int srdma_err);
/* fi_getopt / fi_setopt of every endpoint (cm.c). */
int sp_getopt(fid_t fid, int level, int optname, void *optval, size_t *optlen);
int sp_setopt(fid_t fid, int level, int optname, const void *optval,
	      size_t optlen);
/* Remembers that a peer failed authentication (a certificate, TLS version
 * or policy refusal: retrying at once cannot succeed), so that the next
 * fi_connect to it fails at once with the same sentence (ofi_rxm otherwise
 * retries forever). Transient failures are not remembered. */
void sp_refused_note(struct sp_fabric *f, const char *peer, int code,
		     const char *text);
/* The sentence of a remembered refusal of peer, or NULL. */
const char *sp_refused_find(struct sp_fabric *f, const char *peer);

/* Every srdma_conn's user pointer is one of these. */
enum sp_owner_kind { SP_OWN_EP = 1, SP_OWN_CONNREQ = 2, SP_OWN_LINGER = 3 };
struct sp_owner {
	enum sp_owner_kind kind;
};

/* ---- EQ ----------------------------------------------------------------- */

struct sp_eq {
	struct fid_eq fid;
	struct sp_fabric *fab;
	enum fi_wait_obj wait;
	int wait_fd; /* FI_GETWAIT, -1 without a wait object */
	struct sp_list entries;
	void *last_err_data; /* valid until the next fi_eq_readerr */
	int refs;
};

int sp_eq_open(struct fid_fabric *fabric, struct fi_eq_attr *attr,
	       struct fid_eq **eq, void *context);
int sp_eq_push(struct sp_eq *eq, uint32_t event, fid_t fid,
	       struct fi_info *info, const void *data, size_t len);
/* An error event: err is a positive FI_E* code, code a negative SRDMA_E*
 * (0 when the peer rejected us) and text our sentence. */
int sp_eq_push_err(struct sp_eq *eq, fid_t fid, void *context, int err,
		   int code, const char *text, const void *data, size_t len);
bool sp_eq_ready(struct sp_eq *eq);

/* ---- CQ ----------------------------------------------------------------- */

/* A completion and its place among all of the queue's entries. */
struct sp_cqe {
	struct fi_cq_tagged_entry e;
	uint64_t seq;
};

struct sp_cq {
	struct fid_cq fid;
	struct sp_fabric *fab;
	struct sp_domain *dom;
	enum fi_cq_format format;
	enum fi_wait_obj wait;
	int wait_fd; /* FI_GETWAIT, -1 without a wait object */
	struct sp_cqe *ring;
	size_t cap, head, count;
	struct sp_list errs; /* error entries, in order */
	uint64_t seq;	     /* the next entry's */
	char *last_err_text;
	int refs;
};

int sp_cq_open(struct fid_domain *domain, struct fi_cq_attr *attr,
	       struct fid_cq **cq, void *context);
int sp_cq_push(struct sp_cq *cq, void *context, uint64_t flags, size_t len,
	       void *buf, uint64_t data);
int sp_cq_push_err(struct sp_cq *cq, void *context, uint64_t flags, int err,
		   int code, const char *text, size_t olen);

bool sp_cq_ready(struct sp_cq *cq);

/* ---- domain and memory registration ------------------------------------ */

struct sp_mr {
	struct fid_mr fid;
	struct sp_domain *dom;
	struct sp_list link;
	int refs;    /* the registration's and each read being answered */
	bool closed; /* fi_close: no read may continue from it */
	uint8_t *base;
	size_t len;
	uint64_t access;
	uint64_t offset; /* the address of base when not FI_MR_VIRT_ADDR */
};

struct sp_domain {
	struct fid_domain fid;
	struct sp_fabric *fab;
	struct fi_info *info;
	bool mr_virt, mr_prov_key, rx_cq_data;
	struct sp_list mrs[SP_MR_BUCKETS];
	int refs;
};

int sp_domain_open(struct fid_fabric *fabric, struct fi_info *info,
		   struct fid_domain **dom, void *context);
/* The registration a remote access of len bytes at addr with key may
 * touch (and the bytes in *ptr), or NULL. */
struct sp_mr *sp_mr_lookup(struct sp_domain *d, uint64_t key, uint64_t addr,
			   uint64_t len, uint64_t access, uint8_t **ptr);
void sp_mr_put(struct sp_mr *m);

/* ---- passive endpoint and connection requests ------------------------- */

struct sp_pep {
	struct fid_pep fid;
	struct sp_fabric *fab;
	struct fi_info *info;
	struct sp_eq *eq;
	struct sp_sctx *sctx;
	srdma_listener *listener;
	struct sp_list creqs;
};

enum sp_creq_state {
	CREQ_WAIT_DATA = 0, /* authenticated; its CONNREQ record not here yet */
	CREQ_PENDING = 1,   /* FI_CONNREQ reported; the consumer decides */
	CREQ_DEAD = 2,	    /* the connection failed before a decision */
};

struct sp_creq {
	struct fid handle; /* fi_info.handle, FI_CLASS_CONNREQ */
	struct sp_owner own;
	struct sp_pep *pep;
	struct sp_list link;
	srdma_conn *conn;
	enum sp_creq_state state;
	char peer[64];
};

int sp_passive_ep(struct fid_fabric *fabric, struct fi_info *info,
		  struct fid_pep **pep, void *context);
/* An event for a connection still in set-up (owner SP_OWN_CONNREQ). */
void sp_creq_event(struct sp_creq *cr, const struct srdma_event *ev);
/* A new authenticated connection on a passive endpoint's context. */
void sp_pep_accepted(struct sp_sctx *s, srdma_conn *conn);
/* fi_endpoint on a connection request: detaches its connection. */
int sp_creq_take(struct sp_fabric *f, fid_t handle, srdma_conn **conn,
		 struct sp_sctx **s);

/* ---- endpoint ----------------------------------------------------------- */

enum sp_ep_state {
	EP_IDLE = 0,	    /* opened, not connected */
	EP_CONNECTING = 1,  /* fi_connect: TLS and fabric set-up */
	EP_WAIT_ACCEPT = 2, /* our CONNREQ record is sent */
	EP_ACCEPTING = 3,   /* from fi_endpoint on a connreq until fi_accept */
	EP_CONNECTED = 4,
	EP_SHUTDOWN = 5, /* fi_shutdown or the peer closed */
	EP_FAILED = 6,
};

struct sp_op;
struct sp_rx;
struct sp_unexp;

struct sp_ep {
	struct fid_ep fid;
	struct sp_owner own;
	struct sp_fabric *fab;
	struct sp_domain *dom;
	struct fi_info *info;
	struct sp_eq *eq;
	struct sp_cq *tx_cq, *rx_cq;
	bool tx_selective, rx_selective, enabled;
	uint64_t tx_op_flags, rx_op_flags;
	enum sp_ep_state state;

	srdma_conn *conn;
	struct sp_sctx *sctx;
	size_t chunk;	  /* payload bytes per record */
	uint8_t *staging; /* one record: header and payload */
	size_t staging_len;

	struct sp_list txq;   /* struct sp_op, in order */
	size_t tx_count;      /* consumer operations queued */
	struct sp_list reads; /* reads whose request is sent */
	uint64_t next_read_id;
	struct sp_list busy_link;

	struct sp_list rxq; /* posted receives (struct sp_rx) */
	size_t rx_count;
	struct sp_list unexp; /* messages with no receive yet */
	struct sp_rx *cur_rx; /* receiving the rest of a message */
	struct sp_unexp *cur_unexp;
	size_t unexp_bytes;
	size_t reads_served; /* READ_RESP operations queued */

	uint8_t cm_data[SP_CM_DATA_MAX]; /* fi_connect's, until sent */
	size_t cm_len;
	struct sockaddr_storage peer;
	size_t peer_len;
	char peer_text[80];

	bool aborted; /* we failed the connection; ignore what follows */
	bool closed;  /* fi_close: kept as a shell (see ep_close) */
	struct sp_list zombie_link;
	int fail_code;
	char fail_text[SP_ERR_TEXT];
};

int sp_endpoint(struct fid_domain *domain, struct fi_info *info,
		struct fid_ep **ep, void *context);
/* Frees the shells of closed endpoints of domain d (NULL: all). */
void sp_ep_free_zombies(struct sp_fabric *f, struct sp_domain *d);

/* The data path (xfer.c). */
enum sp_op_kind { OP_SEND, OP_WRITE, OP_READ, OP_READ_RESP };
/* Queues one consumer transmit (and sends what the window allows). */
ssize_t sp_post_tx(struct sp_ep *ep, enum sp_op_kind kind,
		   const struct iovec *iov, size_t count, void *context,
		   uint64_t flags, bool completion, bool has_data,
		   uint64_t data, uint64_t key, uint64_t addr);
ssize_t sp_post_rx(struct sp_ep *ep, const struct iovec *iov, size_t count,
		   void *context, bool completion);
/* fi_cancel of a posted receive: 0, or -FI_ENOENT. */
int sp_ep_cancel_rx(struct sp_ep *ep, void *context);

static inline size_t sp_iov_total(const struct iovec *iov, size_t count)
{
	size_t n = 0;

	for (size_t i = 0; i < count; i++)
		n += iov[i].iov_len;
	return n;
}
void sp_ep_event(struct sp_ep *ep, const struct srdma_event *ev);
/* Sends what the window allows of the queued operations. */
void sp_ep_push(struct sp_ep *ep);
/* Sends one record now (connection set-up); SRDMA_EAGAIN if full. */
int sp_ep_send_cm(struct sp_ep *ep, enum sp_rec_type type, const void *data,
		  size_t len);
/* The connection failed: report it, flush every operation with it. */
void sp_ep_fail(struct sp_ep *ep, int code, const char *text);
/* The connection closed in order: queued transmits end FI_ECANCELED. */
void sp_ep_flush_tx(struct sp_ep *ep);
int sp_ep_attach(struct sp_ep *ep, srdma_conn *conn, struct sp_sctx *s);
/* Connection records (CONNREQ, ACCEPT, REJECT) on an endpoint (cm.c). */
void sp_ep_cm_record(struct sp_ep *ep, const struct sp_rec *r);
/* The connection closed (SRDMA_EV_CLOSED) (cm.c). */
void sp_ep_closed(struct sp_ep *ep, int status, const char *detail);
extern struct fi_ops_cm sp_ep_cm_ops;

/* Connection text for logs: "TLSv1.3 ..., encrypt AES-256-GCM, peer X". */
void sp_conn_describe(srdma_conn *conn, char *buf, size_t len);

/* sockaddr helpers (cm.c) */
int sp_addr_host(const void *addr, size_t len, char *host, size_t hlen,
		 uint16_t *port);
int sp_addr_parse(const char *hostport, struct sockaddr_storage *ss,
		  size_t *len);

/* Stubs for what the provider does not do (stubs.c). */
extern struct fi_ops_tagged sp_no_tagged_ops;
extern struct fi_ops_atomic sp_no_atomic_ops;
extern struct fi_ops_collective sp_no_collective_ops;
int sp_no_ops_open(struct fid *fid, const char *name, uint64_t flags,
		   void **ops, void *context);
int sp_no_bind(struct fid *fid, struct fid *bfid, uint64_t flags);
int sp_no_control(struct fid *fid, int command, void *arg);

#endif /* SRDMA_PROV_H */
