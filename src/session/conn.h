/* SPDX-License-Identifier: MIT */
/*
 * What the files of one connection share (session/{state,handshake,fabric,
 * channel,rdma,region,lifecycle,api}.c); nothing outside session/ includes
 * it. The connection's state machine (DESIGN.md §3) and its protected data
 * path (§4):
 *
 *   client: TCP_CONNECTING -> TLS -> HELLO -> PREPARE -> PARAMS -> FABRIC
 *   server:                   TLS -> HELLO ->            PARAMS -> FABRIC
 *   both:   -> ESTABLISHED -> CLOSING -> CLOSED, or FAILED from anywhere.
 *
 * Every handler checks its state first and moves the state last, only on
 * success. Only the loop thread runs these functions. Fabric resources of a
 * failed connection are torn down after the loop iteration (never inside a
 * transport callback), so a backend never sees its objects vanish under it.
 */
#ifndef SRDMA_SESSION_CONN_H
#define SRDMA_SESSION_CONN_H

#include "session/session.h"

enum {
	CHUNK_BLOCKS = SRDMA_CHUNK_BLOCKS,
	NCHUNKS = SRDMA_NCHUNKS,
	DIRECT_BLOCKS = 256, /* blocks per fabric op from registered memory */
	MAX_SPAN = 8,	     /* adjacent free chunks one large op may join */
	CLOSE_GRACE_MS = 2000,
	TOKEN_TTL_MS = 5000,
};

#define WR_ID(kind, idx) (((uint64_t)(kind) << 56) | (uint64_t)(idx))
#define WR_KIND(id)	 ((int)((id) >> 56))
#define WR_IDX(id)	 ((uint32_t)((id)&0xffffffffu))

static inline const struct srdma__logger *lg(const struct srdma_conn *c)
{
	return &c->ctx->log;
}

static inline int my_writer(const struct srdma_conn *c)
{
	return c->server ? WRITER_SERVER : WRITER_CLIENT;
}

