/* SPDX-License-Identifier: MIT */
/*
 * libfabric FI_EP_MSG backend (provider "tcp" by default).
 *
 * What the files of the backend share: fabric.c (hints, fi_getinfo,
 * open/close), conn.c (endpoint, connect/accept, EQ events, close),
 * data.c (op pool, completion ring, CQ reads, posting), listener.c
 * (passive endpoint, connect requests, reject), reset.c (resource pool
 * reset) and ofi.c (memory registration, ops table). Nothing outside
 * transport/ofi/ includes it.
 *
 * Isolation (ReDMArk, USENIX Security 2021, mitigation "one PD per
 * connection"): every connection gets its own fi_domain, so a key registered
 * for one connection is unknown to every other endpoint. Keys are 64 random
 * bits chosen by us (mr_mode 0, FI_MR_PROV_KEY off); the provider's own keys
 * are 1, 2, 3...
 *
 * Progress: the tcp provider only moves when its CQ is read, so the CQ fd
 * handler always reads the CQ, and the prepare hook asks fi_trywait() before
 * the loop sleeps. A peer's close is seen on the EQ only after the CQ was
 * read, so one handler serves both fds: drain the CQ, then the EQ.
 *
 * Completions read outside a handler (a post that met -FI_EAGAIN drives
 * progress) are parked in a ring and delivered from the loop, so no callback
 * fires from inside the call that caused it.
 */
#ifndef SRDMA_TRANSPORT_OFI_OFI_INT_H
#define SRDMA_TRANSPORT_OFI_OFI_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <rdma/fabric.h>
#include <rdma/fi_eq.h>

#include "transport/transport.h"

#define OFI_API FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION)

enum {
	PDATA_MAX = 256,
	POST_RETRIES = 64,  /* -FI_EAGAIN from a post: progress and retry */
	CQ_BATCH = 16,	    /* entries per fi_cq_read */
	HANDLER_PASSES = 4, /* CQ rounds per handler call before yielding */
	MR_KEY_TRIES = 16,  /* random key collisions are astronomically rare */
	EQ_SIZE = 16,
	DETAIL_LEN = 256,
};

struct ofi {
	struct srdma__tp *tp;
	struct fi_info *info; /* template: provider, caps, attrs */
	struct fid_fabric *fabric;
	uint64_t order;	      /* tx msg_order granted */
	uint64_t write_flags; /* FI_DELIVERY_COMPLETE when usable */
	char prov[32];
	char device[64];
	/* libfabric 1.17 initialises every provider it knows before it
	 * filters (~85 ms): that runs in a thread started at open, and the
	 * first use waits for it (srdma__ofi_ready). */
	pthread_t init_thread;
	bool init_running;
	int init_rc;
	char init_err[512];
	char init_warn[128];
};

/* Waits for the fabric opened in the background; its error if it failed. */
int srdma__ofi_ready(struct ofi *o) SRDMA__WUR;

enum cstate {
	C_INIT,	       /* domain and CQ exist, no endpoint */
	C_PREPARED,    /* client: endpoint enabled, not connecting yet */
	C_ACCEPTING,   /* server: fi_accept sent */
	C_CONNECTING,  /* client: fi_connect sent */
	C_ESTABLISHED, /* FI_CONNECTED seen */
	C_CLOSING,     /* disconnect() called, on_closed pending */
	C_CLOSED,      /* on_closed delivered (or being delivered) */
};

struct op {
	struct fi_context2 ctx; /* first: covers FI_CONTEXT/FI_CONTEXT2 modes */
	uint64_t wr_id;
	enum srdma__tp_op type;
	bool busy;
	struct op *next_free;
};

struct done {
	struct op *op;
	int status;
	uint32_t len;
};

struct ofi_mr {
	struct srdma__tp_mr pub; /* first: handed out as srdma__tp_mr */
	struct fid_mr *mr;
	struct srdma__tp_conn *c;
	struct ofi_mr *prev, *next;
};

struct srdma__tp_conn {
	struct ofi *o;
	struct srdma__tp_conn_cb cb;
	struct srdma__tp_conn_attr attr;
	enum cstate state;

	struct fid_domain *domain;
	struct fid_cq *cq;
	struct fid_eq *eq;
	struct fid_ep *ep;
	struct srdma__loop_fd *cq_reg, *eq_reg;

