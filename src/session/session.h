/* SPDX-License-Identifier: MIT */
/*
 * Session layer: the context, listeners, connections and regions behind the
 * public API. One state machine per connection, driven only by the loop
 * thread (the thread calling srdma_ctx_poll or a blocking call).
 */
#ifndef SRDMA_SESSION_SESSION_H
#define SRDMA_SESSION_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/err.h"
#include "base/loop.h"
#include "ctrl/ctrl.h"
#include "protect/protect.h"
#include "transport/transport.h"
#include "wire/wire.h"

/* The largest region (payload bytes), either side. */
#define SRDMA_REGION_MAX (UINT64_C(1) << 40)
/*
 * Counters of srdma_ctx_metrics() (session/metrics.h adds to them; the
 * payload operations have their own arrays in the context).
 */
enum srdma__metric {
	SRDMA__M_ACCEPTED,
	SRDMA__M_ESTABLISHED,
	SRDMA__M_RESUMED,
	SRDMA__M_RESUME_REFUSED,
	SRDMA__M_REFUSED, /* + enum srdma_refusal */
	SRDMA__M_CONNECT_FAILED = SRDMA__M_REFUSED + SRDMA_REFUSAL_COUNT,
	SRDMA__M_BUSY_RETRIES,
	SRDMA__M_CLOSED,
	SRDMA__M_CLOSED_ERROR,
	SRDMA__M_VERIFY_FAILURES,
	SRDMA__M_RELOADS,
	SRDMA__M_RELOAD_FAILURES,
	SRDMA__M_COUNT,
};

/* Record types carried in the message channel (docs/PROTOCOL.md). */
enum rec_type {
	REC_DATA = 1,
	REC_WRITE_NOTICE = 2,
	REC_CREDIT = 3,
	REC_WRITE_ACK = 4,
};
enum { WRITE_NOTICE_LEN = 4 + 8 + 8 + 8 }; /* region, offset, len, version */
enum { WRITE_ACK_LEN = 4 + 8 };		   /* region, version */

/* Who wrote a block, or owns a region: the bytes in a sealed block's
 * header and the top bit of its nonce (docs/PROTOCOL.md §7). */
enum { WRITER_CLIENT = 0, WRITER_SERVER = 1 };

/* A block's (writer, version) in one word: 0 = never written. */
static inline uint64_t srdma__bv(unsigned writer, uint64_t version)
{
	return (uint64_t)(writer + 1) << 48 | version;
}
#define SRDMA_BV_VERSION ((UINT64_C(1) << 48) - 1)

enum conn_state {
	ST_TCP_CONNECTING, /* client: non-blocking connect() in progress */
	ST_TLS,		   /* TLS 1.3 handshake */
	ST_HELLO,	   /* waiting for the peer's HELLO */
	ST_PREPARE,	   /* client: fabric address/route resolution */
	ST_PARAMS,	   /* waiting for the peer's PARAMS */
	ST_FABRIC,	   /* fabric connect in progress */
	ST_ESTABLISHED,
	ST_CLOSING, /* goodbye sent or received; draining */
	ST_CLOSED,  /* orderly end */
	ST_FAILED,  /* error end */
	ST_COUNT,
};

/* Work request ids: kind in the top byte, index below. */
enum wr_kind {
	WR_RECV = 1,
	WR_SEND = 2,
	WR_CHUNK = 3,
	WR_TEST = 4, /* test builds: a hostile peer's raw RDMA (testhooks.c) */
};

/* Staging chunks for RDMA write/read: how much is in flight per connection
 * (allocated on the first write or read only). */
enum { SRDMA_NCHUNKS = 32, SRDMA_CHUNK_BLOCKS = 32 };

enum op_kind { OP_WRITE = 1, OP_READ = 2 };

struct srdma_conn;