static inline struct srdma_region *find_region(struct srdma_conn *c,
					       uint32_t id)
{
	for (struct srdma_region *r = c->regions; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static inline struct remote_region *find_remote(struct srdma_conn *c,
						uint32_t id)
{
	for (struct remote_region *r = c->remote; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

/* The keys that open a block, indexed by the writer byte in its header:
 * blocks we sealed open with our own key, the peer's with its key. */
static inline void block_keys(struct srdma_conn *c, struct srdma__aead *keys[2])
{
	keys[my_writer(c)] = &c->blk_own;
	keys[!my_writer(c)] = &c->blk_rx;
}

/* state.c */
/* The state a new connection starts in (server: TLS; client: TCP). */
void srdma__conn_init_state(struct srdma_conn *c, bool server);
/* Whether the protocol allows a connection of this role to move. */
bool srdma__conn_may_move(bool server, enum conn_state from,
			  enum conn_state to);
/* The one writer of c->state after creation: SRDMA_ESTATE (and nothing
 * changes) for a transition the table forbids. */
int srdma__conn_set_state(struct srdma_conn *c, enum conn_state to) SRDMA__WUR;
/*
 * How every event handler ends: rc < 0 fails the connection (with the
 * thread's error detail); otherwise the state moves to next through the
 * table. Returns whether the connection still lives.
 */
bool srdma__conn_step(struct srdma_conn *c, int rc, enum conn_state next);
/* Runs one control message through its handler and srdma__conn_step. */
bool srdma__conn_dispatch_msg(struct srdma_conn *c, const struct srdma__msg *m);
const char *srdma__state_name(enum conn_state s);
const char *srdma__who(const struct srdma_conn *c);
void srdma__phase(const struct srdma_conn *c, const char *what);
void srdma__queue(struct srdma_conn *c, enum srdma_event_type type, int status,
		  void *user, const char *detail);
void srdma__update_interest(struct srdma_conn *c);
int srdma__conn_send_msg(struct srdma_conn *c,
			 const struct srdma__msg *m) SRDMA__WUR;
void srdma__read_ctrl(struct srdma_conn *c);
void srdma__on_ctrl_fd(void *arg, uint32_t events);

/* handshake.c */
/* The data-path AEAD contexts from derived keys; wipes k either way. */
int srdma__conn_install_keys(struct srdma_conn *c,
			     struct srdma__keys *k) SRDMA__WUR;
int srdma__send_hello(struct srdma_conn *c) SRDMA__WUR;
int srdma__send_client_params(struct srdma_conn *c) SRDMA__WUR;
int srdma__client_prepared(struct srdma_conn *c) SRDMA__WUR;
int srdma__server_on_hello(struct srdma_conn *c,
			   const struct srdma__msg_hello *h,
			   enum conn_state *next) SRDMA__WUR;
int srdma__client_on_hello(struct srdma_conn *c,
			   const struct srdma__msg_hello *h,
			   enum conn_state *next) SRDMA__WUR;
int srdma__server_on_params(struct srdma_conn *c,
			    const struct srdma__msg_params *p,
			    enum conn_state *next) SRDMA__WUR;
int srdma__client_on_params(struct srdma_conn *c,
			    const struct srdma__msg_params *p,
			    enum conn_state *next) SRDMA__WUR;

/* fabric.c */
int srdma__create_tp_conn(struct srdma_conn *c) SRDMA__WUR;
int srdma__prepare_early(struct srdma_conn *c) SRDMA__WUR;
void srdma__fport_remember(struct srdma_conn *c);
int srdma__resolve_early(struct srdma_conn *c) SRDMA__WUR;
void srdma__drop_early(struct srdma_conn *c);
void srdma__on_tp_established(void *arg);

/* channel.c */
void *srdma__map_buf(size_t len);
void srdma__unmap_buf(void *p, size_t len);
int srdma__setup_rings(struct srdma_conn *c) SRDMA__WUR;
int srdma__post_all_recvs(struct srdma_conn *c) SRDMA__WUR;
int srdma__post_record(struct srdma_conn *c, uint8_t type, const void *buf,
		       size_t len) SRDMA__WUR;
/* Whether a record of this type may go now (a free slot and credits). */
bool srdma__can_post(const struct srdma_conn *c, uint8_t type);
/* Sends what waits for credits (acknowledgements, updates) and returns
 * credits to the peer when it needs them. */
int srdma__flush(struct srdma_conn *c) SRDMA__WUR;
/* NOTICE or UPDATE entries that fit one record of this connection. */
uint32_t srdma__rec_entries(const struct srdma_conn *c);
void srdma__on_tp_cqe(void *arg, const struct srdma__tp_cqe *cqe);

/* testhooks.c: hooks for attack tests, inert unless SRDMA_TEST_HOOKS */
bool srdma__tamper(const char *what);
void srdma__test_save_pdata(const void *buf, size_t len);
void srdma__test_cqe(struct srdma_conn *c, const struct srdma__tp_cqe *cqe);
#ifdef SRDMA_TEST_HOOKS
/* A hostile peer, for attack tests: any record on the channel; raw RDMA
 * into or out of a granted region with its key, past sealing and notices
 * (runs the loop until it completes; returns its completion status). */
int srdma__test_send_record(struct srdma_conn *c, uint8_t type,
			    const void *body, size_t len) SRDMA__WUR;
int srdma__test_raw_write(struct srdma_conn *c, uint32_t region, uint64_t off,
			  const void *buf, size_t len,
			  int timeout_ms) SRDMA__WUR;
int srdma__test_raw_read(struct srdma_conn *c, uint32_t region, uint64_t off,
			 void *buf, size_t len, int timeout_ms) SRDMA__WUR;
#endif

/* rdma.c */
int srdma__handle_ack(struct srdma_conn *c, const uint8_t *p,
		      size_t len) SRDMA__WUR;
int srdma__progress_ops(struct srdma_conn *c) SRDMA__WUR;
void srdma__handle_chunk(struct srdma_conn *c, uint32_t ci, int status);
int srdma__handle_update(struct srdma_conn *c, const uint8_t *p,
			 size_t len) SRDMA__WUR;
int srdma__take_early_updates(struct srdma_conn *c, uint32_t id) SRDMA__WUR;
void srdma__retry_reads(struct srdma_conn *c);
void srdma__finish_ops(struct srdma_conn *c, int code);
int srdma__start_op(struct srdma_conn *c, enum op_kind kind, uint32_t region,
		    uint64_t offset, void *buf, size_t len,
		    void *user) SRDMA__WUR;
/* A stream segment: a write into the peer's stream ring, whose end goes
 * to srdma__stream_op_done instead of an event. */
int srdma__start_stream_write(struct srdma_conn *c, uint32_t region,
			      uint64_t offset, void *buf,
			      size_t len) SRDMA__WUR;

/* hold.c */
/* Reader: a read that kept racing asks for a hold (one at a time, once per
 * read); it waits for HELD before it reads again. */
void srdma__hold_ask(struct srdma_conn *c, struct op *op);
/* Reader: op ended: its hold is released. */
void srdma__hold_op_done(struct srdma_conn *c, struct op *op);
int srdma__handle_hold(struct srdma_conn *c, const uint8_t *p,
		       size_t len) SRDMA__WUR;
int srdma__flush_holds(struct srdma_conn *c) SRDMA__WUR;
/* Owner: SRDMA_EAGAIN for a put into blocks [first, first + n) of r while
 * the peer holds them. */
int srdma__hold_check_put(struct srdma_conn *c, const struct srdma_region *r,
			  uint64_t first, uint64_t n) SRDMA__WUR;

/* mem.c */
struct srdma_mem *srdma__mem_find(struct srdma_conn *c, const void *buf,
				  size_t len);
void srdma__mem_put(struct srdma_mem *m);
void srdma__mem_free_all(struct srdma_conn *c);

/* region.c */
int srdma__on_region_msg(struct srdma_conn *c,
			 const struct srdma__msg_region *g) SRDMA__WUR;
void srdma__on_revoke(struct srdma_conn *c, uint32_t id);
void srdma__free_remotes(struct srdma_conn *c);
/* The connection is going: frees r's memory and wipes it, and leaves the
 * handle for the application's srdma_region_destroy (calls on it answer
 * SRDMA_ECLOSED). */
void srdma__region_detach(struct srdma_region *r);
/* Seals what a reader must never find empty and fills the REGION
 * message granting r (srdma_region_grant sends it). */
int srdma__region_grant_msg(struct srdma_region *r,
			    struct srdma__msg *m) SRDMA__WUR;
/* Whether the peer may read the region (so it must hear of our puts). */
bool srdma__region_announced(const struct srdma_region *r);
/* The backend's key for a region is ready (or failed): a grant that
 * waited for it goes out now (or fails the connection). */
void srdma__on_tp_mr_ready(void *arg, struct srdma__tp_mr *mr, int status,
			   const char *detail);

/* stream.c: the byte stream's hooks in the data path */
/* A STREAM record arrived. */
int srdma__stream_on_record(struct srdma_conn *c, const uint8_t *p,
			    size_t len) SRDMA__WUR;
/* A notice announced a write into r, the stream's ring: the range must be
 * free (checked before any byte of it is opened into the sink). */
int srdma__stream_on_notice(struct srdma_conn *c, struct srdma_region *r,
			    uint64_t off, uint64_t len) SRDMA__WUR;
/* That write is verified: its bytes are in the ring's sink. */
int srdma__stream_on_write(struct srdma_conn *c, struct srdma_region *r,
			   uint64_t off, uint64_t len) SRDMA__WUR;
/* A stream segment's write ended (the owner acknowledged it, or not). */
void srdma__stream_op_done(struct srdma_conn *c, int status);
/* Something the stream may wait for happened: pump it from the loop. */
void srdma__stream_kick(struct srdma_conn *c);
/* Between loop iterations: sends what can go. */
int srdma__stream_work(struct srdma_conn *c) SRDMA__WUR;
/* The connection goes (after its operations ended, before its regions). */
void srdma__stream_free(struct srdma_conn *c);

/* lifecycle.c */
void srdma__leave_handshake(struct srdma_conn *c);
void srdma__fabric_failed(struct srdma_conn *c, int code, const char *detail);
bool srdma__goodbye_drained(const struct srdma_conn *c);
void srdma__maybe_finish_close(struct srdma_conn *c);
void srdma__start_disconnect(struct srdma_conn *c);

/* api.c */
int srdma__not_established(const struct srdma_conn *c) SRDMA__WUR;

#endif