	struct op *ops; /* preallocated pool: no malloc per op */
	struct op *free_ops;
	uint32_t nops;
	struct done *ring; /* read from the CQ, not yet delivered */
	uint32_t ring_head, ring_count;

	struct ofi_mr *mrs;
	struct sockaddr_storage dest; /* client: the peer resolve() found */
	size_t inject_size;
	uint32_t max_inline;

	int depth; /* handlers of this conn on the stack */
	bool dead; /* conn_destroy called: no more callbacks */
	bool close_pending;
	bool peer_dropped; /* the peer, not us, ended the connection */
	int rma_lost;	   /* RDMA ops flushed because the peer dropped us */
	int close_status;
	char close_detail[DETAIL_LEN];
};

struct pending_req {
	struct fi_info *info;
	bool handled;
};

struct srdma__tp_listener {
	struct ofi *o;
	struct srdma__tp_listener_cb cb;
	struct fid_pep *pep;
	struct fid_eq *eq;
	struct srdma__loop_fd *reg;
	uint16_t port;
	int depth;
	bool dead;
};

/* fabric.c */
struct fi_info *srdma__ofi_make_hints(const char *prov, const char *device,
				      uint64_t order);
int srdma__ofi_close_fid(struct fid *f, const char *what, struct ofi *o);
int srdma__ofi_open(struct srdma__tp *tp, const char *provider,
		    const char *device);
void srdma__ofi_close(struct srdma__tp *tp);

/* conn.c */
void srdma__ofi_start_close(struct srdma__tp_conn *c, int status,
			    const char *detail);
int srdma__ofi_conn_create(struct srdma__tp *tp,
			   const struct srdma__tp_conn_attr *attr,
			   const struct srdma__tp_conn_cb *cb,
			   struct srdma__tp_conn **out);
int srdma__ofi_resolve(struct srdma__tp_conn *c, const char *host,
		       uint16_t port, int timeout_ms);
void srdma__ofi_set_port(struct srdma__tp_conn *c, uint16_t port);
int srdma__ofi_connect(struct srdma__tp_conn *c, const void *pdata, size_t len);
int srdma__ofi_disconnect(struct srdma__tp_conn *c);
void srdma__ofi_conn_destroy(struct srdma__tp_conn *c);
void srdma__ofi_conn_set_cb(struct srdma__tp_conn *c,
			    const struct srdma__tp_conn_cb *cb);
uint32_t srdma__ofi_local_qpn(const struct srdma__tp_conn *c);
void srdma__ofi_set_psn(struct srdma__tp_conn *c, uint32_t sq_psn,
			uint32_t rq_psn);
int srdma__ofi_conn_info(const struct srdma__tp_conn *c,
			 struct srdma__tp_info *out);
int srdma__ofi_accept(struct srdma__tp_conn *c, struct srdma__tp_connreq *req,
		      const void *pdata, size_t len);

/* data.c */
void srdma__ofi_op_put(struct srdma__tp_conn *c, struct op *op);
int srdma__ofi_flush_status(struct srdma__tp_conn *c, const struct op *op,
			    int status);
int srdma__ofi_drain_cq(struct srdma__tp_conn *c);
void srdma__ofi_deliver(struct srdma__tp_conn *c);
int srdma__ofi_post_recv(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 void *buf, size_t len, uint64_t wr_id);
int srdma__ofi_post_send(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 const void *buf, size_t len, uint64_t wr_id,
			 unsigned flags);
int srdma__ofi_post_write(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			  const void *buf, size_t len, uint64_t raddr,
			  uint64_t rkey, uint64_t wr_id, unsigned flags);
int srdma__ofi_post_read(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 void *buf, size_t len, uint64_t raddr, uint64_t rkey,
			 uint64_t wr_id, unsigned flags);

/* listener.c */
int srdma__ofi_listen(struct srdma__tp *tp, const char *host, uint16_t port,
		      const struct srdma__tp_listener_cb *cb,
		      struct srdma__tp_listener **out);
uint16_t srdma__ofi_listener_port(const struct srdma__tp_listener *l);
void srdma__ofi_listener_destroy(struct srdma__tp_listener *l);
int srdma__ofi_reject(struct srdma__tp_listener *l,
		      struct srdma__tp_connreq *req, const void *pdata,
		      size_t len);

/* reset.c */
int srdma__ofi_conn_reset(struct srdma__tp_conn *c);

/* ofi.c */
void srdma__ofi_mr_dereg(struct srdma__tp_mr *pub);

#endif