/* An RDMA write or read, from the connection's preallocated pool. */
struct op {
	enum op_kind kind;
	void *user;
	uint32_t region;
	uint64_t offset;
	uint8_t *buf;
	size_t len;
	uint64_t first_block, nblocks;
	uint64_t next_block;   /* next block to seal (write) or fetch (read) */
	uint64_t done_blocks;  /* blocks whose chunk completed */
	uint64_t version;      /* write: version sealed into every block */
	uint32_t busy;	       /* chunks in flight */
	uint32_t retries;      /* read: times it was read again after a race */
	uint64_t stamp;	       /* read: the region's stamp when it started */
	struct srdma_mem *mem; /* registered memory holding buf, if any */
	int status;   /* < 0: ends with this once its chunks are back */
	bool noticed; /* write: announced, waiting for the ACK */
	bool dirty;   /* read: the range changed under it: read again */
	bool waiting; /* read: it met an owner version not announced
			 yet; read again after the UPDATE (or a
			 moment) */
	bool suspect; /* read: a block failed to verify (torn by a put, or
			 forged): read again; a clean read after it must
			 follow an announcement */
	uint64_t suspect_stamp; /* read: the region's stamp when the chunk
				   with that block was posted */
	bool stream;		/* write: a segment of the stream (stream.c): no
				   event, the stream hears of its end */
	bool hold_wait;		/* read: waits for its hold (hold.c) */
	bool held_once;		/* read: has asked for a hold (once per read) */
	bool hold_queued;	/* read: waits for another read's hold to end */
	struct op *next;
};

/* The reader's hold on the owner's puts (hold.c). */
enum hold_state {
	HOLD_NONE,
	HOLD_ASK_DUE,	  /* ASK waits for a credit */
	HOLD_ASKED,	  /* ASK sent, HELD not back */
	HOLD_HELD,	  /* the read runs under the hold */
	HOLD_RELEASE_DUE, /* the read ended: RELEASE waits for a credit */
};

struct chunk {
	uint8_t *mem; /* inside the staging buffer */
	bool busy;
	struct op *op;
	uint64_t first_block, nblocks;
	uint64_t stamp; /* read: the region's stamp when it was posted */
	bool direct;	/* mode none: straight from/to the op's memory */
	uint32_t span;	/* chunks this one's fabric op covers (the next
			   span - 1 are busy with it; 1 alone) */
};

/* A region the peer granted us. */
struct remote_region {
	uint32_t id;
	uint8_t access;
	uint64_t len, addr, key;
	uint32_t stride;
	uint64_t nblocks;
	uint64_t write_version; /* our per-region write counter */
	/* What a read must find (docs/PROTOCOL.md §6, "Freshness"):
	 * exp[b] is the exact (writer, version) of block b once we know it
	 * (our acknowledged write, the owner's UPDATE), else 0: then any
	 * owner version up to base is current. owner_max is the newest owner
	 * version we know of; stamp counts changes to exp. */
	uint64_t *exp;
	uint64_t base, owner_max, stamp;
	struct remote_region *next;
};

/* Application memory registered once for zero-copy operations. */
struct srdma_mem {
	struct srdma_conn *conn;
	uint8_t *buf;
	size_t len;
	struct srdma__tp_mr *mr;
	uint32_t inflight; /* operations using it */
	bool dying;	   /* deregistered: freed when the last one ends */
	struct srdma_mem *next;
};

struct srdma_region {
	struct srdma_conn *conn;
	uint32_t id;
	int access;
	uint64_t len; /* payload bytes */
	uint64_t nblocks;
	uint32_t stride;
	uint8_t *mem; /* sealed blocks */
	size_t mem_len;
	struct srdma__tp_mr *mr;
	uint64_t put_version; /* our per-region write counter (owner puts) */
	uint64_t peer_last;   /* the newest notice version the peer sent */
	uint64_t *cur;	      /* per block: the authoritative srdma__bv() */
	uint8_t *sink;	      /* plaintext of verified peer writes goes here */
	struct srdma_stream *stream; /* this is the stream's receive ring */
	bool granted;
	bool grant_pending; /* granted once the backend's key is ready */
	struct srdma_region *next;
};

/* The owner's queue of announced peer writes, verified a slice at a time
 * between loop iterations so fabric progress never waits for a whole
 * write. */
struct pending_verify {
	uint32_t region;
	uint64_t off, len, version;
	uint64_t next, end; /* blocks */
	bool skip;	    /* the region was revoked meanwhile */
	bool credit;	    /* last entry of its record: frees a credit */
};

/* Queued events; data/detail owned by the node. */
struct qev {
	struct srdma_event ev;
	char detail[256];
	int recv_slot; /* >= 0: a receive slot to repost once delivered */
	struct qev *next;
};

struct srdma_conn {
	struct srdma_ctx *ctx;
	struct srdma_listener *listener; /* server side */
	enum conn_state state;
	bool server;
	bool app_owned; /* the app has seen it (ACCEPTED/CONNECTED or client) */
	/* The application holds the handle (a client's connection; a server's
	 * once an event named it): destroying the context detaches it rather
	 * than freeing it, so the application's srdma_conn_destroy is safe. */
	bool handed;
	bool counted_hs; /* counted in ctx->handshakes */
	bool destroying;
	void *user;
	uint64_t deadline_ms; /* handshake deadline; 0 once established */
	uint64_t close_deadline_ms;
	uint64_t t_start_ns; /* set-up start, for the phase log */
	int fail_code;
	char fail_detail[256];
	/* The fabric failed first: wait briefly for the peer's reason on TLS.
	 */
	int fabric_fail_code;
	char fabric_fail_detail[256];
	uint64_t fabric_fail_deadline_ms;

	/* control channel */
	int fd;
	struct srdma__loop_fd *fd_reg;
	struct srdma__ctrl *ctrl;
	uint8_t cin[SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY];
	size_t cin_len;
	char host[256];
	uint16_t port;
	char peer_addr[64];
	/* client: where to connect again when the server was busy (api.c) */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint32_t busy_attempts;
	uint64_t retry_at_ms; /* waiting to reconnect (no socket) until then */
	bool disconnecting;   /* the fabric disconnect was asked for */
	uint64_t peer_sent;   /* the peer's GOODBYE: records it sent before */
	bool tls_ok;	      /* TLS finished: the peer is authenticated */
	bool goodbye_sent, goodbye_rcvd, fabric_closed;
	bool peer_failed;  /* the peer's ERROR ended it: send none back */
	bool params_early; /* client: PARAMS went right behind HELLO */
	/* client (verbs): route resolution started during TLS with a cached
	 * fabric port; early_ready once it finished, early_failed if not */
	bool early_resolve, early_ready, early_failed;
	uint16_t early_port;
	bool from_pool; /* server: tc and ring came from the resource pool */
	int dev; /* server: the backend's device for this client (0 = one) */

	/* negotiated */
	enum srdma_protect protect;
	enum srdma__cipher cipher;
	uint32_t max_msg, depth;
	uint64_t session_id;
	uint32_t local_psn, remote_psn, remote_qpn;
	uint16_t fabric_port;
	struct srdma__token token; /* server */
	struct srdma__keys keys;
	struct srdma__aead tx, rx; /* records */
	/* sealed blocks: seal ours, open ours, open the peer's */
	struct srdma__aead blk_tx, blk_own, blk_rx;

	/* fabric */
	struct srdma__tp_conn *tc;
	uint8_t *ring; /* recv slots then send slots */
	size_t ring_len;
	struct srdma__tp_mr *ring_mr;
	size_t slot_len;
	uint32_t ring_depth; /* slots each way in the ring (>= depth) */
	uint32_t *send_free; /* stack of free send slots */
	uint32_t nsend_free;
	uint32_t tx_credits;	 /* peer receive slots we may fill */
	uint32_t rx_credits_due; /* reposted slots not yet reported */

	uint8_t *staging;
	size_t staging_len;
	struct srdma__tp_mr *staging_mr;
	struct chunk chunks[SRDMA_NCHUNKS];
	uint32_t chunk_blocks;

	/* RDMA operations: a pool of max_ops (made on first use), and the
	 * ones in flight in the order they were started */
	struct op *op_pool, *op_free;
	uint32_t max_ops, nops;
	struct op *ops_head, *ops_tail;
	uint64_t read_retry_at_ms; /* a read waits to be read again */
	struct remote_region *remote;
	uint32_t max_remote_id; /* grants come with increasing ids */
	struct srdma_region *regions;
	uint32_t next_region_id;
	struct srdma_mem *mems; /* registered application memory */
	/* owner: announced writes not verified yet, and what is verified but
	 * not acknowledged; credits of notices held until verified */
	struct pending_verify *verifies;
	uint32_t nverify, verify_cap;
	struct srdma__ack ack_due;
	uint32_t withheld;
	uint32_t rx_held; /* DATA slots the application has not released */
	/* owner: UPDATE entries for puts not sent yet */
	struct srdma__update upd[SRDMA_REC_MAX_ENTRIES];
	uint32_t nupd;
	/* reader: UPDATEs for regions whose grant (on TLS) is still on the
	 * way */
	struct srdma__update *early_upd;
	uint32_t nearly_upd;
	/* client: grants that overtook our own "established" event */
	struct srdma__msg_region early_grants[4];
	uint32_t nearly;
	uint64_t quota_used;
	uint64_t read_retries; /* reads read again after racing the owner */
	uint64_t read_holds;   /* ... that asked the owner for a hold */
	/* holds (hold.c): the peer's on our puts (owner; kind 0: none),
	 * and ours on the peer's (reader) */
	struct srdma__hold held;
	uint64_t held_until_ms;
	bool held_due; /* HELD not sent yet */
	struct srdma__hold hold;
	enum hold_state hold_state;
	struct op *hold_op;
	int test_status; /* test builds: the last raw RDMA's outcome */
	bool test_done;
	struct srdma_stream *stream; /* the byte stream (stream.c), or NULL */

	struct srdma_conn *next, *prev; /* ctx->conns */
};

struct srdma_listener {
	struct srdma_ctx *ctx;
	int fd;
	uint16_t port;
	struct srdma__loop_fd *fd_reg;
	bool armed; /* the loop watches fd (not while accepting must wait) */
	struct srdma__tp_listener *tpl;
	uint16_t fabric_port;
	struct srdma_listener *next;
};

/* One message slot (header, payload, tag) and a ring of depth slots each
 * way: the session and the resource pool size rings with these. */
static inline size_t srdma__slot_len(uint32_t max_msg)
{
	return (size_t)SRDMA_REC_HDR_LEN + max_msg + SRDMA_TAG_LEN;
}

static inline size_t srdma__ring_len(uint32_t max_msg, uint32_t depth)
{
	return srdma__slot_len(max_msg) * depth * 2;
}

/* The fabric connection a session of this queue depth needs: its sends,
 * write chunks and a few control records in flight; its receives. */
static inline struct srdma__tp_conn_attr srdma__conn_attr(bool server,
							  uint32_t depth)
{
	return (struct srdma__tp_conn_attr){
		.server = server,
		.sq_depth = depth + SRDMA_NCHUNKS + 4,
		.rq_depth = depth,
		.max_inline = 64,
	};
}

/* Server resource pool (respool.c): connections made before they are
 * needed, handed out at random, reset and reused. */
struct srdma__kit {
	struct srdma__tp_conn *tc;
	uint8_t *ring;
	size_t ring_len;
	struct srdma__tp_mr *ring_mr;
	int dev; /* the backend's device (verbs: one pool per device) */
};

enum { SRDMA_POOL_DEVS = 8 };

struct srdma__respool {
	struct srdma__kit *kits; /* every device's, in one array */
	uint32_t n, cap, target; /* target: spares per device */
	uint32_t depth, max_msg; /* what every kit can carry */
	size_t ring_len;
	int devs[SRDMA_POOL_DEVS]; /* devices clients arrive on */
	uint32_t ndevs;
	bool filling;		 /* refilling: started at half, goes to full */
	bool counted, full, low; /* per-device counts are current: every
				    device full / some below half */
	uint64_t made, taken, reused, misses; /* counters, for tests/logs */
	uint64_t purged; /* kits destroyed: device gone, or never usable */
};

struct srdma_ctx {
	struct srdma_config cfg; /* strings below are owned copies */
	char *s_provider, *s_device, *s_cert, *s_key, *s_ca, *s_peer, *s_crl;
	char **allow;
	struct srdma__logger log;
	struct srdma__loop *loop;
	struct srdma__tls_ctx *tls;
	struct srdma__tp *tp;
	enum srdma__cipher cipher;
	struct srdma_conn *conns;
	struct srdma_listener *listeners;
	uint32_t nclients, handshakes;
	/* accepting at max_handshakes (ctx.c): listeners are not watched
	 * until a slot frees, or a handshake becomes sheddable (shed_at) */
	bool accept_paused;
	uint64_t shed_at, hold_until;
	uint32_t nretry_wait; /* client connections waiting to reconnect */
	/* srdma_ctx_metrics (session/metrics.h) */
	uint64_t metrics[SRDMA__M_COUNT];
	uint64_t metric_ops[SRDMA_METRIC_OP_COUNT][3];
	uint64_t metric_bytes[SRDMA_METRIC_OP_COUNT][3];
	struct qev *q_head, *q_tail; /* pending events */
	struct qev *delivered;	     /* handed out by the last poll */
	struct qev *q_free;
	bool in_poll;
	bool work_pending; /* some connection has verification to do */
	struct srdma__respool pool;
	struct srdma__linger *lingers; /* half-closed refused sockets */
	uint32_t nlingers;
	/* client: fabric ports servers named in HELLO, by control host:port
	 * (verbs resolves its route during TLS when it knows the port) */
	struct fport_cache {
		char host[64];
		uint16_t port, fabric_port;
	} fports[8];
	uint32_t fports_next;
	/* The thread inside a public call on this context, and how deeply
	 * (owner.h): a second thread is refused with SRDMA_ESTATE. */
	_Atomic uintptr_t owner;
	uint32_t owner_depth;
};

/* ctx.c */
int srdma__queue_event(struct srdma_ctx *ctx, enum srdma_event_type type,
		       int status, struct srdma_conn *c, void *user,
		       const char *detail, struct qev **out) SRDMA__WUR;
void srdma__release_delivered(struct srdma_ctx *ctx);
void srdma__drop_events(struct srdma_ctx *ctx, struct srdma_conn *c);
int srdma__ctx_run(struct srdma_ctx *ctx, int timeout_ms) SRDMA__WUR;
/* Tops the resource pool up with at most max_new kits. */
void srdma__pool_refill(struct srdma_ctx *ctx, uint32_t max_new);

/* listener.c */
/* Server, after TLS: the client limits (max_clients, max_per_identity). */
int srdma__ctx_admit(struct srdma_conn *c) SRDMA__WUR;
/* After each loop pass: watch the listeners or not (max_handshakes). */
void srdma__listeners_update(struct srdma_ctx *ctx, uint64_t now);
/* Closes a listener whose context goes; the handle stays (detached). */
void srdma__listener_release(struct srdma_listener *l);

/* api.c: client reconnects when the server was busy */
/* After tls_step failed with rc: true if a retry was scheduled (c lives). */
bool srdma__client_busy_retry(struct srdma_conn *c, int rc);
/* Starts the reconnects that are due; the nearest one still waiting. */
uint64_t srdma__client_retries_due(struct srdma_ctx *ctx, uint64_t now);

/* conn.c */
void srdma__conn_fail(struct srdma_conn *c, int code, const char *detail);
void srdma__conn_check_timeouts(struct srdma_ctx *ctx, uint64_t now);
int srdma__conn_next_deadline(struct srdma_ctx *ctx, uint64_t now);
int srdma__conn_new_server(struct srdma_listener *l, int fd,
			   const char *peer) SRDMA__WUR;
void srdma__conn_free(struct srdma_conn *c);
/* Everything srdma__conn_free does but freeing c itself: c is left
 * detached (no context, no resources, regions detached) for the
 * application's srdma_conn_destroy. */
void srdma__conn_detach(struct srdma_conn *c);
void srdma__on_connreq(void *arg, struct srdma__tp_connreq *req);
int srdma__repost_slot(struct srdma_conn *c, int slot) SRDMA__WUR;
void srdma__tune_ctrl_socket(int fd);
bool srdma__conn_work(struct srdma_ctx *ctx);
void srdma__conn_tp_cb(struct srdma_conn *c, struct srdma__tp_conn_cb *cb);

/* linger.c: takes fd; closes it when the peer does or after a while */
struct srdma__linger;
void srdma__linger_start(struct srdma_ctx *ctx, int fd);
uint64_t srdma__linger_next_deadline(const struct srdma_ctx *ctx);
void srdma__linger_expire(struct srdma_ctx *ctx, uint64_t now, bool all);

/* respool.c */
void srdma__respool_init(struct srdma_ctx *ctx);
int srdma__respool_fill(struct srdma_ctx *ctx, uint32_t max_new) SRDMA__WUR;
bool srdma__respool_wants(struct srdma_ctx *ctx);
/* Keeps spares on the device dev too (from now on). */
void srdma__respool_add_dev(struct srdma_ctx *ctx, int dev);
/* Fewer spares where a locked-memory limit would not hold them. */
void srdma__respool_fit_memlock(struct srdma_ctx *ctx);
/* 1: c got a kit (tc, ring, ring_mr) on c->dev; 0: none fits or is ready,
 * make fresh ones. */
int srdma__respool_take(struct srdma_conn *c) SRDMA__WUR;
/* true: the kit is back in the pool and c no longer owns tc/ring/ring_mr. */
bool srdma__respool_give(struct srdma_conn *c);
void srdma__respool_destroy(struct srdma_ctx *ctx);

#endif
